-- The gateway's outbox (see STBPostgres.Outbox), ordered by the revision of the change
-- that wrote each event: every change bumps gateway_revision and holds its row lock until
-- it ends, so revisions follow commit order.
CREATE TABLE gateway_revision (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    revision bigint NOT NULL
);
INSERT INTO gateway_revision (revision) VALUES (0);

CREATE TABLE events (
    id bigserial PRIMARY KEY,
    revision bigint NOT NULL,
    entity text NOT NULL,
    entity_key text NOT NULL,
    action text NOT NULL,
    payload bytea NOT NULL,
    actor text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_cursor ON events (revision, id);

CREATE TABLE events_horizon (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    event_id bigint NOT NULL DEFAULT 0,
    revision bigint NOT NULL DEFAULT 0
);
INSERT INTO events_horizon DEFAULT VALUES;
