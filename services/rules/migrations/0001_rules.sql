-- Rules between catalog options (by option key), the audit log and the outbox.

CREATE TABLE rules (
    id bigserial PRIMARY KEY,
    key text NOT NULL UNIQUE CHECK (key ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    subject text NOT NULL,
    type text NOT NULL CHECK (type IN ('requires', 'forbidden', 'validation', 'choice')),
    payload jsonb NOT NULL,
    severity text NOT NULL CHECK (severity IN ('error', 'warning')),
    message text NOT NULL DEFAULT '',
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rules_subject ON rules (subject);

-- One row: bumped by every transaction that changes the rules.
CREATE TABLE rules_revision (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    revision bigint NOT NULL
);
INSERT INTO rules_revision (revision) VALUES (0);

-- Rule documents as received (applied or rejected; a no-op re-import writes nothing).
CREATE TABLE rule_imports (
    id bigserial PRIMARY KEY,
    file_name text NOT NULL DEFAULT '',
    document text NOT NULL,
    actor text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    outcome text NOT NULL CHECK (outcome IN ('applied', 'rejected')),
    summary text NOT NULL DEFAULT ''
);

CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    entity text NOT NULL,
    entity_key text NOT NULL,
    action text NOT NULL CHECK (action IN ('created', 'updated', 'deleted')),
    before jsonb,
    after jsonb,
    revision bigint NOT NULL
);
CREATE INDEX audit_log_entity ON audit_log (entity, entity_key);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();

-- The outbox (see STBPostgres.Outbox).
CREATE TABLE events (
    id bigserial PRIMARY KEY,
    txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    entity text NOT NULL,
    entity_key text NOT NULL,
    action text NOT NULL,
    payload bytea NOT NULL,
    actor text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_cursor ON events (txid, id);

CREATE TABLE events_horizon (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    txid xid8 NOT NULL DEFAULT '0',
    event_id bigint NOT NULL DEFAULT 0
);
INSERT INTO events_horizon DEFAULT VALUES;
