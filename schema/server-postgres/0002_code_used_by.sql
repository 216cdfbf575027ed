-- A code remembers the device it enrolled, so that a device whose enrolment answer was lost
-- can repeat the same enrolment (and get a new token) instead of being locked out.
ALTER TABLE enrolment_codes ADD COLUMN used_by uuid;
