//! One patient's feed made ready for export: the live entries (merged from the operations, with
//! how often each was edited and whether devices disagreed), the deletions inside the export's
//! time range, the first day (study day 0) and the monthly findings.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use heeldiary_core::wire::PulledOp;
use heeldiary_core::{Entry, EntryState, Field};
use heeldiary_trends::{DayHistory, Options as TrendOptions, Report};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::Options;

/// What storage hands the exporter for one patient: the whole feed in cursor order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientDiary {
    /// The patient.
    pub patient_id: Uuid,
    /// Every operation of the patient, in cursor order.
    pub ops: Vec<PulledOp>,
}

/// A live entry with its history counts.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedEntry {
    /// The merged entry.
    pub entry: Entry,
    /// Operations on it after the first.
    pub edits: u32,
    /// Whether two devices wrote different values to one field.
    pub conflicted: bool,
}

/// A patient ready to write.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedPatient {
    /// The patient.
    pub patient_id: Uuid,
    /// Day of the first live entry (study day 0); `None` when nothing is left.
    pub first_day: Option<NaiveDate>,
    /// Live entries inside the time range, by day then id.
    pub entries: Vec<ExportedEntry>,
    /// Entries deleted inside the time range (only with `since`).
    pub deletions: Vec<Uuid>,
    /// Every live entry, whatever the range: what the monthly findings are computed from.
    pub history: Vec<Entry>,
    /// Entries whose stored values no longer make an entry (left out, counted).
    pub unreadable: u32,
}

/// One stored entry of a patient as a streamed export takes it
/// ([`Exporter::add_entry`](crate::Exporter::add_entry)): the merged state the server keeps, and
/// the entry's operations when there is more than one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRecord {
    /// The entry.
    pub entry_id: Uuid,
    /// Whether a tombstone won.
    pub deleted: bool,
    /// The merged field values as stored: the JSON text of an [`EntryState`] (may be empty for
    /// a deleted entry). Kept as text so that an export decodes it straight into the entry.
    pub state: String,
    /// When the server last received a change to it: what `since` and `until` compare.
    pub last_received: DateTime<Utc>,
    /// Its operations in cursor order; may be left empty for an entry made by one operation
    /// (no edit, no conflict).
    pub ops: Vec<PulledOp>,
}

impl EntryRecord {
    /// The record of an entry from all its operations, in cursor order.
    pub fn from_ops(entry_id: Uuid, ops: Vec<PulledOp>) -> Self {
        let mut state = EntryState::default();
        for pulled in &ops {
            state.apply(&pulled.op);
        }
        let last_received = ops
            .iter()
            .map(|p| p.received_at)
            .max()
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        EntryRecord {
            entry_id,
            deleted: state.is_deleted(),
            // A map keyed by field names always serialises.
            state: serde_json::to_string(&state).unwrap_or_default(),
            last_received,
            ops,
        }
    }

    /// The day the stored state describes, when it has a readable one (deleted or not): what
    /// storage orders a patient's entries by for the formats kept in time order.
    pub fn day(&self) -> Option<NaiveDate> {
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
        let stored: Stored<'_> = serde_json::from_str(&self.state).ok()?;
        stored.fields.day?.value?.parse().ok()
    }

    /// The entry when it is live and its stored values make one.
    pub fn live_entry(&self) -> Option<Entry> {
        if self.deleted {
            return None;
        }
        decode_entry(self.entry_id, &self.state).ok()
    }

    /// Operations on the entry after the first (tombstones aside), and whether two devices
    /// wrote different values to one field, folding the operations in cursor order.
    pub fn history_counts(&self) -> (u32, bool) {
        let mut state = EntryState::default();
        let mut edits = 0;
        let mut conflicted = false;
        for (at, pulled) in self.ops.iter().enumerate() {
            let outcome = state.apply(&pulled.op);
            if at > 0 && !pulled.op.is_tombstone() {
                edits += 1;
            }
            conflicted |= !outcome.conflicts.is_empty();
        }
        (edits, conflicted)
    }
}

