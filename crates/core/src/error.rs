use std::fmt;

/// A rejected value: which field, and why. Carries no personal data beyond the field name and
/// the rule, so it is safe to log and to send back to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    /// Path of the offending field, e.g. `first_step_pain` or `ops[3].patch.note`.
    pub field: String,
    /// Human-readable rule that the value broke.
    pub reason: String,
}

impl ValidationError {
    /// A new error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error, located under `prefix` (`ops[3].patch` + `note` = `ops[3].patch.note`).
    pub fn within(self, prefix: &str) -> Self {
        Self {
            field: format!("{prefix}.{}", self.field),
            reason: self.reason,
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Why a merged entry state does not make an [`crate::Entry`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Its day or first recording has not arrived yet: an edit was delivered before the
    /// operation that creates the entry. Not a fault: the entry completes when that arrives, and
    /// lists leave it out until then.
    #[error("entry {id} is not complete yet: no `{missing}` has arrived")]
    Incomplete {
        /// The entry.
        id: uuid::Uuid,
        /// The first field it still lacks.
        missing: crate::field::Field,
    },
    /// A stored value does not fit its field: a fault in the data, never to be skipped quietly.
    #[error("entry {id}: {source}")]
    Invalid {
        /// The entry.
        id: uuid::Uuid,
        /// The field and why.
        source: ValidationError,
    },
}

impl EntryError {
    /// Whether the entry is merely not complete yet (see [`EntryError::Incomplete`]).
    pub fn is_incomplete(&self) -> bool {
        matches!(self, EntryError::Incomplete { .. })
    }
}
