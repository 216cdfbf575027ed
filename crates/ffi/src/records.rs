//! Records and enums as the app sees them. They mirror the entry JSON: the same field names and
//! the same words, so they convert to and from the core types through that JSON, and the core
//! validates every value. A test holds them to the field table.

use serde::{Deserialize, Serialize};

/// Declares a vocabulary: an enum whose words are the core vocabulary's JSON words.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, uniffi::Enum)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant,)+
        }

        impl $name {
            /// Every word, in the vocabulary's order.
            #[cfg(test)]
            pub(crate) const ALL: &'static [$name] = &[$($name::$variant),+];
        }
    };
}

// The words of every vocabulary come from the core's one table.
heeldiary_core::with_vocabularies!(vocabulary);

vocabulary! {
    /// A field a person writes, as named in the entry JSON: what an edit may clear.
    EntryField {
        /// The local day the entry describes.
        Day = "day",
        /// Device clock and offset at which the entry was first recorded.
        RecordedAt = "recorded_at",
        /// Pain with the first steps in the morning.
        FirstStepPain = "first_step_pain",
        /// Pain after rest.
        RestPain = "rest_pain",
        /// Pain while sitting or bending.
        SittingPain = "sitting_pain",
        /// Pain after standing or activity.
        ActivityPain = "activity_pain",
        /// Where it hurts.
        Locations = "locations",
        /// Which side hurts.
        Side = "side",
        /// Pain radiating from the back down the leg.
        Radiating = "radiating",
        /// Numbness, tingling or burning.
        Numbness = "numbness",
        /// Weakness.
        Weakness = "weakness",
        /// Pressing the heel reproduces the pain.
        HeelTender = "heel_tender",
        /// Stiffness in the morning.
        MorningStiffness = "morning_stiffness",
        /// Pain at rest or at night.
        NightPain = "night_pain",
        /// Numbness in the saddle area.
        SaddleNumbness = "saddle_numbness",
        /// A new change in bladder or bowel control.
        BladderBowelChange = "bladder_bowel_change",
        /// Fever or unexplained weight loss with the back pain.
        FeverOrWeightLoss = "fever_or_weight_loss",
        /// What made it worse.
        WorseWith = "worse_with",
        /// What eased it.
        EasedWith = "eased_with",
        /// Steps walked that day.
        Steps = "steps",
        /// Minutes spent standing that day.
        StandingMinutes = "standing_minutes",
        /// Treatments used that day.
        Treatments = "treatments",
        /// Free-text note.
        Note = "note",
    }
}

/// One diary entry as it now is: the JSON of `heeldiary list --json`, typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, uniffi::Record)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// UUIDv7 made on the device that created the entry.
    pub id: String,
    /// The local day it describes, `YYYY-MM-DD`.
    pub day: String,
    /// Device time with UTC offset (RFC 3339) at which it was first recorded.
    pub recorded_at: String,
    /// Recorded more than one day after its day; clinicians weigh these less.
    pub backfilled: bool,
    /// Pain with the first steps in the morning, 0–10.
    #[serde(default)]
    pub first_step_pain: Option<u8>,
    /// Pain after rest, 0–10.
    #[serde(default)]
    pub rest_pain: Option<u8>,
    /// Pain while sitting or bending, 0–10.
    #[serde(default)]
    pub sitting_pain: Option<u8>,
    /// Pain after standing or activity, 0–10.
    #[serde(default)]
    pub activity_pain: Option<u8>,
    /// Where it hurts.
    #[serde(default)]
    pub locations: Vec<Location>,
    /// Which side.
    #[serde(default)]
    pub side: Option<Side>,
    /// Pain radiating from the back down the leg.
    #[serde(default)]
    pub radiating: Option<bool>,
    /// Numbness, tingling or burning.
    #[serde(default)]
    pub numbness: Option<Severity>,
    /// Weakness: hard to stand on toes or push off.
    #[serde(default)]
    pub weakness: Option<bool>,
    /// Pressing the heel reproduces the pain.
    #[serde(default)]
    pub heel_tender: Option<bool>,
    /// Stiffness in the morning.
    #[serde(default)]
    pub morning_stiffness: Option<bool>,
    /// Pain at rest or at night.
    #[serde(default)]
    pub night_pain: Option<bool>,
    /// Numbness in the saddle area: between the legs, inner thighs or buttocks.
    #[serde(default)]
    pub saddle_numbness: Option<bool>,
    /// A new change in bladder or bowel control.
    #[serde(default)]
    pub bladder_bowel_change: Option<bool>,
    /// Fever, or weight loss without a reason, together with the back pain.
    #[serde(default)]
    pub fever_or_weight_loss: Option<bool>,
    /// What made it worse.
    #[serde(default)]
    pub worse_with: Vec<Trigger>,
    /// What eased it.
    #[serde(default)]
    pub eased_with: Vec<Trigger>,
    /// Steps walked that day.
    #[serde(default)]
    pub steps: Option<u32>,
    /// Minutes spent standing that day.
    #[serde(default)]
    pub standing_minutes: Option<u32>,
    /// Treatments used that day.
    #[serde(default)]
    pub treatments: Vec<Treatment>,
    /// Free text, at most 2,000 characters.
    #[serde(default)]
    pub note: Option<String>,
    /// Deleted (only listed when asked for).
    #[serde(default)]
    pub deleted: bool,
}

