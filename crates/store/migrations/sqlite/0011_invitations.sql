-- Partners are tenants of people: adding a person to a partner is an invitation the person
-- accepts, and login throttling keys failures by account and address.

-- An invitation of an email address to a partner. The person accepts after their own login,
-- or, with no password yet, through the link emailed to them (only its hash is here), which
-- sets the password. No person row is made or read into the answer until then. One live
-- invitation per partner and address: inviting again replaces it, and its link.
CREATE TABLE invitations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    email_key  TEXT NOT NULL,
    name       TEXT,              -- the name for a person who has no account yet
    role       TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    invited_by TEXT NOT NULL,     -- the audit actor who invited
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    UNIQUE (partner_id, email_key)
);
CREATE INDEX invitations_email ON invitations (email_key);

-- The throttling key (address or IPv6 /64) each account last logged in from, and when: a
-- known place is never throttled by failures others cause.
CREATE TABLE login_successes (
    email_key      TEXT NOT NULL,
    client_address TEXT NOT NULL,
    last_at        INTEGER NOT NULL,
    PRIMARY KEY (email_key, client_address)
);

CREATE INDEX login_failures_pair ON login_failures (email_key, client_address, at);
-- Sessions are scoped to a partner (NULL: every membership of the person).
CREATE INDEX sessions_user_partner ON sessions (user_id, partner_id);
