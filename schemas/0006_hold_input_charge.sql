-- A hold that expires without a settlement is charged its input, not released for free: the
-- request reached a provider (or may have), and the provider bills the prompt it read.
--
-- input_micros is the request's prompt priced at its lower-bound token estimate, markup applied
-- (integer micro-USD, never above the hold). ledger.ExpireHolds charges it when the hold expires.
ALTER TABLE holds ADD COLUMN input_micros bigint NOT NULL DEFAULT 0
    CHECK (input_micros >= 0 AND input_micros <= amount_micros);

-- The usage record ExpireHolds writes for an expired hold is provisional: if the request's real
-- settlement arrives later (replayed from a spool after an outage longer than the hold's TTL,
-- say), it replaces the record, and the difference from the input charge is booked as an
-- 'adjustment' ledger entry. expired_charge_micros is what the expiry charged; it stays NULL on
-- records written by a real settlement, and is kept after a replacement as history.
ALTER TABLE usage_records ADD COLUMN provisional boolean NOT NULL DEFAULT false;
ALTER TABLE usage_records ADD COLUMN expired_charge_micros bigint
    CHECK (expired_charge_micros IS NULL OR expired_charge_micros >= 0);
