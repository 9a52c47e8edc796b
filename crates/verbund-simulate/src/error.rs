//! The simulator's errors: what can go wrong reading the desired state, the faults file
//! or the control plane's answers, each with enough context for an operator.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The git executable could not be started.
    #[error("cannot run git: {0}")]
    Spawn(#[source] std::io::Error),
    /// git failed on the desired-state repository.
    #[error("git {command} failed in `{repository}`: {stderr}")]
    Git {
        command: String,
        repository: String,
        stderr: String,
    },
    /// Talking to the long-lived `git cat-file` failed.
    #[error("reading objects from `{repository}` failed: {source}")]
    Read {
        repository: String,
        #[source]
        source: std::io::Error,
    },
    /// A file of the desired state could not be understood.
    #[error("`{path}` is not readable desired state: {reason}")]
    Desired { path: String, reason: String },
    /// The faults file could not be read or parsed.
    #[error("faults file `{path}`: {reason}")]
    Faults { path: PathBuf, reason: String },
    /// The simulation's settings cannot work.
    #[error("{0}")]
    Config(String),
    /// A fault setting is out of range.
    #[error("{0}")]
    InvalidFaults(String),
    /// The control plane refused to issue a site token, or could not be reached.
    #[error("cannot get a token for site `{site}`: {reason}")]
    Token { site: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
