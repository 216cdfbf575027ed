-- A push writes thousands of operation and entry rows at once, and a foreign key checks each
-- of them with a lookup and a lock on the patient row: about half of the push's time in the
-- database. The push already holds that row locked (FOR NO KEY UPDATE, from its first
-- statement to its commit) and finds no patient if there is none, and an erasure locks it FOR
-- UPDATE and removes these rows before the patient: the protocol keeps every row's patient, so
-- the per-row checks go. The other patient tables keep theirs (few rows, written one by one).
ALTER TABLE ops DROP CONSTRAINT ops_patient_id_fkey;
ALTER TABLE entries DROP CONSTRAINT entries_patient_id_fkey;
