-- The portal's sign-in: local passwords (Argon2 PHC strings), lock-out after repeated
-- failures, browser sessions (only the SHA-256 of the cookie's secret is stored), and the
-- link between an OIDC identity (issuer, subject) and its verbund user.

CREATE TABLE credentials (
    user_id        TEXT PRIMARY KEY REFERENCES users(id),
    password_hash  TEXT,
    failed_logins  BIGINT NOT NULL DEFAULT 0,
    locked_until   TEXT,
    updated_at     TEXT NOT NULL
);

CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    csrf        TEXT NOT NULL,
    via         TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    ended_at    TEXT
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE oidc_identities (
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id),
    created_at  TEXT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
