//! The MEDS layout (Medical Event Data Standard): `data/*.parquet` with one row per measurement
//! (`subject_id`, `time`, `code`, `numeric_value`, `text_value`), `metadata/codes.parquet`
//! describing every code, and `metadata/dataset.json`. Codes come from the field table:
//! `HEELDIARY//<field>` for numbers and yes/no (1 or 0), `HEELDIARY//<field>//<word>` for words.
//! In a de-identified export `time` is a fixed epoch plus the study day.

use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{
    Float32Builder, Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field as ArrowField, Schema, SchemaRef, TimeUnit};
use chrono::NaiveDate;
use heeldiary_core::{Entry, Field, FieldRef, Kind, Writer};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::{json, Value};

use crate::fhir::loinc_of;
use crate::ExportError;

/// The day study day 0 is placed on in a de-identified MEDS export.
pub(crate) fn deidentified_epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("a valid day")
}

/// The MEDS version the layout follows.
pub(crate) const MEDS_VERSION: &str = "0.3.3";

const BATCH_ROWS: usize = 65_536;

fn data_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        ArrowField::new("subject_id", DataType::Int64, false),
        ArrowField::new(
            "time",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
        ArrowField::new("code", DataType::Utf8, false),
        ArrowField::new("numeric_value", DataType::Float32, true),
        ArrowField::new("text_value", DataType::Utf8, true),
    ]))
}

fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by(format!("heeldiary-export {}", env!("CARGO_PKG_VERSION")))
        .build()
}

fn parquet_error(e: impl std::fmt::Display) -> ExportError {
    ExportError::Parquet(e.to_string())
}

/// The code prefix of this data set.
const PREFIX: &str = "HEELDIARY";

fn field_code(field: Field) -> String {
    format!("{PREFIX}//{}", field.as_str())
}

fn word_code(field: Field, word: &str) -> String {
    format!("{PREFIX}//{}//{word}", field.as_str())
}

/// Writes `data/0.parquet`, one patient at a time.
pub(crate) struct MedsData<W: Write + Send> {
    writer: ArrowWriter<W>,
    subject: Int64Builder,
    time: TimestampMicrosecondBuilder,
    code: StringBuilder,
    numeric: Float32Builder,
    text: StringBuilder,
    pending: usize,
    rows: u64,
}

impl<W: Write + Send> MedsData<W> {
    pub(crate) fn new(out: W) -> Result<Self, ExportError> {
        Ok(MedsData {
            writer: ArrowWriter::try_new(out, data_schema(), Some(properties()))
                .map_err(parquet_error)?,
            subject: Int64Builder::new(),
            time: TimestampMicrosecondBuilder::new(),
            code: StringBuilder::new(),
            numeric: Float32Builder::new(),
            text: StringBuilder::new(),
            pending: 0,
            rows: 0,
        })
    }

    fn push(
        &mut self,
        subject: i64,
        day: NaiveDate,
        code: String,
        numeric: Option<f32>,
        text: Option<&str>,
    ) {
        let micros = day
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_micros());
        self.subject.append_value(subject);
        self.time.append_option(micros);
        self.code.append_value(code);
        self.numeric.append_option(numeric);
        self.text.append_option(text);
        self.pending += 1;
        self.rows += 1;
    }

    /// Adds the measurements of one entry of `subject`, whose study day 0 is `first_day`.
    /// Entries come in time order (day, then id), so the file is sorted by subject and time.
    pub(crate) fn add_entry(
        &mut self,
        subject: i64,
        first_day: NaiveDate,
        entry: &Entry,
        identified: bool,
    ) -> Result<(), ExportError> {
        let day = if identified {
            entry.day
        } else {
            deidentified_epoch()
                + chrono::Days::new((entry.day - first_day).num_days().max(0) as u64)
        };
        for field in Field::ALL {
            let spec = field.spec();
            match (spec.kind, entry.get(*field)) {
                (Kind::Score | Kind::Count { .. }, FieldRef::Number(n)) => {
                    self.push(subject, day, field_code(*field), Some(n as f32), None)
                }
                (Kind::Flag, FieldRef::Flag(b)) if spec.writer == Writer::Person => self.push(
                    subject,
                    day,
                    field_code(*field),
                    Some(if b { 1.0 } else { 0.0 }),
                    None,
                ),
                (Kind::Word(vocabulary), FieldRef::Word(at)) => self.push(
                    subject,
                    day,
                    word_code(*field, vocabulary.words[at]),
                    None,
                    None,
                ),
                (Kind::Words(vocabulary), FieldRef::Words(set)) => {
                    for (at, word) in vocabulary.words.iter().enumerate() {
                        if set.contains_position(at) {
                            self.push(subject, day, word_code(*field, word), None, None);
                        }
                    }
                }
                (Kind::Text { .. }, FieldRef::Text(text))
                    if identified && spec.writer == Writer::Person =>
                {
                    self.push(subject, day, field_code(*field), None, Some(text))
                }
                _ => {}
            }
        }
        if self.pending >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ExportError> {
        if self.pending == 0 {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(self.subject.finish()),
            Arc::new(self.time.finish()),
            Arc::new(self.code.finish()),
            Arc::new(self.numeric.finish()),
            Arc::new(self.text.finish()),
        ];
        let batch = RecordBatch::try_new(data_schema(), arrays).map_err(parquet_error)?;
        self.writer.write(&batch).map_err(parquet_error)?;
        self.pending = 0;
        Ok(())
    }

    /// Closes the file; returns the measurements written.
    pub(crate) fn finish(mut self) -> Result<u64, ExportError> {
        self.flush()?;
        let mut out = self.writer.into_inner().map_err(parquet_error)?;
        out.flush().map_err(ExportError::io("MEDS data"))?;
        Ok(self.rows)
    }
}

