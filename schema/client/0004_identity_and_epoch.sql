-- The server feed's epoch last seen: a new one means the server was restored from a backup, so
-- acknowledgements and the pull cursor from before may point at data it lost.
ALTER TABLE sync_state ADD COLUMN server_epoch TEXT;
-- A device identity this diary is registering (after finding it is a copy of another diary, or
-- that its id was taken at enrolment), kept before it asks so that a lost answer can be asked
-- again with the same id and secret.
ALTER TABLE sync_state ADD COLUMN pending_device_id TEXT;
ALTER TABLE sync_state ADD COLUMN pending_device_secret TEXT;
