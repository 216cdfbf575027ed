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
