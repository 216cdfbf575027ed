-- The highest clock stamp this device has seen, its own or another device's, kept beside the
-- device: every writer (two processes on one diary, or two handles in one app) continues after
-- it without scanning the operation log.
ALTER TABLE device ADD COLUMN last_hlc TEXT;
UPDATE device SET last_hlc = (SELECT max(hlc) FROM ops);
