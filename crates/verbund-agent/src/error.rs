//! The agent's errors: one enum, so that the report and apply loops can log what failed
//! and go on, and the command line can tell the operator.

/// What can go wrong on the site's side.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API refused a request or could not be reached.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// `git` failed (fetching the desired state, reading a file of it).
    #[error("git {command}: {message}")]
    Git { command: String, message: String },
    /// A file of the desired state is not what the renderer writes.
    #[error("desired state `{path}`: {message}")]
    Desired { path: String, message: String },
    /// An object of a kind the agent does not apply (see [`crate::kinds`]).
    #[error("`{api_version}` `{kind}` is not a kind the agent applies")]
    UnknownKind { api_version: String, kind: String },
    /// A booking's chart could not be rendered.
    #[error("chart {chart}: {message}")]
    Chart { chart: String, message: String },
    /// A booking's vendor content holds an object a tenant may not own.
    #[error("booking namespace `{namespace}`: {message}")]
    Tenant { namespace: String, message: String },
    /// A watcher's store never became ready.
    #[error("the cluster's {0} could not be listed")]
    NotReady(&'static str),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
