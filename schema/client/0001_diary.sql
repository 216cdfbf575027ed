-- The diary on one device: the operation log (the source of truth, and what sync ships),
-- the entry states derived from it, and the device's own identity.

CREATE TABLE device (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    device_id   TEXT NOT NULL,             -- UUIDv7 made on first open; stamps every local op
    created_at  TEXT NOT NULL
);

-- Field-level operations from every device of the patient, this one included.
CREATE TABLE ops (
    local_seq      INTEGER PRIMARY KEY,    -- arrival order on this device
    entry_id       TEXT NOT NULL,
    device_id      TEXT NOT NULL,          -- writer
    device_seq     INTEGER NOT NULL,       -- writer's own sequence, from 1
    hlc            TEXT NOT NULL,          -- hybrid logical clock stamp, sortable as text
    patch          TEXT NOT NULL,          -- JSON object: field -> value (null clears)
    server_cursor  INTEGER,                -- position in the server feed, for pulled ops
    received_at    TEXT,                   -- when the server stored it, for pulled ops
    UNIQUE (device_id, device_seq)
);
CREATE INDEX ops_by_entry ON ops (entry_id);

-- Current state of each entry, derived from ops: per field, the value with the highest stamp.
CREATE TABLE entries (
    entry_id  TEXT PRIMARY KEY,
    day       TEXT,                        -- NULL until the op that creates the entry arrives
    deleted   INTEGER NOT NULL DEFAULT 0,
    state     TEXT                         -- JSON: stamp -> {field: value} of the winning values;
                                           -- NULL while the entry's only op is the one that created it
) WITHOUT ROWID;
CREATE INDEX entries_by_day ON entries (day) WHERE deleted = 0;

-- How far sync has got: own ops acknowledged by the server, and the server feed read so far.
CREATE TABLE sync_state (
    singleton    INTEGER PRIMARY KEY CHECK (singleton = 1),
    acked_seq    INTEGER NOT NULL DEFAULT 0,
    pull_cursor  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO sync_state (singleton) VALUES (1);
