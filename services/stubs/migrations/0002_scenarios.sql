-- Scenarios (ordered actions against mocks and services) and the result of each run.

CREATE TABLE scenarios (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9._:-]{1,128}$'),
    description text NOT NULL DEFAULT '',
    status text NOT NULL DEFAULT 'DRAFT' CHECK (status IN ('DRAFT', 'READY', 'RUNNING', 'COMPLETED', 'FAILED')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE scenario_actions (
    scenario_id bigint NOT NULL REFERENCES scenarios (id) ON DELETE CASCADE,
    position integer NOT NULL,
    action_type text NOT NULL CHECK (action_type IN ('START_MOCK', 'STOP_MOCK', 'PUT_STUB', 'SET_DELAY', 'SET_FAULT', 'WAIT', 'CALL', 'LOAD')),
    parameters jsonb NOT NULL,
    PRIMARY KEY (scenario_id, position)
);

CREATE TABLE test_results (
    id bigserial PRIMARY KEY,
    scenario_id bigint NOT NULL REFERENCES scenarios (id) ON DELETE CASCADE,
    status text NOT NULL CHECK (status IN ('SUCCESS', 'FAILED', 'PARTIAL')),
    -- One object per action: what it did and saw (a LOAD's report).
    results jsonb NOT NULL,
    duration_ms bigint NOT NULL,
    error_message text,
    executed_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX test_results_scenario ON test_results (scenario_id, executed_at DESC);