impl EntryRecord {
    /// The record sorted for `options` (a row, a deletion, or nothing) with its history
    /// counts: the per-entry work of an export, which a caller may do on another thread before
    /// [`Exporter::add_prepared`](crate::Exporter::add_prepared).
    pub fn prepare(self, options: &Options) -> PreparedEntry {
        let sorted = sort_record(&self, options);
        let (edits, conflicted) = match &sorted {
            Sorted::Live(_, true) => self.history_counts(),
            _ => (0, false),
        };
        PreparedEntry {
            entry_id: self.entry_id,
            sorted,
            edits,
            conflicted,
        }
    }
}

/// An [`EntryRecord`] sorted for an export's options (see [`EntryRecord::prepare`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedEntry {
    pub(crate) entry_id: Uuid,
    pub(crate) sorted: Sorted,
    pub(crate) edits: u32,
    pub(crate) conflicted: bool,
}

/// Every operation of `diary` grouped by entry, as records in id order.
pub(crate) fn records(diary: &PatientDiary) -> Vec<EntryRecord> {
    let mut by_entry: BTreeMap<Uuid, Vec<PulledOp>> = BTreeMap::new();
    for pulled in &diary.ops {
        by_entry
            .entry(pulled.op.entry_id)
            .or_default()
            .push(pulled.clone());
    }
    by_entry
        .into_iter()
        .map(|(id, ops)| EntryRecord::from_ops(id, ops))
        .collect()
}

impl PreparedPatient {
    /// Merges the feed and keeps what `options` asks for.
    pub fn new(diary: &PatientDiary, options: &Options) -> Self {
        Self::from_records(diary.patient_id, records(diary), options)
    }

    /// A patient made ready from its stored entries, in any order.
    pub fn from_records(
        patient_id: Uuid,
        records: impl IntoIterator<Item = EntryRecord>,
        options: &Options,
    ) -> Self {
        Self::from_prepared(
            patient_id,
            records.into_iter().map(|record| record.prepare(options)),
        )
    }

    /// A patient made ready from its stored entries prepared already
    /// ([`EntryRecord::prepare`]), in any order.
    pub fn from_prepared(
        patient_id: Uuid,
        entries: impl IntoIterator<Item = PreparedEntry>,
    ) -> Self {
        let mut prepared = PreparedPatient {
            patient_id,
            first_day: None,
            entries: Vec::new(),
            deletions: Vec::new(),
            history: Vec::new(),
            unreadable: 0,
        };
        for entry in entries {
            if let Taken::Entry(entry) = prepared.take_prepared(entry) {
                prepared.first_day =
                    Some(prepared.first_day.map_or(entry.day, |d| d.min(entry.day)));
                prepared.history.push(entry);
            }
        }
        prepared.sort();
        prepared
    }

    /// Sorts one prepared record in: a deletion in range, an exported entry, or nothing.
    /// Returns the live entry for the history.
    pub(crate) fn take_prepared(&mut self, prepared: PreparedEntry) -> Taken {
        match prepared.sorted {
            Sorted::Deletion => {
                self.deletions.push(prepared.entry_id);
                Taken::Deletion
            }
            Sorted::Skipped => Taken::Nothing,
            Sorted::Unreadable => {
                self.unreadable += 1;
                Taken::Nothing
            }
            Sorted::Live(entry, exported) => {
                if exported {
                    self.entries.push(ExportedEntry {
                        entry: entry.clone(),
                        edits: prepared.edits,
                        conflicted: prepared.conflicted,
                    });
                }
                Taken::Entry(entry)
            }
        }
    }

    /// Puts the entries and the history in day order.
    pub(crate) fn sort(&mut self) {
        self.entries.sort_by_key(|e| (e.entry.day, e.entry.id));
        self.history.sort_by_key(|e| (e.day, e.id));
    }

