-- EndSession for a stream another gateway instance runs: the row is marked, and the
-- instance running it (which looks for marked rows of its own every second) ends it.
ALTER TABLE stream_sessions ADD COLUMN end_requested boolean NOT NULL DEFAULT false;
CREATE INDEX stream_sessions_end_requested ON stream_sessions (instance) WHERE end_requested AND status = 'open';
