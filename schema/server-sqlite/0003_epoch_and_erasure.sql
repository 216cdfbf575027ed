-- The feed's epoch: a random id minted now and again whenever the data is declared restored
-- from a backup (`admin mark-restored`). Devices compare it with the one they last saw: a new
-- epoch means acknowledgements and cursors from before may point at data the restore lost.
CREATE TABLE feed_epoch (
    singleton   INTEGER NOT NULL PRIMARY KEY CHECK (singleton = 1),
    epoch       TEXT    NOT NULL,
    declared_at TEXT    NOT NULL,
    -- 'created' or 'restored'
    reason      TEXT    NOT NULL
);
INSERT INTO feed_epoch (singleton, epoch, declared_at, reason)
VALUES (
    1,
    lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'
        || substr(lower(hex(randomblob(2))), 2) || '-'
        || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2)
        || '-' || lower(hex(randomblob(6))),
    strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'),
    'created'
);

-- What `admin erase-patient` leaves behind: that an erasure happened, when, by whom and how many
-- rows of each table it removed. No personal data: the patient id is a random id whose label
-- and diary are gone.
CREATE TABLE erasures (
    erasure_id   TEXT NOT NULL PRIMARY KEY,
    patient_id   TEXT NOT NULL,
    erased_at    TEXT NOT NULL,
    erased_by    TEXT NOT NULL,
    -- JSON object: table -> rows removed.
    rows_removed TEXT NOT NULL
);
CREATE INDEX erasures_by_patient ON erasures (patient_id);
