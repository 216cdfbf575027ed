//! The diary entry as patients and clinicians see it, and the vocabularies of its fields.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::ValidationError;
use crate::field::{Field, Patch};

/// Declares a closed vocabulary: a fieldless enum written as snake_case strings, parsed from
/// snake_case or kebab-case (`heel_bottom`, `heel-bottom`), with the list of allowed words for
/// error messages and help text.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every word of this vocabulary, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The snake_case word used in JSON and storage.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }

            /// The allowed words, comma-separated, for messages and help.
            pub fn choices() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let normal = s.trim().to_ascii_lowercase().replace('-', "_");
                match normal.as_str() {
                    $($word => Ok($name::$variant),)+
                    _ => Err(format!("unknown value `{s}`; expected one of: {}", Self::choices())),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let word = String::deserialize(d)?;
                word.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

vocabulary! {
    /// Where it hurts.
    Location {
        /// Bottom of the heel, where the plantar fascia attaches.
        HeelBottom = "heel_bottom",
        /// Back of the heel.
        HeelBack = "heel_back",
        /// Arch of the foot.
        Arch = "arch",
        /// Lower back.
        LowerBack = "lower_back",
        /// Buttock.
        Buttock = "buttock",
        /// Thigh.
        Thigh = "thigh",
        /// Calf.
        Calf = "calf",
        /// Elsewhere in the foot.
        Foot = "foot",
        /// Toes.
        Toes = "toes",
    }
}

vocabulary! {
    /// Which side hurts.
    Side {
        /// Left only.
        Left = "left",
        /// Right only.
        Right = "right",
        /// Both sides.
        Both = "both",
    }
}

vocabulary! {
    /// Severity of numbness, tingling or burning.
    Severity {
        /// Not present.
        None = "none",
        /// Mild.
        Mild = "mild",
        /// Moderate.
        Moderate = "moderate",
        /// Severe.
        Severe = "severe",
    }
}

impl Severity {
    /// 0 for none up to 3 for severe, for trend statistics.
    pub fn rank(self) -> u8 {
        match self {
            Severity::None => 0,
            Severity::Mild => 1,
            Severity::Moderate => 2,
            Severity::Severe => 3,
        }
    }
}

vocabulary! {
    /// What made the pain worse or eased it.
    Trigger {
        /// Sitting.
        Sitting = "sitting",
        /// Bending forward.
        Bending = "bending",
        /// Lifting.
        Lifting = "lifting",
        /// Standing for a long time.
        Standing = "standing",
        /// Walking.
        Walking = "walking",
        /// Running.
        Running = "running",
        /// Coughing or sneezing.
        Coughing = "coughing",
        /// Resting.
        Rest = "rest",
    }
}

vocabulary! {
    /// A treatment used that day.
    Treatment {
        /// Stretching of the plantar fascia or calf.
        Stretching = "stretching",
        /// Ice.
        Ice = "ice",
        /// Anti-inflammatory drugs.
        Nsaids = "nsaids",
        /// Orthotics or supportive footwear.
        Orthotics = "orthotics",
        /// Night splint.
        NightSplint = "night_splint",
        /// Rest.
        Rest = "rest",
        /// Shockwave or ultrasound therapy.
        Shockwave = "shockwave",
        /// Corticosteroid injection in the foot.
        SteroidInjection = "steroid_injection",
        /// Physical therapy.
        PhysicalTherapy = "physical_therapy",
        /// Epidural steroid injection.
        EpiduralInjection = "epidural_injection",
        /// Spinal decompression therapy.
        Decompression = "decompression",
        /// Surgery.
        Surgery = "surgery",
        /// Muscle relaxants or oral steroids.
        Medication = "medication",
        /// Anything else (say what in the note).
        Other = "other",
    }
}

impl Treatment {
    /// Conservative care: what clinicians expect to try for about six weeks before escalating.
    pub fn is_conservative(self) -> bool {
        !matches!(
            self,
            Treatment::SteroidInjection | Treatment::EpiduralInjection | Treatment::Surgery
        )
    }
}

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
    pub day: NaiveDate,
    /// Device clock and UTC offset at which the entry was first recorded.
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
    /// Whether an entry recorded at `recorded_at` about `day` counts as back-filled: recorded
    /// more than one day after the day, on the recording device's local calendar.
    pub fn is_backfilled(day: NaiveDate, recorded_at: &DateTime<FixedOffset>) -> bool {
        (recorded_at.date_naive() - day).num_days() > 1
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
                    Ok(Field::Deleted) | Err(_) => {
                        return Err(ValidationError::new(
                            other,
                            format!(
                                "unknown field; expected one of: id, backfilled, {}",
                                Field::input_choices()
                            ),
                        ))
                    }
                    Ok(field) => {
                        input.fields.insert(field, value);
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
            if let (Field::Note, Value::String(text)) = (field, &value) {
                crate::field::check_plain_text(text)
                    .map_err(|reason| ValidationError::new("note", reason))?;
            }
            patch.insert(field, value);
        }
        Ok(patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
