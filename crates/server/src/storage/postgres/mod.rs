//! The scale-out backend: PostgreSQL through a pool of `tokio-postgres` connections.
//!
//! The schema (`schema/server-postgres/`) keeps every patient table keyed by `patient_id` first,
//! so it runs unchanged on one server, on a partitioned one, or on a distributed PostgreSQL with
//! `patient_id` as distribution column (`docs/postgres.md`). Migrations run at open, in one
//! transaction under an advisory lock so that servers starting together do not race; a database
//! written by a newer server is refused, never changed.
//!
//! Pushes of one patient serialize on the patient's counter row (`last_cursor`), which they hold
//! locked from their first statement to their commit: cursors are handed out and become visible
//! in the same order, so a puller that saw cursor `n` never misses a lower one committed later.
//!
//! Failures are sorted for the client: a lost connection, a pool timeout or a server shutting
//! down is [`StorageError::Unavailable`] (HTTP 503, retried by devices; a transaction cut short
//! wrote nothing); a serialization failure or deadlock is retried here a few times first; the
//! rest is [`StorageError::Internal`]. The pool checks each connection as it hands it out and
//! replaces dead ones, so the server serves again as soon as the database is back.
//!
//! One file per job:
//! - `pool`: the connection pool, the migrations run at open, one statement or one transaction
//!   on a pooled connection;
//! - `transactions`: the push and enrolment transactions and the row codecs;
//! - `faults`: sorting failures into [`StorageError`]s and retrying lost conflicts;
//! - `storage_impl`: the [`Storage`](super::Storage) implementation the handlers call;
//! - `scratch`: the test harness (`ScratchSchema`), built only for tests and with the
//!   `test-support` feature, never into the server a clinic runs.
//!
//! [`StorageError`]: super::StorageError
//! [`StorageError::Unavailable`]: super::StorageError::Unavailable
//! [`StorageError::Internal`]: super::StorageError::Internal

mod faults;
mod pool;
mod providers;
mod research;
mod storage_impl;
mod transactions;

#[cfg(any(test, feature = "test-support"))]
mod scratch;

use deadpool_postgres::Pool;

pub use pool::{PoolOptions, POSTGRES_SCHEMA_VERSION};
#[cfg(any(test, feature = "test-support"))]
pub use scratch::{ScratchSchema, TEST_DATABASE_URL};

#[cfg(test)]
pub(super) use pool::MIGRATIONS;

/// The PostgreSQL backend. Cloning shares the pool.
#[derive(Clone)]
pub struct PostgresStorage {
    pool: Pool,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's configuration holds the password: show only its size.
        f.debug_struct("PostgresStorage")
            .field("max_size", &self.pool.status().max_size)
            .finish_non_exhaustive()
    }
}
