-- The outbox is ordered by the revision of the change that wrote each event. Every
-- change transaction bumps catalog_revision and holds its row lock until it ends, so
-- revisions are handed out in commit order; the former (transaction id, id) order was
-- not (a transaction id is taken at the first write, not at commit).
ALTER TABLE events ADD COLUMN revision bigint;
-- Events written before this migration come first (in id order).
UPDATE events SET revision = 0;
ALTER TABLE events ALTER COLUMN revision SET NOT NULL;
DROP INDEX events_cursor;
ALTER TABLE events DROP COLUMN txid;
CREATE INDEX events_cursor ON events (revision, id);

ALTER TABLE events_horizon ADD COLUMN revision bigint NOT NULL DEFAULT 0;
ALTER TABLE events_horizon DROP COLUMN txid;
