-- The lowest own sequence number this diary gave up: a re-stamped operation takes a new number,
-- and the server may hold the operation as it was under the old one (a push whose answer was
-- lost). Pulls leave out own operations up to the acknowledged sequence number only below it;
-- NULL when no number was given up.
ALTER TABLE sync_state ADD COLUMN first_given_up_seq INTEGER;
-- carry forward: the store finds the first own sequence number missing from the log here.
