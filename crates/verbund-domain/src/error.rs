//! Validation errors that name the offending field, so API and CLI can point at it.

use std::fmt;

/// A rejected input: which field (a JSON pointer or dotted path) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Invalid {
    /// Where the problem is, e.g. `/key` or `/versions/0/version`.
    pub field: String,
    /// What is wrong, lowercase, user input quoted in backticks.
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Prefix the field with a parent path, e.g. `/plans/0` + `/cpu`.
    pub fn at(mut self, parent: &str) -> Self {
        self.field = format!("{parent}{}", self.field);
        self
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

pub type Result<T, E = Invalid> = std::result::Result<T, E>;
