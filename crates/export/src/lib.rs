//! Analyst export: turns patients' operation feeds into cohort files that pandas, DuckDB, R, the
//! MEDS event-stream tools and FHIR servers read: CSV, NDJSON, Parquet, MEDS and FHIR R4 bulk
//! NDJSON, with a manifest and a data dictionary.
//!
//! De-identified by default: patients are keyed by an HMAC-SHA256 pseudonym under the server's
//! export key, calendar dates become study days (days since the patient's first entry) and the
//! year, notes and every id are left out, and aggregate cells built from fewer than
//! [`MIN_CELL_PATIENTS`] patients are suppressed. `identified` keeps ids, dates and notes.
//!
//! The columns of the entries table come from the core's field table
//! ([`heeldiary_core::Field`]): a field added there is exported in every format by its kind,
//! with no second list to keep. Findings come from the `trends` crate.
//!
//! The crate is pure: it writes to whatever [`OutputFiles`] hands it (any `std::io::Write`) and
//! never opens a file, a socket or a database. It must never depend on a storage or network
//! crate, nor on any heeldiary crate other than `heeldiary-core` and `heeldiary-trends`; the
//! server reads storage and feeds it one patient at a time, so memory stays flat whatever the
//! size of the cohort.

mod columns;
mod diary;
mod exporter;
mod fhir;
mod key;
mod meds;
mod table;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

pub use columns::{entry_columns, findings_columns, Cell, Column, ColumnType, WordList};
pub use diary::{EntryRecord, PatientDiary, PreparedEntry};
pub use exporter::{data_dictionary, Exporter, OutputFiles, Summary};
pub use key::{ExportKey, KEY_BYTES};
pub use table::{CsvTable, NdjsonTable, ParquetTable, TableWriter};

/// Version of the layout of the exported files; bumped when a column changes meaning.
pub const SCHEMA_VERSION: u32 = 1;

/// Fewest patients an aggregate cell may be built from; smaller cells are suppressed (the CMS
/// cell-size rule).
pub const MIN_CELL_PATIENTS: u32 = 11;

/// Why an export failed. Messages carry no personal data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Writing an output failed.
    #[error("cannot write {what}: {source}")]
    Io {
        /// The file or stream.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The Parquet or Arrow encoder refused.
    #[error("parquet: {0}")]
    Parquet(String),
    /// The CSV encoder refused.
    #[error("csv: {0}")]
    Csv(String),
    /// An option does not make sense.
    #[error("{0}")]
    Invalid(String),
}

impl ExportError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ExportError {
        let what = what.into();
        move |source| ExportError::Io { what, source }
    }
}

/// The file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    Ndjson,
    /// Apache Parquet with typed columns.
    Parquet,
    /// The MEDS event-stream layout (`data/*.parquet`, `metadata/`).
    Meds,
    /// FHIR R4 resources, one NDJSON file per resource type, with a Bulk Data manifest.
    Fhir,
}

impl Format {
    /// Every format, in the order help lists them.
    pub const ALL: [Format; 5] = [
        Format::Csv,
        Format::Ndjson,
        Format::Parquet,
        Format::Meds,
        Format::Fhir,
    ];

    /// Whether the format keeps a patient's entries in time order (MEDS events, FHIR
    /// Observations): a streamed export feeds them by day, then id; the others by id.
    pub fn in_day_order(self) -> bool {
        matches!(self, Format::Meds | Format::Fhir)
    }

    /// The word used on the command line and in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
            Format::Parquet => "parquet",
            Format::Meds => "meds",
            Format::Fhir => "fhir",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = ExportError;
    fn from_str(s: &str) -> Result<Self, ExportError> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                ExportError::Invalid(format!(
                    "unknown format `{s}`; expected one of: csv, ndjson, parquet, meds, fhir"
                ))
            })
    }
}

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Options {
    /// The file format.
    pub format: Format,
    /// Only entries the server received a change of on or after this day (UTC); also lists
    /// the entries deleted since then.
    pub since: Option<NaiveDate>,
    /// Only entries last changed on or before this day (UTC).
    pub until: Option<NaiveDate>,
    /// Keep patient ids, entry ids, calendar dates and notes (admin command line only).
    pub identified: bool,
    /// When the export was made.
    pub created_at: DateTime<Utc>,
}

impl Options {
    /// De-identified options for `format` over everything, made at `created_at`.
    pub fn new(format: Format, created_at: DateTime<Utc>) -> Self {
        Options {
            format,
            since: None,
            until: None,
            identified: false,
            created_at,
        }
    }

    /// Checks the options against each other.
    ///
    /// # Failure
    /// [`ExportError::Invalid`] when `since` is after `until`.
    pub fn check(&self) -> Result<(), ExportError> {
        if let (Some(since), Some(until)) = (self.since, self.until) {
            if since > until {
                return Err(ExportError::Invalid(format!(
                    "--since {since} is after --until {until}"
                )));
            }
        }
        Ok(())
    }

    /// Whether a change received at `at` falls inside `since ..= until`.
    pub fn covers(&self, at: DateTime<Utc>) -> bool {
        let day = at.date_naive();
        self.since.is_none_or(|since| day >= since) && self.until.is_none_or(|until| day <= until)
    }
}
