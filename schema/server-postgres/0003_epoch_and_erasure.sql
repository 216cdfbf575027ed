-- The feed's epoch: a random id minted now and again whenever the data is declared restored
-- from a backup (`admin mark-restored`; see docs/backup.md). Devices compare it with the one
-- they last saw: a new epoch means acknowledgements and cursors from before may point at data
-- the restore lost.
CREATE TABLE feed_epoch (
    singleton   boolean     NOT NULL PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch       uuid        NOT NULL,
    declared_at timestamptz NOT NULL,
    -- 'created' or 'restored'
    reason      text        NOT NULL
);
INSERT INTO feed_epoch (epoch, declared_at, reason) VALUES (gen_random_uuid(), now(), 'created');

-- What `admin erase-patient` leaves behind: that an erasure happened, when, by whom and how many
-- rows of each table it removed. No personal data: the patient id is a random id whose label
-- and diary are gone.
CREATE TABLE erasures (
    erasure_id   uuid        NOT NULL PRIMARY KEY,
    patient_id   uuid        NOT NULL,
    erased_at    timestamptz NOT NULL,
    erased_by    text        NOT NULL,
    rows_removed jsonb       NOT NULL
);
CREATE INDEX erasures_by_patient ON erasures (patient_id);
