//! The diary entry as patients and clinicians see it, and as a person writes it.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::calendar;
use crate::error::ValidationError;
use crate::field::{Field, Kind, Patch, Writer};
use crate::vocab::{Location, Severity, Side, Treatment, Trigger, Word, WordSet};

/// The current state of one diary entry: one check-in about one local day.
///
/// Everything but the day is optional so that a quick entry is quick. Absent values are left out
/// of the JSON form; empty lists too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// UUIDv7 made on the device that created the entry.
    pub id: Uuid,
    /// The local day the entry describes.
    #[serde(deserialize_with = "plain_day")]
    pub day: NaiveDate,
    /// Device clock and UTC offset at which the entry was first recorded.
    #[serde(deserialize_with = "plain_instant")]
    pub recorded_at: DateTime<FixedOffset>,
    /// Recorded more than one day after the day it describes; clinicians weigh these less.
    pub backfilled: bool,
    /// Pain with the first steps in the morning, 0–10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_step_pain: Option<u8>,
    /// Pain after rest, 0–10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest_pain: Option<u8>,
    /// Pain while sitting or bending, 0–10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sitting_pain: Option<u8>,
    /// Pain after standing or activity, 0–10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_pain: Option<u8>,
    /// Where it hurts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Location>,
    /// Which side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// Pain radiating from the back down the leg.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radiating: Option<bool>,
    /// Numbness, tingling or burning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numbness: Option<Severity>,
    /// Weakness: hard to stand on toes or push off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weakness: Option<bool>,
    /// Pressing the heel reproduces the pain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heel_tender: Option<bool>,
    /// Stiffness in the morning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub morning_stiffness: Option<bool>,
    /// Pain at rest or at night.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub night_pain: Option<bool>,
    /// Numbness in the saddle area: between the legs, inner thighs or buttocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saddle_numbness: Option<bool>,
    /// A new change in bladder or bowel control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bladder_bowel_change: Option<bool>,
    /// Fever, or weight loss without a reason, together with the back pain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fever_or_weight_loss: Option<bool>,
    /// What made it worse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub worse_with: Vec<Trigger>,
    /// What eased it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eased_with: Vec<Trigger>,
    /// Steps walked that day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
    /// Minutes spent standing that day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standing_minutes: Option<u32>,
    /// Treatments used that day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub treatments: Vec<Treatment>,
    /// Free text, at most 2,000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Deleted (a tombstone); listed only in history views.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl Entry {
    /// An entry about `day`, first recorded at `recorded_at`, with nothing answered yet.
    pub fn new(id: Uuid, day: NaiveDate, recorded_at: DateTime<FixedOffset>) -> Entry {
        Entry {
            id,
            day,
            backfilled: Entry::is_backfilled(day, &recorded_at),
            recorded_at,
            first_step_pain: None,
            rest_pain: None,
            sitting_pain: None,
            activity_pain: None,
            locations: Vec::new(),
            side: None,
            radiating: None,
            numbness: None,
            weakness: None,
            heel_tender: None,
            morning_stiffness: None,
            night_pain: None,
            saddle_numbness: None,
            bladder_bowel_change: None,
            fever_or_weight_loss: None,
            worse_with: Vec::new(),
            eased_with: Vec::new(),
            steps: None,
            standing_minutes: None,
            treatments: Vec::new(),
            note: None,
            deleted: false,
        }
    }

    /// The value of one field, read by its kind (see [`Field::kind`]): what the analysis and
    /// other readers use to go over the fields without naming each member.
    pub fn get(&self, field: Field) -> FieldRef<'_> {
        match field {
            Field::Day => FieldRef::Day(self.day),
            Field::RecordedAt => FieldRef::Instant(&self.recorded_at),
            Field::FirstStepPain => self.first_step_pain.as_field_ref(),
            Field::RestPain => self.rest_pain.as_field_ref(),
            Field::SittingPain => self.sitting_pain.as_field_ref(),
            Field::ActivityPain => self.activity_pain.as_field_ref(),
            Field::Locations => self.locations.as_field_ref(),
            Field::Side => self.side.as_field_ref(),
            Field::Radiating => self.radiating.as_field_ref(),
            Field::Numbness => self.numbness.as_field_ref(),
            Field::Weakness => self.weakness.as_field_ref(),
            Field::HeelTender => self.heel_tender.as_field_ref(),
            Field::MorningStiffness => self.morning_stiffness.as_field_ref(),
            Field::NightPain => self.night_pain.as_field_ref(),
            Field::SaddleNumbness => self.saddle_numbness.as_field_ref(),
            Field::BladderBowelChange => self.bladder_bowel_change.as_field_ref(),
            Field::FeverOrWeightLoss => self.fever_or_weight_loss.as_field_ref(),
            Field::WorseWith => self.worse_with.as_field_ref(),
            Field::EasedWith => self.eased_with.as_field_ref(),
            Field::Steps => self.steps.as_field_ref(),
            Field::StandingMinutes => self.standing_minutes.as_field_ref(),
            Field::Treatments => self.treatments.as_field_ref(),
            Field::Note => self.note.as_field_ref(),
            Field::Deleted if self.deleted => FieldRef::Flag(true),
            Field::Deleted => FieldRef::Absent,
        }
    }

    /// Whether an entry recorded at `recorded_at` about `day` counts as back-filled: recorded
    /// more than one day after the day, on the recording device's local calendar.
    pub fn is_backfilled(day: NaiveDate, recorded_at: &DateTime<FixedOffset>) -> bool {
        (recorded_at.date_naive() - day).num_days() > 1
    }
}

