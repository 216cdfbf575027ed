//! One patient's feed made ready for export: the live entries (merged from the operations, with
//! how often each was edited and whether devices disagreed), the deletions inside the export's
//! time range, the first day (study day 0) and the monthly findings.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use heeldiary_core::wire::PulledOp;
use heeldiary_core::{Entry, EntryState};
use heeldiary_trends::{analyse, Options as TrendOptions, Report};
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

struct Folded {
    state: EntryState,
    first_op: bool,
    edits: u32,
    conflicted: bool,
    last_received: DateTime<Utc>,
}

impl PreparedPatient {
    /// Merges the feed and keeps what `options` asks for.
    pub fn new(diary: &PatientDiary, options: &Options) -> Self {
        let mut folded: BTreeMap<Uuid, Folded> = BTreeMap::new();
        for pulled in &diary.ops {
            let op = &pulled.op;
            let slot = folded.entry(op.entry_id).or_insert_with(|| Folded {
                state: EntryState::default(),
                first_op: true,
                edits: 0,
                conflicted: false,
                last_received: pulled.received_at,
            });
            let outcome = slot.state.apply(op);
            if !slot.first_op && !op.is_tombstone() {
                slot.edits += 1;
            }
            slot.first_op = false;
            slot.conflicted |= !outcome.conflicts.is_empty();
            slot.last_received = slot.last_received.max(pulled.received_at);
        }
        let mut prepared = PreparedPatient {
            patient_id: diary.patient_id,
            first_day: None,
            entries: Vec::new(),
            deletions: Vec::new(),
            history: Vec::new(),
            unreadable: 0,
        };
        for (id, f) in folded {
            if f.state.is_deleted() {
                if options.since.is_some() && options.covers(f.last_received) {
                    prepared.deletions.push(id);
                }
                continue;
            }
            let entry = match f.state.to_entry(id) {
                Ok(entry) => entry,
                Err(e) if e.is_incomplete() => continue,
                Err(_) => {
                    prepared.unreadable += 1;
                    continue;
                }
            };
            prepared.first_day = Some(prepared.first_day.map_or(entry.day, |d| d.min(entry.day)));
            if options.covers(f.last_received) {
                prepared.entries.push(ExportedEntry {
                    entry: entry.clone(),
                    edits: f.edits,
                    conflicted: f.conflicted,
                });
            }
            prepared.history.push(entry);
        }
        prepared.entries.sort_by_key(|e| (e.entry.day, e.entry.id));
        prepared.history.sort_by_key(|e| (e.day, e.id));
        prepared
    }

    /// The analysis of each calendar month with a logged day, from the first entry's month to
    /// the last's: `(study_month, first day of the month, report)`. Only months that hold an
    /// exported entry's day are returned, so an incremental export carries the months it
    /// touches.
    pub fn monthly_findings(&self) -> Vec<(u32, NaiveDate, Report)> {
        let Some(first) = self.first_day else {
            return Vec::new();
        };
        let months: std::collections::BTreeSet<NaiveDate> = self
            .entries
            .iter()
            .map(|e| month_start(e.entry.day))
            .collect();
        let first_month = month_start(first);
        let mut out = Vec::with_capacity(months.len());
        for month in months {
            let next = month + Months::new(1);
            let last_day = next.pred_opt().unwrap_or(month);
            let upto = self.history.partition_point(|e| e.day < next);
            let options = TrendOptions::new(last_day).with_window_days(last_day.day());
            let report = analyse(&self.history[..upto], &options);
            let study_month = months_between(first_month, month);
            out.push((study_month, month, report));
        }
        out
    }
}

fn month_start(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

fn months_between(from: NaiveDate, to: NaiveDate) -> u32 {
    let months = (to.year() - from.year()) * 12 + to.month() as i32 - from.month() as i32;
    months.max(0) as u32
}
