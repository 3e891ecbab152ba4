-- The same refresh-token layout and sweep as SQLite (migration sqlite/0004): each row carries
-- its lifetime class (`ttl_ms`, the family's absolute lifetime) and when it may be forgotten
-- (`forget_at_ms`: its write time plus that lifetime, never before the family's absolute
-- expiry). The sweeper deletes each class from its front, independently of the families, so
-- the index by family (written on every rotation, read only by the old sweep) goes.
ALTER TABLE refresh_tokens ADD COLUMN ttl_ms BIGINT, ADD COLUMN forget_at_ms BIGINT;
UPDATE refresh_tokens t
    SET ttl_ms = f.absolute_expires_at_ms - f.auth_time * 1000, forget_at_ms = f.absolute_expires_at_ms
    FROM families f WHERE f.id = t.family_id;
DELETE FROM refresh_tokens WHERE ttl_ms IS NULL;
ALTER TABLE refresh_tokens ALTER COLUMN ttl_ms SET NOT NULL, ALTER COLUMN forget_at_ms SET NOT NULL;
DROP INDEX refresh_tokens_family;
CREATE INDEX refresh_tokens_forget ON refresh_tokens(ttl_ms, forget_at_ms);
