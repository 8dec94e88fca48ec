-- Close a grouped ticket when every alert it stands for has resolved (off by default).
ALTER TABLE connections ADD COLUMN close_on_resolve INTEGER NOT NULL DEFAULT 0;
-- The alerts a group's ticket stands for (JSON array); NULL for groups older than this.
ALTER TABLE ticket_groups ADD COLUMN open_alerts TEXT;
