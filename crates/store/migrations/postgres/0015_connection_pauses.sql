-- A connection's pause (its PSA said to wait, or its breaker opened), seen by every node: no
-- node claims the connection's deliveries before `until` (milliseconds, UTC).
CREATE TABLE connection_pauses (
    connection_id BIGINT PRIMARY KEY,
    until         BIGINT NOT NULL
);
