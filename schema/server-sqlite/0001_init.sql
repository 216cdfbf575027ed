-- heeldiary server, SQLite schema version 1.
-- Every table is keyed by patient_id first: a patient's data never needs a cross-patient query,
-- which keeps the same layout partitionable on PostgreSQL (distribution column patient_id).
-- Ids are hyphenated UUID text; times are UTC RFC 3339 text with microseconds
-- (2026-11-01T08:00:00.000000Z), fixed width, so text order is time order.

CREATE TABLE patients (
    patient_id  TEXT    NOT NULL PRIMARY KEY,
    label       TEXT,
    created_at  TEXT    NOT NULL,
    -- Last cursor handed out in this patient's feed; bumped inside each push transaction.
    last_cursor INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE devices (
    patient_id  TEXT NOT NULL REFERENCES patients (patient_id),
    device_id   TEXT NOT NULL,
    -- sha256 of the token secret; the token itself is never stored.
    token_hash  BLOB NOT NULL,
    -- 'device' now; 'provider' and 'analyst' later.
    role        TEXT NOT NULL DEFAULT 'device',
    label       TEXT,
    enrolled_at TEXT NOT NULL,
    revoked_at  TEXT,
    PRIMARY KEY (patient_id, device_id)
) WITHOUT ROWID;

-- Enrolment refuses a device id that is enrolled already, for any patient.
CREATE INDEX devices_by_device_id ON devices (device_id);

CREATE TABLE enrolment_codes (
    -- sha256 of the normalised code; the code itself is never stored.
    code_hash  BLOB NOT NULL PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients (patient_id),
    expires_at TEXT NOT NULL,
    used_at    TEXT,
    created_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX enrolment_codes_by_patient ON enrolment_codes (patient_id);

CREATE TABLE ops (
    patient_id  TEXT    NOT NULL REFERENCES patients (patient_id),
    cursor      INTEGER NOT NULL,
    device_id   TEXT    NOT NULL,
    device_seq  INTEGER NOT NULL,
    entry_id    TEXT    NOT NULL,
    -- Text form of the stamp: fixed-width hex, so text order is stamp order.
    hlc         TEXT    NOT NULL,
    -- JSON object of field values.
    patch       TEXT    NOT NULL,
    received_at TEXT    NOT NULL,
    PRIMARY KEY (patient_id, cursor),
    UNIQUE (patient_id, device_id, device_seq)
) WITHOUT ROWID;

CREATE INDEX ops_by_entry ON ops (patient_id, entry_id, cursor);

-- Materialized current state of each entry: the field-level merge of its ops.
CREATE TABLE entries (
    patient_id TEXT    NOT NULL REFERENCES patients (patient_id),
    entry_id   TEXT    NOT NULL,
    -- Local day, once known (an edit can arrive before the op that created the entry).
    day        TEXT,
    deleted    INTEGER NOT NULL DEFAULT 0,
    -- JSON of the merged state: field -> {hlc, value}.
    state      TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (patient_id, entry_id)
) WITHOUT ROWID;

CREATE INDEX entries_by_day ON entries (patient_id, day);
