-- The stub server's own store: the stubs saved through its admin API (file stubs live in
-- their file) and the mocks started through it, both restored when stubd starts.

CREATE TABLE stubs (
    id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    service text NOT NULL,
    method text NOT NULL,
    priority integer NOT NULL,
    -- The definition as saved (the stub file schema), checked by stubd before it is stored.
    definition jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX stubs_method ON stubs (service, method, priority DESC);

CREATE TABLE mocks (
    service text PRIMARY KEY,
    -- The port asked for; 0 lets the system pick one at each start.
    port integer NOT NULL CHECK (port BETWEEN 0 AND 65535),
    created_at timestamptz NOT NULL DEFAULT now()
);
