-- "Log in with the IdP": each partner's OpenID provider, who is exempt from requiring it,
-- logins in flight, and the back-channel logout tokens already acted on.

-- One OpenID provider per partner. The client secret is sealed like every other secret.
CREATE TABLE sso_settings (
    partner_id               TEXT PRIMARY KEY REFERENCES partners(id) ON DELETE CASCADE,
    issuer                   TEXT NOT NULL,
    client_id                TEXT NOT NULL,
    client_secret            TEXT NOT NULL,              -- sealed
    scopes                   TEXT NOT NULL,              -- space-separated, besides openid
    require_idp              BOOLEAN NOT NULL DEFAULT FALSE,
    jit_enabled              BOOLEAN NOT NULL DEFAULT FALSE,
    jit_default_role         TEXT NOT NULL DEFAULT 'read_only',
    first_admin_idp_login_at BIGINT,                    -- NULL: no administrator logged in through it yet
    updated_at               BIGINT NOT NULL
);
CREATE INDEX sso_settings_issuer ON sso_settings (issuer);

-- People who keep their password login although their partner requires the provider.
CREATE TABLE sso_exemptions (
    partner_id TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (partner_id, user_id)
);

-- Logins sent to the provider and not back yet: keyed by the hash of `state`, bound to the
-- hash of the browser's pre-auth cookie, used once, expiring. The payload (nonce, PKCE
-- verifier) is sealed.
CREATE TABLE sso_pending_logins (
    state_hash   TEXT PRIMARY KEY,
    browser_hash TEXT NOT NULL,
    partner_id   TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    payload      TEXT NOT NULL,
    expires_at   BIGINT NOT NULL
);

-- A verified identity waiting for the person: to choose a partner, or to confirm the link
-- with their password and TOTP code. One per pre-auth browser cookie.
CREATE TABLE sso_continuations (
    browser_hash TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,          -- choose, confirm
    user_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    issuer       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    idp_sid      TEXT,
    partner_id   TEXT REFERENCES partners(id) ON DELETE CASCADE,
    expires_at   BIGINT NOT NULL
);

-- Back-channel logout tokens acted on, kept until they expire, to refuse replays.
CREATE TABLE sso_logout_tokens (
    issuer     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);
