//! The export of one cohort: created on an [`OutputFiles`], fed one patient at a time, finished
//! with the manifest and the data dictionary.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use chrono::NaiveDate;
use heeldiary_core::Entry;
use heeldiary_trends::{DayHistory, PeriodSummary};
use uuid::Uuid;

use serde::Serialize;
use serde_json::{json, Value};

use crate::columns::{
    deletion_columns, entry_columns, fill_entry_row, findings_columns, summary_columns, Cell,
    Column, EntryFacts, RED_FLAG_KINDS,
};
use crate::diary::{self, EntryRecord, PatientDiary, PreparedEntry, Sorted};
use crate::table::{CsvTable, NdjsonTable, ParquetTable, TableWriter};
use crate::{
    fhir, meds, ExportError, ExportKey, Format, Options, MIN_CELL_PATIENTS, SCHEMA_VERSION,
};

/// Where an export writes: files by relative path (`entries.csv`, `data/0.parquet`). The server
/// hands out files in a temporary folder it renames at the end; tests hand out buffers.
pub trait OutputFiles {
    /// A new, empty file at `path` (folders in it are created as needed).
    fn create(&mut self, path: &str) -> Result<Box<dyn Write + Send>, ExportError>;

    /// Whether what is written to `path` is kept (every file, unless said otherwise). An
    /// export skips the work whose only product is files nobody keeps: the monthly findings
    /// when neither findings file is kept.
    fn keeps(&self, _path: &str) -> bool {
        true
    }
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The format.
    pub format: Format,
    /// Consenting patients exported.
    pub patients: u64,
    /// Rows per table (for MEDS: measurements; for FHIR: resources per type).
    pub rows: BTreeMap<String, u64>,
    /// Aggregate cells withheld because fewer than [`MIN_CELL_PATIENTS`] patients made them.
    pub suppressed_cells: u64,
    /// Entries whose stored values no longer make an entry, left out.
    pub unreadable_entries: u64,
    /// Whether ids, dates and notes were kept.
    pub identified: bool,
    /// The files written, relative to the output folder.
    pub files: Vec<String>,
}

enum Sink {
    Tables {
        ext: &'static str,
        entries: Box<dyn TableWriter>,
        findings: Box<dyn TableWriter>,
        deletions: Option<Box<dyn TableWriter>>,
    },
    Meds(Box<meds::MedsData<Box<dyn Write + Send>>>),
    Fhir {
        patients: Box<dyn Write + Send>,
        observations: Box<dyn Write + Send>,
    },
}

