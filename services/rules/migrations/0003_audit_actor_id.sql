-- Audit rows name the caller's verified identity: `actor` is its name (a username or a
-- service name), `actor_id` its token's subject (a user id, `service:<name>`). Rows
-- written before authentication have none.
ALTER TABLE audit_log ADD COLUMN actor_id text NOT NULL DEFAULT '';
