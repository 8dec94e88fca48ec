-- Who changed which setting when, before and after (secrets never stored here).
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id TEXT,                 -- NULL: a vendor-wide change
    actor      TEXT NOT NULL,        -- e.g. token:3 "vendor-platform"
    action     TEXT NOT NULL,        -- e.g. connection.update
    target     TEXT NOT NULL,        -- e.g. connection:7
    before_json TEXT,
    after_json  TEXT,
    at         INTEGER NOT NULL
);
CREATE INDEX audit_log_partner ON audit_log (partner_id, id);
