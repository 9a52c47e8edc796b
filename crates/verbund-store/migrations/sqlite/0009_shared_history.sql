-- The desired-state history that several replicas share (PostgreSQL): every commit of
-- each repository in order, with the pack (and its index) holding the objects it added,
-- and where each repository's branch stands. The writer stores a commit and moves the
-- branch in one transaction, compare-and-swap on `desired_state_refs.head`, before it
-- moves its own branch; every replica installs the packs it lacks, in order, into its own
-- repositories, so that all of them, and every site they serve, hold one history. A
-- repository is `desired-state` (the whole desired state) or `sites/<site>` (a site's
-- own). Packs are kept in chunks of at most 8 MiB. `desired_state_cursor` is the last
-- audit event the shared history reflects, where a new writer goes on from, and, while
-- the writer may not have finished what follows its last commit (the sites' repositories,
-- the bookings' move to provisioning), the first event of that commit's run. On SQLite
-- (one process) the tables stay empty.

CREATE TABLE desired_state_refs (
    repository  TEXT PRIMARY KEY,
    head        TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE desired_state_commits (
    repository  TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    old         TEXT,
    new         TEXT NOT NULL,
    idx         BLOB NOT NULL,
    pack_bytes  INTEGER NOT NULL,
    chunks      INTEGER NOT NULL,
    written_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (repository, seq)
);

CREATE INDEX desired_state_commits_by_commit ON desired_state_commits (repository, new);

CREATE TABLE desired_state_packs (
    repository  TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    chunk       INTEGER NOT NULL,
    data        BLOB NOT NULL,
    PRIMARY KEY (repository, seq, chunk),
    FOREIGN KEY (repository, seq) REFERENCES desired_state_commits (repository, seq)
);

CREATE TABLE desired_state_cursor (
    name       TEXT PRIMARY KEY,
    delivered  INTEGER NOT NULL,
    run_from   INTEGER
);
