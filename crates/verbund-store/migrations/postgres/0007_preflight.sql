-- Site preflight: each site's last `verbund agent preflight` (when, by whom, for which
-- delivery mode, the overall verdict and every check as JSON). Placement reads it in the
-- write transaction: a site whose last preflight failed gets no new bookings. Earlier
-- preflights are in the audit trail (`site.preflight`).

CREATE TABLE site_preflight (
    site                TEXT PRIMARY KEY REFERENCES sites(name),
    reported_at         TEXT NOT NULL,
    agent               TEXT NOT NULL,
    delivery            TEXT NOT NULL,
    kubernetes_version  TEXT,
    verdict             TEXT NOT NULL,
    checks              TEXT NOT NULL
);
