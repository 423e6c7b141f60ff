-- The gateway's own outbox (see STBPostgres.Outbox), ordered by revision: events the
-- gateway itself records (alarms) and that its realtime topics follow like an upstream's
-- Watch. Every change transaction bumps gateway_revision; commits wake the channel
-- gateway_events.
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
