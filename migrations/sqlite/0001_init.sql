-- Autional schema, SQLite. Secrets and tokens are stored only as SHA-256 hashes.
CREATE TABLE clients (
    id                      TEXT PRIMARY KEY,
    name                    TEXT NOT NULL,
    auth_method             TEXT NOT NULL,
    secrets                 TEXT NOT NULL DEFAULT '[]',
    redirect_uris           TEXT NOT NULL,
    grant_types             TEXT NOT NULL,
    scope                   TEXT NOT NULL,
    dpop_bound              INTEGER NOT NULL DEFAULT 0,
    jwks                    TEXT,
    refresh_idle_ttl_s      INTEGER,
    refresh_absolute_ttl_s  INTEGER,
    created_at_ms           INTEGER NOT NULL
);

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    username        TEXT NOT NULL UNIQUE,
    password_hash   TEXT NOT NULL,
    email           TEXT,
    name            TEXT,
    created_at_ms   INTEGER NOT NULL
);

CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,
    token_hash      BLOB NOT NULL UNIQUE,
    user_id         TEXT NOT NULL,
    auth_time       INTEGER NOT NULL,
    expires_at_ms   INTEGER NOT NULL,
    ended_at_ms     INTEGER,
    user_agent      TEXT
);
CREATE INDEX sessions_expiry ON sessions(expires_at_ms);

CREATE TABLE consents (
    user_id         TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    scope           TEXT NOT NULL,
    updated_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
) WITHOUT ROWID;

CREATE TABLE codes (
    hash                BLOB PRIMARY KEY,
    client_id           TEXT NOT NULL,
    user_id             TEXT NOT NULL,
    redirect_uri        TEXT NOT NULL,
    redirect_uri_sent   INTEGER NOT NULL,
    scope               TEXT NOT NULL,
    nonce               TEXT,
    code_challenge      TEXT,
    session_id          TEXT NOT NULL,
    auth_time           INTEGER NOT NULL,
    expires_at_ms       INTEGER NOT NULL,
    consumed_at_ms      INTEGER,
    family_id           TEXT
) WITHOUT ROWID;

-- One row per grant; rotation updates only the columns that change (no indexed column).
CREATE TABLE families (
    id                      TEXT PRIMARY KEY,
    client_id               TEXT NOT NULL,
    user_id                 TEXT NOT NULL,
    scope                   TEXT NOT NULL,
    authorization_details   TEXT,
    dpop_jkt                TEXT,
    session_id              TEXT,
    sid                     TEXT,
    auth_time               INTEGER NOT NULL,
    created_at_ms           INTEGER NOT NULL,
    absolute_expires_at_ms  INTEGER NOT NULL,
    idle_expires_at_ms      INTEGER NOT NULL,
    generation              INTEGER NOT NULL,
    rotated_at_ms           INTEGER NOT NULL,
    grace_used              INTEGER NOT NULL DEFAULT 0,
    revoked_at_ms           INTEGER,
    revoked_reason          TEXT,
    last_used_at_ms         INTEGER NOT NULL,
    last_user_agent         TEXT
);
CREATE INDEX families_session ON families(session_id) WHERE session_id IS NOT NULL;
CREATE INDEX families_user ON families(user_id);
CREATE INDEX families_client ON families(client_id);
CREATE INDEX families_expiry ON families(absolute_expires_at_ms);
CREATE INDEX families_revoked ON families(revoked_at_ms) WHERE revoked_at_ms IS NOT NULL;

-- A token's state is derived from its generation and its family's.
CREATE TABLE refresh_tokens (
    hash        BLOB PRIMARY KEY,
    family_id   TEXT NOT NULL,
    generation  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);

CREATE TABLE revoked_access_tokens (
    jti             TEXT PRIMARY KEY,
    expires_at_ms   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    alg             TEXT NOT NULL,
    private_key     BLOB NOT NULL,
    public_jwk      TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    retired_at_ms   INTEGER
);

CREATE TABLE server_secrets (
    name    TEXT PRIMARY KEY,
    value   BLOB NOT NULL
);

CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms       INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    client_id   TEXT,
    user_id     TEXT,
    family_id   TEXT,
    detail      TEXT
);
CREATE INDEX audit_events_at ON audit_events(at_ms);
