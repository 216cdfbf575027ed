//! One patient's feed made ready for export: the live entries (merged from the operations, with
//! how often each was edited and whether devices disagreed), the deletions inside the export's
//! time range, the first day (study day 0) and the monthly findings.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use heeldiary_core::wire::PulledOp;
use heeldiary_core::{Entry, EntryState};
use heeldiary_trends::{DayHistory, Options as TrendOptions, PeriodSummary};
use uuid::Uuid;

use crate::{ExportKey, Format, Options};

/// What storage hands the exporter for one patient: the whole feed in cursor order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientDiary {
    /// The patient.
    pub patient_id: Uuid,
    /// Every operation of the patient, in cursor order.
    pub ops: Vec<PulledOp>,
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
    /// The merged field values as stored: the text of [`EntryState::to_stored`] (may be empty
    /// for a deleted entry). Kept as text so that an export decodes it straight into the entry.
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
            state: state.to_stored(),
            last_received,
            ops,
        }
    }

    /// The day the stored state describes, when it has a readable one (deleted or not): what
    /// storage orders a patient's entries by for the formats kept in time order.
    pub fn day(&self) -> Option<NaiveDate> {
        EntryState::stored_day(&self.state)
    }

    /// The entry when it is live and its stored values make one.
    pub fn live_entry(&self) -> Option<Entry> {
        if self.deleted {
            return None;
        }
        EntryState::entry_from_stored(self.entry_id, &self.state).ok()
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
    ///
    /// `key` makes the pseudonymous entry key of a row or a deletion (MEDS has none).
    pub fn prepare(self, options: &Options, key: &ExportKey) -> PreparedEntry {
        let sorted = sort_record(&self, options);
        let (edits, conflicted) = match &sorted {
            Sorted::Live(_, true) => self.history_counts(),
            _ => (0, false),
        };
        let keyed = matches!(sorted, Sorted::Live(_, true) | Sorted::Deletion)
            && options.format != Format::Meds;
        PreparedEntry {
            entry_id: self.entry_id,
            entry_key: keyed.then(|| key.entry_key(self.entry_id)),
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
    /// The pseudonymous key of a row or a deletion, made beside the decoding.
    pub(crate) entry_key: Option<String>,
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
    match EntryState::entry_from_stored(record.entry_id, &record.state) {
        Ok(entry) => Sorted::Live(entry, options.covers(record.last_received)),
        Err(e) if e.is_incomplete() => Sorted::Skipped,
        Err(_) => Sorted::Unreadable,
    }
}

/// The summary of each month in `months` (first days), from the day summaries of the whole
/// history: the month is the window, the history up to its last day the context. The months
/// come in order, so the history before each is read once for all of them.
pub(crate) fn monthly_summaries(
    history: &DayHistory,
    first_day: NaiveDate,
    months: &BTreeSet<NaiveDate>,
) -> Vec<(u32, NaiveDate, PeriodSummary)> {
    let first_month = month_start(first_day);
    let mut summaries = history.summaries();
    months
        .iter()
        .map(|&month| {
            let next = month + Months::new(1);
            let last_day = next.pred_opt().unwrap_or(month);
            let options = TrendOptions::new(last_day).with_window_days(last_day.day());
            let summary = summaries.summary(&options);
            (months_between(first_month, month), month, summary)
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