/// One field's value in an [`Entry`], as its kind reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldRef<'a> {
    /// Not answered: absent, or an empty list.
    Absent,
    /// A day.
    Day(NaiveDate),
    /// A device time with its offset.
    Instant(&'a DateTime<FixedOffset>),
    /// A score or a count.
    Number(u32),
    /// Yes or no (a tombstone is a `true` flag).
    Flag(bool),
    /// One word, by its position in the field's vocabulary.
    Word(usize),
    /// A set of words of the field's vocabulary.
    Words(WordSet),
    /// Text.
    Text(&'a str),
}

/// How a member of [`Entry`] reads as a [`FieldRef`].
trait AsFieldRef {
    fn as_field_ref(&self) -> FieldRef<'_>;
}

impl AsFieldRef for Option<u8> {
    fn as_field_ref(&self) -> FieldRef<'_> {
        self.map_or(FieldRef::Absent, |n| FieldRef::Number(n.into()))
    }
}

impl AsFieldRef for Option<u32> {
    fn as_field_ref(&self) -> FieldRef<'_> {
        self.map_or(FieldRef::Absent, FieldRef::Number)
    }
}

impl AsFieldRef for Option<bool> {
    fn as_field_ref(&self) -> FieldRef<'_> {
        self.map_or(FieldRef::Absent, FieldRef::Flag)
    }
}

impl AsFieldRef for Option<String> {
    fn as_field_ref(&self) -> FieldRef<'_> {
        self.as_deref().map_or(FieldRef::Absent, FieldRef::Text)
    }
}

impl<W: Word> AsFieldRef for Option<W> {
    fn as_field_ref(&self) -> FieldRef<'_> {
        self.map_or(FieldRef::Absent, |word| FieldRef::Word(word.position()))
    }
}

impl<W: Word> AsFieldRef for Vec<W> {
    fn as_field_ref(&self) -> FieldRef<'_> {
        if self.is_empty() {
            FieldRef::Absent
        } else {
            FieldRef::Words(WordSet::of(self))
        }
    }
}

/// An entry as written by a person: the NDJSON import line, or the fields of a CLI command.
///
/// It accepts exactly the shape that `Entry` serialises to (so `list --json` output imports back),
/// with every key optional but `day`. Keys that are derived on write (`backfilled`) are accepted
/// and ignored; `id` and `recorded_at` are kept when present.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntryInput {
    /// Entry id to use; a new one is made when absent.
    pub id: Option<Uuid>,
    /// Fields as given, not yet validated.
    pub fields: BTreeMap<Field, Value>,
}

impl<'de> Deserialize<'de> for EntryInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let object = Map::<String, Value>::deserialize(d)?;
        EntryInput::from_object(object).map_err(serde::de::Error::custom)
    }
}

impl EntryInput {
    /// Reads a JSON object, refusing unknown keys and an id that is not a UUID.
    pub fn from_object(object: Map<String, Value>) -> Result<Self, ValidationError> {
        let mut input = EntryInput::default();
        for (key, value) in object {
            match key.as_str() {
                "id" => {
                    let text = value
                        .as_str()
                        .ok_or_else(|| ValidationError::new("id", "must be a UUID string"))?;
                    let id = Uuid::parse_str(text)
                        .map_err(|_| ValidationError::new("id", "must be a UUID"))?;
                    input.id = Some(id);
                }
                "backfilled" => {}
                other => match other.parse::<Field>() {
                    Ok(field) if field.writer() != Writer::Deletion => {
                        input.fields.insert(field, value);
                    }
                    _ => {
                        return Err(ValidationError::new(
                            other,
                            format!(
                                "unknown field; expected one of: id, backfilled, {}",
                                Field::input_choices()
                            ),
                        ))
                    }
                },
            }
        }
        Ok(input)
    }

