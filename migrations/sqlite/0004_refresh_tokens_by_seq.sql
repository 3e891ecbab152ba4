-- Refresh tokens in insertion order, without the index by family. Every b-tree page a commit
-- dirties is written to the WAL whole. The old layout (hash as the key, plus an index on
-- family_id) dirtied two random leaves per rotation besides the family row; this one dirties one
-- random leaf (the hash index) plus pages that all rotations of a commit share: the table's last
-- page and, in `refresh_tokens_forget`, the last page of the rotation's lifetime class (one class
-- per distinct absolute lifetime: the default and each client override).
-- A row is forgotten at `forget_at_ms`: its write time plus its family's absolute lifetime, which
-- is never before the family's absolute expiry (counted from the earlier sign-in) and grows with
-- insertion order within a class, so the sweeper deletes each class from its front.
CREATE TABLE refresh_tokens_seq (
    seq             INTEGER PRIMARY KEY,
    hash            BLOB NOT NULL UNIQUE,
    family_id       TEXT NOT NULL,
    generation      INTEGER NOT NULL,
    ttl_ms          INTEGER NOT NULL,
    forget_at_ms    INTEGER NOT NULL
);
INSERT INTO refresh_tokens_seq (hash, family_id, generation, ttl_ms, forget_at_ms)
    SELECT t.hash, t.family_id, t.generation, f.absolute_expires_at_ms - f.auth_time * 1000,
           f.absolute_expires_at_ms
    FROM refresh_tokens t JOIN families f ON f.id = t.family_id
    ORDER BY f.created_at_ms, t.generation;
DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_seq RENAME TO refresh_tokens;
CREATE INDEX refresh_tokens_forget ON refresh_tokens(ttl_ms, forget_at_ms)
