-- SCIM 2.0 provisioning: one bearer token per partner for its identity provider, and the
-- SCIM view of each member the identity provider manages.

-- The partner's SCIM token, hashed (SHA-256); creating a new one replaces the old one.
CREATE TABLE scim_tokens (
    partner_id TEXT PRIMARY KEY REFERENCES partners(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

-- A member as the identity provider sees it. The SCIM id is the user id. userName is unique
-- per partner whatever its case (user_name_key is its lowercase form, computed by the
-- application). attributes holds the rest of the SCIM resource as JSON, without id, meta,
-- schemas and active (active is the membership's state). Removing the membership removes
-- this row.
CREATE TABLE scim_users (
    partner_id    TEXT NOT NULL,
    user_id       INTEGER NOT NULL,
    user_name     TEXT NOT NULL,
    user_name_key TEXT NOT NULL,
    external_id   TEXT,
    email_key     TEXT,
    attributes    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (partner_id, user_id),
    UNIQUE (partner_id, user_name_key),
    FOREIGN KEY (user_id, partner_id) REFERENCES memberships(user_id, partner_id) ON DELETE CASCADE
);
CREATE INDEX scim_users_external_id ON scim_users (partner_id, external_id);
CREATE INDEX scim_users_email ON scim_users (partner_id, email_key);