    /// The analysis of each calendar month with a logged day, from the first entry's month to
    /// the last's: `(study_month, first day of the month, report)`. Only months that hold an
    /// exported entry's day are returned, so an incremental export carries the months it
    /// touches.
    pub fn monthly_findings(&self) -> Vec<(u32, NaiveDate, Report)> {
        let Some(first) = self.first_day else {
            return Vec::new();
        };
        let mut history = DayHistory::default();
        for entry in &self.history {
            history.add(entry);
        }
        let months: BTreeSet<NaiveDate> = self
            .entries
            .iter()
            .map(|e| month_start(e.entry.day))
            .collect();
        monthly_reports(&history, first, &months)
    }
}

pub(crate) enum Taken {
    Entry(Entry),
    Deletion,
    Nothing,
}

/// Where a record goes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Sorted {
    /// A deleted entry to list in `deletions`.
    Deletion,
    /// Nothing to export: deleted outside the range, or not yet a whole entry.
    Skipped,
    /// Stored values that no longer make an entry.
    Unreadable,
    /// A live entry, and whether it is in the export's range.
    Live(Entry, bool),
}

pub(crate) fn sort_record(record: &EntryRecord, options: &Options) -> Sorted {
    if record.deleted {
        return if options.since.is_some() && options.covers(record.last_received) {
            Sorted::Deletion
        } else {
            Sorted::Skipped
        };
    }
    match decode_entry(record.entry_id, &record.state) {
        Ok(entry) => Sorted::Live(entry, options.covers(record.last_received)),
        Err(Undecoded::Incomplete) => Sorted::Skipped,
        Err(Undecoded::Invalid) => Sorted::Unreadable,
    }
}

/// Why a stored state makes no entry (as [`EntryState::to_entry`] tells them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Undecoded {
    /// Its day or first recording has not arrived yet.
    Incomplete,
    /// A stored value does not fit its field, or the text is not a stored state.
    Invalid,
}

