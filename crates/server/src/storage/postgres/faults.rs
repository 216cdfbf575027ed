//! How failures are sorted for the client, and the retry of transactions that lost a conflict.

use std::error::Error as _;
use std::future::Future;
use std::time::Duration;

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::storage::StorageError;

/// Attempts of a transaction that failed on a serialization conflict or deadlock.
const CONFLICT_ATTEMPTS: u32 = 4;

/// Runs `attempt` again after a serialization conflict or deadlock (each attempt is a whole
/// transaction that PostgreSQL rolled back), then sorts the failure for the caller.
pub(super) async fn retrying<T, F>(mut attempt: impl FnMut() -> F) -> Result<T, StorageError>
where
    F: Future<Output = Result<T, Fault>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(fault) if fault.is_conflict() && tries < CONFLICT_ATTEMPTS => {
                tracing::debug!(tries, "transaction conflict; retrying");
                tokio::time::sleep(Duration::from_millis(5 << tries)).await;
                tries += 1;
            }
            result => return result.map_err(StorageError::from),
        }
    }
}

/// A failure inside one attempt, before it is sorted into a [`StorageError`].
#[derive(Debug)]
pub(super) enum Fault {
    /// From the database or the connection.
    Db(tokio_postgres::Error),
    /// No connection could be had.
    Pool(PoolError),
    /// Already decided.
    Storage(StorageError),
}

impl From<tokio_postgres::Error> for Fault {
    fn from(e: tokio_postgres::Error) -> Self {
        Fault::Db(e)
    }
}

impl From<PoolError> for Fault {
    fn from(e: PoolError) -> Self {
        Fault::Pool(e)
    }
}

impl From<StorageError> for Fault {
    fn from(e: StorageError) -> Self {
        Fault::Storage(e)
    }
}

impl Fault {
    /// A conflict between concurrent transactions that a new attempt resolves.
    fn is_conflict(&self) -> bool {
        matches!(self, Fault::Db(e) if is_conflict(e))
    }

    /// Whether the connection the work ran on is gone (closed, terminated by the database, or
    /// cut): it must not serve another request.
    pub(super) fn is_connection_lost(&self) -> bool {
        let Fault::Db(e) = self else {
            return false;
        };
        match e.code() {
            // Class 08: connection exception; 57P0x: the backend was terminated or the server
            // is shutting down.
            Some(code) => code.code().starts_with("08") || code.code().starts_with("57P"),
            None => e.is_closed() || e.source().is_some_and(|s| s.is::<std::io::Error>()),
        }
    }
}

/// Whether `e` is a serialization failure or deadlock: the transaction was rolled back whole and
/// may simply run again.
fn is_conflict(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::T_R_SERIALIZATION_FAILURE | &SqlState::T_R_DEADLOCK_DETECTED)
    )
}

impl From<Fault> for StorageError {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::Storage(e) => e,
            // A conflict still there after the retries is a busy database: the client may
            // try again later.
            Fault::Db(e) if is_unavailable(&e) || is_conflict(&e) => {
                StorageError::Unavailable(describe(&e))
            }
            Fault::Db(e) => StorageError::Internal(describe(&e)),
            Fault::Pool(PoolError::Backend(e)) => Fault::Db(e).into(),
            Fault::Pool(e) => StorageError::Unavailable(format!("no database connection: {e}")),
        }
    }
}

/// Whether `e` means the database cannot serve now (connection lost or refused, server shutting
/// down or overloaded) rather than a fault in the request or the data.
fn is_unavailable(e: &tokio_postgres::Error) -> bool {
    if let Some(code) = e.code() {
        let code = code.code();
        // Class 08: connection exception; 57P0x: shutdown or crash; 53: out of resources.
        return code.starts_with("08") || code.starts_with("57P") || code.starts_with("53");
    }
    e.is_closed()
        || e.source().is_some_and(|s| s.is::<std::io::Error>())
        || e.to_string().starts_with("timeout")
}

/// The message of `e` with the database's own explanation, which `Display` leaves out. Server
/// messages name tables and constraints, never values.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match e.source() {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_and_conflicts_are_retryable_and_the_rest_is_internal() {
        let closed = StorageError::from(Fault::Pool(PoolError::Closed));
        assert!(matches!(closed, StorageError::Unavailable(_)), "{closed}");
        let timeout = StorageError::from(Fault::Pool(PoolError::Timeout(
            deadpool_postgres::TimeoutType::Wait,
        )));
        assert!(matches!(timeout, StorageError::Unavailable(_)), "{timeout}");
        let decided = StorageError::from(Fault::Storage(StorageError::NotFound));
        assert!(matches!(decided, StorageError::NotFound));
    }
}
