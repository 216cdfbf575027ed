-- Analyst export: research consent as the patient's device last gave it, analysts and their
-- tokens, and the log of every export.

-- One row per patient who ever answered; exports take only those whose latest answer is yes.
-- changed_at is when the patient answered (device clock, UTC): a later answer replaces an
-- earlier one whatever order they arrive in.
CREATE TABLE research_consent (
    patient_id  TEXT    NOT NULL PRIMARY KEY REFERENCES patients (patient_id),
    consent     INTEGER NOT NULL CHECK (consent IN (0, 1)),
    changed_at  TEXT    NOT NULL,
    device_id   TEXT    NOT NULL,
    received_at TEXT    NOT NULL
) WITHOUT ROWID;

-- Analysts see pseudonymous cohort data only; the token is never stored, only sha256 of it.
CREATE TABLE analysts (
    analyst_id TEXT NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL,
    token_hash BLOB NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
) WITHOUT ROWID;

-- Every export: who ran it (analyst:<id> over HTTP, admin:<user> on the command line), how,
-- of what, and how much. Holds no patient id.
CREATE TABLE export_log (
    export_id   TEXT    NOT NULL PRIMARY KEY,
    exported_at TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    via         TEXT    NOT NULL,
    format      TEXT    NOT NULL,
    identified  INTEGER NOT NULL CHECK (identified IN (0, 1)),
    options     TEXT    NOT NULL,
    patients    INTEGER NOT NULL,
    row_counts  TEXT    NOT NULL
) WITHOUT ROWID;

CREATE INDEX export_log_by_time ON export_log (exported_at);
