//! An entry made from merged field values, whether they are held parsed ([`EntryState`]) or as
//! the stored JSON text of one (`{"fields": {name: {"hlc": .., "value": ..}}}`): one conversion,
//! fed each field's value by a deserializer, so both forms give the same entry or the same error.
//! Reading the text this way skips building a JSON tree, which is what a bulk reader pays for.

use std::borrow::Cow;

use chrono::NaiveDate;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::Value;
use uuid::Uuid;

use crate::entry::Entry;
use crate::error::ValidationError;
use crate::field::Field;
use crate::op::{EntryError, EntryState};

impl EntryState {
    /// The entry as people see it.
    ///
    /// # Failure
    /// [`EntryError::Incomplete`] while its day or first recording is unknown (an edit that
    /// arrived before the operation that created the entry); [`EntryError::Invalid`], naming the
    /// field, when a stored value does not fit it.
    pub fn to_entry(&self, id: Uuid) -> Result<Entry, EntryError> {
        let values: Vec<(&str, &Value)> = self
            .fields
            .iter()
            .filter(|(_, current)| !current.value.is_null())
            .map(|(field, current)| (field.as_str(), &current.value))
            .collect();
        entry_from_values(id, &values)
    }

    /// The entry the stored text of a state makes: what [`EntryState::to_entry`] gives for the
    /// parsed state, read straight from the text. Key order and spacing do not matter (a JSON
    /// column may hand the text back reformatted).
    ///
    /// # Failure
    /// As [`EntryState::to_entry`]; text that is not a stored state is
    /// [`EntryError::Invalid`] on `fields`.
    pub fn entry_from_stored(id: Uuid, stored: &str) -> Result<Entry, EntryError> {
        let values: StoredValues<'_> =
            serde_json::from_str(stored).map_err(|e| EntryError::Invalid {
                id,
                source: ValidationError::new("fields", e.to_string()),
            })?;
        entry_from_values(id, &values.0)
    }

    /// The day written in the stored text of a state, deleted or not, when it has a readable
    /// one: what a reader that orders stored states by day sorts on.
    pub fn stored_day(stored: &str) -> Option<NaiveDate> {
        #[derive(Deserialize)]
        struct Stored<'a> {
            #[serde(borrow)]
            fields: StoredDay<'a>,
        }
        #[derive(Deserialize)]
        struct StoredDay<'a> {
            #[serde(borrow)]
            day: Option<DayValue<'a>>,
        }
        #[derive(Deserialize)]
        struct DayValue<'a> {
            #[serde(borrow)]
            value: Option<Cow<'a, str>>,
        }
        let stored: Stored<'_> = serde_json::from_str(stored).ok()?;
        stored.fields.day?.value?.parse().ok()
    }
}

/// The entry made of `values` (each field's name and its non-null value): the id is added, and
/// whether it was back-filled is derived once the day and the recording time are read.
fn entry_from_values<'v, V>(id: Uuid, values: &[(&str, V)]) -> Result<Entry, EntryError>
where
    V: Deserializer<'v, Error = serde_json::Error> + Copy,
{
    for required in [Field::Day, Field::RecordedAt] {
        if !values.iter().any(|(name, _)| *name == required.as_str()) {
            return Err(EntryError::Incomplete {
                id,
                missing: required,
            });
        }
    }
    // Values almost always fit; the path to the one that does not is traced only then.
    let mut entry = match Entry::deserialize(ValuesAsEntry { values, id }) {
        Ok(entry) => entry,
        Err(_) => {
            let traced: Result<Entry, _> =
                serde_path_to_error::deserialize(ValuesAsEntry { values, id });
            return Err(match traced {
                Ok(_) => EntryError::Invalid {
                    id,
                    source: ValidationError::new("fields", "unreadable values"),
                },
                Err(e) => EntryError::Invalid {
                    id,
                    source: ValidationError::new(e.path().to_string(), reason(e.inner())),
                },
            });
        }
    };
    entry.backfilled = Entry::is_backfilled(entry.day, &entry.recorded_at);
    Ok(entry)
}

/// Why a value was refused, without where in its text: a value read from stored text would
/// otherwise add its position inside that one value, which says nothing to anyone.
fn reason(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&position) {
        Some(reason) if error.line() > 0 => reason.to_string(),
        _ => text,
    }
}

