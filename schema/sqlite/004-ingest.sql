-- v4: message texts waiting for the search index. A large transaction from the homeserver
-- (a busy server, or catch-up after an outage) leaves its texts here in one row, as a JSON
-- array of [event_id, body] pairs; right after its commit they are moved into message_text,
-- several transactions at a time, where the FTS5 index takes them in bulk.

CREATE TABLE message_text_queue (
    id    INTEGER PRIMARY KEY,
    texts TEXT NOT NULL
);
