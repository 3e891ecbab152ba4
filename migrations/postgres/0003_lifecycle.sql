-- Client keys by URL, logout redirect URIs, registration access tokens; the device grant.
ALTER TABLE clients ADD COLUMN jwks_uri TEXT;
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN registration_token_hash BYTEA;

CREATE TABLE device_codes (
    device_hash     BYTEA PRIMARY KEY,
    user_code       TEXT NOT NULL UNIQUE,
    client_id       TEXT NOT NULL,
    scope           TEXT NOT NULL,
    status          TEXT NOT NULL,
    interval_s      BIGINT NOT NULL,
    last_poll_ms    BIGINT,
    user_id         TEXT,
    session_id      TEXT,
    auth_time       BIGINT,
    family_id       TEXT,
    created_at_ms   BIGINT NOT NULL,
    expires_at_ms   BIGINT NOT NULL
);
CREATE INDEX device_codes_expiry ON device_codes(expires_at_ms);
