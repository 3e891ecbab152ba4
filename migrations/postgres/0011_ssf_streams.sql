-- OpenID Shared Signals Framework 1.0 push streams (docs/design/events.md, "Security events"):
-- at most one per client (the client that created it with its client_credentials token). The
-- events it gets are chosen by the flags, derived from `events_requested` when it is written:
-- a revocation's statement joins on them (`store::ops`, ENQUEUE_REVOKED_*). Deleting the client
-- deletes its stream.
CREATE TABLE ssf_streams (
    client_id              TEXT PRIMARY KEY,
    stream_id              TEXT NOT NULL UNIQUE,
    endpoint_url           TEXT NOT NULL,
    events_requested       TEXT NOT NULL DEFAULT '[]',
    session_revoked        BOOLEAN NOT NULL DEFAULT FALSE,
    credential_compromise  BOOLEAN NOT NULL DEFAULT FALSE,
    description            TEXT,
    created_at_ms          BIGINT NOT NULL,
    updated_at_ms          BIGINT NOT NULL
);
