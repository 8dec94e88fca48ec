-- Usage reported by the vendor (users, devices per client), and the high-water mark of each
-- client, metric and billing period, which is what the MSP bills.

-- A partner's billing calendar: periods are months in this IANA zone, starting on this day.
ALTER TABLE partners ADD COLUMN billing_time_zone TEXT NOT NULL DEFAULT 'UTC';
ALTER TABLE partners ADD COLUMN billing_anchor_day BIGINT NOT NULL DEFAULT 1;

-- Every report as received; (partner, id) makes a resend idempotent.
CREATE TABLE usage_reports (
    partner_id  TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    metric      TEXT NOT NULL,
    units       BIGINT NOT NULL,
    observed_at BIGINT NOT NULL,
    period_key  TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (partner_id, id)
);

-- The highest count of each period, raised in the transaction that stores the report.
CREATE TABLE usage_high_water (
    partner_id   TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    client_id    TEXT NOT NULL,
    metric       TEXT NOT NULL,
    period_key   TEXT NOT NULL,
    period_start BIGINT NOT NULL,
    period_end   BIGINT NOT NULL,
    units        BIGINT NOT NULL,
    reports      BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    -- The start is part of the key: after a change of calendar, a month can hold two periods.
    PRIMARY KEY (partner_id, period_key, period_start, client_id, metric)
);