/// A stored state's non-null values, borrowed from its text, the stamps skipped.
struct StoredValues<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for StoredValues<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Stored<'a> {
            #[serde(borrow)]
            fields: StoredFields<'a>,
        }
        #[derive(Deserialize)]
        struct StoredField<'a> {
            #[serde(borrow)]
            value: &'a RawValue,
        }
        struct StoredFields<'a>(Vec<(&'a str, &'a RawValue)>);
        impl<'de: 'a, 'a> Deserialize<'de> for StoredFields<'a> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Fields<'a>(std::marker::PhantomData<&'a ()>);
                impl<'de: 'a, 'a> Visitor<'de> for Fields<'a> {
                    type Value = StoredFields<'a>;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a map of field values")
                    }
                    fn visit_map<M: MapAccess<'de>>(
                        self,
                        mut map: M,
                    ) -> Result<Self::Value, M::Error> {
                        let mut values = Vec::with_capacity(map.size_hint().unwrap_or(16));
                        while let Some((name, field)) =
                            map.next_entry::<FieldName, StoredField<'a>>()?
                        {
                            // A cleared field is as good as absent.
                            if field.value.get() != "null" {
                                values.push((name.0, field.value));
                            }
                        }
                        Ok(StoredFields(values))
                    }
                }
                d.deserialize_map(Fields(std::marker::PhantomData))
            }
        }
        Stored::deserialize(d).map(|s| StoredValues(s.fields.0))
    }
}

/// A field name as stored, checked against the field table (so a name no field has is refused
/// whatever else the state lacks), held as the table's own text.
struct FieldName(&'static str);

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = FieldName;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<FieldName, E> {
                name.parse::<Field>()
                    .map(|field| FieldName(field.as_str()))
                    .map_err(|_| E::custom(format!("unknown field `{name}`")))
            }
        }
        d.deserialize_str(Name)
    }
}

/// Field values seen as the entry's JSON object: each value, then the id and a placeholder
/// `backfilled` (derived once the day and the recording time are read).
struct ValuesAsEntry<'s, T> {
    values: &'s [(&'s str, T)],
    id: Uuid,
}

