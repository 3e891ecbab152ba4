-- A client's own grace rule (SPEC §4 rule 3, `domain::grace`): NULL = the configured
-- `refresh.reuse_grace_seconds` / `refresh.reuse_grace_count`.
ALTER TABLE clients ADD COLUMN reuse_grace_seconds BIGINT;
ALTER TABLE clients ADD COLUMN reuse_grace_count BIGINT;