    /// Sets one field from its JSON value (unvalidated until [`EntryInput::into_patch`]).
    pub fn set(&mut self, field: Field, value: Value) -> &mut Self {
        self.fields.insert(field, value);
        self
    }

    /// Validates every field and returns the patch of a new entry. `today` is the recording
    /// device's local date; `day` is required and may be at most one day after it.
    pub fn into_patch(self, today: NaiveDate) -> Result<Patch, ValidationError> {
        if !self.fields.contains_key(&Field::Day) {
            return Err(ValidationError::new("day", "is required (YYYY-MM-DD)"));
        }
        self.into_edit_patch(today)
    }

    /// Validates the fields of an edit: like [`EntryInput::into_patch`] but `day` is optional,
    /// and `null` clears a field.
    pub fn into_edit_patch(self, today: NaiveDate) -> Result<Patch, ValidationError> {
        let mut patch = Patch::new();
        for (field, value) in self.fields {
            let value = field.normalise(value, today)?;
            if let (Kind::Text { .. }, Value::String(text)) = (field.kind(), &value) {
                crate::text::check_plain_text(text)
                    .map_err(|reason| ValidationError::new(field.as_str(), reason))?;
            }
            patch.insert(field, value);
        }
        Ok(patch)
    }
}

/// A day as `YYYY-MM-DD`, read through [`calendar::parse_day`] (bulk readers read millions).
fn plain_day<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    struct Day;
    impl serde::de::Visitor<'_> for Day {
        type Value = NaiveDate;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a day YYYY-MM-DD")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<NaiveDate, E> {
            calendar::parse_day(text).map_err(E::custom)
        }
    }
    d.deserialize_str(Day)
}

