-- Research consent: the patient's answer (off until they say on), when they gave it (device
-- clock with its offset), and whether the server has it yet. Given offline, it waits for the
-- next sync like any change.
ALTER TABLE sync_state ADD COLUMN research_consent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_state ADD COLUMN research_consent_at TEXT;
ALTER TABLE sync_state ADD COLUMN research_consent_sent INTEGER NOT NULL DEFAULT 1;
