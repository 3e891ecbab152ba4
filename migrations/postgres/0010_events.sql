-- OpenID Connect Back-Channel Logout 1.0 client metadata.
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT;
ALTER TABLE clients ADD COLUMN backchannel_logout_session_required BOOLEAN NOT NULL DEFAULT FALSE;

-- The transactional outbox (docs/design/events.md): one row per event to push to a receiver,
-- inserted in the transaction that causes it, signed and sent by the delivery worker
-- (`src/delivery.rs`). A row is claimed with a lease (`lease_until_ms`, `lease_owner`) so that
-- one process at a time sends it.
CREATE TABLE event_outbox (
    id                  BIGSERIAL PRIMARY KEY,
    jti                 TEXT NOT NULL UNIQUE,
    kind                TEXT NOT NULL,
    client_id           TEXT NOT NULL,
    endpoint            TEXT NOT NULL,
    subject             TEXT NOT NULL,
    sid                 TEXT,
    claims              TEXT NOT NULL DEFAULT '{}',
    created_at_ms       BIGINT NOT NULL,
    next_attempt_at_ms  BIGINT NOT NULL,
    attempts            BIGINT NOT NULL DEFAULT 0,
    state               TEXT NOT NULL DEFAULT 'pending',
    last_error          TEXT,
    lease_until_ms      BIGINT NOT NULL DEFAULT 0,
    lease_owner         TEXT,
    updated_at_ms       BIGINT NOT NULL
);
CREATE INDEX event_outbox_due ON event_outbox(next_attempt_at_ms) WHERE state = 'pending';
CREATE INDEX event_outbox_settled ON event_outbox(updated_at_ms) WHERE state <> 'pending';
CREATE INDEX event_outbox_client ON event_outbox(client_id);
