-- Refresh tokens that name their family (docs/design/refresh-token-format.md): the family row
-- keeps the SHA-256 of its live tokens (the current generation's, grace siblings included),
-- concatenated; new tokens get no row in refresh_tokens, which keeps only earlier-format tokens
-- until they are swept.
ALTER TABLE families ADD COLUMN token_hashes BYTEA NOT NULL DEFAULT '\x';
