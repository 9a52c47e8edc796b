//! Validation errors that name the offending field, so API and CLI can point at it, and
//! say which kind of rule the input breaks, so that the API can answer each kind with
//! its own status (see [`Breach`]).

use std::fmt;

/// Which kind of rule a refused input breaks.
///
/// The kinds follow what a client can know before it sends: the form of a value is
/// stated in the published schemas (the API's OpenAPI document, built from this crate's
/// schema functions and constants), so a client that keeps to them never breaks it; the
/// other kinds depend on what is stored, or on rules no JSON Schema can state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Breach {
    /// A rule of form the published schemas state: a type, a pattern, a length, a bound,
    /// a number of items, a field required or forbidden by another one's value. Every
    /// such rule is stated there, from the same constant or function that checks it.
    #[default]
    Form,
    /// The input names an object that does not exist (or that the caller may not see).
    Unknown,
    /// The input conflicts with the current state of what it changes or needs: a version
    /// not newer than the latest, a field that cannot change, a dependency not yet
    /// published.
    Conflict,
    /// A rule of meaning that no schema states: a rule across fields or items (a
    /// region within its country, plan names unique), against stored data (a Land
    /// policy's owner is a Land) or the current time, or on the inside of free-form
    /// content (a configuration against its offering's schema, a JSON Schema, Kubernetes
    /// manifests, Cedar text, an age recipient's checksum).
    Meaning,
}

/// A rejected input: which field (a JSON pointer or dotted path), why, and which kind of
/// rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Invalid {
    /// Where the problem is, e.g. `/key` or `/versions/0/version`.
    pub field: String,
    /// What is wrong, lowercase, user input quoted in backticks.
    pub message: String,
    pub breach: Breach,
}

impl Invalid {
    /// A rule of form the published schemas state ([`Breach::Form`]).
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::of(Breach::Form, field, message)
    }

    /// A reference to an object that does not exist ([`Breach::Unknown`]).
    pub fn unknown(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::of(Breach::Unknown, field, message)
    }

    /// A conflict with the current state ([`Breach::Conflict`]).
    pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::of(Breach::Conflict, field, message)
    }

    /// A rule of meaning no schema states ([`Breach::Meaning`]).
    pub fn meaning(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::of(Breach::Meaning, field, message)
    }

    pub fn of(breach: Breach, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            breach,
        }
    }

    /// The same refusal as another kind of rule: for a check applied where its own kind
    /// does not hold (a check of form on stored data, which the request did not send).
    pub fn with_breach(mut self, breach: Breach) -> Self {
        self.breach = breach;
        self
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
