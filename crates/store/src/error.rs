use std::path::PathBuf;

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
    /// The folder of the diary file cannot be created (permissions, a full disk, a file in the
    /// way); nothing was opened.
    #[error("cannot create the folder {}: {error}", path.display())]
    Io {
        /// The folder.
        path: PathBuf,
        /// What the system said (part of the message, so not repeated as a source).
        error: std::io::Error,
    },
    /// The device has not been enrolled with a server yet. (How to enrol depends on the app, so
    /// the message does not say.)
    #[error("this device is not enrolled with a server yet")]
    NotEnrolled,
    /// The diary is encrypted and no key was given.
    #[error("the diary is encrypted: it opens only with its key")]
    KeyRequired,
    /// The key does not open the diary; the file was left as it was.
    #[error("the key does not open this diary (a wrong key, or not a diary file); the file is left untouched")]
    WrongKey,
    /// A key was given for a diary that is not encrypted.
    #[error("the diary is not encrypted: open it without a key, or encrypt it first")]
    NotEncrypted,
    /// The key's secret is too short to be a key on its own.
    #[error("the key holds {bytes} bytes; at least {needed} bytes of random secret are needed")]
    WeakKey {
        /// Bytes given (surrounding whitespace aside).
        bytes: usize,
        /// Fewest accepted.
        needed: usize,
    },
    /// This build links plain SQLite, which cannot encrypt.
    #[error("this build cannot encrypt diaries (it was built without SQLCipher)")]
    EncryptionUnavailable,
    /// Rewriting the diary under another key could not replace the file; the diary is left as
    /// it was.
    #[error("cannot replace {}: {error}; the diary is left as it was", path.display())]
    Replace {
        /// The diary file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// An operation pulled from the server has the device id and sequence number of a
    /// different operation in this diary: this diary is a copy of another that wrote under the
    /// same id. Nothing of the page was applied; the diary must take a new device identity.
    #[error("sequence {device_seq} of device {device_id} holds a different operation here than on the server: this diary is a copy of another")]
    SequenceTaken {
        /// The device id both copies write under.
        device_id: Uuid,
        /// The sequence number.
        device_seq: u64,
    },
    /// The disk is full (or the file reached its size limit); nothing of the change was written.
    #[error(
        "the disk holding the diary is full; nothing was written (free some space and try again)"
    )]
    DiskFull,
    /// The diary file or its folder cannot be written; nothing was changed.
    #[error("the diary file is read-only; nothing was written")]
    ReadOnly,
    /// SQLite failed.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::DiskFull,
            Some(rusqlite::ErrorCode::ReadOnly) => StoreError::ReadOnly,
            _ => StoreError::Sqlite(e),
        }
    }
}

impl StoreError {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        StoreError::Corrupt(what.to_string())
    }
}

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
