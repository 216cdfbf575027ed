-- A compact diary file: ids and stamps as blobs and integers, patches in the store's binary form
-- (crates/store/src/codec.rs), and no second copy of an entry. An entry's state is the merge of
-- its operations, read from the log, which the primary key keeps together by entry; an entry
-- written once is stored once.

ALTER TABLE ops RENAME TO ops_text;

-- Every device whose operations or stamps the log holds, numbered in this file.
CREATE TABLE devices (
    device_no  INTEGER PRIMARY KEY,
    device_id  BLOB NOT NULL UNIQUE          -- UUID, 16 bytes
);

CREATE TABLE ops (
    entry_id     BLOB NOT NULL,              -- UUID, 16 bytes
    device_no    INTEGER NOT NULL,           -- writer
    device_seq   INTEGER NOT NULL,           -- writer's own sequence, from 1
    hlc_ms       INTEGER NOT NULL,           -- clock stamp: wall milliseconds,
    hlc_counter  INTEGER NOT NULL,           -- counter within the millisecond,
    hlc_node     INTEGER,                    -- and device, when it is not the writer
    patch        BLOB NOT NULL,              -- field -> value, binary (null clears)
    received_at  INTEGER,                    -- Unix ms the server stored it, for pulled ops
    seen_at_seq  INTEGER,                    -- own sequence reached when a pulled op arrived:
                                             -- what this device held when it wrote its next op
    PRIMARY KEY (entry_id, device_no, device_seq)
) WITHOUT ROWID;

-- Own operations the server has not acknowledged, by sequence: what a push sends next. Emptied
-- as acknowledgements arrive, so it costs nothing once the diary is in sync.
CREATE TABLE outbox (
    device_seq  INTEGER PRIMARY KEY,
    entry_id    BLOB NOT NULL
);

-- The newest own sequence number, kept beside the newest stamp: the log is not indexed by device.
ALTER TABLE device ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;

-- carry forward: the store copies ops_text into ops, devices and outbox here.

DROP TABLE ops_text;
DROP TABLE entries;
