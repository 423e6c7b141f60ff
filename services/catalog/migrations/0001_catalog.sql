-- The catalog: modules → groups → options, each module's states and transitions, the
-- imported seed documents, the audit log and the outbox.
--
-- Children are deleted by the service, one by one with an event each, so foreign keys
-- do not cascade.

CREATE TABLE modules (
    id bigserial PRIMARY KEY,
    key text NOT NULL UNIQUE CHECK (key ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    active boolean NOT NULL DEFAULT true,
    initial_state text NOT NULL DEFAULT '',
    meta jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE groups (
    id bigserial PRIMARY KEY,
    module_id bigint NOT NULL REFERENCES modules (id),
    key text NOT NULL CHECK (key ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    position integer NOT NULL DEFAULT 0,
    meta jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (module_id, key)
);

-- Option keys are one namespace across the catalog: other services refer to them.
CREATE TABLE options (
    id bigserial PRIMARY KEY,
    group_id bigint NOT NULL REFERENCES groups (id),
    key text NOT NULL UNIQUE CHECK (key ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    type text NOT NULL CHECK (type IN ('boolean', 'integer', 'string', 'enum')),
    default_value text NOT NULL DEFAULT '',
    editable boolean NOT NULL DEFAULT true,
    included_by_default boolean NOT NULL DEFAULT false,
    meta jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX options_group ON options (group_id);

CREATE TABLE states (
    id bigserial PRIMARY KEY,
    module_id bigint NOT NULL REFERENCES modules (id),
    name text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    meta jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (module_id, name)
);

CREATE TABLE transitions (
    id bigserial PRIMARY KEY,
    module_id bigint NOT NULL REFERENCES modules (id),
    from_state text NOT NULL,
    event text NOT NULL CHECK (event ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    to_state text NOT NULL,
    condition jsonb,
    meta jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (module_id, from_state, event),
    FOREIGN KEY (module_id, from_state) REFERENCES states (module_id, name),
    FOREIGN KEY (module_id, to_state) REFERENCES states (module_id, name)
);

-- One row: bumped by every transaction that changes the catalog.
CREATE TABLE catalog_revision (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    revision bigint NOT NULL
);
INSERT INTO catalog_revision (revision) VALUES (0);

-- Seed documents as received (applied or rejected; a no-op re-import writes nothing).
CREATE TABLE seeds (
    id bigserial PRIMARY KEY,
    file_name text NOT NULL DEFAULT '',
    document text NOT NULL,
    sha256 text NOT NULL,
    actor text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    outcome text NOT NULL CHECK (outcome IN ('applied', 'rejected')),
    summary text NOT NULL DEFAULT ''
);

-- Who did what to which entity, with its state before and after. Append-only.
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

-- The outbox (see STBPostgres.Outbox): every change's event, written with the change.
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

-- The newest cursor pruned from the outbox: a watcher behind it must resync.
CREATE TABLE events_horizon (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    txid xid8 NOT NULL DEFAULT '0',
    event_id bigint NOT NULL DEFAULT 0
);
INSERT INTO events_horizon DEFAULT VALUES;
