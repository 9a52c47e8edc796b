-- A rollout's counts kept beside its items (issue 16: every list p99 < 50 ms).
--
-- Every read of a rollout (its page, the list of rollouts, and the authorisation of its
-- item lists) shows how many of its bookings are in which state per wave and site. Counted
-- from `rollout_items` that is a scan of every item: 100,000 for a rollout over all of
-- Germany. `rollout_item_counts` holds those counts, kept by triggers in the transaction
-- that changes an item, whichever statement changes it, so they cannot drift from the
-- items. A count that falls to 0 stays as a row with n = 0 (readers skip it).

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

CREATE TRIGGER rollout_item_counted_insert AFTER INSERT ON rollout_items
BEGIN
    INSERT INTO rollout_item_counts (rollout, wave, site, reference, state, n)
    VALUES (NEW.rollout, NEW.wave, NEW.site, NEW.reference, NEW.state, 1)
    ON CONFLICT (rollout, wave, site, reference, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER rollout_item_counted_update AFTER UPDATE OF wave, site, reference, state
ON rollout_items
BEGIN
    UPDATE rollout_item_counts SET n = n - 1
    WHERE rollout = OLD.rollout AND wave = OLD.wave AND site = OLD.site
      AND reference = OLD.reference AND state = OLD.state;
    INSERT INTO rollout_item_counts (rollout, wave, site, reference, state, n)
    VALUES (NEW.rollout, NEW.wave, NEW.site, NEW.reference, NEW.state, 1)
    ON CONFLICT (rollout, wave, site, reference, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER rollout_item_counted_delete AFTER DELETE ON rollout_items
BEGIN
    UPDATE rollout_item_counts SET n = n - 1
    WHERE rollout = OLD.rollout AND wave = OLD.wave AND site = OLD.site
      AND reference = OLD.reference AND state = OLD.state;
END;

-- A site's items of a rollout in the order its page lists them.
DROP INDEX rollout_items_site;
CREATE INDEX rollout_items_site ON rollout_items(rollout, site, booking);