/// What a person writes: every field optional (a new entry needs `day`). Values are checked by
/// the same rules as the CLI and the import; a field left `None` is not written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, uniffi::Record)]
pub struct EntryInput {
    /// The local day, `YYYY-MM-DD`; required for a new entry.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    /// Device time with offset (RFC 3339); default: now.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<String>,
    /// 0–10.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_step_pain: Option<u8>,
    /// 0–10.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rest_pain: Option<u8>,
    /// 0–10.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sitting_pain: Option<u8>,
    /// 0–10.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_pain: Option<u8>,
    /// Where it hurts.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locations: Option<Vec<Location>>,
    /// Which side.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// Pain radiating from the back down the leg.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub radiating: Option<bool>,
    /// Numbness, tingling or burning.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numbness: Option<Severity>,
    /// Weakness.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weakness: Option<bool>,
    /// Pressing the heel reproduces the pain.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heel_tender: Option<bool>,
    /// Stiffness in the morning.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub morning_stiffness: Option<bool>,
    /// Pain at rest or at night.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub night_pain: Option<bool>,
    /// Numbness in the saddle area (an urgent sign: the analysis tells it at once).
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saddle_numbness: Option<bool>,
    /// A new change in bladder or bowel control (an urgent sign).
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bladder_bowel_change: Option<bool>,
    /// Fever, or weight loss without a reason, with the back pain.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fever_or_weight_loss: Option<bool>,
    /// What made it worse.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worse_with: Option<Vec<Trigger>>,
    /// What eased it.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eased_with: Option<Vec<Trigger>>,
    /// Steps walked that day.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
    /// Minutes spent standing that day.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standing_minutes: Option<u32>,
    /// Treatments used that day.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub treatments: Option<Vec<Treatment>>,
    /// Free text, at most 2,000 characters.
    #[uniffi(default = None)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An edit: the values to set, and the fields to clear.
#[derive(Debug, Clone, Default, PartialEq, uniffi::Record)]
pub struct EntryPatch {
    /// Values to write; `None` leaves a field as it is.
    pub values: EntryInput,
    /// Fields to clear (not `day` nor `recorded_at`, which always hold a value).
    #[uniffi(default = [])]
    pub clear: Vec<EntryField>,
}

/// Which entries `list` returns.
#[derive(Debug, Clone, Default, PartialEq, uniffi::Record)]
pub struct ListFilter {
    /// First day, `YYYY-MM-DD`.
    #[uniffi(default = None)]
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD`.
    #[uniffi(default = None)]
    pub to: Option<String>,
    /// Deleted entries too (`deleted: true`).
    #[uniffi(default = false)]
    pub include_deleted: bool,
}

/// One operation in an entry's history.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct HistoryChange {
    /// When it was written (UTC, RFC 3339).
    pub at: String,
    /// The device that wrote it.
    pub device_id: String,
    /// Its sequence on that device.
    pub device_seq: u64,
    /// When the server stored it, for operations that came through sync.
    pub received_at: Option<String>,
    /// The values it wrote.
    pub changes: Vec<FieldChange>,
}

/// One value an operation wrote.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct FieldChange {
    /// The field, as named in the entry JSON.
    pub field: String,
    /// The value written, as JSON (`null`: cleared).
    pub value_json: String,
    /// Whether it is still the current value.
    pub current: bool,
}

/// The diary's enrolment.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Enrolment {
    /// The server it syncs with.
    pub server_url: String,
    /// The patient whose diary it is.
    pub patient_id: String,
}

/// What a sync run did.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SyncSummary {
    /// Own changes the server stored now.
    pub pushed: u64,
    /// Own changes the server had from an earlier, interrupted run.
    pub already_on_server: u64,
    /// Changes from the patient's other devices merged here.
    pub pulled: u64,
    /// Fields where concurrent writes disagreed (the later one won everywhere).
    pub conflicts: u64,
    /// Requests retried after network faults.
    pub retries: u32,
    /// Changes re-stamped because the device clock ran ahead of the server's.
    pub restamped: u64,
    /// Wall time of the run, in milliseconds.
    pub elapsed_ms: u64,
}

/// The device, its enrolment and its sync state.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Status {
    /// This device's id.
    pub device_id: String,
    /// The enrolment, if any.
    pub enrolment: Option<Enrolment>,
    /// Own changes not yet on the server.
    pub pending: u64,
    /// Server feed read up to this cursor.
    pub pull_cursor: u64,
    /// Correction applied to the device clock, in milliseconds.
    pub clock_offset_ms: i64,
    /// When a sync last finished (UTC, RFC 3339).
    pub last_sync_at: Option<String>,
    /// Whether the diary file is encrypted.
    pub encrypted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use heeldiary_core::{Field, Kind, Writer};

    fn word<T: Serialize>(value: T) -> String {
        serde_json::to_value(value)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    fn words_of(field: Field) -> Vec<&'static str> {
        match field.kind() {
            Kind::Word(v) | Kind::Words(v) => v.words.to_vec(),
            other => panic!("{field} is not a word field: {other:?}"),
        }
    }

    #[test]
    fn each_enum_holds_exactly_the_words_of_its_vocabulary() {
        assert_eq!(
            Location::ALL.iter().map(word).collect::<Vec<_>>(),
            words_of(Field::Locations)
        );
        assert_eq!(
            Side::ALL.iter().map(word).collect::<Vec<_>>(),
            words_of(Field::Side)
        );
        assert_eq!(
            Severity::ALL.iter().map(word).collect::<Vec<_>>(),
            words_of(Field::Numbness)
        );
        assert_eq!(
            Trigger::ALL.iter().map(word).collect::<Vec<_>>(),
            words_of(Field::WorseWith)
        );
        assert_eq!(
            Treatment::ALL.iter().map(word).collect::<Vec<_>>(),
            words_of(Field::Treatments)
        );
    }

    #[test]
    fn entry_field_names_every_field_a_person_or_device_writes() {
        let table: Vec<&str> = Field::ALL
            .iter()
            .filter(|f| f.writer() != Writer::Deletion)
            .map(|f| f.as_str())
            .collect();
        let ours: Vec<String> = EntryField::ALL.iter().map(word).collect();
        assert_eq!(ours, table);
    }

    #[test]
    fn entry_input_carries_every_field_of_the_table() {
        // Every field set: the JSON keys must be exactly the fields a person or device writes.
        let full = EntryInput {
            day: Some("2026-11-01".into()),
            recorded_at: Some("2026-11-01T08:00:00.000+01:00".into()),
            first_step_pain: Some(1),
            rest_pain: Some(1),
            sitting_pain: Some(1),
            activity_pain: Some(1),
            locations: Some(vec![]),
            side: Some(Side::Left),
            radiating: Some(true),
            numbness: Some(Severity::Absent),
            weakness: Some(true),
            heel_tender: Some(true),
            morning_stiffness: Some(true),
            night_pain: Some(true),
            saddle_numbness: Some(false),
            bladder_bowel_change: Some(false),
            fever_or_weight_loss: Some(false),
            worse_with: Some(vec![]),
            eased_with: Some(vec![]),
            steps: Some(1),
            standing_minutes: Some(1),
            treatments: Some(vec![]),
            note: Some("n".into()),
        };
        let json = serde_json::to_value(full).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut table: Vec<&str> = Field::ALL
            .iter()
            .filter(|f| f.writer() != Writer::Deletion)
            .map(|f| f.as_str())
            .collect();
        table.sort_unstable();
        assert_eq!(keys, table);
    }
}
