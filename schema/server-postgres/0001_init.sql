-- heeldiary server, PostgreSQL schema version 1 (the same model as schema/server-sqlite/0001_init.sql).
-- Every patient table is keyed by patient_id first, so one patient's rows live in one partition
-- or shard (distribution column patient_id on a distributed PostgreSQL) and no request of a
-- device needs a cross-patient query. enrolment_codes is the one table found by another key: it
-- is how a device that knows only its code finds its patient (see docs/postgres.md).
-- Times are timestamptz (microseconds), cursors and sequence numbers bigint, JSON jsonb.

CREATE TABLE patients (
    patient_id  uuid        NOT NULL PRIMARY KEY,
    label       text,
    created_at  timestamptz NOT NULL,
    -- Last cursor handed out in this patient's feed. Each push locks this row for its whole
    -- transaction, so pushes of one patient serialize and cursors commit in order.
    last_cursor bigint      NOT NULL DEFAULT 0 CHECK (last_cursor >= 0)
);

CREATE TABLE devices (
    patient_id  uuid        NOT NULL REFERENCES patients (patient_id),
    device_id   uuid        NOT NULL,
    -- sha256 of the token secret; the token itself is never stored.
    token_hash  bytea       NOT NULL CHECK (octet_length(token_hash) = 32),
    -- 'device' now; 'provider' and 'analyst' later.
    role        text        NOT NULL DEFAULT 'device',
    label       text,
    enrolled_at timestamptz NOT NULL,
    revoked_at  timestamptz,
    PRIMARY KEY (patient_id, device_id)
);

-- Enrolment refuses a device id that is enrolled already, for any patient.
CREATE INDEX devices_by_device_id ON devices (device_id);

CREATE TABLE enrolment_codes (
    -- sha256 of the normalised code; the code itself is never stored.
    code_hash  bytea       NOT NULL PRIMARY KEY CHECK (octet_length(code_hash) = 32),
    patient_id uuid        NOT NULL REFERENCES patients (patient_id),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL
);

CREATE INDEX enrolment_codes_by_patient ON enrolment_codes (patient_id);

CREATE TABLE ops (
    patient_id  uuid        NOT NULL REFERENCES patients (patient_id),
    cursor      bigint      NOT NULL CHECK (cursor > 0),
    device_id   uuid        NOT NULL,
    device_seq  bigint      NOT NULL CHECK (device_seq > 0),
    entry_id    uuid        NOT NULL,
    -- Text form of the stamp: fixed-width hex, so text order is stamp order.
    hlc         text        NOT NULL,
    -- JSON object of field values.
    patch       jsonb       NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (patient_id, cursor),
    -- A retried delivery is stored once.
    UNIQUE (patient_id, device_id, device_seq)
);

CREATE INDEX ops_by_entry ON ops (patient_id, entry_id, cursor);

-- Materialized current state of each entry: the field-level merge of its ops.
CREATE TABLE entries (
    patient_id uuid        NOT NULL REFERENCES patients (patient_id),
    entry_id   uuid        NOT NULL,
    -- Local day, once known (an edit can arrive before the op that created the entry).
    day        date,
    deleted    boolean     NOT NULL DEFAULT false,
    -- The merged state: field -> {hlc, value}.
    state      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (patient_id, entry_id)
);

CREATE INDEX entries_by_day ON entries (patient_id, day);
