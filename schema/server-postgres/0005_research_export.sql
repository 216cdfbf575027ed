-- Analyst export: research consent as the patient's device last gave it, analysts and their
-- tokens, and the log of every export (the same model as schema/server-sqlite/0003).

-- One row per patient who ever answered; exports take only those whose latest answer is yes.
-- changed_at is when the patient answered (device clock): a later answer replaces an earlier
-- one whatever order they arrive in. Keyed by patient_id like every patient table.
CREATE TABLE research_consent (
    patient_id  uuid        NOT NULL PRIMARY KEY REFERENCES patients (patient_id),
    consent     boolean     NOT NULL,
    changed_at  timestamptz NOT NULL,
    device_id   uuid        NOT NULL,
    received_at timestamptz NOT NULL
);

-- Analysts see pseudonymous cohort data only; the token is never stored, only sha256 of it.
-- A reference table on a distributed PostgreSQL.
CREATE TABLE analysts (
    analyst_id uuid        NOT NULL PRIMARY KEY,
    name       text        NOT NULL,
    token_hash bytea       NOT NULL CHECK (octet_length(token_hash) = 32),
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);

-- Every export: who ran it (analyst:<id> over HTTP, admin:<user> on the command line), how,
-- of what, and how much. Holds no patient id.
CREATE TABLE export_log (
    export_id   uuid        NOT NULL PRIMARY KEY,
    exported_at timestamptz NOT NULL,
    actor       text        NOT NULL,
    via         text        NOT NULL,
    format      text        NOT NULL,
    identified  boolean     NOT NULL,
    options     jsonb       NOT NULL,
    patients    bigint      NOT NULL,
    row_counts  jsonb       NOT NULL
);

CREATE INDEX export_log_by_time ON export_log (exported_at);
