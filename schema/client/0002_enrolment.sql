-- Enrolment with a server: where to sync, as whom, and how far the device clock runs off the
-- server's (so a fast clock stops winning every conflict).
ALTER TABLE sync_state ADD COLUMN server_url TEXT;
ALTER TABLE sync_state ADD COLUMN patient_id TEXT;
ALTER TABLE sync_state ADD COLUMN token TEXT;
ALTER TABLE sync_state ADD COLUMN clock_offset_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_state ADD COLUMN last_sync_at TEXT;
