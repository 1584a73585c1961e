-- v2: routing that survives restarts. Each session walks through steps (named expert,
-- preferred experts, whole group, overflow groups); the step and its deadline live here, as do
-- the deadlines of offers, so timers fire on schedule after a restart.

ALTER TABLE session ADD COLUMN routing_group TEXT;
ALTER TABLE session ADD COLUMN step INTEGER NOT NULL DEFAULT 0;
ALTER TABLE session ADD COLUMN step_deadline INTEGER;
-- Who speaks for Backline in the agent's DM: the group user, or the bot after `!ask`.
ALTER TABLE session ADD COLUMN dm_user TEXT;
CREATE INDEX session_step_deadline ON session (step_deadline) WHERE step_deadline IS NOT NULL;

ALTER TABLE offer ADD COLUMN expires_at INTEGER;
ALTER TABLE offer ADD COLUMN routing_group TEXT;
CREATE INDEX offer_expiry ON offer (expires_at) WHERE expires_at IS NOT NULL;

-- Who was offered a request of a group last: round_robin starts after them.
ALTER TABLE group_state ADD COLUMN last_offered TEXT;

-- Roster room memberships: experts who join a group's roster room are its members.
CREATE TABLE roster_member (
    group_id   TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    membership TEXT NOT NULL,
    changed_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
