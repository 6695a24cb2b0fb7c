-- The org's plan: the canonical model ids its keys may use (seed 000: "models depend on your
-- organization's plan"). NULL means every model in the catalog; an empty array means none.
ALTER TABLE orgs ADD COLUMN models text[];
