//! The fields an operation can set, and the rule each value must keep.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::entry::{Location, Severity, Side, Treatment, Trigger};
use crate::error::ValidationError;

/// Longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 2_000;
/// Most steps believable in one day.
pub const MAX_STEPS: u64 = 200_000;
/// Minutes in a day.
pub const MAX_STANDING_MINUTES: u64 = 24 * 60;

/// A set of field values written by one operation. `null` clears a field.
pub type Patch = BTreeMap<Field, Value>;

macro_rules! fields {
    ($($(#[$meta:meta])* $variant:ident = $name:literal),+ $(,)?) => {
        /// One field of an entry, as named in JSON and in the operation log.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Field {
            $($(#[$meta])* $variant),+
        }

        impl Field {
            /// Every field, in the order entries are displayed.
            pub const ALL: &'static [Field] = &[$(Field::$variant),+];

            /// The snake_case name used in JSON.
            pub fn as_str(self) -> &'static str {
                match self { $(Field::$variant => $name),+ }
            }
        }

        impl FromStr for Field {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok(Field::$variant),)+
                    _ => Err(format!("unknown field `{s}`")),
                }
            }
        }
    };
}

fields! {
    /// The local day the entry describes.
    Day = "day",
    /// Device time and UTC offset of the first recording.
    RecordedAt = "recorded_at",
    /// First-step pain, 0–10.
    FirstStepPain = "first_step_pain",
    /// Pain after rest, 0–10.
    RestPain = "rest_pain",
    /// Pain sitting or bending, 0–10.
    SittingPain = "sitting_pain",
    /// Pain after standing or activity, 0–10.
    ActivityPain = "activity_pain",
    /// Where it hurts.
    Locations = "locations",
    /// Which side.
    Side = "side",
    /// Radiating from the back.
    Radiating = "radiating",
    /// Numbness, tingling or burning.
    Numbness = "numbness",
    /// Weakness.
    Weakness = "weakness",
    /// Heel tender on pressure.
    HeelTender = "heel_tender",
    /// Morning stiffness.
    MorningStiffness = "morning_stiffness",
    /// Pain at rest or at night.
    NightPain = "night_pain",
    /// What made it worse.
    WorseWith = "worse_with",
    /// What eased it.
    EasedWith = "eased_with",
    /// Steps that day.
    Steps = "steps",
    /// Minutes standing that day.
    StandingMinutes = "standing_minutes",
    /// Treatments that day.
    Treatments = "treatments",
    /// Free-text note.
    Note = "note",
    /// Tombstone: the entry was deleted.
    Deleted = "deleted",
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Field {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl Field {
    /// Field names a person may write (every field but the tombstone), comma-separated.
    pub fn input_choices() -> String {
        Field::ALL
            .iter()
            .filter(|f| **f != Field::Deleted)
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checks `value` against this field's rule and returns its canonical form (lists sorted and
    /// without repeats, words in snake_case). `null` clears an optional field. `today` is the
    /// local date of the writer, against which future days are judged.
    pub fn normalise(self, value: Value, today: NaiveDate) -> Result<Value, ValidationError> {
        let name = self.as_str();
        let err = |reason: String| ValidationError::new(name, reason);
        if value.is_null() {
            return match self {
                Field::Day | Field::RecordedAt | Field::Deleted => {
                    Err(err("cannot be cleared".into()))
                }
                _ => Ok(Value::Null),
            };
        }
        match self {
            Field::Day => {
                let day = parse_day(&value).map_err(err)?;
                if (day - today).num_days() > 1 {
                    return Err(err(format!(
                        "{day} is more than one day in the future (today is {today})"
                    )));
                }
                Ok(Value::String(day.to_string()))
            }
            Field::RecordedAt => {
                let text = value
                    .as_str()
                    .ok_or_else(|| err("must be an RFC 3339 time with offset".into()))?;
                let at = DateTime::parse_from_rfc3339(text)
                    .map_err(|e| err(format!("must be an RFC 3339 time with offset ({e})")))?;
                if (at.date_naive() - today).num_days() > 1 {
                    return Err(err(format!("{text} is in the future")));
                }
                Ok(Value::String(
                    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
                ))
            }
            Field::FirstStepPain | Field::RestPain | Field::SittingPain | Field::ActivityPain => {
                let score = integer(&value).map_err(err)?;
                if !(0..=10).contains(&score) {
                    return Err(err(format!("must be between 0 and 10, got {score}")));
                }
                Ok(Value::from(score))
            }
            Field::Steps => count(&value, MAX_STEPS).map_err(err),
            Field::StandingMinutes => count(&value, MAX_STANDING_MINUTES).map_err(err),
            Field::Radiating
            | Field::Weakness
            | Field::HeelTender
            | Field::MorningStiffness
            | Field::NightPain => match value {
                Value::Bool(_) => Ok(value),
                other => Err(err(format!("must be true or false, got {}", kind(&other)))),
            },
            Field::Deleted => match value {
                Value::Bool(true) => Ok(value),
                _ => Err(err("a tombstone must be `true`".into())),
            },
            Field::Side => word::<Side>(&value).map_err(err),
            Field::Numbness => word::<Severity>(&value).map_err(err),
            Field::Locations => words::<Location>(&value).map_err(err),
            Field::WorseWith | Field::EasedWith => words::<Trigger>(&value).map_err(err),
            Field::Treatments => words::<Treatment>(&value).map_err(err),
            Field::Note => {
                let text = value
                    .as_str()
                    .ok_or_else(|| err(format!("must be text, got {}", kind(&value))))?;
                let chars = text.chars().count();
                if chars > MAX_NOTE_CHARS {
                    return Err(err(format!(
                        "is {chars} characters; at most {MAX_NOTE_CHARS} are allowed"
                    )));
                }
                // A NUL cannot be stored in every database a diary travels through; other
                // control characters are refused where a person types (EntryInput), not here,
                // so an operation an older build wrote can always still be delivered.
                if text.contains('\0') {
                    return Err(err("holds a NUL character, which cannot be stored".into()));
                }
                Ok(value)
            }
        }
    }
}

/// Refuses control characters other than line breaks and tabs: a NUL, for one, cannot be
/// stored in every database a diary travels through, and none of them belongs in a note.
pub fn check_plain_text(text: &str) -> Result<(), String> {
    match text.chars().position(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        Some(at) => Err(format!(
            "holds a control character (U+{:04X}) at position {at}; only line breaks and tabs are allowed",
            text.chars().nth(at).map_or(0, u32::from)
        )),
        None => Ok(()),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn parse_day(value: &Value) -> Result<NaiveDate, String> {
    let text = value
        .as_str()
        .ok_or_else(|| format!("must be a date YYYY-MM-DD, got {}", kind(value)))?;
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("`{text}` is not a date YYYY-MM-DD"))
}

fn integer(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| format!("must be a whole number, got {n}")),
        other => Err(format!("must be a whole number, got {}", kind(other))),
    }
}

fn count(value: &Value, max: u64) -> Result<Value, String> {
    let n = integer(value)?;
    if n < 0 {
        return Err(format!("must not be negative, got {n}"));
    }
    if n as u64 > max {
        return Err(format!("must be at most {max}, got {n}"));
    }
    Ok(Value::from(n))
}

fn word<T: FromStr<Err = String> + fmt::Display>(value: &Value) -> Result<Value, String> {
    let text = value
        .as_str()
        .ok_or_else(|| format!("must be a word, got {}", kind(value)))?;
    Ok(Value::String(text.parse::<T>()?.to_string()))
}

fn words<T: FromStr<Err = String> + fmt::Display + Ord>(value: &Value) -> Result<Value, String> {
    let items = value
        .as_array()
        .ok_or_else(|| format!("must be a list, got {}", kind(value)))?;
    let mut parsed = Vec::with_capacity(items.len());
    for item in items {
        let text = item
            .as_str()
            .ok_or_else(|| format!("list items must be words, got {}", kind(item)))?;
        parsed.push(text.parse::<T>()?);
    }
    parsed.sort();
    parsed.dedup();
    Ok(Value::Array(
        parsed
            .into_iter()
            .map(|v| Value::String(v.to_string()))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 10).unwrap()
    }

    fn reason(field: Field, value: Value) -> String {
        field.normalise(value, today()).unwrap_err().to_string()
    }

    #[test]
    fn pain_scores_outside_zero_to_ten_are_refused_with_the_field() {
        assert_eq!(
            reason(Field::FirstStepPain, json!(11)),
            "first_step_pain: must be between 0 and 10, got 11"
        );
        assert_eq!(
            reason(Field::SittingPain, json!(-1)),
            "sitting_pain: must be between 0 and 10, got -1"
        );
        assert!(reason(Field::RestPain, json!(2.5)).contains("whole number"));
        assert!(reason(Field::ActivityPain, json!("7")).contains("got text"));
        assert_eq!(
            Field::FirstStepPain.normalise(json!(0), today()).unwrap(),
            json!(0)
        );
        assert_eq!(
            Field::FirstStepPain
                .normalise(json!(10.0), today())
                .unwrap(),
            json!(10)
        );
    }

    #[test]
    fn days_more_than_one_day_ahead_are_refused() {
        assert!(Field::Day.normalise(json!("2026-11-11"), today()).is_ok());
        assert!(reason(Field::Day, json!("2026-11-12")).contains("more than one day in the future"));
        assert!(reason(Field::Day, json!("2026-13-01")).contains("not a date"));
        assert!(reason(Field::Day, Value::Null).contains("cannot be cleared"));
    }

    #[test]
    fn notes_are_bounded_in_characters_not_bytes() {
        let fits = "é".repeat(MAX_NOTE_CHARS);
        assert!(Field::Note.normalise(json!(fits), today()).is_ok());
        let long = "a".repeat(MAX_NOTE_CHARS + 1);
        assert_eq!(
            reason(Field::Note, json!(long)),
            "note: is 2001 characters; at most 2000 are allowed"
        );
    }

    #[test]
    fn notes_never_hold_a_nul() {
        assert!(Field::Note
            .normalise(json!("two\nlines\tand a tab"), today())
            .is_ok());
        assert_eq!(
            reason(Field::Note, json!("a\u{0}b")),
            "note: holds a NUL character, which cannot be stored"
        );
    }

    #[test]
    fn unknown_words_name_the_choices() {
        let msg = reason(Field::Numbness, json!("extreme"));
        assert!(
            msg.starts_with("numbness: unknown value `extreme`"),
            "{msg}"
        );
        assert!(msg.contains("none, mild, moderate, severe"));
        assert!(reason(Field::Locations, json!(["heel", "arch"])).contains("heel_bottom"));
    }

    #[test]
    fn lists_are_canonical_and_accept_kebab_case() {
        let v = Field::Locations
            .normalise(json!(["arch", "heel-bottom", "arch"]), today())
            .unwrap();
        assert_eq!(v, json!(["heel_bottom", "arch"]));
    }

    #[test]
    fn counts_must_not_be_negative() {
        assert_eq!(
            reason(Field::Steps, json!(-5)),
            "steps: must not be negative, got -5"
        );
        assert!(reason(Field::StandingMinutes, json!(1441)).contains("at most 1440"));
    }

    #[test]
    fn field_names_round_trip() {
        for field in Field::ALL {
            assert_eq!(field.as_str().parse::<Field>().unwrap(), *field);
        }
    }
}
