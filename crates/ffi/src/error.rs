//! The one error an app sees, by what it can do about it.

use heeldiary_client::ClientError;
use heeldiary_store::StoreError;

/// Why a call failed. Messages name fields, rules and ids, never what the diary holds.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum FfiError {
    /// A value broke a rule (show `reason` beside the field); nothing was written.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, as named in the entry JSON (e.g. `first_step_pain`), or `key`, `id`, `day`.
        field: String,
        /// The rule it broke.
        reason: String,
    },
    /// One line of an import broke a rule; nothing of the import was written.
    #[error("line {line}: {field}: {reason}")]
    InvalidLine {
        /// One-based line number.
        line: u32,
        /// The field, or `json` when the line is not a JSON object.
        field: String,
        /// The rule it broke.
        reason: String,
    },
    /// No live entry with this id.
    #[error("no entry with id {id}")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// The diary is not enrolled with a server yet: offer enrolment.
    #[error("this diary is not enrolled with a server yet")]
    NotEnrolled,
    /// The diary is enrolled already; a diary syncs with one server as one patient.
    #[error("this diary is enrolled already")]
    AlreadyEnrolled,
    /// The server could not be reached even after retries: try again later.
    #[error("cannot reach the server after {attempts} attempts")]
    Offline {
        /// Attempts made.
        attempts: u32,
    },
    /// The server refused the request (a used code, a revoked device, a bad request).
    #[error("the server refused the request ({status} {code}): {message}")]
    ServerRefused {
        /// HTTP status.
        status: u16,
        /// The server's error code, e.g. `invalid_code`, `unauthorized`.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The server answered outside the protocol, or the server URL is unusable.
    #[error("server error: {detail}")]
    Server {
        /// What was wrong.
        detail: String,
    },
    /// The diary is encrypted and no key was given.
    #[error("the diary is encrypted: it opens only with its key")]
    KeyRequired,
    /// The key does not open the diary; the file was left untouched.
    #[error("the key does not open this diary; the file is left untouched")]
    WrongKey,
    /// The diary file cannot be used (a newer format, unreadable data, a full disk, no
    /// encryption in this build).
    #[error("storage: {detail}")]
    Storage {
        /// What failed.
        detail: String,
    },
}

impl From<StoreError> for FfiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Invalid(e) => FfiError::Invalid {
                field: e.field,
                reason: e.reason,
            },
            StoreError::NotFound(id) => FfiError::NotFound { id: id.to_string() },
            StoreError::NotEnrolled => FfiError::NotEnrolled,
            StoreError::KeyRequired => FfiError::KeyRequired,
            StoreError::WrongKey => FfiError::WrongKey,
            e @ StoreError::WeakKey { .. } => FfiError::Invalid {
                field: "key".into(),
                reason: e.to_string(),
            },
            StoreError::Import { index, source } => match FfiError::from(*source) {
                FfiError::Invalid { field, reason } => FfiError::InvalidLine {
                    line: index as u32 + 1,
                    field,
                    reason,
                },
                other => other,
            },
            other => FfiError::Storage {
                detail: other.to_string(),
            },
        }
    }
}

impl From<ClientError> for FfiError {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::Network { attempts, .. } => FfiError::Offline { attempts },
            ClientError::Refused { status, body } => FfiError::ServerRefused {
                status,
                code: serde_json::to_value(body.error)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                message: body.message,
            },
            ClientError::AlreadyEnrolled { .. } => FfiError::AlreadyEnrolled,
            ClientError::Store(store) => store.into(),
            other => FfiError::Server {
                detail: other.to_string(),
            },
        }
    }
}

impl FfiError {
    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Self {
        FfiError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
