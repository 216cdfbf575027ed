//! The columns of every exported table, with type, unit, allowed values and meaning: what the
//! writers encode and the data dictionary describes. The entries table is derived from the
//! core's field table, column by field kind.

use chrono::{DateTime, FixedOffset, NaiveDate};
use heeldiary_core::{Entry, Field, FieldRef, Kind, Vocabulary, WordSet, Writer, MAX_SCORE};
use heeldiary_trends::{Direction, Measure, PatternKind, RedFlagKind};
use serde::Serialize;
use serde_json::{json, Value};

/// How a column is typed in Parquet (and described in the data dictionary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// 8-bit signed integer (the 0–10 scores).
    Int8,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
    /// 64-bit float.
    Float64,
    /// true or false.
    Bool,
    /// UTF-8 text.
    Text,
    /// A list of words; `;`-separated in CSV.
    TextList,
    /// A calendar day.
    Date,
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// Unit of a number, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'static str>,
    /// The values it may hold: words, or a range.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub allowed: Value,
    /// Whether the values are ranks (ordinal): summarise with rank statistics (median,
    /// quantiles, Mann–Whitney), not means.
    pub ordinal: bool,
    /// What it means.
    pub description: String,
}

impl Column {
    fn new(name: impl Into<String>, ty: ColumnType, description: impl Into<String>) -> Self {
        Column {
            name: name.into(),
            ty,
            unit: None,
            allowed: Value::Null,
            ordinal: false,
            description: description.into(),
        }
    }

    fn unit(mut self, unit: &'static str) -> Self {
        self.unit = Some(unit);
        self
    }

    fn allowed(mut self, allowed: Value) -> Self {
        self.allowed = allowed;
        self
    }

    fn ordinal(mut self) -> Self {
        self.ordinal = true;
        self
    }
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// No value.
    Null,
    /// A whole number.
    Int(i64),
    /// A decimal number.
    Float(f64),
    /// Yes or no.
    Bool(bool),
    /// Text.
    Text(String),
    /// A word of a vocabulary (text, without a copy).
    Word(&'static str),
    /// A list of words.
    List(WordList),
    /// A calendar day.
    Date(NaiveDate),
}

impl Cell {
    /// The JSON form (NDJSON and the HTTP stream).
    pub fn to_json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Int(n) => json!(n),
            Cell::Float(x) => json!(x),
            Cell::Bool(b) => json!(b),
            Cell::Text(t) => json!(t),
            Cell::Word(w) => json!(w),
            Cell::List(words) => words.iter().collect(),
            Cell::Date(d) => json!(d.to_string()),
        }
    }

    /// The CSV form: empty for no value, words joined by `;`.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        self.write_csv(&mut out);
        out
    }

    /// Appends the CSV form to `out`.
    pub fn write_csv(&self, out: &mut String) {
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = match self {
            Cell::Null => Ok(()),
            // Ten or so numbers a row, millions of rows: itoa writes one several times faster
            // than the formatting machinery.
            Cell::Int(n) => out.write_str(itoa::Buffer::new().format(*n)),
            Cell::Float(x) => write!(out, "{x}"),
            Cell::Bool(b) => write!(out, "{b}"),
            Cell::Text(t) => out.write_str(t),
            Cell::Word(w) => out.write_str(w),
            Cell::List(words) => {
                for (i, word) in words.iter().enumerate() {
                    if i > 0 {
                        out.push(';');
                    }
                    out.push_str(word);
                }
                Ok(())
            }
            Cell::Date(d) => write!(out, "{d}"),
        };
    }
}

/// The words of a vocabulary a list field holds, in the vocabulary's order: held as the set
/// itself, so that a row makes no list of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WordList {
    vocabulary: &'static Vocabulary,
    set: WordSet,
}

impl WordList {
    /// The words of `vocabulary` in `set`.
    pub fn new(vocabulary: &'static Vocabulary, set: WordSet) -> Self {
        WordList { vocabulary, set }
    }

    /// The words, in the vocabulary's order.
    pub fn iter(self) -> impl Iterator<Item = &'static str> {
        let set = self.set;
        self.vocabulary
            .words
            .iter()
            .enumerate()
            .filter(move |(at, _)| set.contains_position(*at))
            .map(|(_, word)| *word)
    }
}

