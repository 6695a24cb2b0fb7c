-- Every upstream attempt of a request (retries and fallbacks): backend, status and latency, in
-- order; only the last one is charged. Empty for requests served at the first attempt without
-- per-attempt translation.
ALTER TABLE usage_records ADD COLUMN attempts jsonb NOT NULL DEFAULT '[]';
