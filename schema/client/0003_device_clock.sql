-- The highest clock stamp this device has seen, its own or another device's, kept beside the
-- device: every writer (two processes on one diary, or two handles in one app) continues after
-- it without scanning the operation log.
ALTER TABLE device ADD COLUMN last_hlc TEXT;
UPDATE device SET last_hlc = (SELECT max(hlc) FROM ops);

-- No index on day any more: one patient's diary is a few thousand rows, which a scan reads in
-- milliseconds, while the index cost every write (a bulk import most of all).
DROP INDEX IF EXISTS entries_by_day;

-- The token secret the device chose for its enrolment, kept before it asks the server: if the
-- answer is lost, asking again with the same secret gets the same token.
ALTER TABLE sync_state ADD COLUMN enrolment_secret TEXT;
