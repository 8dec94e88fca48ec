-- A connection's PSA request budget shared by every node: per connection, scope (empty, or the
-- endpoint where the PSA counts per endpoint) and window slice starting at `window_start`
-- (milliseconds, UTC), `used` requests of `lim` were reserved by some node. Nodes reserve
-- chunks; what a node reserved and did not send is lost when the slice ends. `last_grant` is
-- what the latest reservation got (so one statement both reserves and answers).
CREATE TABLE connection_budgets (
    connection_id INTEGER NOT NULL,
    scope         TEXT NOT NULL,
    window_start  INTEGER NOT NULL,
    used          INTEGER NOT NULL,
    lim           INTEGER NOT NULL,
    last_grant    INTEGER NOT NULL,
    PRIMARY KEY (connection_id, scope, window_start)
);
