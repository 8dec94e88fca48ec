-- The ticket a note whose answer was lost was sent to: the next attempt looks for the note
-- there first, whatever that ticket's state is by then.
ALTER TABLE deliveries ADD COLUMN note_ticket_id TEXT;
-- A retry asked for through the API routes the event again with the settings of that moment.
ALTER TABLE deliveries ADD COLUMN reroute BOOLEAN NOT NULL DEFAULT false;
-- Attempts made before the last retry asked for through the API: the retry policy counts
-- only the attempts since, while `attempts` keeps counting every one.
ALTER TABLE deliveries ADD COLUMN attempts_before_retry INTEGER NOT NULL DEFAULT 0;
