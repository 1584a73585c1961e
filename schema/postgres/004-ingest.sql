-- v4: message texts waiting for the search index. A large transaction from the homeserver
-- (a busy server, or catch-up after an outage) leaves its texts here in one row, as two
-- arrays; right after its commit, a connection of its own moves them into message_text,
-- where to_tsvector and the GIN index then run beside the next transaction.

CREATE TABLE message_text_queue (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_ids TEXT[] NOT NULL,
    bodies    TEXT[] NOT NULL
);
