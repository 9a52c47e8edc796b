-- Accounts with a life cycle (issue 16).
--
-- `users.disabled_at`: a disabled account signs in nowhere; its tokens and sessions stop
-- working at once (they are checked against it at every use).
-- `password_resets`: one-time, expiring reset tokens an administrator hands out; only
-- their SHA-256 is stored, and a used or superseded one carries `used_at`.
-- `sessions.roles_checked_at` / `sessions.refresh_token`: when the identity provider last
-- confirmed the roles of an OIDC session, and the refresh token to ask it again.
-- `sign_in_attempts`: sign-in attempts counted per key (an account from one source, or a
-- source), each reserved atomically before a password is evaluated; the counters replace
-- the per-credential failure count.

ALTER TABLE users ADD COLUMN disabled_at TEXT;

ALTER TABLE sessions ADD COLUMN roles_checked_at TEXT;
ALTER TABLE sessions ADD COLUMN refresh_token TEXT;

ALTER TABLE credentials DROP COLUMN failed_logins;
ALTER TABLE credentials DROP COLUMN locked_until;

CREATE TABLE password_resets (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);
CREATE INDEX password_resets_user ON password_resets(user_id);

CREATE TABLE sign_in_attempts (
    key          TEXT PRIMARY KEY,
    attempts     BIGINT NOT NULL,
    window_ends  TEXT NOT NULL
);