/// What one entry row is made from.
pub(crate) struct EntryFacts<'a> {
    pub subject_id: i64,
    pub entry_key: String,
    pub patient_id: uuid::Uuid,
    pub first_day: NaiveDate,
    pub entry: &'a Entry,
    pub edits: u32,
    pub conflicted: bool,
}

/// Unit of a count field, by its name: minutes for `*_minutes`, else a plain count.
pub(crate) fn count_unit(field: Field) -> &'static str {
    if field.as_str().ends_with("_minutes") {
        "min"
    } else {
        "count"
    }
}

/// The columns one field contributes, by its kind. A person-written text (the note) is left out
/// of a de-identified export; the tombstone never appears (deleted entries are not rows).
fn field_columns(field: Field, identified: bool) -> Vec<Column> {
    let spec = field.spec();
    let name = spec.name;
    match spec.kind {
        Kind::Day => {
            let mut columns = vec![
                Column::new(
                    "study_day",
                    ColumnType::Int32,
                    "Days since the patient's first entry (0 = that day)",
                )
                .unit("d"),
                Column::new(
                    "year",
                    ColumnType::Int32,
                    "Calendar year of the day described",
                ),
            ];
            if identified {
                columns.push(Column::new(name, ColumnType::Date, spec.help));
            }
            columns
        }
        Kind::Instant if identified => vec![Column::new(
            name,
            ColumnType::Text,
            format!("{} (RFC 3339)", spec.help),
        )],
        Kind::Instant => vec![Column::new(
            format!("{name}_days_after"),
            ColumnType::Int32,
            "Days between the day described and the local day it was recorded",
        )
        .unit("d")],
        Kind::Score => vec![Column::new(name, ColumnType::Int8, spec.help)
            .unit("points")
            .allowed(json!({"min": 0, "max": MAX_SCORE}))
            .ordinal()],
        Kind::Count { max } => vec![Column::new(name, ColumnType::Int64, spec.help)
            .unit(count_unit(field))
            .allowed(json!({"min": 0, "max": max}))],
        Kind::Flag => vec![Column::new(name, ColumnType::Bool, spec.help)],
        Kind::Word(vocabulary) => {
            let mut column =
                Column::new(name, ColumnType::Text, spec.help).allowed(json!(vocabulary.words));
            if name == Field::Numbness.as_str() {
                column = column.ordinal();
            }
            vec![column]
        }
        Kind::Words(vocabulary) => {
            vec![Column::new(name, ColumnType::TextList, spec.help).allowed(json!(vocabulary.words))]
        }
        Kind::Text { .. } if identified && spec.writer == Writer::Person => {
            vec![Column::new(name, ColumnType::Text, spec.help)]
        }
        Kind::Text { .. } | Kind::Tombstone => Vec::new(),
    }
}

/// The cells of one field, in the order of [`field_columns`].
fn field_cells(field: Field, facts: &EntryFacts<'_>, identified: bool, row: &mut Vec<Cell>) {
    let entry = facts.entry;
    let spec = field.spec();
    match (spec.kind, entry.get(field)) {
        (Kind::Day, FieldRef::Day(day)) => {
            row.push(Cell::Int((day - facts.first_day).num_days()));
            row.push(Cell::Int(i64::from(chrono::Datelike::year(&day))));
            if identified {
                row.push(Cell::Date(day));
            }
        }
        (Kind::Instant, FieldRef::Instant(at)) if identified => {
            row.push(Cell::Text(rfc3339(at)));
        }
        (Kind::Instant, FieldRef::Instant(at)) => {
            row.push(Cell::Int((at.date_naive() - entry.day).num_days()));
        }
        (Kind::Score | Kind::Count { .. }, FieldRef::Number(n)) => row.push(Cell::Int(n.into())),
        (Kind::Flag, FieldRef::Flag(b)) => row.push(Cell::Bool(b)),
        (Kind::Word(vocabulary), FieldRef::Word(at)) => row.push(Cell::Word(vocabulary.words[at])),
        (Kind::Words(vocabulary), FieldRef::Words(set)) => {
            row.push(Cell::List(WordList::new(vocabulary, set)))
        }
        (Kind::Text { .. }, FieldRef::Text(text))
            if identified && spec.writer == Writer::Person =>
        {
            row.push(Cell::Text(text.to_string()))
        }
        _ => {
            for _ in 0..field_width(field, identified) {
                row.push(Cell::Null);
            }
        }
    }
}

