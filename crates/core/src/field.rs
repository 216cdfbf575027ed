//! The field table: every field of an entry declared once, with its JSON name, its kind (which
//! fixes the rule its values keep), who writes it, its help text and, where it differs from the
//! name, its command-line flag. Validation, the command line, the schema tests and the analysis
//! all read this table.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ValidationError;
use crate::vocab::{Location, Severity, Side, Treatment, Trigger, Vocabulary};

/// Highest pain score; scores run from 0.
pub const MAX_SCORE: u8 = 10;
/// Longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 2_000;
/// Most steps believable in one day.
pub const MAX_STEPS: u64 = 200_000;
/// The earliest day (and instant) a diary takes: nobody logs heel pain from before it, and a
/// year-0 date is a typing slip that some databases cannot even store.
pub const EARLIEST_DAY: NaiveDate = match NaiveDate::from_ymd_opt(1900, 1, 1) {
    Some(day) => day,
    None => panic!("1900-01-01 is a date"),
};
/// Minutes in a day.
pub const MAX_STANDING_MINUTES: u64 = 24 * 60;

/// A set of field values written by one operation. `null` clears a field.
pub type Patch = BTreeMap<Field, Value>;

/// What a field holds, and so the rule its values keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A local day, `YYYY-MM-DD`, at most one day after the writer's today; never cleared.
    Day,
    /// A device time with its UTC offset (RFC 3339), not after the writer's tomorrow; never
    /// cleared.
    Instant,
    /// A whole number from 0 to [`MAX_SCORE`].
    Score,
    /// A whole number from 0 to `max`.
    Count {
        /// The largest believable value.
        max: u64,
    },
    /// Yes or no.
    Flag,
    /// One word of a vocabulary.
    Word(&'static Vocabulary),
    /// A set of words of a vocabulary, written in the vocabulary's order without repeats.
    Words(&'static Vocabulary),
    /// Text of at most `max_chars` characters, without a NUL.
    Text {
        /// Longest text, in characters.
        max_chars: usize,
    },
    /// `true` only: the entry was deleted; never cleared.
    Tombstone,
}

/// Who writes a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// A person: a command-line flag, an import line, an edit.
    Person,
    /// The recording device, when the entry is made; an import may carry it.
    Device,
    /// Only deleting the entry.
    Deletion,
}

/// Everything the code knows about one field: one row of the table.
#[derive(Debug, PartialEq, Eq)]
pub struct Spec {
    /// The field.
    pub field: Field,
    /// The snake_case name used in JSON, the operation log and storage.
    pub name: &'static str,
    /// What it holds.
    pub kind: Kind,
    /// Who writes it.
    pub writer: Writer,
    /// One phrase for people, without the rule (that follows from the kind).
    pub help: &'static str,
    /// The command-line flag, where it is not the name in kebab-case.
    flag: Option<&'static str>,
}

/// Declares the fields: the `Field` enum and the table, one row per field, in display order.
macro_rules! fields {
    ($($variant:ident = $name:literal, $kind:expr, $writer:ident, $help:literal $(, flag $flag:literal)?;)+) => {
        /// One field of an entry, as named in JSON and in the operation log.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Field {
            $(#[doc = $help] $variant),+
        }

        impl Field {
            /// Every field, in the order entries are displayed.
            pub const ALL: &'static [Field] = &[$(Field::$variant),+];
        }

        /// The rows, in the order of [`Field::ALL`].
        const TABLE: &[Spec] = {
            use Kind::*;
            &[$(Spec {
                field: Field::$variant,
                name: $name,
                kind: $kind,
                writer: Writer::$writer,
                help: $help,
                flag: fields!(@flag $($flag)?),
            }),+]
        };
    };
    (@flag) => { None };
    (@flag $flag:literal) => { Some($flag) };
}

