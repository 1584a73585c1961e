-- v1: transactions, archived events, DM rooms, sessions, offers, presence, outbox.

CREATE TABLE appservice_txn (
    txn_id      TEXT PRIMARY KEY,
    body_sha256 TEXT NOT NULL,
    received_at INTEGER NOT NULL
);

CREATE TABLE room_event (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL UNIQUE,
    room_id     TEXT NOT NULL,
    sender      TEXT NOT NULL,
    type        TEXT NOT NULL,
    state_key   TEXT,
    origin_ts   INTEGER NOT NULL,
    session_id  INTEGER,
    event_json  TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX room_event_room ON room_event (room_id, seq);
CREATE INDEX room_event_session ON room_event (session_id, seq);

CREATE TABLE group_state (
    group_id       TEXT PRIMARY KEY,
    roster_room_id TEXT
);

CREATE TABLE dm_room (
    room_id    TEXT NOT NULL,
    group_id   TEXT NOT NULL,
    agent      TEXT NOT NULL,
    state      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (room_id, group_id)
);

CREATE TABLE session (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id         TEXT NOT NULL,
    agent            TEXT NOT NULL,
    dm_room_id       TEXT,
    request_event_id TEXT UNIQUE,
    room_id          TEXT UNIQUE,
    room_alias       TEXT UNIQUE,
    question         TEXT NOT NULL,
    preferences      TEXT NOT NULL,
    state            TEXT NOT NULL,
    needed           INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    claimed_at       INTEGER,
    closed_at        INTEGER,
    closed_by        TEXT
);
CREATE INDEX session_state ON session (state);
CREATE INDEX session_agent_group ON session (agent, group_id, state);

CREATE TABLE offer (
    session_id INTEGER NOT NULL REFERENCES session (id),
    expert     TEXT NOT NULL,
    state      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    offered_at INTEGER,
    ended_at   INTEGER,
    reason     TEXT,
    PRIMARY KEY (session_id, expert)
);
CREATE INDEX offer_expert_state ON offer (expert, state);

CREATE TABLE routing_decision (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id INTEGER NOT NULL REFERENCES session (id),
    decided_at INTEGER NOT NULL,
    summary    TEXT NOT NULL,
    details    TEXT NOT NULL
);
CREATE INDEX routing_decision_session ON routing_decision (session_id, id);

CREATE TABLE presence (
    user_id    TEXT PRIMARY KEY,
    presence   TEXT NOT NULL,
    status_msg TEXT,
    updated_at INTEGER NOT NULL
);

CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    lane       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    done_at    INTEGER,
    error      TEXT
);
CREATE INDEX outbox_pending ON outbox (id) WHERE done_at IS NULL;
