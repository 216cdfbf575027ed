use heeldiary_core::ValidationError;
use uuid::Uuid;

/// Everything that can go wrong in the local store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A value broke a rule; nothing was written.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// No entry with this id (or it was deleted).
    #[error("no entry with id {0}")]
    NotFound(Uuid),
    /// An entry with this id exists already.
    #[error("an entry with id {0} exists already")]
    AlreadyExists(Uuid),
    /// One item of a batch import failed; nothing of the batch was written.
    #[error("item {index}: {source}")]
    Import {
        /// Zero-based position of the failing item.
        index: usize,
        /// What was wrong with it.
        #[source]
        source: Box<StoreError>,
    },
    /// The file was written by a newer version of heeldiary.
    #[error("the diary was written by a newer heeldiary (schema version {found}; this one knows up to {supported}); upgrade heeldiary, the file is left untouched")]
    NewerSchema {
        /// Version found in the file.
        found: u32,
        /// Highest version this build knows.
        supported: u32,
    },
    /// The file holds data this build cannot read.
    #[error("the diary file holds unreadable data: {0}")]
    Corrupt(String),
    /// The device has not been enrolled with a server yet.
    #[error("this device is not enrolled with a server yet; run `heeldiary enroll --server URL --code CODE`")]
    NotEnrolled,
    /// SQLite failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl StoreError {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        StoreError::Corrupt(what.to_string())
    }
}

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