fields! {
    Day = "day", Day, Person, "The local day the entry describes", flag "date";
    RecordedAt = "recorded_at", Instant, Device, "Device clock and UTC offset at which the entry was first recorded";
    FirstStepPain = "first_step_pain", Score, Person, "Pain with the first steps in the morning";
    RestPain = "rest_pain", Score, Person, "Pain after rest";
    SittingPain = "sitting_pain", Score, Person, "Pain while sitting or bending";
    ActivityPain = "activity_pain", Score, Person, "Pain after standing or activity";
    Locations = "locations", Words(&Location::VOCABULARY), Person, "Where it hurts", flag "where";
    Side = "side", Word(&Side::VOCABULARY), Person, "Which side hurts";
    Radiating = "radiating", Flag, Person, "Pain radiating from the back down the leg";
    Numbness = "numbness", Word(&Severity::VOCABULARY), Person, "Numbness, tingling or burning";
    Weakness = "weakness", Flag, Person, "Weakness: hard to stand on toes or push off";
    HeelTender = "heel_tender", Flag, Person, "Pressing the heel reproduces the pain";
    MorningStiffness = "morning_stiffness", Flag, Person, "Stiffness in the morning";
    NightPain = "night_pain", Flag, Person, "Pain at rest or at night";
    SaddleNumbness = "saddle_numbness", Flag, Person, "Numbness in the saddle area: between the legs, inner thighs or buttocks";
    BladderBowelChange = "bladder_bowel_change", Flag, Person, "A new change in bladder or bowel control";
    FeverOrWeightLoss = "fever_or_weight_loss", Flag, Person, "Fever, or weight loss without a reason, together with the back pain";
    WorseWith = "worse_with", Words(&Trigger::VOCABULARY), Person, "What made it worse";
    EasedWith = "eased_with", Words(&Trigger::VOCABULARY), Person, "What eased it";
    Steps = "steps", Count { max: MAX_STEPS }, Person, "Steps walked that day";
    StandingMinutes = "standing_minutes", Count { max: MAX_STANDING_MINUTES }, Person, "Minutes spent standing that day";
    Treatments = "treatments", Words(&Treatment::VOCABULARY), Person, "Treatments used that day", flag "treatment";
    Note = "note", Text { max_chars: MAX_NOTE_CHARS }, Person, "Free-text note";
    Deleted = "deleted", Tombstone, Deletion, "Deleted (a tombstone); listed only in history views";
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Field {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TABLE
            .iter()
            .find(|spec| spec.name == s)
            .map(|spec| spec.field)
            .ok_or_else(|| format!("unknown field `{s}`"))
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
    /// The field's row of the table.
    pub fn spec(self) -> &'static Spec {
        &TABLE[self.index()]
    }

    /// Position of the field in [`Field::ALL`], for tables indexed by field.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// What the field holds.
    pub fn kind(self) -> Kind {
        self.spec().kind
    }

    /// Who writes the field.
    pub fn writer(self) -> Writer {
        self.spec().writer
    }

    /// The command-line flag (without `--`) of a field a person writes: the name in
    /// kebab-case unless the table spells it otherwise.
    pub fn flag(self) -> Option<Cow<'static, str>> {
        let spec = self.spec();
        match (spec.writer, spec.flag) {
            (Writer::Person, Some(flag)) => Some(Cow::Borrowed(flag)),
            (Writer::Person, None) => Some(Cow::Owned(spec.name.replace('_', "-"))),
            _ => None,
        }
    }

    /// Field names an import line or an edit may set (every field but the tombstone),
    /// comma-separated.
    pub fn input_choices() -> String {
        Field::ALL
            .iter()
            .filter(|f| f.writer() != Writer::Deletion)
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checks `value` against this field's rule and returns its canonical form (lists sorted and
    /// without repeats, words in snake_case). `null` clears an optional field. `today` is the
    /// local date of the writer, against which future days are judged.
    pub fn normalise(self, value: Value, today: NaiveDate) -> Result<Value, ValidationError> {
        self.kind()
            .normalise(value, today)
            .map_err(|reason| ValidationError::new(self.as_str(), reason))
    }
}

impl Kind {
    /// Whether `null` may clear a value of this kind.
    pub fn clearable(self) -> bool {
        !matches!(self, Kind::Day | Kind::Instant | Kind::Tombstone)
    }

