-- Client keys by URL, logout redirect URIs, registration access tokens; the device grant.
ALTER TABLE clients ADD COLUMN jwks_uri TEXT;
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN registration_token_hash BLOB;

CREATE TABLE device_codes (
    device_hash     BLOB PRIMARY KEY,
    user_code       TEXT NOT NULL UNIQUE,
    client_id       TEXT NOT NULL,
    scope           TEXT NOT NULL,
    status          TEXT NOT NULL,
    interval_s      INTEGER NOT NULL,
    last_poll_ms    INTEGER,
    user_id         TEXT,
    session_id      TEXT,
    auth_time       INTEGER,
    family_id       TEXT,
    created_at_ms   INTEGER NOT NULL,
    expires_at_ms   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX device_codes_expiry ON device_codes(expires_at_ms);
