//! Why delivering desired state to the Git repository failed, naming the path or the git
//! command so that an operator can act on it.

use std::path::PathBuf;

/// A failure of the desired-state repository.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The folder exists, is not empty and is not a Git repository; it is never taken over.
    #[error("`{0}` is not empty and not a git repository")]
    NotARepository(PathBuf),
    /// git processes still work in the repository (left by a killed predecessor) and did
    /// not end in time; their locks cannot be told from stale ones.
    #[error("git processes still work in `{0}`")]
    Busy(PathBuf),
    /// A path of a batch or a scope is not a clean relative path inside the repository.
    #[error("`{0}` is not a relative path inside the repository")]
    InvalidPath(String),
    /// A file of a batch lies outside every folder the batch owns.
    #[error("`{0}` lies outside the scope of the batch")]
    OutsideScope(String),
    /// The same path appears twice in a batch.
    #[error("`{0}` appears twice in the batch")]
    DuplicatePath(String),
    /// A file and a folder of the same name in one folder (`a` and `a/b`).
    #[error("`{0}` is both a file and a folder")]
    PathConflict(String),
    /// A path put in a change lies inside (or is) another path of the same change.
    #[error("`{0}` overlaps another path of the change")]
    Overlap(String),
    /// The branch moved between the start of a change and its commit (another writer);
    /// nothing was overwritten.
    #[error("`{branch}` moved while the change was prepared (expected {expected})")]
    HeadMoved { branch: String, expected: String },
    /// Text that is not a 40-digit hexadecimal object name.
    #[error("`{0}` is not an object name")]
    InvalidOid(String),
    /// An object the repository should have is missing.
    #[error("object {0} is missing from the repository")]
    MissingObject(String),
    /// An object is not what its name or its use says it is.
    #[error("object {0} is corrupt or of an unexpected kind")]
    CorruptObject(String),
    /// Pack data received from elsewhere (another copy of the repository) is not a whole
    /// pack with its index; nothing was installed.
    #[error("invalid pack: {0}")]
    InvalidPack(String),
    /// A branch name git does not accept.
    #[error("`{0}` is not a valid branch name")]
    InvalidBranch(String),
    /// Reading or writing a file of the repository failed.
    #[error("{action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The git executable could not be started.
    #[error("cannot run git: {0}")]
    Spawn(#[source] std::io::Error),
    /// A git command exited unsuccessfully.
    #[error("`git {command}` failed ({status}): {stderr}")]
    Git {
        command: String,
        status: String,
        stderr: String,
    },
    /// A git command did not finish in time and was killed.
    #[error("`git {0}` timed out")]
    Timeout(String),
    /// git printed something this crate does not understand.
    #[error("unexpected output of `git {command}`: {detail}")]
    Parse { command: String, detail: String },
    /// Every push attempt failed; the last error is kept.
    #[error("push to `{remote}` failed after {attempts} attempts: {last}")]
    PushFailed {
        remote: String,
        attempts: u32,
        #[source]
        last: Box<Error>,
    },
}

/// The result of this crate's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
