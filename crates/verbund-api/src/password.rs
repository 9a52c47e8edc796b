//! Portal passwords, hashed with Argon2id (the OWASP-recommended parameters of the `argon2`
//! crate's default), in PHC string format so that parameters can be raised later.
//!
//! Every hash and verification costs about 19 MiB and a core for a while, so they run
//! under a `HashingLimit`: at most that many at once, on the blocking pool. One more is
//! refused at once (the caller answers 503 with `Retry-After`) rather than queued, so
//! that a flood of sign-ins cannot pile up memory and time without bound.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// The shortest password the portal accepts (BSI IT-Grundschutz ORP.4.A22 asks for
/// length over complexity rules).
pub const MIN_LENGTH: usize = 12;

/// Refuses a password shorter than `MIN_LENGTH` characters (before any hashing work).
pub fn check_length(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_LENGTH {
        return Err(format!("a password needs at least {MIN_LENGTH} characters"));
    }
    Ok(())
}

/// The JSON Schema of a password `hash_password` accepts.
pub fn schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(MIN_LENGTH))
        .build()
}

/// Hashes a password for storage.
///
/// # Errors
/// When the password is shorter than `MIN_LENGTH` characters.
pub fn hash_password(password: &str) -> Result<String, String> {
    check_length(password)?;
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the stored PHC string (a malformed hash never matches).
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A new password reset token: 32 random bytes, `vbr_` and hex (only its SHA-256 is
/// stored, like an API token's).
pub fn reset_token() -> String {
    let mut b = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    format!("vbr_{}", hex::encode(b))
}

/// The key under which attempts at an account's password from one source are counted
/// (the portal's sign-in form: the client's address; the API: `api`).
pub fn attempt_key(user_name: &str, source: &str) -> String {
    format!("account:{user_name}|{source}")
}

/// The key under which a source's attempts at any account are counted.
pub fn source_key(source: &str) -> String {
    format!("source:{source}")
}

/// A hash to verify against when the user is unknown or has no password, so that the
/// answer takes as long as for a real user and does not reveal which names exist.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy-password-never-matches").unwrap_or_default())
}

/// How long a caller refused by a full `HashingLimit` should wait, in seconds.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// Why a password could not be hashed or checked now.
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    /// As many evaluations as allowed are running already.
    #[error("too many passwords are being checked at once; try again in {RETRY_AFTER_SECONDS} s")]
    Busy,
    /// The evaluation itself failed (a panic on the blocking pool).
    #[error("the password evaluation failed: {0}")]
    Failed(String),
}

/// A bound on the Argon2 evaluations running at once, shared by the API and the portal.
#[derive(Clone)]
pub struct HashingLimit {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
}

impl HashingLimit {
    /// At most `n` evaluations at once (at least one).
    pub fn new(n: usize) -> Self {
        Self {
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(n.max(1))),
        }
    }

    /// One evaluation per core: more would only wait for a core while holding memory.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, usize::from))
    }

    /// Runs `work` (a hash or a verification) on the blocking pool if a permit is free,
    /// and refuses at once otherwise.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashingError> {
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| HashingError::Busy)?;
        tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            out
        })
        .await
        .map_err(|e| HashingError::Failed(e.to_string()))
    }

    /// Holds every permit until the guard is dropped (for tests of the refusal).
    pub async fn exhaust(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let n = u32::try_from(self.permits.available_permits()).ok()?;
        self.permits.clone().acquire_many_owned(n).await.ok()
    }
}

impl Default for HashingLimit {
    fn default() -> Self {
        Self::per_core()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_per_salt() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(verify("correct horse battery", &a));
        assert!(!verify("correct horse batterY", &a));
        assert!(!verify("anything", "not a phc string"));
        assert!(hash_password("short").is_err());
        assert!(!verify("decoy", decoy()));
    }

    #[tokio::test]
    async fn the_limit_refuses_rather_than_queues() {
        let limit = HashingLimit::new(1);
        let held = limit.exhaust().await.expect("the permits");
        assert!(matches!(
            limit.run(|| verify("x", decoy())).await,
            Err(HashingError::Busy)
        ));
        drop(held);
        assert!(matches!(limit.run(|| 7).await, Ok(7)));
    }
}
