-- The realtime gateway: the deployment's epoch (in every resume token), the upstream
-- followers' cursors, the running gateway instances and the stream sessions.

-- One row: a random id made when the deployment's database was created. A resume token
-- carrying another epoch comes from another deployment (or a replaced database).
CREATE TABLE realtime_epoch (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    epoch text NOT NULL DEFAULT replace(gen_random_uuid()::text, '-', '')
);
INSERT INTO realtime_epoch DEFAULT VALUES;

-- Where each upstream follower stands (an upstream outbox cursor, `revision:sequence`).
CREATE TABLE realtime_cursors (
    upstream text PRIMARY KEY,
    cursor text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Gateway processes, each seen every few seconds; a session of an instance not seen for
-- a while was left open by a crash and is closed.
CREATE TABLE realtime_instances (
    id uuid PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE stream_sessions (
    id bigserial PRIMARY KEY,
    instance uuid NOT NULL,
    user_id text NOT NULL,
    username text NOT NULL,
    role text NOT NULL,
    topics text[] NOT NULL,
    peer text NOT NULL DEFAULT '',
    user_agent text NOT NULL DEFAULT '',
    started_at timestamptz NOT NULL DEFAULT now(),
    ended_at timestamptz,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'ended')),
    end_reason text NOT NULL DEFAULT ''
);
CREATE INDEX stream_sessions_open ON stream_sessions (user_id) WHERE status = 'open';
CREATE INDEX stream_sessions_started ON stream_sessions (started_at DESC);
