-- DPoP replay store, RAR on codes, PAR requests, per-client PAR requirement.
CREATE TABLE dpop_jtis (
    key             BYTEA PRIMARY KEY,
    expires_at_ms   BIGINT NOT NULL
);
CREATE INDEX dpop_jtis_expiry ON dpop_jtis(expires_at_ms);

ALTER TABLE codes ADD COLUMN dpop_jkt TEXT;
ALTER TABLE codes ADD COLUMN authorization_details TEXT;

ALTER TABLE clients ADD COLUMN require_par BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE par_requests (
    hash            BYTEA PRIMARY KEY,
    client_id       TEXT NOT NULL,
    params          TEXT NOT NULL,
    expires_at_ms   BIGINT NOT NULL,
    used_at_ms      BIGINT
);
