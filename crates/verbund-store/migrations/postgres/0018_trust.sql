-- Trust (issue 17): the federation's trust list, versioned like its policy documents,
-- and the certification credentials submitted for sites, verified against it. A
-- credential counts for placement while it is not revoked (by its issuer's status list,
-- by its issuer leaving the trust list, or by a newer credential of the same issuer and
-- scheme) and within its validity.
CREATE TABLE trust_list_versions (
    version    BIGINT PRIMARY KEY,
    document   TEXT NOT NULL,
    actor      TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE site_credentials (
    id             TEXT PRIMARY KEY,
    site           TEXT NOT NULL REFERENCES sites(name) ON DELETE CASCADE,
    issuer         TEXT NOT NULL,
    scheme         TEXT NOT NULL,
    details        TEXT NOT NULL,
    jwt            TEXT NOT NULL,
    valid_until    TEXT NOT NULL,
    status_list    TEXT,
    status_index   BIGINT,
    revoked_at     TEXT,
    revoked_reason TEXT,
    submitted_by   TEXT NOT NULL,
    created_at     TEXT NOT NULL
);
CREATE INDEX site_credentials_site ON site_credentials(site, created_at);
CREATE INDEX site_credentials_status ON site_credentials(status_list) WHERE status_list IS NOT NULL;
