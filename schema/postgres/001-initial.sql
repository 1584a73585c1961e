-- v1: transactions, the archive (events in per-room hash chains, search, media, holds,
-- access log), DM rooms, sessions, offers, routing decisions, presence, outbox.

CREATE TABLE appservice_txn (
    txn_id      TEXT PRIMARY KEY,
    body_sha256 TEXT NOT NULL,
    received_at BIGINT NOT NULL
);

CREATE TABLE room_event (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    TEXT NOT NULL UNIQUE,
    room_id     TEXT NOT NULL,
    sender      TEXT NOT NULL,
    type        TEXT NOT NULL,
    state_key   TEXT,
    origin_ts   BIGINT NOT NULL,
    session_id  BIGINT,
    event_json  TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    chain_index BIGINT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    redacted_by TEXT,
    redacted_at BIGINT
);
CREATE UNIQUE INDEX room_event_chain ON room_event (room_id, chain_index);
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
    created_at BIGINT NOT NULL,
    PRIMARY KEY (room_id, group_id)
);

CREATE TABLE session (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_id         TEXT NOT NULL,
    agent            TEXT NOT NULL,
    dm_room_id       TEXT,
    request_event_id TEXT UNIQUE,
    room_id          TEXT UNIQUE,
    room_alias       TEXT UNIQUE,
    question         TEXT NOT NULL,
    channel          TEXT,
    reference        TEXT,
    customer         TEXT,
    preferences      TEXT NOT NULL,
    state            TEXT NOT NULL,
    needed           INTEGER NOT NULL,
    created_at       BIGINT NOT NULL,
    claimed_at       BIGINT,
    closed_at        BIGINT,
    closed_by        TEXT
);
CREATE INDEX session_state ON session (state);
CREATE INDEX session_agent_group ON session (agent, group_id, state);

CREATE TABLE offer (
    session_id BIGINT NOT NULL REFERENCES session (id),
    expert     TEXT NOT NULL,
    state      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    offered_at BIGINT,
    ended_at   BIGINT,
    reason     TEXT,
    PRIMARY KEY (session_id, expert)
);
CREATE INDEX offer_expert_state ON offer (expert, state);

CREATE TABLE routing_decision (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES session (id),
    decided_at BIGINT NOT NULL,
    summary    TEXT NOT NULL,
    details    TEXT NOT NULL
);
CREATE INDEX routing_decision_session ON routing_decision (session_id, id);

CREATE TABLE presence (
    user_id    TEXT PRIMARY KEY,
    presence   TEXT NOT NULL,
    status_msg TEXT,
    updated_at BIGINT NOT NULL
);

CREATE TABLE outbox (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lane       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    done_at    BIGINT,
    error      TEXT
);
CREATE INDEX outbox_pending ON outbox (id) WHERE done_at IS NULL;

-- The tip of each room's hash chain, and how far retention has purged it: the first kept
-- row must then link to purged_hash instead of the genesis hash.
CREATE TABLE room_chain (
    room_id        TEXT PRIMARY KEY,
    last_index     BIGINT NOT NULL,
    last_hash      TEXT NOT NULL,
    purged_through BIGINT,
    purged_hash    TEXT
);

CREATE TABLE archive_media (
    mxc          TEXT PRIMARY KEY,
    content_type TEXT,
    filename     TEXT,
    size         BIGINT,
    sha256       TEXT,
    stored_at    BIGINT,
    error        TEXT
);

CREATE TABLE legal_hold (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    released_by TEXT,
    released_at BIGINT
);

CREATE TABLE archive_access (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    details TEXT NOT NULL
);

CREATE TABLE web_session (
    token_sha256 TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

-- Searchable text of messages (the newest version for edits), with a GIN-indexed tsvector.
-- The 'simple' configuration neither stems nor drops stop words: contact centres write in
-- many languages, and compliance searches for exact words.
CREATE TABLE message_text (
    seq  BIGINT PRIMARY KEY REFERENCES room_event (seq) ON DELETE CASCADE,
    body TEXT NOT NULL,
    tsv  tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED
);
CREATE INDEX message_text_tsv ON message_text USING GIN (tsv);
-- With the default sample the planner takes a rare word for a common one and walks the whole
-- table newest first instead of using the GIN index; a larger sample tells them apart.
ALTER TABLE message_text ALTER COLUMN tsv SET STATISTICS 1000;
