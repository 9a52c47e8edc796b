-- Facts with provenance (issue 17): the placement facts of providers and sites (see
-- `verbund_domain::facts`) change only when the federation states them or approves an
-- operator's proposal. `fact_provenance` keeps, per fact, who stated its current value
-- and when, and for an approved proposal who approved it and when; a fact without a row
-- was stated before verbund recorded provenance. `fact_proposals` keeps the operators'
-- proposals: the proposed values by field (JSON), pending until a federation admin other
-- than the proposer (`proposer_id`, an account id) approves or rejects them.

CREATE TABLE fact_provenance (
    kind         TEXT NOT NULL,
    object       TEXT NOT NULL,
    field        TEXT NOT NULL,
    stated_by    TEXT NOT NULL,
    stated_at    TEXT NOT NULL,
    approved_by  TEXT,
    approved_at  TEXT,
    proposal     TEXT,
    PRIMARY KEY (kind, object, field)
);

CREATE TABLE fact_proposals (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    object       TEXT NOT NULL,
    provider     TEXT NOT NULL REFERENCES providers(name),
    facts        TEXT NOT NULL,
    state        TEXT NOT NULL,
    proposer_id  TEXT NOT NULL,
    proposed_by  TEXT NOT NULL,
    proposed_at  TEXT NOT NULL,
    decided_by   TEXT,
    decided_at   TEXT,
    reason       TEXT
);

CREATE INDEX fact_proposals_provider ON fact_proposals (provider, id);
CREATE INDEX fact_proposals_object ON fact_proposals (kind, object, state);
