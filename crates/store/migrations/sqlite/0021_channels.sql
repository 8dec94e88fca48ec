-- Chat and webhook channels of a partner (Microsoft Teams, Slack, a signed generic webhook).
-- The receiver's URL is its credential, so it is sealed like a PSA secret (additional data
-- "channel:<id>:url"); so is the generic webhook's signing secret. Which event types a channel
-- gets is one row per type. Channel deliveries are rows of `deliveries` with channel = kind,
-- connection_id 0 and a group key unique per channel and event, routed in the same
-- transaction as the event's PSA deliveries.
CREATE TABLE channels (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id            TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    kind                  TEXT NOT NULL,
    name                  TEXT NOT NULL,
    enabled               INTEGER NOT NULL DEFAULT 1,
    sealed_url            TEXT NOT NULL DEFAULT '',
    sealed_signing_secret TEXT,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    UNIQUE (partner_id, name)
);
CREATE TABLE channel_event_types (
    channel_id INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    PRIMARY KEY (channel_id, event_type)
);
-- "Is this event type still named?" (deleting an event type) reads this.
CREATE INDEX channel_event_types_type ON channel_event_types(event_type);
