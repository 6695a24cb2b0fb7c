-- Per-org and per-key rate-limit overrides (docs/design.md section 7), read by the rate-limit
-- service on top of the catalog's per-model defaults.
--
-- key_id NULL means "every key of the org"; model NULL means "every model". A NULL limit
-- column leaves that limit at its default.
CREATE TABLE rate_limit_overrides (
    org_id     uuid NOT NULL REFERENCES orgs (id),
    key_id     uuid REFERENCES api_keys (id),
    model      text,
    rpm        bigint CHECK (rpm >= 0), -- requests per minute
    tpm        bigint CHECK (tpm >= 0), -- tokens per minute
    tpd        bigint CHECK (tpd >= 0), -- tokens per day
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One override per (org, key or all keys, model or all models). NULLs are folded to '' so
-- that "all keys" and "all models" rows are unique too; upserts name the same expressions:
-- ON CONFLICT (org_id, coalesce(key_id::text, ''), coalesce(model, '')).
CREATE UNIQUE INDEX rate_limit_overrides_scope_key
    ON rate_limit_overrides (org_id, coalesce(key_id::text, ''), coalesce(model, ''));
