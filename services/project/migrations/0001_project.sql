-- Projects: members, option selections, versions, signoffs, change requests, the
-- hash-chained audit log and the outbox.
--
-- Row-level security: every project table is FORCE'd, so the service's own role (which
-- owns them) sees only what the caller's identity allows. Each transaction sets that
-- identity with set_config('stb.user_id', …, true) and set_config('stb.role', …, true);
-- without it nothing is visible. Admins and service accounts see every project.

CREATE FUNCTION stb_user() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('stb.user_id', true), '')
$$;

CREATE FUNCTION stb_privileged() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('stb.role', true), '') IN ('admin', 'service')
$$;

CREATE TABLE projects (
    id bigserial PRIMARY KEY,
    key text NOT NULL UNIQUE CHECK (key ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    meta jsonb NOT NULL DEFAULT '{}',
    archived boolean NOT NULL DEFAULT false,
    -- The project's roster, readable by its members (see `members`).
    roster jsonb NOT NULL DEFAULT '[]',
    aspects jsonb NOT NULL DEFAULT '[]',
    -- The draft: its hash, validity and the revisions it was evaluated at.
    draft_hash bytea NOT NULL DEFAULT '',
    valid boolean NOT NULL DEFAULT true,
    violations bytea NOT NULL DEFAULT '',
    catalog_revision bigint NOT NULL DEFAULT 0,
    rules_revision bigint NOT NULL DEFAULT 0,
    latest_version integer NOT NULL DEFAULT 0,
    -- Bumped by every change of the draft's options.
    draft_revision bigint NOT NULL DEFAULT 0,
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per (project, user): the membership index the policies read. A user sees their
-- own rows only (a policy on this table cannot read this table); the whole roster of a
-- project is `projects.roster`, visible to its members.
CREATE TABLE members (
    project_id bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    user_id text NOT NULL,
    username text NOT NULL DEFAULT '',
    role text NOT NULL CHECK (role IN ('viewer', 'editor', 'approver', 'owner')),
    added_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX members_user ON members (user_id);

CREATE TABLE project_options (
    project_id bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    option_key text NOT NULL,
    -- NULL: the catalog's included_by_default.
    included boolean,
    -- NULL: the catalog's default value.
    value jsonb,
    PRIMARY KEY (project_id, option_key),
    CHECK (included IS NOT NULL OR value IS NOT NULL)
);

CREATE TABLE versions (
    project_id bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    number integer NOT NULL CHECK (number > 0),
    parent integer NOT NULL DEFAULT 0,
    message text NOT NULL DEFAULT '',
    canonical text NOT NULL,
    -- The options the draft set when it was committed (for rollback), JSON.
    selection jsonb NOT NULL,
    hash bytea NOT NULL,
    catalog_revision bigint NOT NULL,
    rules_revision bigint NOT NULL,
    valid boolean NOT NULL,
    author text NOT NULL,
    author_id text NOT NULL,
    rolled_back_from integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, number)
);
CREATE INDEX versions_hash ON versions (project_id, hash);

CREATE TABLE signoffs (
    id bigserial PRIMARY KEY,
    project_id bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    version integer NOT NULL,
    aspect text NOT NULL,
    hash bytea NOT NULL,
    signer text NOT NULL,
    signer_id text NOT NULL,
    notes text NOT NULL DEFAULT '',
    signed_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, hash, aspect),
    FOREIGN KEY (project_id, version) REFERENCES versions (project_id, number)
);

CREATE TABLE change_requests (
    id bigserial PRIMARY KEY,
    project_id bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    base_version integer NOT NULL,
    base_hash bytea NOT NULL,
    changes bytea NOT NULL,
    reason text NOT NULL DEFAULT '',
    status text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'applied', 'stale')),
    author text NOT NULL,
    author_id text NOT NULL,
    reviewer text NOT NULL DEFAULT '',
    reviewer_id text NOT NULL DEFAULT '',
    review_notes text NOT NULL DEFAULT '',
    stale_reason text NOT NULL DEFAULT '',
    applied_version integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX change_requests_project ON change_requests (project_id, id);

-- Append-only and hash-chained per project: row_hash = SHA-256 over the row's canonical
-- content including previous_row_hash (see ProjectAudit.swift).
CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    project_id bigint NOT NULL,
    project_key text NOT NULL,
    -- Milliseconds since 1970, as hashed.
    at_ms bigint NOT NULL,
    actor text NOT NULL,
    actor_id text NOT NULL,
    entity text NOT NULL,
    entity_key text NOT NULL,
    action text NOT NULL,
    before jsonb,
    after jsonb,
    old_hash bytea NOT NULL DEFAULT '',
    new_hash bytea NOT NULL DEFAULT '',
    revision bigint NOT NULL,
    previous_row_hash bytea NOT NULL,
    row_hash bytea NOT NULL
);
CREATE INDEX audit_log_project ON audit_log (project_id, id);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();

-- Row-level security.
ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE projects FORCE ROW LEVEL SECURITY;
ALTER TABLE members ENABLE ROW LEVEL SECURITY;
ALTER TABLE members FORCE ROW LEVEL SECURITY;
ALTER TABLE project_options ENABLE ROW LEVEL SECURITY;
ALTER TABLE project_options FORCE ROW LEVEL SECURITY;
ALTER TABLE versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE versions FORCE ROW LEVEL SECURITY;
ALTER TABLE signoffs ENABLE ROW LEVEL SECURITY;
ALTER TABLE signoffs FORCE ROW LEVEL SECURITY;
ALTER TABLE change_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE change_requests FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;

-- A user's own memberships; admins and services every row. Writing another user's row
-- (an owner adding a member) is checked by the handler and done as `service`.
CREATE POLICY members_own ON members
    USING (stb_privileged() OR user_id = stb_user())
    WITH CHECK (stb_privileged() OR user_id = stb_user());

-- A project: its members (and, while creating it, its creator: a new project has no
-- member row yet).
CREATE POLICY projects_members ON projects
    USING (stb_privileged() OR id IN (SELECT m.project_id FROM members m WHERE m.user_id = stb_user()))
    WITH CHECK (stb_privileged() OR created_by = stb_user()
                OR id IN (SELECT m.project_id FROM members m WHERE m.user_id = stb_user()));

CREATE POLICY project_options_members ON project_options
    USING (stb_privileged() OR project_id IN (SELECT m.project_id FROM members m WHERE m.user_id = stb_user()));
CREATE POLICY versions_members ON versions
    USING (stb_privileged() OR project_id IN (SELECT m.project_id FROM members m WHERE m.user_id = stb_user()));
CREATE POLICY signoffs_members ON signoffs
    USING (stb_privileged() OR project_id IN (SELECT m.project_id FROM members m WHERE m.user_id = stb_user()));
CREATE POLICY change_requests_members ON change_requests
    USING (stb_privileged() OR project_id IN (SELECT m.project_id FROM members m WHERE m.user_id = stb_user()));
CREATE POLICY audit_log_members ON audit_log
    USING (stb_privileged() OR project_id IN (SELECT m.project_id FROM members m WHERE m.user_id = stb_user()));

-- One row: bumped by every transaction that changes a project.
CREATE TABLE project_revision (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    revision bigint NOT NULL
);
INSERT INTO project_revision (revision) VALUES (0);

-- The outbox (see STBPostgres.Outbox), ordered by revision.
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
