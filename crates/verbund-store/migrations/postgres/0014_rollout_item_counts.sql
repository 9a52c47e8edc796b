-- A rollout's counts kept beside its items (issue 16: every list p99 < 50 ms).
--
-- Every read of a rollout (its page, the list of rollouts, and the authorisation of its
-- item lists) shows how many of its bookings are in which state per wave and site. Counted
-- from `rollout_items` that is a scan of every item: 100,000 for a rollout over all of
-- Germany. `rollout_item_counts` holds those counts, kept by a trigger in the transaction
-- that changes an item, whichever statement changes it, so they cannot drift from the
-- items. A count that falls to 0 stays as a row with n = 0 (readers skip it). Writers are
-- serialised (the store's advisory lock), so the count rows are never updated in two
-- orders at once.

CREATE TABLE rollout_item_counts (
    rollout   TEXT NOT NULL REFERENCES rollouts(id),
    wave      BIGINT NOT NULL,
    site      TEXT NOT NULL,
    reference BIGINT NOT NULL,
    state     TEXT NOT NULL,
    n         BIGINT NOT NULL,
    PRIMARY KEY (rollout, wave, site, reference, state)
);

INSERT INTO rollout_item_counts (rollout, wave, site, reference, state, n)
SELECT rollout, wave, site, reference, state, COUNT(*) FROM rollout_items
GROUP BY rollout, wave, site, reference, state;

CREATE FUNCTION rollout_item_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE rollout_item_counts SET n = n - 1
        WHERE rollout = OLD.rollout AND wave = OLD.wave AND site = OLD.site
          AND reference = OLD.reference AND state = OLD.state;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO rollout_item_counts (rollout, wave, site, reference, state, n)
        VALUES (NEW.rollout, NEW.wave, NEW.site, NEW.reference, NEW.state, 1)
        ON CONFLICT (rollout, wave, site, reference, state)
        DO UPDATE SET n = rollout_item_counts.n + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER rollout_item_counted
AFTER INSERT OR UPDATE OF wave, site, reference, state OR DELETE ON rollout_items
FOR EACH ROW EXECUTE FUNCTION rollout_item_counted();

-- A site's items of a rollout in the order its page lists them.
DROP INDEX rollout_items_site;
CREATE INDEX rollout_items_site ON rollout_items(rollout, site, booking);
