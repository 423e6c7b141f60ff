-- Alarms raised from the project service's change feed, the follower's cursor, and
-- saved dashboards.

-- At most one open (active or acknowledged) alarm per project; cleared ones are kept
-- until retention prunes them.
CREATE TABLE alarms (
    id bigserial PRIMARY KEY,
    project_key text NOT NULL,
    status text NOT NULL CHECK (status IN ('active', 'acknowledged', 'cleared')),
    severity text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    -- The violations as a serialized stb.gateway.v1.Alarm's repeated field would hold
    -- them: a ViolationList message.
    violations bytea NOT NULL,
    raised_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    acknowledged_by text NOT NULL DEFAULT '',
    acknowledged_at timestamptz,
    acknowledgement_note text NOT NULL DEFAULT '',
    cleared_at timestamptz,
    source_revision bigint NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX alarms_one_open_per_project ON alarms (project_key) WHERE status <> 'cleared';
CREATE INDEX alarms_cleared_at ON alarms (cleared_at) WHERE status = 'cleared';

-- One row: where the gateway's follower of the project change feed stands (from the
-- feed's start until the first event).
CREATE TABLE alarm_feed_cursor (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    cursor text NOT NULL DEFAULT '0:0'
);
INSERT INTO alarm_feed_cursor DEFAULT VALUES;

CREATE TABLE dashboards (
    id bigserial PRIMARY KEY,
    owner_id text NOT NULL,
    owner text NOT NULL,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '',
    shared boolean NOT NULL DEFAULT false,
    layout jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dashboards_owner ON dashboards (owner_id);
