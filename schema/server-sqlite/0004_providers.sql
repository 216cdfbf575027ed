-- Provider review: clinicians' accounts, their sessions and API tokens, the shares patients
-- grant, break-glass grants and the access log patients read. Secrets are stored as sha256 (share
-- codes, setup links, sessions, tokens) or argon2id (passwords), never as themselves.

CREATE TABLE providers (
    provider_id      TEXT NOT NULL PRIMARY KEY,
    name             TEXT NOT NULL,
    -- Lowercased; sign-in finds the account by it.
    email            TEXT NOT NULL UNIQUE,
    -- argon2id PHC string; NULL until the setup link is used.
    password_hash    TEXT,
    share_code_hash  BLOB NOT NULL UNIQUE,
    -- The single-use setup link; cleared when used.
    setup_hash       BLOB UNIQUE,
    setup_expires_at TEXT,
    created_at       TEXT NOT NULL,
    disabled_at      TEXT
);

CREATE TABLE provider_sessions (
    session_hash BLOB NOT NULL PRIMARY KEY,
    provider_id  TEXT NOT NULL REFERENCES providers (provider_id),
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE provider_tokens (
    token_id    TEXT NOT NULL PRIMARY KEY,
    provider_id TEXT NOT NULL REFERENCES providers (provider_id),
    token_hash  BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
) WITHOUT ROWID;

-- A patient's diary is readable by a provider while this row exists.
CREATE TABLE shares (
    patient_id  TEXT NOT NULL REFERENCES patients (patient_id),
    provider_id TEXT NOT NULL REFERENCES providers (provider_id),
    shared_at   TEXT NOT NULL,
    PRIMARY KEY (patient_id, provider_id)
) WITHOUT ROWID;

CREATE INDEX shares_by_provider ON shares (provider_id);

CREATE TABLE break_glass (
    patient_id  TEXT NOT NULL REFERENCES patients (patient_id),
    provider_id TEXT NOT NULL REFERENCES providers (provider_id),
    reason      TEXT NOT NULL,
    starts_at   TEXT NOT NULL,
    ends_at     TEXT NOT NULL
);

CREATE INDEX break_glass_by_provider ON break_glass (provider_id, ends_at);

-- Every provider read of a patient's data. Append-only: the application has no update or delete
-- path and the triggers refuse both. It holds ids, never health data, and outlives an erasure of
-- its patient (the record of who saw what), so it has no foreign key to patients.
CREATE TABLE access_log (
    patient_id  TEXT    NOT NULL,
    -- uuid v7: time-ordered, so key order is log order.
    log_id      TEXT    NOT NULL,
    provider_id TEXT    NOT NULL,
    what        TEXT    NOT NULL,
    at          TEXT    NOT NULL,
    address     TEXT,
    break_glass INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (patient_id, log_id)
) WITHOUT ROWID;

CREATE TRIGGER access_log_no_update BEFORE UPDATE ON access_log
BEGIN
    SELECT RAISE(ABORT, 'the access log is append-only');
END;

CREATE TRIGGER access_log_no_delete BEFORE DELETE ON access_log
BEGIN
    SELECT RAISE(ABORT, 'the access log is append-only');
END;
