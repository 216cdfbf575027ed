-- Provider review (the same model as schema/server-sqlite/0004_providers.sql): clinicians'
-- accounts, their sessions and API tokens, the shares patients grant, break-glass grants and the
-- access log patients read. Secrets are stored as sha256 (share codes, setup links, sessions,
-- tokens) or argon2id (passwords), never as themselves. shares, break_glass and access_log are
-- keyed by patient_id first like every patient table; a provider's list reads shares by provider.

CREATE TABLE providers (
    provider_id      uuid        NOT NULL PRIMARY KEY,
    name             text        NOT NULL,
    -- Lowercased; sign-in finds the account by it.
    email            text        NOT NULL UNIQUE,
    -- argon2id PHC string; NULL until the setup link is used.
    password_hash    text,
    share_code_hash  bytea       NOT NULL UNIQUE CHECK (octet_length(share_code_hash) = 32),
    -- The single-use setup link; cleared when used.
    setup_hash       bytea       UNIQUE CHECK (octet_length(setup_hash) = 32),
    setup_expires_at timestamptz,
    created_at       timestamptz NOT NULL,
    disabled_at      timestamptz
);

CREATE TABLE provider_sessions (
    session_hash bytea       NOT NULL PRIMARY KEY CHECK (octet_length(session_hash) = 32),
    provider_id  uuid        NOT NULL REFERENCES providers (provider_id),
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL
);

CREATE TABLE provider_tokens (
    token_id    uuid        NOT NULL PRIMARY KEY,
    provider_id uuid        NOT NULL REFERENCES providers (provider_id),
    token_hash  bytea       NOT NULL CHECK (octet_length(token_hash) = 32),
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

-- A patient's diary is readable by a provider while this row exists.
CREATE TABLE shares (
    patient_id  uuid        NOT NULL REFERENCES patients (patient_id),
    provider_id uuid        NOT NULL REFERENCES providers (provider_id),
    shared_at   timestamptz NOT NULL,
    PRIMARY KEY (patient_id, provider_id)
);

CREATE INDEX shares_by_provider ON shares (provider_id);

CREATE TABLE break_glass (
    patient_id  uuid        NOT NULL REFERENCES patients (patient_id),
    provider_id uuid        NOT NULL REFERENCES providers (provider_id),
    reason      text        NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL
);

CREATE INDEX break_glass_by_provider ON break_glass (provider_id, ends_at);

-- Every provider read of a patient's data. Append-only: the application has no update or delete
-- path and the trigger refuses both. It holds ids, never health data, and outlives an erasure of
-- its patient (the record of who saw what), so it has no foreign key to patients.
CREATE TABLE access_log (
    patient_id  uuid        NOT NULL,
    -- uuid v7: time-ordered, so key order is log order.
    log_id      uuid        NOT NULL,
    provider_id uuid        NOT NULL,
    what        text        NOT NULL,
    at          timestamptz NOT NULL,
    address     text,
    break_glass boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (patient_id, log_id)
);

CREATE FUNCTION access_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the access log is append-only';
END
$$;

CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION access_log_append_only();