/// An instant as chrono's serde reads it (same expectation, same errors), through
/// [`calendar::parse_instant`].
fn plain_instant<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<DateTime<FixedOffset>, D::Error> {
    struct Instant;
    impl serde::de::Visitor<'_> for Instant {
        type Value = DateTime<FixedOffset>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an RFC 3339 formatted date and time string")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            calendar::parse_instant(text).map_err(E::custom)
        }
    }
    d.deserialize_str(Instant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::Hlc;
    use crate::op::{merge, Op};
    use serde_json::json;

    /// A value of every kind, as the table allows it (the widest: every word of a list).
    fn sample(field: Field) -> Value {
        match field.kind() {
            Kind::Day => json!("2026-11-01"),
            Kind::Instant => json!("2026-11-04T08:00:00.250+01:00"),
            Kind::Score => json!(crate::field::MAX_SCORE),
            Kind::Count { max } => json!(max),
            Kind::Flag | Kind::Tombstone => json!(true),
            Kind::Word(vocabulary) => json!(vocabulary.words.last()),
            Kind::Words(vocabulary) => json!(vocabulary.words),
            Kind::Text { .. } => json!("a note"),
        }
    }

    /// The JSON form of what [`Entry::get`] read, by the field's kind.
    fn json_of(field: Field, read: FieldRef<'_>) -> Option<Value> {
        Some(match (read, field.kind()) {
            (FieldRef::Absent, _) => return None,
            (FieldRef::Day(day), _) => json!(day.to_string()),
            (FieldRef::Instant(at), _) => {
                json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false))
            }
            (FieldRef::Number(n), _) => json!(n),
            (FieldRef::Flag(yes), _) => json!(yes),
            (FieldRef::Word(at), Kind::Word(vocabulary)) => json!(vocabulary.words[at]),
            (FieldRef::Words(set), Kind::Words(vocabulary)) => json!((0..vocabulary.words.len())
                .filter(|at| set.contains_position(*at))
                .map(|at| vocabulary.words[at])
                .collect::<Vec<_>>()),
            (FieldRef::Text(text), _) => json!(text),
            (read, kind) => panic!("{field}: read {read:?} for a {kind:?}"),
        })
    }

    fn entry_of(patch: Patch) -> Result<Entry, crate::EntryError> {
        let device = Uuid::from_u128(1);
        let op = Op {
            entry_id: Uuid::from_u128(99),
            device_id: device,
            device_seq: 1,
            hlc: Hlc {
                wall_ms: 1,
                counter: 0,
                node: device,
            },
            patch,
        };
        merge(op.entry_id, [&op]).to_entry()
    }

    #[test]
    fn a_fully_filled_entry_has_exactly_the_fields_of_the_table() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 10).unwrap();
        let patch: Patch = Field::ALL
            .iter()
            .map(|field| (*field, field.normalise(sample(*field), today).unwrap()))
            .collect();
        let entry = entry_of(patch.clone()).expect("every field has its Entry member");
        let written = serde_json::to_value(&entry).unwrap();
        let mut expected: Map<String, Value> = patch
            .iter()
            .map(|(field, value)| (field.as_str().to_string(), value.clone()))
            .collect();
        expected.insert("id".into(), json!(entry.id));
        expected.insert("backfilled".into(), json!(true));
        assert_eq!(written, Value::Object(expected));
        for field in Field::ALL {
            assert_eq!(
                json_of(*field, entry.get(*field)).as_ref(),
                patch.get(field),
                "Entry::get({field})"
            );
        }
    }

    #[test]
    fn a_new_entry_answers_nothing_but_its_day_and_recording() {
        let at = DateTime::parse_from_rfc3339("2026-11-01T08:00:00+01:00").unwrap();
        let entry = Entry::new(Uuid::from_u128(7), at.date_naive(), at);
        for field in Field::ALL {
            let answered = entry.get(*field) != FieldRef::Absent;
            assert_eq!(
                answered,
                matches!(field, Field::Day | Field::RecordedAt),
                "{field}"
            );
        }
        let keys: Vec<String> = serde_json::to_value(&entry)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys.len(), 4, "{keys:?}");
    }

    #[test]
    fn a_stored_value_that_does_not_fit_is_an_error_naming_entry_and_field() {
        let mut patch = Patch::new();
        patch.insert(Field::Day, json!("2026-11-01"));
        patch.insert(Field::RecordedAt, json!("2026-11-01T08:00:00.000+01:00"));
        patch.insert(Field::FirstStepPain, json!("seven"));
        let error = entry_of(patch).unwrap_err();
        assert!(!error.is_incomplete());
        let text = error.to_string();
        assert!(
            text.starts_with(&format!("entry {}: first_step_pain: ", Uuid::from_u128(99))),
            "{text}"
        );
    }

    #[test]
    fn days_and_instants_deserialize_as_chronos_serde_reads_them() {
        use serde::de::value::Error;
        use serde::de::IntoDeserializer;
        for value in [
            json!("2026-11-02"),
            json!("2026-13-01"),
            json!("2026-11-02T07:30:00.000+01:00"),
            json!("2026-11-02T07:30:00+24:00"),
            json!("2026-11-02 07:30:00Z"),
            json!("nonsense"),
            json!(20261102),
            json!(null),
        ] {
            let day = plain_day(value.clone()).map_err(|e| e.to_string());
            let chrono_day = NaiveDate::deserialize(value.clone()).map_err(|e| e.to_string());
            if value.is_string() {
                assert_eq!(day, chrono_day, "{value}");
            } else {
                assert!(day.is_err() && chrono_day.is_err(), "{value}");
            }
            let instant = plain_instant(value.clone()).map_err(|e| e.to_string());
            let chrono_instant =
                DateTime::<FixedOffset>::deserialize(value.clone()).map_err(|e| e.to_string());
            assert_eq!(instant, chrono_instant, "{value}");
            if let Some(text) = value.as_str() {
                let from_str = |text: &str| {
                    plain_instant(IntoDeserializer::<Error>::into_deserializer(text))
                        .map_err(|e| e.to_string())
                };
                assert_eq!(
                    from_str(text),
                    DateTime::<FixedOffset>::deserialize(
                        IntoDeserializer::<Error>::into_deserializer(text)
                    )
                    .map_err(|e| e.to_string())
                );
            }
        }
    }

    #[test]
    fn typed_notes_refuse_control_characters_but_keep_line_breaks() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 10).unwrap();
        let note = |text: &str| {
            let mut input = EntryInput::default();
            input.set(Field::Note, json!(text));
            input.into_edit_patch(today)
        };
        assert!(note("two\nlines\tand a tab").is_ok());
        assert_eq!(
            note("bell\u{7}").unwrap_err().to_string(),
            "note: holds a control character (U+0007) at position 4; only line breaks and tabs are allowed"
        );
    }
}