    /// The rule of [`Field::normalise`], with the reason of a refusal.
    fn normalise(self, value: Value, today: NaiveDate) -> Result<Value, String> {
        if value.is_null() {
            return if self.clearable() {
                Ok(Value::Null)
            } else {
                Err("cannot be cleared".into())
            };
        }
        match self {
            Kind::Day => {
                let day = parse_day(&value)?;
                if day < EARLIEST_DAY {
                    return Err(format!(
                        "{day} is before {EARLIEST_DAY}, the earliest day a diary takes"
                    ));
                }
                if (day - today).num_days() > 1 {
                    return Err(format!(
                        "{day} is more than one day in the future (today is {today})"
                    ));
                }
                Ok(Value::String(day.to_string()))
            }
            Kind::Instant => {
                let text = value
                    .as_str()
                    .ok_or_else(|| "must be an RFC 3339 time with offset".to_string())?;
                let at = crate::calendar::parse_rfc3339(text)
                    .map_err(|e| format!("must be an RFC 3339 time with offset ({e})"))?;
                if at.date_naive() < EARLIEST_DAY {
                    return Err(format!(
                        "{text} is before {EARLIEST_DAY}, the earliest day a diary takes"
                    ));
                }
                if (at.date_naive() - today).num_days() > 1 {
                    return Err(format!("{text} is in the future"));
                }
                Ok(Value::String(
                    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
                ))
            }
            Kind::Score => {
                let score = integer(&value)?;
                if !(0..=i64::from(MAX_SCORE)).contains(&score) {
                    return Err(format!("must be between 0 and {MAX_SCORE}, got {score}"));
                }
                Ok(Value::from(score))
            }
            Kind::Count { max } => count(&value, max),
            Kind::Flag => match value {
                Value::Bool(_) => Ok(value),
                other => Err(format!("must be true or false, got {}", kind(&other))),
            },
            Kind::Tombstone => match value {
                Value::Bool(true) => Ok(value),
                _ => Err("a tombstone must be `true`".into()),
            },
            Kind::Word(vocabulary) => word(vocabulary, &value),
            Kind::Words(vocabulary) => words(vocabulary, &value),
            Kind::Text { max_chars } => {
                let text = value
                    .as_str()
                    .ok_or_else(|| format!("must be text, got {}", kind(&value)))?;
                let chars = text.chars().count();
                if chars > max_chars {
                    return Err(format!(
                        "is {chars} characters; at most {max_chars} are allowed"
                    ));
                }
                // A NUL cannot be stored in every database a diary travels through; other
                // control characters are refused where a person types (EntryInput), not here,
                // so an operation an older build wrote can always still be delivered.
                if text.contains('\0') {
                    return Err("holds a NUL character, which cannot be stored".into());
                }
                Ok(value)
            }
        }
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
    match crate::calendar::plain_day(text.as_bytes()) {
        Some(day) => Ok(day),
        None => NaiveDate::parse_from_str(text, "%Y-%m-%d"),
    }
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

fn word(vocabulary: &Vocabulary, value: &Value) -> Result<Value, String> {
    let text = value
        .as_str()
        .ok_or_else(|| format!("must be a word, got {}", kind(value)))?;
    Ok(Value::from(vocabulary.words[vocabulary.position(text)?]))
}

fn words(vocabulary: &Vocabulary, value: &Value) -> Result<Value, String> {
    let items = value
        .as_array()
        .ok_or_else(|| format!("must be a list, got {}", kind(value)))?;
    let mut positions = Vec::with_capacity(items.len());
    for item in items {
        let text = item
            .as_str()
            .ok_or_else(|| format!("list items must be words, got {}", kind(item)))?;
        positions.push(vocabulary.position(text)?);
    }
    positions.sort_unstable();
    positions.dedup();
    Ok(Value::Array(
        positions
            .into_iter()
            .map(|at| Value::from(vocabulary.words[at]))
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
    fn days_before_1900_or_more_than_one_day_ahead_are_refused() {
        assert!(Field::Day.normalise(json!("2026-11-11"), today()).is_ok());
        assert!(reason(Field::Day, json!("2026-11-12")).contains("more than one day in the future"));
        assert!(reason(Field::Day, json!("2026-13-01")).contains("not a date"));
        assert!(reason(Field::Day, json!("0000-11-20")).contains("before 1900-01-01"));
        assert!(reason(Field::Day, json!("1899-12-31")).contains("before 1900-01-01"));
        assert!(Field::Day.normalise(json!("1900-01-01"), today()).is_ok());
        assert!(reason(Field::RecordedAt, json!("0000-11-20T08:00:00Z")).contains("before 1900"));
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

    #[test]
    fn every_row_is_at_its_field_position() {
        for (at, field) in Field::ALL.iter().enumerate() {
            assert_eq!(field.index(), at);
            assert_eq!(field.spec().field, *field);
        }
    }
}
