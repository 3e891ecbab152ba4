-- Refreshes per client per 10-minute bucket, for the admin API's stats (`grants::refresh_counts`):
-- each process adds its in-memory counts every few seconds; buckets older than two days go.
CREATE TABLE refresh_counts (
    client_id TEXT NOT NULL,
    bucket_ms BIGINT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (client_id, bucket_ms)
);
