-- Email per partner and event type: on/off and the recipients ("a@x.com; b@y.com", checked by
-- the API). Email deliveries are rows of `deliveries` with channel 'email', connection_id 0
-- and a group key unique per event ("email:<partner>:<event id>").
CREATE TABLE email_settings (
    partner_id  TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    event_type  TEXT NOT NULL,
    enabled     BOOLEAN NOT NULL DEFAULT FALSE,
    addresses   TEXT NOT NULL DEFAULT '',
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (partner_id, event_type)
);
CREATE INDEX deliveries_partner_channel ON deliveries(partner_id, channel, id);
