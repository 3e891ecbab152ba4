-- Refresh tokens in insertion order, without the index by family. A rotation used to dirty three
-- b-tree pages (the family row, a leaf of the hash key, a leaf of the family index), each written
-- to the WAL whole at commit; now it dirties the family row, a leaf of the hash index and the
-- table's last page, which every rotation of a commit shares. Rows are swept from the oldest
-- once `forget_at_ms` (their family's absolute expiry, which never moves) has passed, instead of
-- with their family.
CREATE TABLE refresh_tokens_seq (
    seq             INTEGER PRIMARY KEY,
    hash            BLOB NOT NULL UNIQUE,
    family_id       TEXT NOT NULL,
    generation      INTEGER NOT NULL,
    forget_at_ms    INTEGER NOT NULL
);
INSERT INTO refresh_tokens_seq (hash, family_id, generation, forget_at_ms)
    SELECT t.hash, t.family_id, t.generation, f.absolute_expires_at_ms
    FROM refresh_tokens t JOIN families f ON f.id = t.family_id
    ORDER BY f.created_at_ms, t.generation;
DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_seq RENAME TO refresh_tokens