/// One export in progress.
pub struct Exporter {
    options: Options,
    key: ExportKey,
    sink: Sink,
    files: Vec<String>,
    rows: BTreeMap<String, u64>,
    patients: u64,
    unreadable: u64,
    /// Patients per (study month, pattern): the aggregate table.
    cells: BTreeMap<(u32, &'static str), u64>,
    /// Whether the monthly findings are worked out: a findings file is written and kept.
    findings: bool,
    /// The patient being added.
    current: Option<Current>,
    /// The cells of the entry row being written, kept between rows.
    row: Vec<Cell>,
}

/// The patient being streamed: what its findings need once its entries are in.
struct Current {
    patient_id: Uuid,
    subject: i64,
    first_day: Option<NaiveDate>,
    /// One summary per logged day, when the findings are worked out: bounded by the days of
    /// the diary, not its entries.
    days: DayHistory,
    /// First days of the months holding an exported entry.
    months: BTreeSet<NaiveDate>,
    entries: u64,
    deletions: u64,
    /// FHIR Observations written.
    observations: u64,
}

fn table(
    format: Format,
    out: Box<dyn Write + Send>,
    columns: &[Column],
) -> Result<Box<dyn TableWriter>, ExportError> {
    Ok(match format {
        Format::Csv => Box::new(CsvTable::new(out, columns)?),
        Format::Parquet => Box::new(ParquetTable::new(out, columns)?),
        _ => Box::new(NdjsonTable::new(out, columns)),
    })
}

impl Exporter {
    /// Starts an export: checks the options and creates the data files.
    ///
    /// # Failure
    /// [`ExportError::Invalid`] for options that contradict each other; an I/O error when a
    /// file cannot be created.
    pub fn new(
        options: Options,
        key: ExportKey,
        files: &mut dyn OutputFiles,
    ) -> Result<Self, ExportError> {
        options.check()?;
        let findings = match options.format {
            Format::Csv | Format::Ndjson | Format::Parquet => {
                let ext = options.format.as_str();
                files.keeps(&format!("findings.{ext}"))
                    || files.keeps(&format!("findings-summary.{ext}"))
            }
            Format::Meds | Format::Fhir => false,
        };
        let mut created = Vec::new();
        let mut create = |path: String| -> Result<Box<dyn Write + Send>, ExportError> {
            let out = files.create(&path)?;
            created.push(path);
            Ok(out)
        };
        let identified = options.identified;
        let sink = match options.format {
            Format::Csv | Format::Ndjson | Format::Parquet => {
                let ext = options.format.as_str();
                let entries = table(
                    options.format,
                    create(format!("entries.{ext}"))?,
                    &entry_columns(identified),
                )?;
                let findings = table(
                    options.format,
                    create(format!("findings.{ext}"))?,
                    &findings_columns(identified),
                )?;
                let deletions = match options.since {
                    Some(_) => Some(table(
                        options.format,
                        create(format!("deletions.{ext}"))?,
                        &deletion_columns(identified),
                    )?),
                    None => None,
                };
                Sink::Tables {
                    ext,
                    entries,
                    findings,
                    deletions,
                }
            }
            Format::Meds => Sink::Meds(Box::new(meds::MedsData::new(create(
                "data/0.parquet".into(),
            )?)?)),
            Format::Fhir => Sink::Fhir {
                patients: create("Patient.ndjson".into())?,
                observations: create("Observation.ndjson".into())?,
            },
        };
        Ok(Exporter {
            options,
            key,
            sink,
            files: created,
            rows: BTreeMap::new(),
            patients: 0,
            unreadable: 0,
            cells: BTreeMap::new(),
            findings,
            current: None,
            row: Vec::new(),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &Options {
        &self.options
    }

    fn count(&mut self, table: &str, n: u64) {
        *self.rows.entry(table.to_string()).or_default() += n;
    }

    /// Adds one consenting patient from its whole feed, its entries in the order a streamed
    /// export of the format takes them (see [`Format::in_day_order`]). A patient with nothing
    /// in the time range adds no rows. [`start_patient`](Self::start_patient) and
    /// [`add_entry`](Self::add_entry) do the same one entry at a time, in flat memory.
    pub fn add(&mut self, diary: &PatientDiary) -> Result<(), ExportError> {
        let mut records = diary::records(diary);
        if self.options.format.in_day_order() {
            records.sort_by_cached_key(|r| (r.day(), r.entry_id));
        }
        let first_day = records
            .iter()
            .filter_map(|r| match diary::sort_record(r, &self.options) {
                Sorted::Live(entry, _) => Some(entry.day),
                _ => None,
            })
            .min();
        self.start_patient(diary.patient_id, first_day)?;
        for record in records {
            self.add_entry(record)?;
        }
        self.finish_patient().map(|_| ())
    }

    /// Starts a patient whose entries follow through [`add_entry`](Self::add_entry), in any
    /// order, then [`finish_patient`](Self::finish_patient). `first_day` is the day of the
    /// patient's first live entry (study day 0).
    ///
    /// # Failure
    /// [`ExportError::Invalid`] when the previous patient was not finished.
    pub fn start_patient(
        &mut self,
        patient_id: Uuid,
        first_day: Option<NaiveDate>,
    ) -> Result<(), ExportError> {
        if self.current.is_some() {
            return Err(ExportError::Invalid(
                "a patient was started before the previous one was finished".into(),
            ));
        }
        self.current = Some(Current {
            patient_id,
            subject: self.key.subject_id(patient_id),
            first_day,
            days: DayHistory::default(),
            months: BTreeSet::new(),
            entries: 0,
            deletions: 0,
            observations: 0,
        });
        Ok(())
    }

    /// Adds one stored entry of the patient started last: a row when it is live and in range,
    /// a deletion when it was deleted in range (with `since`), and its day to the history the
    /// monthly findings read.
    ///
    /// # Failure
    /// [`ExportError::Invalid`] when no patient was started; a write error.
    pub fn add_entry(&mut self, record: EntryRecord) -> Result<(), ExportError> {
        let prepared = record.prepare(&self.options, &self.key);
        self.add_prepared(prepared)
    }

    /// [`add_entry`](Self::add_entry) of a record prepared already, with the same options and the
    /// same key as this export (the entry keys it carries are written as they are).
    ///
    /// # Failure
    /// [`ExportError::Invalid`] when no patient was started; a write error.
    pub fn add_prepared(&mut self, prepared: PreparedEntry) -> Result<(), ExportError> {
        let Some(current) = self.current.as_mut() else {
            return Err(ExportError::Invalid("no patient was started".into()));
        };
        let identified = self.options.identified;
        let PreparedEntry {
            entry_id,
            entry_key,
            sorted,
            edits,
            conflicted,
        } = prepared;
        let key = &self.key;
        let entry_key = || entry_key.unwrap_or_else(|| key.entry_key(entry_id));
        match sorted {
            Sorted::Deletion => {
                if let Sink::Tables {
                    deletions: Some(table),
                    ..
                } = &mut self.sink
                {
                    let mut row = vec![Cell::Int(current.subject), Cell::Text(entry_key())];
                    if identified {
                        row.push(Cell::Text(entry_id.to_string()));
                    }
                    table.write_row(&row)?;
                }
                current.deletions += 1;
            }
            Sorted::Skipped => {}
            Sorted::Unreadable => self.unreadable += 1,
            Sorted::Live(entry, exported) => {
                if self.findings {
                    current.days.add(&entry);
                }
                if exported {
                    let facts = (edits, conflicted, identified);
                    write_entry(
                        &mut self.sink,
                        entry_key,
                        current,
                        &entry,
                        facts,
                        &mut self.row,
                    )?;
                    current.months.insert(diary::month_start(entry.day));
                    current.entries += 1;
                }
            }
        }
        Ok(())
    }

    /// Finishes the patient started last: its monthly findings and counts. Returns whether the
    /// patient contributed a row (an entry or a deletion in range).
    ///
    /// # Failure
    /// [`ExportError::Invalid`] when no patient was started; a write error.
    pub fn finish_patient(&mut self) -> Result<bool, ExportError> {
        let Some(current) = self.current.take() else {
            return Err(ExportError::Invalid("no patient was started".into()));
        };
        if current.entries == 0 && current.deletions == 0 {
            return Ok(false);
        }
        self.patients += 1;
        let identified = self.options.identified;
        let subject = current.subject;
        let findings = match current.first_day.or(current.days.first_day()) {
            Some(first_day) if self.findings => {
                diary::monthly_summaries(&current.days, first_day, &current.months)
            }
            _ => Vec::new(),
        };
        for (study_month, _, summary) in &findings {
            if summary.days_logged > 0 {
                *self
                    .cells
                    .entry((*study_month, summary.pattern.as_str()))
                    .or_default() += 1;
            }
        }
        match &mut self.sink {
            Sink::Tables {
                findings: findings_table,
                ..
            } => {
                let mut finding_rows = 0;
                for (study_month, month, summary) in &findings {
                    findings_table.write_row(&finding_row(
                        subject,
                        *study_month,
                        *month,
                        summary,
                        identified,
                    ))?;
                    finding_rows += 1;
                }
                self.count("entries", current.entries);
                if self.findings {
                    self.count("findings", finding_rows);
                }
                if self.options.since.is_some() {
                    self.count("deletions", current.deletions);
                }
            }
            Sink::Meds(_) => {}
            Sink::Fhir { patients, .. } => {
                write_line(
                    patients,
                    &fhir::patient_resource(subject, current.patient_id, identified),
                )?;
                self.count("Patient", 1);
                self.count("Observation", current.observations);
            }
        }
        Ok(true)
    }

    /// Closes the data files and writes the aggregate table, the manifest and the data
    /// dictionary.
    pub fn finish(mut self, files: &mut dyn OutputFiles) -> Result<Summary, ExportError> {
        let created_at = self
            .options
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let identified = self.options.identified;
        let mut suppressed = 0;
        let sink = std::mem::replace(
            &mut self.sink,
            Sink::Fhir {
                patients: Box::new(std::io::sink()),
                observations: Box::new(std::io::sink()),
            },
        );
        match sink {
            Sink::Tables {
                ext,
                entries,
                findings,
                deletions,
            } => {
                entries.finish()?;
                findings.finish()?;
                if let Some(d) = deletions {
                    d.finish()?;
                }
                let path = format!("findings-summary.{ext}");
                let mut summary = table(
                    self.options.format,
                    files.create(&path)?,
                    &summary_columns(),
                )?;
                self.files.push(path);
                let mut written = 0;
                for ((study_month, kind), patients) in &self.cells {
                    let small = *patients < u64::from(MIN_CELL_PATIENTS);
                    suppressed += u64::from(small);
                    summary.write_row(&[
                        Cell::Int((*study_month).into()),
                        Cell::Text(kind.to_string()),
                        if small {
                            Cell::Null
                        } else {
                            Cell::Int(*patients as i64)
                        },
                        Cell::Bool(small),
                    ])?;
                    written += 1;
                }
                summary.finish()?;
                self.count("findings-summary", written);
            }
            Sink::Meds(data) => {
                let n = data.finish()?;
                self.count("data", n);
                let n = meds::write_codes(files.create("metadata/codes.parquet")?)?;
                self.files.push("metadata/codes.parquet".into());
                self.count("codes", n);
                write_json(
                    files,
                    &mut self.files,
                    "metadata/dataset.json",
                    &meds::dataset(identified, &created_at),
                )?;
            }
            Sink::Fhir {
                mut patients,
                mut observations,
            } => {
                patients
                    .flush()
                    .map_err(ExportError::io("Patient.ndjson"))?;
                observations
                    .flush()
                    .map_err(ExportError::io("Observation.ndjson"))?;
            }
        }
        let summary = Summary {
            format: self.options.format,
            patients: self.patients,
            rows: self.rows.clone(),
            suppressed_cells: suppressed,
            unreadable_entries: self.unreadable,
            identified,
            files: Vec::new(),
        };
        let manifest = self.manifest(&summary, &created_at);
        write_json(files, &mut self.files, "manifest.json", &manifest)?;
        let dictionary = data_dictionary(self.options.format, identified);
        write_json(files, &mut self.files, "data-dictionary.json", &dictionary)?;
        let mut md = files.create("data-dictionary.md")?;
        md.write_all(dictionary_markdown(&dictionary).as_bytes())
            .and_then(|()| md.flush())
            .map_err(ExportError::io("data-dictionary.md"))?;
        self.files.push("data-dictionary.md".into());
        Ok(Summary {
            files: self.files,
            ..summary
        })
    }

    fn manifest(&self, summary: &Summary, created_at: &str) -> Value {
        let options = json!({
            "format": self.options.format,
            "since": self.options.since.map(|d| d.to_string()),
            "until": self.options.until.map(|d| d.to_string()),
            "identified": self.options.identified,
        });
        let ours = json!({
            "schema_version": SCHEMA_VERSION,
            "created_at": created_at,
            "exporter": format!("heeldiary-export {}", env!("CARGO_PKG_VERSION")),
            "patients": summary.patients,
            "row_counts": summary.rows,
            "suppressed_cells": summary.suppressed_cells,
            "min_cell_patients": MIN_CELL_PATIENTS,
            "unreadable_entries": summary.unreadable_entries,
            "options": options,
            "de_identified": !self.options.identified,
        });
        if self.options.format != Format::Fhir {
            return ours;
        }
        // The FHIR Bulk Data manifest, with ours as an extension.
        let output: Vec<Value> = ["Patient", "Observation"]
            .iter()
            .map(|kind| {
                json!({
                    "type": kind,
                    "url": format!("{kind}.ndjson"),
                    "count": summary.rows.get(*kind).copied().unwrap_or(0),
                })
            })
            .collect();
        json!({
            "transactionTime": created_at,
            "request": "heeldiary-server export --format fhir",
            "requiresAccessToken": false,
            "output": output,
            "error": [],
            "extension": {"heeldiary": ours},
        })
    }
}

/// Writes one live entry in range to the export's data files: an entries row, its MEDS
/// measurements, or its FHIR Observations. Entries arrive in the order the files keep.
fn write_entry(
    sink: &mut Sink,
    entry_key: impl FnOnce() -> String,
    current: &mut Current,
    entry: &Entry,
    (edits, conflicted, identified): (u32, bool, bool),
    row: &mut Vec<Cell>,
) -> Result<(), ExportError> {
    match sink {
        Sink::Tables { entries, .. } => {
            // An entry before the first day given is its own study day 0.
            let first_day = current.first_day.map_or(entry.day, |d| d.min(entry.day));
            fill_entry_row(
                EntryFacts {
                    subject_id: current.subject,
                    entry_key: entry_key(),
                    patient_id: current.patient_id,
                    first_day,
                    entry,
                    edits,
                    conflicted,
                },
                identified,
                row,
            );
            entries.write_row(row)
        }
        // Study day 0 is the first day given; a patient without one has no measurements.
        Sink::Meds(data) => match current.first_day {
            Some(first_day) => data.add_entry(current.subject, first_day, entry, identified),
            None => Ok(()),
        },
        Sink::Fhir { observations, .. } => {
            let Some(first_day) = current.first_day else {
                return Ok(());
            };
            let facts = fhir::EntryFacts {
                subject: current.subject,
                entry_key: &entry_key(),
                first_day,
                identified,
            };
            for observation in fhir::entry_observations(&facts, entry) {
                write_line(observations, &observation)?;
                current.observations += 1;
            }
            Ok(())
        }
    }
}

fn finding_row(
    subject: i64,
    study_month: u32,
    month: chrono::NaiveDate,
    summary: &PeriodSummary,
    identified: bool,
) -> Vec<Cell> {
    let float = |x: Option<f64>| x.map_or(Cell::Null, Cell::Float);
    let mut row = vec![
        Cell::Int(subject),
        Cell::Int(chrono::Datelike::year(&month).into()),
        Cell::Int(study_month.into()),
    ];
    if identified {
        row.push(Cell::Text(month.format("%Y-%m").to_string()));
    }
    row.push(Cell::Int(summary.days_logged.into()));
    row.push(Cell::Text(summary.pattern.as_str().into()));
    row.push(Cell::Float(summary.scores.foot));
    row.push(Cell::Float(summary.scores.back));
    for trend in &summary.trends {
        row.push(Cell::Text(trend.direction.as_str().into()));
        row.push(float(trend.slope_per_week));
        row.push(float(trend.p));
    }
    row.push(Cell::Int(summary.red_flags.len() as i64));
    for kind in RED_FLAG_KINDS {
        row.push(Cell::Bool(summary.red_flags.contains(&kind)));
    }
    row
}

fn write_line(out: &mut Box<dyn Write + Send>, value: &impl Serialize) -> Result<(), ExportError> {
    serde_json::to_writer(&mut *out, value).map_err(|e| ExportError::io("ndjson")(e.into()))?;
    out.write_all(b"\n").map_err(ExportError::io("ndjson"))
}

fn write_json(
    files: &mut dyn OutputFiles,
    created: &mut Vec<String>,
    path: &str,
    value: &Value,
) -> Result<(), ExportError> {
    let mut out = files.create(path)?;
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| ExportError::io(path)(e.into()))?;
    out.write_all(b"\n")
        .and_then(|()| out.flush())
        .map_err(ExportError::io(path))?;
    created.push(path.to_string());
    Ok(())
}

/// The data dictionary: every table, every column with its type, unit, allowed values and
/// whether it is ordinal, and notes on reading the data.
pub fn data_dictionary(format: Format, identified: bool) -> Value {
    let tables = json!({
        "entries": entry_columns(identified),
        "findings": findings_columns(identified),
        "findings-summary": summary_columns(),
        "deletions": deletion_columns(identified),
    });
    let mut notes = vec![
        "The 0-10 scores are ordinal ratings: summarise them with rank statistics (median, \
         quantiles, Mann-Whitney, Kendall), not means and standard deviations."
            .to_string(),
        "Findings describe patterns consistent with a source of heel pain; they are not \
         diagnoses."
            .to_string(),
        format!(
            "Aggregate cells built from fewer than {MIN_CELL_PATIENTS} patients are suppressed \
             (empty, with suppressed = true)."
        ),
    ];
    if !identified {
        notes.push(
            "De-identified: no calendar dates (study_day counts days from each patient's first \
             entry; year is kept), no notes, labels, device ids or entry ids."
                .into(),
        );
    }
    let format_note = match format {
        Format::Meds => json!({
            "data": "data/*.parquet: subject_id (int64), time (timestamp), code, numeric_value (float32), text_value",
            "codes": "HEELDIARY//<field> for numbers and yes/no (1 or 0); HEELDIARY//<field>//<word> for words; see metadata/codes.parquet",
        }),
        Format::Fhir => json!({
            "Patient": "one per subject; identifier system urn:heeldiary:fhir:subject-id",
            "Observation": format!(
                "one per answered field; pain ratings LOINC 72514-3 with the situation in code.text and the extension {}; study day in the extension {} (de-identified) or effectiveDateTime (identified)",
                fhir::SITUATION_URL, fhir::STUDY_DAY_URL
            ),
        }),
        _ => Value::Null,
    };
    json!({
        "schema_version": SCHEMA_VERSION,
        "format": format,
        "de_identified": !identified,
        "tables": tables,
        "format_notes": format_note,
        "notes": notes,
    })
}

fn dictionary_markdown(dictionary: &Value) -> String {
    let mut md = String::from("# heeldiary export: data dictionary\n\n");
    for note in dictionary["notes"].as_array().into_iter().flatten() {
        md.push_str(&format!("- {}\n", note.as_str().unwrap_or_default()));
    }
    if let Some(tables) = dictionary["tables"].as_object() {
        for (name, columns) in tables {
            md.push_str(&format!(
                "\n## {name}\n\n| column | type | unit | allowed | ordinal | meaning |\n|---|---|---|---|---|---|\n"
            ));
            for c in columns.as_array().into_iter().flatten() {
                let text = |k: &str| match &c[k] {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                md.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} |\n",
                    text("name"),
                    text("type"),
                    text("unit"),
                    text("allowed").replace('|', "/"),
                    if c["ordinal"] == Value::Bool(true) {
                        "yes"
                    } else {
                        ""
                    },
                    text("description")
                ));
            }
        }
    }
    if let Some(notes) = dictionary["format_notes"].as_object() {
        md.push_str("\n## format\n\n");
        for (k, v) in notes {
            md.push_str(&format!("- **{k}**: {}\n", v.as_str().unwrap_or_default()));
        }
    }
    md
}
