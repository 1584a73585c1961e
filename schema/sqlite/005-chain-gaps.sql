-- v5: stretches purged from the middle of a chain. An agent's DM with a group user holds the
-- requests of many sessions; retention removes those of expired sessions even when a later or
-- held one stays. Each stretch keeps the hash of its last link, which the next kept link
-- names as its previous hash, so verify still proves everything that is left.

CREATE TABLE chain_gap (
    room_id     TEXT NOT NULL,
    first_index INTEGER NOT NULL,
    last_index  INTEGER NOT NULL,
    last_hash   TEXT NOT NULL,
    purged_at   INTEGER NOT NULL,
    PRIMARY KEY (room_id, first_index)
);