impl<'de, T> Deserializer<'de> for ValuesAsEntry<'_, T>
where
    T: Deserializer<'de, Error = serde_json::Error> + Copy,
{
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(ValuesAsEntryMap {
            values: self.values.iter(),
            id: Some(self.id),
            backfilled: true,
            next: Next::Nothing,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

enum Next<V> {
    Nothing,
    Value(V),
    Id(Uuid),
    Backfilled,
}

struct ValuesAsEntryMap<'s, V> {
    values: std::slice::Iter<'s, (&'s str, V)>,
    id: Option<Uuid>,
    backfilled: bool,
    next: Next<V>,
}

impl<'de, V> MapAccess<'de> for ValuesAsEntryMap<'_, V>
where
    V: Deserializer<'de, Error = serde_json::Error> + Copy,
{
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let key = if let Some((name, value)) = self.values.next() {
            self.next = Next::Value(*value);
            *name
        } else if let Some(id) = self.id.take() {
            self.next = Next::Id(id);
            "id"
        } else if std::mem::take(&mut self.backfilled) {
            self.next = Next::Backfilled;
            "backfilled"
        } else {
            return Ok(None);
        };
        seed.deserialize(IntoDeserializer::<serde_json::Error>::into_deserializer(
            key,
        ))
        .map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, Self::Error> {
        match std::mem::replace(&mut self.next, Next::Nothing) {
            Next::Value(value) => seed.deserialize(value),
            Next::Id(id) => {
                let mut text = Uuid::encode_buffer();
                let text: &str = id.hyphenated().encode_lower(&mut text);
                seed.deserialize(IntoDeserializer::<serde_json::Error>::into_deserializer(
                    text,
                ))
            }
            Next::Backfilled => seed.deserialize(
                IntoDeserializer::<serde_json::Error>::into_deserializer(false),
            ),
            Next::Nothing => Err(de::Error::custom("a value without its key")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hlc, Op};
    use proptest::prelude::*;
    use serde_json::json;

    fn state(patches: &[Value]) -> EntryState {
        let mut state = EntryState::default();
        for (at, patch) in patches.iter().enumerate() {
            let device = Uuid::from_u128(7 + at as u128);
            state.apply(&Op {
                entry_id: Uuid::from_u128(1),
                device_id: device,
                device_seq: 1,
                hlc: Hlc {
                    wall_ms: 1_000 + at as u64,
                    counter: 0,
                    node: device,
                },
                patch: serde_json::from_value(patch.clone()).unwrap(),
            });
        }
        state
    }

    fn whole() -> Value {
        json!({
            "day": "2026-10-01",
            "recorded_at": "2026-10-04T08:00:00.000+02:00",
            "first_step_pain": 7,
            "locations": ["arch", "heel_bottom"],
            "numbness": "mild",
            "radiating": true,
            "steps": 4200,
            "note": "a \"quoted\" note \\u00e9",
        })
    }

    #[test]
    fn the_stored_text_makes_the_entry_the_parsed_state_makes() {
        let id = Uuid::from_u128(1);
        let cases = [
            vec![whole()],
            vec![whole(), json!({"locations": null, "first_step_pain": 2})],
            vec![json!({"first_step_pain": 3})],
            vec![json!({"day": "2026-10-01"})],
            vec![whole(), json!({"first_step_pain": "seven"})],
            vec![whole(), json!({"day": "2026-13-01"})],
            vec![whole(), json!({"recorded_at": null})],
            vec![whole(), json!({"deleted": false})],
        ];
        for patches in cases {
            let state = state(&patches);
            let text = serde_json::to_string(&state).unwrap();
            assert_eq!(
                EntryState::entry_from_stored(id, &text),
                state.to_entry(id),
                "{text}"
            );
            // A JSON column may hand the text back with spaces and its own key order.
            let spaced = serde_json::to_string_pretty(&state).unwrap();
            assert_eq!(
                EntryState::entry_from_stored(id, &spaced),
                state.to_entry(id)
            );
        }
    }

    #[test]
    fn a_value_that_does_not_fit_names_its_field() {
        let id = Uuid::from_u128(1);
        let error = state(&[whole(), json!({"first_step_pain": "seven"})])
            .to_entry(id)
            .unwrap_err();
        assert!(
            matches!(&error, EntryError::Invalid { source, .. } if source.field == "first_step_pain"),
            "{error}"
        );
        let missing = state(&[json!({"day": "2026-10-01"})])
            .to_entry(id)
            .unwrap_err();
        assert_eq!(
            missing,
            EntryError::Incomplete {
                id,
                missing: Field::RecordedAt
            }
        );
    }

    #[test]
    fn text_that_is_not_a_stored_state_is_refused() {
        let id = Uuid::from_u128(1);
        for text in ["not json", "{}", r#"{"fields": {"colour": {"value": 1}}}"#] {
            let error = EntryState::entry_from_stored(id, text).unwrap_err();
            assert!(!error.is_incomplete(), "{text}: {error}");
        }
        // An escaped name is read as the field it spells.
        let escaped = r#"{"fields": {"d\u0061y": {"value": "2026-10-01"},
            "recorded_at": {"value": "2026-10-01T08:00:00+02:00"}}}"#;
        let entry = EntryState::entry_from_stored(id, escaped).unwrap();
        assert_eq!(entry.day.to_string(), "2026-10-01");
    }

    #[test]
    fn a_day_written_days_after_it_is_back_filled() {
        let id = Uuid::from_u128(1);
        let state = state(&[json!({
            "day": "2026-10-01", "recorded_at": "2026-10-04T08:00:00.000+02:00"
        })]);
        let text = serde_json::to_string(&state).unwrap();
        assert!(EntryState::entry_from_stored(id, &text).unwrap().backfilled);
        assert!(state.to_entry(id).unwrap().backfilled);
    }

    #[test]
    fn the_stored_day_is_read_from_deleted_states_too() {
        let deleted = state(&[whole(), json!({"deleted": true})]);
        let text = serde_json::to_string(&deleted).unwrap();
        assert_eq!(
            EntryState::stored_day(&text),
            NaiveDate::from_ymd_opt(2026, 10, 1)
        );
        let dayless = serde_json::to_string(&state(&[json!({"first_step_pain": 3})])).unwrap();
        assert_eq!(EntryState::stored_day(&dayless), None);
        assert_eq!(EntryState::stored_day("not json"), None);
    }

    proptest! {
        /// Whatever values merge into a state (fitting their fields or not, cleared or not),
        /// its text and its parsed form make the same entry or the same kind of refusal.
        #[test]
        fn both_forms_agree_on_any_merged_values(
            pain in prop::option::of(0i64..14),
            sitting in prop::option::of(prop_oneof![Just(json!(3)), Just(json!("x")), Just(Value::Null)]),
            with_day in any::<bool>(),
            with_recorded in any::<bool>(),
            days_late in 0u32..5,
        ) {
            let mut patch = serde_json::Map::new();
            if with_day {
                patch.insert("day".into(), json!("2026-10-01"));
            }
            if with_recorded {
                patch.insert(
                    "recorded_at".into(),
                    json!(format!("2026-10-{:02}T08:00:00+02:00", 1 + days_late)),
                );
            }
            if let Some(pain) = pain {
                patch.insert("first_step_pain".into(), json!(pain));
            }
            let mut patches = vec![Value::Object(patch)];
            if let Some(sitting) = sitting {
                patches.push(json!({"sitting_pain": sitting}));
            }
            let state = state(&patches);
            let id = Uuid::from_u128(9);
            let text = serde_json::to_string(&state).unwrap();
            prop_assert_eq!(EntryState::entry_from_stored(id, &text), state.to_entry(id));
        }
    }
}
