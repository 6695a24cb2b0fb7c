-- A settlement never charges more than the request's hold (the hold is the upper bound the
-- organisation agreed to). When the computed cost is above it, the difference is not charged but
-- recorded here, so the operator can see and query it (excess_micros > 0); usually it means the
-- catalog's prices changed between hold and settlement, or the hold's bound is wrong.
ALTER TABLE usage_records ADD COLUMN excess_micros bigint NOT NULL DEFAULT 0 CHECK (excess_micros >= 0);
