-- Entry states are stored compactly: each field's value grouped under the stamp of the
-- operation that wrote it, `{"by_stamp": {stamp: {name: value}}}`, instead of the stamp repeated
-- with every field (`{"fields": {name: {"hlc": stamp, "value": value}}}`). An entry written once
-- and never edited, most of them, now carries its stamp once: the state is about a third as
-- long, and every push writes it (into the table and the WAL) and every export reads it. The
-- values and stamps are carried over as they are.
UPDATE entries SET state = (
    SELECT json_build_object('by_stamp', coalesce(json_object_agg(stamp, group_values), '{}'))
    FROM (
        SELECT field.value ->> 'hlc' AS stamp,
               json_object_agg(field.key, field.value -> 'value') AS group_values
        FROM json_each(entries.state -> 'fields') AS field
        GROUP BY field.value ->> 'hlc'
    ) AS groups
);