/// How many columns [`field_columns`] gives `field`, without making them (per row, for the
/// empty cells of an unanswered field).
fn field_width(field: Field, identified: bool) -> usize {
    let spec = field.spec();
    match spec.kind {
        Kind::Day => 2 + usize::from(identified),
        Kind::Instant
        | Kind::Score
        | Kind::Count { .. }
        | Kind::Flag
        | Kind::Word(_)
        | Kind::Words(_) => 1,
        Kind::Text { .. } if identified && spec.writer == Writer::Person => 1,
        Kind::Text { .. } | Kind::Tombstone => 0,
    }
}

fn rfc3339(at: &DateTime<FixedOffset>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

/// The columns of the entries table: identity, then every field of the core's field table by
/// its kind, then what the history says (back-filled, edits, conflicts).
pub fn entry_columns(identified: bool) -> Vec<Column> {
    let mut columns = vec![
        Column::new(
            "subject_id",
            ColumnType::Int64,
            "Pseudonymous patient id: HMAC-SHA256 under the server's export key (63 bits); the \
             same patient has the same id in every export made with one key",
        ),
        Column::new(
            "entry_key",
            ColumnType::Text,
            "Pseudonymous, stable key of the entry (HMAC-SHA256 of its id, 96 bits in hex)",
        ),
    ];
    if identified {
        columns.push(Column::new(
            "patient_id",
            ColumnType::Text,
            "The patient's id on the server (identified export only)",
        ));
        columns.push(Column::new(
            "entry_id",
            ColumnType::Text,
            "The entry's id (identified export only)",
        ));
    }
    for field in Field::ALL {
        columns.extend(field_columns(*field, identified));
    }
    columns.push(Column::new(
        "backfilled",
        ColumnType::Bool,
        "Recorded more than one day after the day it describes",
    ));
    columns.push(
        Column::new(
            "edits",
            ColumnType::Int32,
            "Changes to the entry after it was first written",
        )
        .unit("count"),
    );
    columns.push(Column::new(
        "conflicted",
        ColumnType::Bool,
        "Two devices wrote different values to one field; the later stamp won",
    ));
    columns
}

/// One row of the entries table, in the order of [`entry_columns`], into `row` (cleared
/// first), so that one row's memory serves them all.
pub(crate) fn fill_entry_row(mut facts: EntryFacts<'_>, identified: bool, row: &mut Vec<Cell>) {
    row.clear();
    row.push(Cell::Int(facts.subject_id));
    row.push(Cell::Text(std::mem::take(&mut facts.entry_key)));
    if identified {
        row.push(Cell::Text(facts.patient_id.to_string()));
        row.push(Cell::Text(facts.entry.id.to_string()));
    }
    for field in Field::ALL {
        field_cells(*field, &facts, identified, row);
    }
    row.push(Cell::Bool(facts.entry.backfilled));
    row.push(Cell::Int(facts.edits.into()));
    row.push(Cell::Bool(facts.conflicted));
}

/// The JSON word of a trends value (a measure, a direction, a pattern).
pub(crate) fn word<T: Serialize>(value: T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The columns of the findings table: one row per patient per calendar month with a logged day.
pub fn findings_columns(identified: bool) -> Vec<Column> {
    let mut columns = vec![
        Column::new("subject_id", ColumnType::Int64, "Pseudonymous patient id"),
        Column::new("year", ColumnType::Int32, "Calendar year of the month"),
        Column::new(
            "study_month",
            ColumnType::Int32,
            "Months since the month of the patient's first entry (0 = that month)",
        )
        .unit("month"),
    ];
    if identified {
        columns.push(Column::new(
            "month",
            ColumnType::Text,
            "Calendar month YYYY-MM (identified export only)",
        ));
    }
    columns.push(
        Column::new(
            "days_logged",
            ColumnType::Int32,
            "Days with at least one entry in the month",
        )
        .unit("d"),
    );
    columns.push(
        Column::new(
            "pattern_kind",
            ColumnType::Text,
            "The pattern the month's days are consistent with (never a diagnosis)",
        )
        .allowed(json!([
            PatternKind::PlantarFasciitisLike.as_str(),
            PatternKind::BackRelated.as_str(),
            PatternKind::Mixed.as_str(),
            PatternKind::InsufficientData.as_str()
        ])),
    );
    columns.push(Column::new(
        "foot_score",
        ColumnType::Float64,
        "Weight of the evidence for a foot (plantar-fasciitis-like) source, 0-1",
    ));
    columns.push(Column::new(
        "back_score",
        ColumnType::Float64,
        "Weight of the evidence for a back-related (nerve) source, 0-1",
    ));
    let directions = json!([
        Direction::Improving.as_str(),
        Direction::Worsening.as_str(),
        Direction::Stable.as_str(),
        Direction::InsufficientData.as_str()
    ]);
    for measure in Measure::ALL {
        let name = word(measure);
        columns.push(
            Column::new(
                format!("{name}_direction"),
                ColumnType::Text,
                format!(
                    "Trend of {} over the month (Mann-Kendall)",
                    measure.describe()
                ),
            )
            .allowed(directions.clone()),
        );
        columns.push(
            Column::new(
                format!("{name}_slope_per_week"),
                ColumnType::Float64,
                format!("Theil-Sen slope of {} per week", measure.describe()),
            )
            .unit("points/week"),
        );
        columns.push(Column::new(
            format!("{name}_p"),
            ColumnType::Float64,
            format!("Two-sided Mann-Kendall p of {}", measure.describe()),
        ));
    }
    columns.push(
        Column::new(
            "red_flags",
            ColumnType::Int32,
            "Red flags raised by the end of the month (signs that need a clinician)",
        )
        .unit("count"),
    );
    for kind in RED_FLAG_KINDS {
        columns.push(Column::new(
            format!("red_flag_{}", kind.as_str()),
            ColumnType::Bool,
            format!("Whether the red flag `{}` was raised", kind.as_str()),
        ));
    }
    columns
}

/// Every red-flag kind, in report order.
pub(crate) const RED_FLAG_KINDS: [RedFlagKind; 3] = [
    RedFlagKind::NewNerveSigns,
    RedFlagKind::WorseningWeakness,
    RedFlagKind::NoImprovementOnConservativeCare,
];

/// The columns of the aggregate table: patients per study month and pattern, small cells
/// suppressed.
pub(crate) fn summary_columns() -> Vec<Column> {
    vec![
        Column::new(
            "study_month",
            ColumnType::Int32,
            "Months since each patient's first entry",
        )
        .unit("month"),
        Column::new(
            "pattern_kind",
            ColumnType::Text,
            "The pattern of the patient's month",
        ),
        Column::new(
            "patients",
            ColumnType::Int64,
            format!(
                "Patients whose month followed the pattern; empty when fewer than {} (suppressed)",
                crate::MIN_CELL_PATIENTS
            ),
        )
        .unit("count"),
        Column::new(
            "suppressed",
            ColumnType::Bool,
            "The count was built from too few patients and is withheld",
        ),
    ]
}

/// The columns of the deletions table of an incremental export.
pub(crate) fn deletion_columns(identified: bool) -> Vec<Column> {
    let mut columns = vec![
        Column::new("subject_id", ColumnType::Int64, "Pseudonymous patient id"),
        Column::new(
            "entry_key",
            ColumnType::Text,
            "Key of an entry deleted since the export named in --since",
        ),
    ];
    if identified {
        columns.push(Column::new(
            "entry_id",
            ColumnType::Text,
            "The deleted entry's id",
        ));
    }
    columns
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unanswered_field_leaves_as_many_cells_as_it_has_columns() {
        for identified in [false, true] {
            for field in Field::ALL {
                assert_eq!(
                    super::field_width(*field, identified),
                    super::field_columns(*field, identified).len(),
                    "{field}"
                );
            }
        }
    }

    use super::*;

    #[test]
    fn every_person_written_field_but_text_has_a_de_identified_column() {
        let names: Vec<String> = entry_columns(false).into_iter().map(|c| c.name).collect();
        for field in Field::ALL {
            let spec = field.spec();
            let expected = match spec.kind {
                Kind::Day => Some("study_day".to_string()),
                Kind::Instant => Some(format!("{}_days_after", spec.name)),
                Kind::Text { .. } | Kind::Tombstone => None,
                _ => Some(spec.name.to_string()),
            };
            match expected {
                Some(name) => assert!(names.contains(&name), "{name} missing"),
                None => assert!(
                    !names.iter().any(|n| n == spec.name),
                    "{} leaked",
                    spec.name
                ),
            }
        }
    }

    #[test]
    fn scores_are_ordinal_small_integers() {
        for column in entry_columns(false) {
            if let Ok(field) = column.name.parse::<Field>() {
                if field.kind() == Kind::Score {
                    assert_eq!(column.ty, ColumnType::Int8);
                    assert!(column.ordinal);
                }
            }
        }
    }
}
