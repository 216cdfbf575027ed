//! The entry fields as command-line flags, shared by `log` and `edit`.

use clap::Args;
use heeldiary_core::{EntryInput, Field};
use serde_json::Value;

/// Flags that set entry fields. Values are checked by the core rules, so errors name the field.
#[derive(Debug, Default, Args)]
pub struct EntryFlags {
    /// Pain with the first steps in the morning, 0–10.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    first_step_pain: Option<i64>,
    /// Pain after rest, 0–10.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    rest_pain: Option<i64>,
    /// Pain while sitting or bending, 0–10.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    sitting_pain: Option<i64>,
    /// Pain after standing or activity, 0–10.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    activity_pain: Option<i64>,
    /// Where it hurts: heel-bottom, heel-back, arch, lower-back, buttock, thigh, calf, foot, toes.
    #[arg(long = "where", value_name = "LIST", value_delimiter = ',')]
    locations: Option<Vec<String>>,
    /// Which side: left, right, both.
    #[arg(long, value_name = "SIDE")]
    side: Option<String>,
    /// Pain radiating from the back down the leg (`--radiating=false` to say no).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    radiating: Option<bool>,
    /// Numbness, tingling or burning: none, mild, moderate, severe.
    #[arg(long, value_name = "LEVEL")]
    numbness: Option<String>,
    /// Weakness: hard to stand on toes or push off.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    weakness: Option<bool>,
    /// Pressing the heel reproduces the pain.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    heel_tender: Option<bool>,
    /// Stiffness in the morning.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    morning_stiffness: Option<bool>,
    /// Pain at rest or at night.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    night_pain: Option<bool>,
    /// What made it worse: sitting, bending, lifting, standing, walking, running, coughing, rest.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    worse_with: Option<Vec<String>>,
    /// What eased it (same words as --worse-with).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    eased_with: Option<Vec<String>>,
    /// Steps walked that day.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    steps: Option<i64>,
    /// Minutes spent standing that day.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    standing_minutes: Option<i64>,
    /// Treatments that day: stretching, ice, nsaids, orthotics, night-splint, rest, shockwave,
    /// steroid-injection, physical-therapy, epidural-injection, decompression, surgery, medication, other.
    #[arg(long = "treatment", value_name = "LIST", value_delimiter = ',')]
    treatments: Option<Vec<String>>,
    /// Free-text note (at most 2,000 characters).
    #[arg(long, value_name = "TEXT")]
    note: Option<String>,
}

impl EntryFlags {
    /// The fields these flags set, unvalidated.
    pub fn into_input(self) -> EntryInput {
        let mut input = EntryInput::default();
        let mut set = |field: Field, value: Option<Value>| {
            if let Some(value) = value {
                input.set(field, value);
            }
        };
        let list = |items: Option<Vec<String>>| {
            items.map(|v| Value::from(v.into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>()))
        };
        set(Field::FirstStepPain, self.first_step_pain.map(Value::from));
        set(Field::RestPain, self.rest_pain.map(Value::from));
        set(Field::SittingPain, self.sitting_pain.map(Value::from));
        set(Field::ActivityPain, self.activity_pain.map(Value::from));
        set(Field::Locations, list(self.locations));
        set(Field::Side, self.side.map(Value::from));
        set(Field::Radiating, self.radiating.map(Value::from));
        set(Field::Numbness, self.numbness.map(Value::from));
        set(Field::Weakness, self.weakness.map(Value::from));
        set(Field::HeelTender, self.heel_tender.map(Value::from));
        set(
            Field::MorningStiffness,
            self.morning_stiffness.map(Value::from),
        );
        set(Field::NightPain, self.night_pain.map(Value::from));
        set(Field::WorseWith, list(self.worse_with));
        set(Field::EasedWith, list(self.eased_with));
        set(Field::Steps, self.steps.map(Value::from));
        set(
            Field::StandingMinutes,
            self.standing_minutes.map(Value::from),
        );
        set(Field::Treatments, list(self.treatments));
        set(Field::Note, self.note.map(Value::from));
        input
    }
}
