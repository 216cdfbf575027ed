//! The trend report as the app shows it: each finding with its plain sentence and evidence,
//! words as in the report JSON, and the whole JSON beside for anything not typed here.

use heeldiary_trends::{Report, Trend};
use serde::Serialize;
use serde_json::Value;

/// What the analysis found over a window of days. Patterns, never diagnoses: show the
/// sentences as they are, and the red flags prominently.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TrendsReport {
    /// First day of the window, `YYYY-MM-DD`.
    pub from: String,
    /// Last day (the analysis date).
    pub to: String,
    /// Days in the window.
    pub days: u32,
    /// The pattern the days are consistent with.
    pub pattern: PatternView,
    /// The trend of each pain measure and of nerve signs.
    pub trends: Vec<TrendView>,
    /// Pain before and after each treatment started.
    pub treatments: Vec<TreatmentView>,
    /// Changes of pattern over the history, one sentence each.
    pub shifts: Vec<String>,
    /// Signs to discuss with a clinician.
    pub red_flags: Vec<RedFlagView>,
    /// How many days of the window have an entry.
    pub adherence: Adherence,
    /// The whole report as JSON (as `heeldiary trends --json` prints it).
    pub report_json: String,
}

/// The pattern, with the evidence behind it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PatternView {
    /// `plantar_fasciitis_like`, `back_related`, `mixed` or `insufficient_data`.
    pub kind: String,
    /// One plain sentence with the figures, for a clinician.
    pub summary: String,
    /// The same for the patient, in plain words.
    pub patient_summary: String,
    /// Days logged in the window.
    pub days_logged: u32,
    /// More days needed before a pattern is named (0 when enough).
    pub days_needed: u32,
    /// Each sign with the days it was seen on.
    pub evidence: Vec<EvidenceLine>,
}

/// One sign and how often it was seen.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct EvidenceLine {
    /// The sign, as in the report JSON.
    pub sign: String,
    /// Which source it points to.
    pub leans_to: String,
    /// Days it was present.
    pub days_present: u32,
    /// Days it was asked about.
    pub days_observed: u32,
    /// One sentence with the figures.
    pub sentence: String,
}

/// The trend of one measure.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TrendView {
    /// The measure, e.g. `first_step_pain`.
    pub measure: String,
    /// `improving`, `worsening`, `stable` or `insufficient_data`.
    pub direction: String,
    /// Days with a value.
    pub n: u32,
    /// Change per week of the fitted line, when there is one.
    pub slope_per_week: Option<f64>,
    /// One sentence with the figures.
    pub sentence: String,
}

/// What became of the pain after a treatment started.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TreatmentView {
    /// The treatment word.
    pub treatment: String,
    /// First day it was used, `YYYY-MM-DD`.
    pub start: String,
    /// `helped`, `no_clear_change`, `worse` or `insufficient_data`.
    pub helped: String,
    /// One sentence with the figures.
    pub sentence: String,
}

/// A sign to discuss with a clinician.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct RedFlagView {
    /// What it is about, e.g. `new_nerve_signs`.
    pub kind: String,
    /// The days that raised it, `YYYY-MM-DD`.
    pub dates: Vec<String>,
    /// How soon to see a clinician, where the analysis grades it.
    pub urgency: Option<String>,
    /// One sentence, pointing to a clinician.
    pub sentence: String,
    /// The same for the patient, in plain words.
    pub patient_sentence: String,
}

/// Days logged in the window.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Adherence {
    /// Days with at least one entry.
    pub days_logged: u32,
    /// Days in the window.
    pub days_in_window: u32,
    /// `days_logged / days_in_window`.
    pub ratio: f64,
}

/// The JSON word of a report enum.
fn word(value: impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(word)) => word,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

impl From<&Report> for TrendsReport {
    fn from(report: &Report) -> Self {
        let json = serde_json::to_value(report).unwrap_or(Value::Null);
        // The measures are read from the JSON so that one added to the report shows up here.
        let trends = json["trends"]
            .as_object()
            .into_iter()
            .flat_map(|measures| measures.values())
            .filter_map(|t| serde_json::from_value::<Trend>(t.clone()).ok())
            .map(|t| TrendView {
                measure: word(t.measure),
                direction: word(t.direction),
                n: t.n,
                slope_per_week: t.slope_per_week,
                sentence: t.sentence,
            })
            .collect();
        let red_flags = report
            .red_flags
            .iter()
            .zip(json["red_flags"].as_array().into_iter().flatten())
            .map(|(flag, flag_json)| RedFlagView {
                kind: word(flag.kind),
                dates: flag.dates.iter().map(ToString::to_string).collect(),
                urgency: flag_json["urgency"].as_str().map(str::to_string),
                sentence: flag.sentence.clone(),
                patient_sentence: flag.patient_sentence.clone(),
            })
            .collect();
        TrendsReport {
            from: report.window.from.to_string(),
            to: report.window.to.to_string(),
            days: report.window.days,
            pattern: PatternView {
                kind: word(report.pattern.kind),
                summary: report.pattern.summary.clone(),
                patient_summary: report.pattern.patient_summary.clone(),
                days_logged: report.pattern.days_logged,
                days_needed: report.pattern.days_needed,
                evidence: report
                    .pattern
                    .evidence
                    .iter()
                    .map(|e| EvidenceLine {
                        sign: word(e.sign),
                        leans_to: word(e.leans_to),
                        days_present: e.days_present,
                        days_observed: e.days_observed,
                        sentence: e.sentence.clone(),
                    })
                    .collect(),
            },
            trends,
            treatments: report
                .treatments
                .iter()
                .map(|t| TreatmentView {
                    treatment: word(t.treatment),
                    start: t.start.to_string(),
                    helped: word(t.helped),
                    sentence: t.sentence.clone(),
                })
                .collect(),
            shifts: report.shifts.iter().map(|s| s.sentence.clone()).collect(),
            red_flags,
            adherence: Adherence {
                days_logged: report.adherence.days_logged,
                days_in_window: report.adherence.days_in_window,
                ratio: report.adherence.ratio,
            },
            report_json: json.to_string(),
        }
    }
}
