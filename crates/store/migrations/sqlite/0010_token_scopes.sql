-- Scoped API tokens: what a token may do, until when, when it was last used, and the person
-- who made it (whose deactivation revokes it).

-- Space-separated scope names (psabridge_identity::scopes). Tokens made before scopes existed
-- keep what they could do: every scope.
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL
    DEFAULT 'events:write settings:read settings:write deliveries:read deliveries:write users:read users:write audit:read tokens:write';
-- NULL: never expires.
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
-- Written at most once a minute per token and node (not on every request).
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;
-- The person who made the token while logged in; NULL for tokens made by tokens or the CLI.
ALTER TABLE api_tokens ADD COLUMN created_by_user INTEGER REFERENCES users(id) ON DELETE SET NULL;

CREATE INDEX api_tokens_created_by_user ON api_tokens (created_by_user) WHERE created_by_user IS NOT NULL;
