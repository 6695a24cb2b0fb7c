-- Tollgate ledger: organisations, API keys, credit, holds and usage (docs/design.md section 6).
--
-- Money is bigint micro-USD everywhere (columns end in _micros). Nothing here is floating point.
-- Objects are created unqualified, in the first schema of search_path, so tests can give each
-- run its own schema.

CREATE TABLE orgs (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                text NOT NULL,
    -- Markup on provider cost, in basis points (10000 = +100%).
    markup_bps          integer NOT NULL DEFAULT 0 CHECK (markup_bps >= 0),
    subscription_active boolean NOT NULL DEFAULT true,
    -- Opt-in switch: a disabled org's keys are rejected with 403 gateway_disabled.
    gateway_enabled     boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id       uuid NOT NULL REFERENCES orgs (id),
    kind         text NOT NULL CHECK (kind IN ('standard', 'management')),
    name         text NOT NULL DEFAULT '',
    -- First characters of the key, shown in listings so a user can tell keys apart.
    prefix       text NOT NULL,
    -- SHA-256 of the whole key. The key itself is shown once at creation and never stored.
    hash         bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    -- Coarse (about a minute): refreshed by lookups only when stale, to keep the hot path cheap.
    last_used_at timestamptz
);

CREATE INDEX api_keys_org_id_idx ON api_keys (org_id);

-- The materialised balance, kept equal to the sum of the org's ledger_entries by every writer
-- (ledger.Store.Reconcile checks it). held_micros is the sum of the org's open holds; a hold is
-- admitted only while balance_micros - held_micros covers it. There is deliberately no check on
-- balance_micros itself: a settlement that exceeds its hold must still be recorded.
CREATE TABLE org_balances (
    org_id         uuid PRIMARY KEY REFERENCES orgs (id),
    balance_micros bigint NOT NULL DEFAULT 0,
    held_micros    bigint NOT NULL DEFAULT 0 CHECK (held_micros >= 0)
) WITH (fillfactor = 50); -- the hottest row in the system: leave room for HOT updates

-- Append-only: top-ups, usage charges and adjustments. Never updated or deleted (enforced by
-- the trigger below); a correction is a new 'adjustment' row.
CREATE TABLE ledger_entries (
    id            bigserial PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES orgs (id),
    kind          text NOT NULL CHECK (kind IN ('topup', 'usage', 'adjustment')),
    amount_micros bigint NOT NULL,
    request_id    text,
    note          text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'topup' OR amount_micros > 0),
    CHECK (kind <> 'usage' OR request_id IS NOT NULL)
);

-- A request is charged at most once, whatever retries or spool replays happen.
CREATE UNIQUE INDEX ledger_entries_usage_request_id_key ON ledger_entries (request_id)
    WHERE kind = 'usage';
CREATE INDEX ledger_entries_org_id_idx ON ledger_entries (org_id, id);

CREATE FUNCTION ledger_entries_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER ledger_entries_append_only
    BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();
CREATE TRIGGER ledger_entries_no_truncate
    BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_append_only();

-- Open reservations for requests in flight. A row lives from PlaceHold until Settle,
-- ReleaseHold or ExpireHolds deletes it; its amount is counted in org_balances.held_micros.
CREATE TABLE holds (
    request_id    text PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES orgs (id),
    key_id        uuid REFERENCES api_keys (id),
    amount_micros bigint NOT NULL CHECK (amount_micros >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);

CREATE INDEX holds_expires_at_idx ON holds (expires_at);

-- One row per completed request; written by Settle in the same statement as its ledger entry.
CREATE TABLE usage_records (
    request_id         text PRIMARY KEY,
    org_id             uuid NOT NULL REFERENCES orgs (id),
    key_id             uuid REFERENCES api_keys (id),
    endpoint           text NOT NULL DEFAULT '',
    requested_model    text NOT NULL DEFAULT '',
    model              text NOT NULL DEFAULT '',
    provider           text NOT NULL DEFAULT '',
    region             text NOT NULL DEFAULT '',
    status             integer NOT NULL,
    finish_reason      text NOT NULL DEFAULT '',
    streamed           boolean NOT NULL DEFAULT false,
    prompt_tokens      bigint NOT NULL DEFAULT 0,
    completion_tokens  bigint NOT NULL DEFAULT 0,
    cached_read_tokens bigint NOT NULL DEFAULT 0,
    cache_write_tokens bigint NOT NULL DEFAULT 0,
    reasoning_tokens   bigint NOT NULL DEFAULT 0,
    -- Charged total after markup.
    cost_micros        bigint NOT NULL,
    -- Billing item -> micro-USD before markup, e.g. {"prompt": 120, "completion": 480}.
    cost_items         jsonb NOT NULL DEFAULT '{}',
    latency_ms         bigint NOT NULL DEFAULT 0,
    -- NULL when no first token was observed (e.g. a buffered error response).
    ttft_ms            bigint,
    -- When the request happened; settled_at is when it reached the ledger (later on replay).
    created_at         timestamptz NOT NULL DEFAULT now(),
    settled_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX usage_records_org_created_idx ON usage_records (org_id, created_at);
CREATE INDEX usage_records_key_created_idx ON usage_records (key_id, created_at);
