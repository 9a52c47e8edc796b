//! Why a site's desired state cannot be rendered, naming the booking and the offending
//! part, so that the caller can point the tenant, vendor or operator at it.

/// A refusal to render. Nothing is rendered when any booking is refused: leaving a
/// booking out would make the site's engine prune its namespace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A tenant configuration or a package's default values carry what looks like a
    /// secret as a literal value; secrets never go into the desired-state repository.
    #[error(
        "booking `{booking}`: `{pointer}` looks like a secret with a literal value; secrets never go into the desired state, store it in the secret store and reference it instead"
    )]
    SecretValue {
        booking: String,
        /// JSON pointer into the booking, e.g. `/config/admin_password`.
        pointer: String,
    },
    /// A plain-manifests package contains a `Secret`.
    #[error(
        "booking `{booking}`: `/package/manifests/{index}` is a `Secret`; secrets never go into the desired state, reference one from the secret store instead"
    )]
    SecretManifest { booking: String, index: usize },
    /// A plain-manifests package contains an object a tenant must not create.
    #[error("booking `{booking}`: `/package/manifests/{index}`: {reason}")]
    ForbiddenManifest {
        booking: String,
        index: usize,
        reason: String,
    },
    /// The tenant configuration is not a JSON object, so it cannot be merged into values.
    #[error("booking `{booking}`: `/config` must be an object")]
    ConfigNotObject { booking: String },
    /// The parts of a placed booking do not belong together (e.g. the plan is not the
    /// booking's plan); a caller bug, never a tenant's.
    #[error("booking `{booking}`: {message}")]
    Inconsistent { booking: String, message: String },
    /// A dependency lives where the renderer cannot reach it from the booking's site.
    #[error("booking `{booking}`: dependency `{dependency}` {reason}")]
    Dependency {
        booking: String,
        dependency: String,
        reason: String,
    },
    /// The same booking was given twice.
    #[error("booking `{booking}` is listed twice")]
    DuplicateBooking { booking: String },
    /// Two bookings would share a namespace.
    #[error("bookings `{first}` and `{second}` would share the namespace `{namespace}`")]
    NamespaceCollision {
        namespace: String,
        first: String,
        second: String,
    },
    /// The site, environment or a name used in paths or object names is not usable.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The booking's package cannot start as a booking of its offering (see
    /// `verbund_domain::catalog::check_package`, which also decides at publish time).
    #[error("booking `{booking}`: `{field}`: {message}")]
    Package {
        booking: String,
        field: String,
        message: String,
    },
    /// The site cannot run what a booking needs.
    #[error("booking `{booking}`: {message}")]
    Unsupported { booking: String, message: String },
    /// The booking's offering declares secret configuration, and its sealed secrets
    /// cannot be delivered (the site cannot open them, none were sealed, or they are
    /// stale); see [`crate::sealed`].
    #[error("booking `{booking}`: {message}")]
    Secrets { booking: String, message: String },
    /// An object could not be serialised; a bug in the renderer.
    #[error("cannot serialise `{what}`: {message}")]
    Serialise { what: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
