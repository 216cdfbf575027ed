//! What the dashboard shows of a patient, read from storage and analysed with the same trends
//! engine as the device: the live entries, their edit history, and the trend report.

use std::collections::HashMap;

use chrono::NaiveDate;
use heeldiary_core::wire::{EntryResponse, PulledOp, MAX_PULL_LIMIT};
use heeldiary_core::{Entry, EntryState};
use heeldiary_trends::{analyse, Options, Report};
use uuid::Uuid;

use super::PatientSummary;
use crate::storage::{Storage, StorageError};

/// The span of days the patient page charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// The last 4 weeks.
    Weeks4,
    /// The last 3 months.
    Months3,
    /// The last year.
    Year1,
    /// Everything.
    All,
}

impl Range {
    /// Every range, shortest first.
    pub const ALL: [Range; 4] = [Range::Weeks4, Range::Months3, Range::Year1, Range::All];

    /// The range named by `range=` in a query string; 4 weeks by default.
    pub fn from_query(query: &str) -> Range {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == "range")
            .and_then(|(_, value)| Range::ALL.into_iter().find(|r| r.key() == value))
            .unwrap_or(Range::Weeks4)
    }

    /// Its word in the query string.
    pub fn key(self) -> &'static str {
        match self {
            Range::Weeks4 => "4w",
            Range::Months3 => "3m",
            Range::Year1 => "1y",
            Range::All => "all",
        }
    }

    /// Its name on the page.
    pub fn label(self) -> &'static str {
        match self {
            Range::Weeks4 => "4 weeks",
            Range::Months3 => "3 months",
            Range::Year1 => "1 year",
            Range::All => "all",
        }
    }

    /// Days back from today, or `None` for everything.
    pub fn days(self) -> Option<u64> {
        match self {
            Range::Weeks4 => Some(28),
            Range::Months3 => Some(91),
            Range::Year1 => Some(365),
            Range::All => None,
        }
    }

    /// Whether the chart adds a 7-day moving average (the long ranges).
    pub fn smoothed(self) -> bool {
        self != Range::Weeks4
    }
}

/// A patient's diary as the dashboard shows it.
#[derive(Debug, Clone)]
pub struct PatientData {
    /// Live (not deleted) entries, by day then time of recording.
    pub entries: Vec<Entry>,
    /// The operations on each entry, in cursor order (empty unless asked for).
    pub history: HashMap<Uuid, Vec<PulledOp>>,
    /// The trend report as of today, over the default window.
    pub report: Report,
}

impl PatientData {
    /// The day of the latest entry.
    pub fn last_day(&self) -> Option<NaiveDate> {
        self.entries.iter().map(|e| e.day).max()
    }
}

/// Every operation of the patient, page by page.
async fn all_ops<S: Storage>(storage: &S, patient_id: Uuid) -> Result<Vec<PulledOp>, StorageError> {
    let mut ops = Vec::new();
    let mut after = 0;
    loop {
        let page = storage.pull(patient_id, after, MAX_PULL_LIMIT).await?;
        if let Some(last) = page.ops.last() {
            after = last.cursor;
        }
        ops.extend(page.ops);
        if !page.has_more {
            return Ok(ops);
        }
    }
}

/// Live entries of the stored states (an entry still waiting for its creating operation, or one
/// that cannot be read, is left out).
fn live_entries(states: Vec<(Uuid, EntryState)>) -> Vec<Entry> {
    let mut entries: Vec<Entry> = states
        .into_iter()
        .filter_map(|(id, state)| state.to_entry(id).ok())
        .filter(|e| !e.deleted)
        .collect();
    entries.sort_by_key(|e| (e.day, e.recorded_at));
    entries
}

/// Loads a patient's diary and analyses it as of `today`.
pub async fn load<S: Storage>(
    storage: &S,
    patient_id: Uuid,
    today: NaiveDate,
    with_history: bool,
) -> Result<PatientData, StorageError> {
    let entries = live_entries(storage.patient_entries(patient_id).await?);
    let mut history: HashMap<Uuid, Vec<PulledOp>> = HashMap::new();
    if with_history {
        for op in all_ops(storage, patient_id).await? {
            history.entry(op.op.entry_id).or_default().push(op);
        }
    }
    let report = analyse(&entries, &Options::new(today));
    Ok(PatientData {
        entries,
        history,
        report,
    })
}

/// The patients a provider may read, red flags first, then by latest entry.
pub async fn patient_list<S: Storage>(
    storage: &S,
    provider_id: Uuid,
    today: NaiveDate,
) -> Result<Vec<PatientSummary>, StorageError> {
    let patients = storage
        .provider_patients(provider_id, chrono::Utc::now())
        .await?;
    let mut rows = Vec::with_capacity(patients.len());
    for patient in patients {
        let data = load(storage, patient.patient_id, today, false).await?;
        rows.push(PatientSummary {
            patient_id: patient.patient_id,
            label: patient.label,
            access: patient.access,
            last_entry_day: data.last_day(),
            days_logged_28: data.report.adherence.days_logged,
            pattern: data.report.pattern.kind,
            pattern_summary: data.report.pattern.kind.describe().to_string(),
            red_flags: data.report.red_flags.iter().map(|f| f.kind).collect(),
        });
    }
    rows.sort_by(|a, b| {
        a.red_flags
            .is_empty()
            .cmp(&b.red_flags.is_empty())
            .then(b.last_entry_day.cmp(&a.last_entry_day))
            .then(a.patient_id.cmp(&b.patient_id))
    });
    Ok(rows)
}

/// The clinic's label of a patient the provider may read.
pub async fn label_of<S: Storage>(
    storage: &S,
    provider_id: Uuid,
    patient_id: Uuid,
) -> Result<Option<String>, StorageError> {
    Ok(storage
        .provider_patients(provider_id, chrono::Utc::now())
        .await?
        .into_iter()
        .find(|p| p.patient_id == patient_id)
        .and_then(|p| p.label))
}

/// Every entry of the patient with its merged state and history, as `GET /v1/entries/{id}`
/// answers one.
pub async fn entry_responses<S: Storage>(
    storage: &S,
    patient_id: Uuid,
) -> Result<Vec<EntryResponse>, StorageError> {
    let states = storage.patient_entries(patient_id).await?;
    let mut history: HashMap<Uuid, Vec<PulledOp>> = HashMap::new();
    for op in all_ops(storage, patient_id).await? {
        history.entry(op.op.entry_id).or_default().push(op);
    }
    Ok(states
        .into_iter()
        .map(|(entry_id, state)| {
            let ops = history.remove(&entry_id).unwrap_or_default();
            EntryResponse {
                entry_id,
                entry: state.to_entry(entry_id).ok(),
                // The whole history, in one page.
                next_cursor: ops.last().map_or(0, |op| op.cursor),
                has_more: false,
                ops,
                state,
            }
        })
        .collect())
}
