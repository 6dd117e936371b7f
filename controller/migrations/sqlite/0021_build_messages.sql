-- The pushed commit's subject line, for the dashboard.
ALTER TABLE builds ADD COLUMN message TEXT;
