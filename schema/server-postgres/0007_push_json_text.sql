-- A push stores every operation's patch and every touched entry's state, and the server only
-- ever reads them whole: no query looks inside either. As jsonb each value was parsed and
-- rebuilt in jsonb's binary form on the way in and turned back into text on the way out, about
-- a third of the database's work per pushed entry. As json the text the server wrote is checked
-- and kept as it is (and takes fewer bytes, in the table and in the WAL). Values stored before
-- keep their meaning: jsonb's text form is the same JSON.
ALTER TABLE ops ALTER COLUMN patch TYPE json USING patch::json;
ALTER TABLE entries ALTER COLUMN state TYPE json USING state::json;
