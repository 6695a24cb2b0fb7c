-- Indexes for the management API's reads of usage_records (extproc/management).
--
-- Request logs are paged newest first by the keyset (created_at, request_id), always within one
-- org: this index serves that order, scanned backwards, and the time-range filter. The key
-- filter gets its own org-scoped index; model, provider and finish_reason filters are applied
-- to the org's time range, which the first index already narrows. Usage summaries group the same
-- range and read the first index too.
CREATE INDEX usage_records_org_created_request_idx ON usage_records (org_id, created_at, request_id);
CREATE INDEX usage_records_org_key_created_idx ON usage_records (org_id, key_id, created_at, request_id);

-- A prefix of the first index above, so it only cost writes.
DROP INDEX usage_records_org_created_idx;