/// A stored state's non-null values, borrowed from its text: `{"fields": {name: {"hlc": ..,
/// "value": ..}}}`, the stamps skipped.
struct StoredValues<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for StoredValues<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Stored<'a> {
            #[serde(borrow)]
            fields: StoredFields<'a>,
        }
        struct StoredFields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);
        #[derive(Deserialize)]
        struct StoredField<'a> {
            #[serde(borrow)]
            value: &'a RawValue,
        }
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
                            map.next_entry::<Cow<'a, str>, StoredField<'a>>()?
                        {
                            // A cleared field is as good as absent.
                            if field.value.get() != "null" {
                                values.push((name, field.value));
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

/// The entry a stored state makes, decoded straight from its text into the typed entry (no
/// intermediate JSON tree): what [`EntryState::to_entry`] gives for the parsed state.
pub(crate) fn decode_entry(id: Uuid, stored: &str) -> Result<Entry, Undecoded> {
    let values: StoredValues<'_> = serde_json::from_str(stored).map_err(|_| Undecoded::Invalid)?;
    let has = |field: Field| {
        values
            .0
            .iter()
            .any(|(name, _)| name.as_ref() == field.as_str())
    };
    if !has(Field::Day) || !has(Field::RecordedAt) {
        return Err(Undecoded::Incomplete);
    }
    let mut entry = Entry::deserialize(StoredEntry {
        values: &values.0,
        id,
    })
    .map_err(|_| Undecoded::Invalid)?;
    entry.backfilled = Entry::is_backfilled(entry.day, &entry.recorded_at);
    Ok(entry)
}

/// A stored state's values seen as the entry's JSON object: each value, then the id and a
/// placeholder `backfilled` (derived once the day and the recording time are read).
struct StoredEntry<'s, 'a> {
    values: &'s [(Cow<'a, str>, &'a RawValue)],
    id: Uuid,
}

impl<'de, 'a: 'de> Deserializer<'de> for StoredEntry<'_, 'a> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(StoredEntryMap {
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

enum Next<'a> {
    Nothing,
    Stored(&'a RawValue),
    Id(Uuid),
    Backfilled,
}

struct StoredEntryMap<'s, 'a> {
    values: std::slice::Iter<'s, (Cow<'a, str>, &'a RawValue)>,
    id: Option<Uuid>,
    backfilled: bool,
    next: Next<'a>,
}

impl<'de, 'a: 'de> MapAccess<'de> for StoredEntryMap<'_, 'a> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let key = if let Some((name, value)) = self.values.next() {
            self.next = Next::Stored(value);
            name.as_ref()
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

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        match std::mem::replace(&mut self.next, Next::Nothing) {
            Next::Stored(raw) => {
                seed.deserialize(&mut serde_json::Deserializer::from_str(raw.get()))
            }
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

/// The report of each month in `months` (first days), from the day summaries of the whole
/// history: the month is the window, the history up to its last day the context.
pub(crate) fn monthly_reports(
    history: &DayHistory,
    first_day: NaiveDate,
    months: &BTreeSet<NaiveDate>,
) -> Vec<(u32, NaiveDate, Report)> {
    let first_month = month_start(first_day);
    months
        .iter()
        .map(|&month| {
            let next = month + Months::new(1);
            let last_day = next.pred_opt().unwrap_or(month);
            let options = TrendOptions::new(last_day).with_window_days(last_day.day());
            let report = history.period_report(&options);
            (months_between(first_month, month), month, report)
        })
        .collect()
}

pub(crate) fn month_start(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

fn months_between(from: NaiveDate, to: NaiveDate) -> u32 {
    let months = (to.year() - from.year()) * 12 + to.month() as i32 - from.month() as i32;
    months.max(0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use heeldiary_core::{Hlc, Op};
    use serde_json::{json, Value};

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

    /// What the parsed state's own conversion says: the entry, or why there is none.
    fn expected(state: &EntryState, id: Uuid) -> Result<Entry, Undecoded> {
        state.to_entry(id).map_err(|e| {
            if e.is_incomplete() {
                Undecoded::Incomplete
            } else {
                Undecoded::Invalid
            }
        })
    }

    #[test]
    fn a_stored_state_decodes_to_the_entry_its_parsed_form_makes() {
        let id = Uuid::from_u128(1);
        let whole = json!({
            "day": "2026-10-01",
            "recorded_at": "2026-10-04T08:00:00.000+02:00",
            "first_step_pain": 7,
            "locations": ["arch", "heel_bottom"],
            "numbness": "mild",
            "radiating": true,
            "steps": 4200,
            "note": "a \"quoted\" note \\u00e9",
        });
        let cases = [
            vec![whole.clone()],
            vec![
                whole.clone(),
                json!({"locations": null, "first_step_pain": 2}),
            ],
            vec![json!({"first_step_pain": 3})],
            vec![json!({"day": "2026-10-01"})],
            vec![whole.clone(), json!({"first_step_pain": "seven"})],
            vec![whole.clone(), json!({"recorded_at": null})],
            vec![whole, json!({"deleted": false})],
        ];
        for patches in cases {
            let state = state(&patches);
            let text = serde_json::to_string(&state).unwrap();
            assert_eq!(decode_entry(id, &text), expected(&state, id), "{text}");
        }
        assert_eq!(decode_entry(id, "not json"), Err(Undecoded::Invalid));
        let backfilled = decode_entry(
            id,
            &serde_json::to_string(&state(&[json!({
                "day": "2026-10-01", "recorded_at": "2026-10-04T08:00:00.000+02:00"
            })]))
            .unwrap(),
        );
        assert!(backfilled.unwrap().backfilled);
    }

    #[test]
    fn the_text_a_database_hands_back_decodes_too() {
        let id = Uuid::from_u128(1);
        let state = state(&[json!({
            "day": "2026-10-01",
            "recorded_at": "2026-10-01T08:00:00.000+02:00",
            "sitting_pain": 4,
        })]);
        // A JSON column may hand the text back with spaces and its own key order.
        let spaced = serde_json::to_string_pretty(&state).unwrap();
        assert_eq!(decode_entry(id, &spaced), expected(&state, id));
    }
}
