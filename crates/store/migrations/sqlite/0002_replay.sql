-- A dead or expired delivery replayed on purpose: the replay window counts from here.
ALTER TABLE deliveries ADD COLUMN replayed_at INTEGER;
