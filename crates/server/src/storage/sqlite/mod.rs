//! The embedded backend: one SQLite file per server, `DIR/heeldiary-server.sqlite3`.
//!
//! One connection behind a mutex writes; blocking calls run on tokio's blocking pool. Pushes
//! queue for one writer task and share commits (see `transactions::push_group`). A few more
//! connections, read-only, answer the questions every request asks (whose token, which epoch)
//! and read the feed from the last committed state, so they never wait behind a commit syncing
//! the disk, nor for each other; a token check and a day's feed are read at once on an idle one,
//! on the async thread, where a hand-off to the blocking pool and back would cost more than the
//! read. Exports read each patient's snapshot on read-only connections of their own, so a long
//! read holds up none of them. A thread of its own copies committed pages from the log into the file
//! (a checkpoint) beside the writer, so a commit does not wait for it. The file is opened in WAL mode with foreign keys on, and migrated
//! at open from the numbered files in `schema/server-sqlite/`, all in one transaction. A
//! database written by a newer server is refused, never changed.
//!
//! One file per job, as in the PostgreSQL backend:
//! - `connection`: opening the file, the migrations run at open, running work on the connection
//!   off the async threads, and sorting SQLite failures into [`StorageError`]s;
//! - `transactions`: the push and enrolment transactions and the row codecs;
//! - `storage_impl`: the [`Storage`](super::Storage) implementation the handlers call.
//!
//! [`StorageError`]: super::StorageError

mod connection;
mod providers;
mod research;
mod storage_impl;
mod transactions;

use std::sync::{Arc, Mutex};

use rusqlite::Connection;

#[cfg(test)]
pub(super) use connection::MIGRATIONS;

/// The SQLite backend. Cloning shares the connections.
#[derive(Clone)]
pub struct SqliteStorage {
    conn: Arc<Mutex<Connection>>,
    /// Read the last committed state beside the writer (WAL); the writer itself for a
    /// database in memory, which no second connection can open.
    readers: Arc<connection::Readers>,
    /// Pushes waiting for the next group commit on `conn`.
    queued_pushes: Arc<Mutex<connection::PushQueue>>,
    /// Connections that the exports read a patient's snapshot on; `None` for a database in
    /// memory, which no other connection can open.
    export_readers: Option<Arc<connection::ExportReaders>>,
    /// Wakes the thread that copies committed pages from the log into the file; `None` for a
    /// database in memory.
    checkpoints: Option<connection::Checkpoints>,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage").finish_non_exhaustive()
    }
}
