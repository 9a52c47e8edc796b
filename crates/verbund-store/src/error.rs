//! Store errors, mapped from database errors so that `sqlx::Error` never reaches callers
//! that only need to know "not found", "conflict" or "invalid".

use verbund_domain::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist.
    #[error("{kind} `{id}` not found")]
    NotFound { kind: &'static str, id: String },
    /// The write collides with existing data (a duplicate key, a version that exists).
    #[error("{0}")]
    Conflict(String),
    /// The input is invalid in the light of other stored records (e.g. an unknown parent).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The database URL or options are unusable.
    #[error("{0}")]
    Config(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be migrated.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub(crate) fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        StoreError::NotFound {
            kind,
            id: id.into(),
        }
    }

    /// Whether a database error is a unique-constraint violation.
    pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
        match e {
            sqlx::Error::Database(d) => {
                d.is_unique_violation()
                    || d.code().as_deref() == Some("23505")
                    || d.message().contains("UNIQUE constraint failed")
            }
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
