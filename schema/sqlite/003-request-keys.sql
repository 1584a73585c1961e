-- v3: idempotency keys of requests opened over HTTP, so that a retried POST finds the session
-- it opened the first time instead of opening a second one. A key dies with its session.

CREATE TABLE request_key (
    caller          TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    session_id      INTEGER NOT NULL REFERENCES session (id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (caller, idempotency_key)
);
CREATE INDEX request_key_session ON request_key (session_id);
