-- What the login button calls the partner's identity provider ("Log in with Okta").
ALTER TABLE sso_settings ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
