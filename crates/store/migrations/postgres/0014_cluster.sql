-- Periodic jobs (the ticket sweep) run on one node of a cluster at a time: the node named in
-- `holder` may run `name` until `until` (milliseconds, UTC) and renews while it runs; once the
-- time has passed, any node may take the job over.
CREATE TABLE job_leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);

-- A connection's pause (its PSA said to wait, or its breaker opened), seen by every node: no
-- node claims the connection's deliveries before `until` (milliseconds, UTC).
CREATE TABLE connection_pauses (
    connection_id BIGINT PRIMARY KEY,
    until         BIGINT NOT NULL
);
