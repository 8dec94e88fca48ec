-- People who log in (MSP staff), their roles per partner, and their sessions.

-- A person, across partners. The email is unique whatever its case (email_key is its
-- lowercase form, computed by the application so both engines agree).
CREATE TABLE users (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    email              TEXT NOT NULL,
    email_key          TEXT NOT NULL UNIQUE,
    name               TEXT NOT NULL,
    password_hash      TEXT,              -- Argon2id PHC string; NULL until set
    totp_secret        TEXT,              -- sealed; NULL: no TOTP
    totp_pending       TEXT,              -- sealed; enrolled but not yet confirmed
    totp_last_step     INTEGER,           -- the last accepted step (replay protection)
    deactivated_at     INTEGER,           -- NULL: active
    created_at         INTEGER NOT NULL
);

-- A person's role at one partner. One Primary per partner.
CREATE TABLE memberships (
    user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    partner_id     TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    role           TEXT NOT NULL,
    deactivated_at INTEGER,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (user_id, partner_id)
);
CREATE UNIQUE INDEX memberships_one_primary ON memberships (partner_id) WHERE role = 'primary';
CREATE INDEX memberships_partner ON memberships (partner_id);

-- Recovery codes, hashed, each usable once.
CREATE TABLE recovery_codes (
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at   INTEGER,
    PRIMARY KEY (user_id, code_hash)
);

-- Server-side sessions; the cookie holds a random id, only its hash is here.
CREATE TABLE sessions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    id_hash        TEXT NOT NULL UNIQUE,
    user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    partner_id     TEXT REFERENCES partners(id) ON DELETE CASCADE,   -- the partner acted for by default
    auth_method    TEXT NOT NULL,     -- password, password_totp, recovery_code, oidc
    idp_sid        TEXT,              -- the identity provider's session id (back-channel logout)
    csrf_token     TEXT NOT NULL,
    client_address TEXT,
    created_at     INTEGER NOT NULL,
    last_seen_at   INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    revoked_at     INTEGER
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_idp_sid ON sessions (idp_sid);

-- Identities at identity providers, keyed on (issuer, subject), never on email.
CREATE TABLE user_identities (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    issuer    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    linked_at INTEGER NOT NULL,
    UNIQUE (issuer, subject)
);
CREATE INDEX user_identities_user ON user_identities (user_id);

-- One-time links to set a password (new users), hashed.
CREATE TABLE password_setup_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);

-- Failed logins, for throttling (by the email typed, and by client address).
CREATE TABLE login_failures (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    email_key      TEXT NOT NULL,
    client_address TEXT NOT NULL,
    at             INTEGER NOT NULL
);
CREATE INDEX login_failures_email ON login_failures (email_key, at);
CREATE INDEX login_failures_address ON login_failures (client_address, at);