/// Every code the data may hold, with its description and parent codes (LOINC for the pain
/// scores): `(code, description, parents)`.
pub(crate) fn codes() -> Vec<(String, String, Vec<String>)> {
    let mut codes = Vec::new();
    for field in Field::ALL {
        let spec = field.spec();
        let parents: Vec<String> = loinc_of(*field)
            .map(|(code, _)| vec![format!("LOINC/{code}")])
            .unwrap_or_default();
        match spec.kind {
            Kind::Score | Kind::Count { .. } => {
                codes.push((field_code(*field), spec.help.to_string(), parents))
            }
            Kind::Flag if spec.writer == Writer::Person => codes.push((
                field_code(*field),
                format!("{} (1 yes, 0 no)", spec.help),
                parents,
            )),
            Kind::Text { .. } if spec.writer == Writer::Person => codes.push((
                field_code(*field),
                format!("{} (identified exports only)", spec.help),
                parents,
            )),
            Kind::Word(vocabulary) | Kind::Words(vocabulary) => {
                for word in vocabulary.words {
                    codes.push((
                        word_code(*field, word),
                        format!("{}: {word}", spec.help),
                        parents.clone(),
                    ));
                }
            }
            _ => {}
        }
    }
    codes
}

/// Writes `metadata/codes.parquet`.
pub(crate) fn write_codes<W: Write + Send>(out: W) -> Result<u64, ExportError> {
    let schema = Arc::new(Schema::new(vec![
        ArrowField::new("code", DataType::Utf8, false),
        ArrowField::new("description", DataType::Utf8, true),
        ArrowField::new(
            "parent_codes",
            DataType::List(Arc::new(ArrowField::new("item", DataType::Utf8, true))),
            true,
        ),
    ]));
    let mut code = StringBuilder::new();
    let mut description = StringBuilder::new();
    let mut parents = ListBuilder::new(StringBuilder::new());
    let all = codes();
    for (c, d, p) in &all {
        code.append_value(c);
        description.append_value(d);
        for parent in p {
            parents.values().append_value(parent);
        }
        parents.append(true);
    }
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(code.finish()),
            Arc::new(description.finish()),
            Arc::new(parents.finish()),
        ],
    )
    .map_err(parquet_error)?;
    let mut writer =
        ArrowWriter::try_new(out, schema, Some(properties())).map_err(parquet_error)?;
    writer.write(&batch).map_err(parquet_error)?;
    let mut out = writer.into_inner().map_err(parquet_error)?;
    out.flush().map_err(ExportError::io("MEDS codes"))?;
    Ok(all.len() as u64)
}

/// `metadata/dataset.json`.
pub(crate) fn dataset(identified: bool, created_at: &str) -> Value {
    let time = if identified {
        "`time` is the local calendar day the entry describes, at midnight (identified export)"
            .to_string()
    } else {
        format!(
            "`time` is not a calendar date: it is {} plus the study day (days since the \
             subject's first entry), so only the order and spacing of days are real",
            deidentified_epoch()
        )
    };
    json!({
        "dataset_name": "heeldiary",
        "dataset_version": crate::SCHEMA_VERSION.to_string(),
        "etl_name": "heeldiary-export",
        "etl_version": env!("CARGO_PKG_VERSION"),
        "meds_version": MEDS_VERSION,
        "created_at": created_at,
        "time": time,
        "de_identified": !identified,
    })
}
