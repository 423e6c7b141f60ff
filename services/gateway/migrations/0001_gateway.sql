-- The gateway's identity store: accounts, password hashes, refresh tokens, the
-- append-only activity log and the keys that sign access tokens.

CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Keyset paging of ListUsers (the id is random).
    seq bigserial UNIQUE NOT NULL,
    -- Lowercase letters, digits, '.', '_' and '-'; the gateway lowercases before storing.
    username text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    display_name text NOT NULL DEFAULT '',
    email text NOT NULL DEFAULT '',
    role text NOT NULL CHECK (role IN ('viewer', 'operator', 'engineer', 'admin')),
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz
);

-- libsodium's crypto_pwhash_str form ($argon2id$v=19$m=…,t=…,p=…$salt$hash), one per user.
CREATE TABLE password_hashes (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    hash text NOT NULL CHECK (hash LIKE '$argon2id$%'),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Refresh tokens, stored as SHA-256 of the token (the token itself is never stored). A
-- family is one login's chain of rotations; reuse of a used token revokes the family.
CREATE TABLE refresh_tokens (
    id bigserial PRIMARY KEY,
    token_hash bytea NOT NULL UNIQUE,
    family uuid NOT NULL,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issued_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    -- Set when the token was exchanged (rotation).
    used_at timestamptz,
    replaced_by bigint REFERENCES refresh_tokens (id),
    revoked_at timestamptz,
    peer text NOT NULL DEFAULT '',
    user_agent text NOT NULL DEFAULT ''
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id) WHERE revoked_at IS NULL;

-- What happened to accounts and sessions; never a password, token or secret.
CREATE TABLE activity (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    kind text NOT NULL CHECK (kind IN (
        'login', 'login_failed', 'login_locked', 'logout', 'refresh', 'refresh_reused',
        'password_changed', 'role_changed', 'user_created', 'user_updated', 'user_disabled',
        'service_login', 'service_login_failed', 'key_rotated')),
    -- NULL for an unknown username (the attempted name is in `username`).
    user_id uuid,
    username text NOT NULL DEFAULT '',
    peer text NOT NULL DEFAULT '',
    user_agent text NOT NULL DEFAULT '',
    -- The admin who did it, when not the user.
    actor_id text NOT NULL DEFAULT '',
    detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX activity_user ON activity (user_id, id);

CREATE FUNCTION activity_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'activity is append-only';
END
$$;
CREATE TRIGGER activity_append_only BEFORE UPDATE OR DELETE ON activity
    FOR EACH ROW EXECUTE FUNCTION activity_is_append_only();
CREATE TRIGGER activity_no_truncate BEFORE TRUNCATE ON activity
    FOR EACH STATEMENT EXECUTE FUNCTION activity_is_append_only();

-- Ed25519 signing keys. `secret` is libsodium's 64-byte secret key, or with `sealed` the
-- 24-byte nonce then crypto_secretbox of it under GATEWAY_KEY_ENCRYPTION_KEY. The newest
-- unretired key signs; a retired key is still published until its tokens have expired.
CREATE TABLE signing_keys (
    kid text PRIMARY KEY,
    secret bytea NOT NULL,
    sealed boolean NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz
);
