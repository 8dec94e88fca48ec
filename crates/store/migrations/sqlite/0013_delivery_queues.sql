-- The head of each (connection, group key) queue, kept explicitly so that a claim reads only
-- the heads that are due (an index range scan per connection) instead of looking for heads
-- among every pending delivery. Maintained in the transaction that records, claims, finishes,
-- fails, releases or replays a delivery. due_at: the head's next_attempt_at while it waits,
-- its lease_until while it is in flight, or when the write it sent may have landed.
CREATE TABLE delivery_queues (
    connection_id INTEGER NOT NULL,
    group_key     TEXT NOT NULL,
    head_id       INTEGER NOT NULL,
    due_at        INTEGER NOT NULL,
    PRIMARY KEY (connection_id, group_key)
);
CREATE INDEX delivery_queues_lane ON delivery_queues (connection_id, due_at);
CREATE INDEX delivery_queues_due ON delivery_queues (due_at);
CREATE UNIQUE INDEX delivery_queues_head ON delivery_queues (head_id);

INSERT INTO delivery_queues (connection_id, group_key, head_id, due_at)
SELECT d.connection_id, d.group_key, d.id,
       CASE WHEN d.state = 'in_flight' THEN COALESCE(d.lease_until, 0) ELSE d.next_attempt_at END
FROM deliveries d
WHERE d.id IN (SELECT MIN(a.id) FROM deliveries a
               WHERE a.state IN ('pending', 'retrying', 'in_flight')
               GROUP BY a.connection_id, a.group_key);

-- The finished deliveries of a group are no longer looked up by next attempt time.
DROP INDEX deliveries_active;
