-- DPoP replay store, RAR on codes, PAR requests, per-client PAR requirement.
CREATE TABLE dpop_jtis (
    key             BLOB PRIMARY KEY,
    expires_at_ms   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX dpop_jtis_expiry ON dpop_jtis(expires_at_ms);

ALTER TABLE codes ADD COLUMN dpop_jkt TEXT;
ALTER TABLE codes ADD COLUMN authorization_details TEXT;

ALTER TABLE clients ADD COLUMN require_par INTEGER NOT NULL DEFAULT 0;

CREATE TABLE par_requests (
    hash            BLOB PRIMARY KEY,
    client_id       TEXT NOT NULL,
    params          TEXT NOT NULL,
    expires_at_ms   INTEGER NOT NULL,
    used_at_ms      INTEGER
) WITHOUT ROWID;
