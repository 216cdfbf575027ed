//! The report: what was found, each finding with its evidence and one plain sentence, in a
//! shape that serialises to the stable JSON described by `schema/trends-report.schema.json`.

use std::fmt::Write as _;

use chrono::NaiveDate;
use heeldiary_core::{Field, Treatment};
use serde::{Deserialize, Serialize};

pub use crate::pattern::{Sign, Source};

/// Rounds a figure for the report (4 decimals): the analysis keeps full precision, but a
/// report is read by people and compared across runs.
pub(crate) fn round(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

/// Everything the analysis found for one patient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The days the pattern, trends and adherence describe.
    pub window: Window,
    /// Which source the days of the window are consistent with.
    pub pattern: Pattern,
    /// Trend of each pain measure and of nerve signs over the window.
    pub trends: Trends,
    /// Pain before and after each treatment started during the history.
    pub treatments: Vec<TreatmentResponse>,
    /// Changes of pattern over the history.
    pub shifts: Vec<Shift>,
    /// Signs that need a clinician.
    pub red_flags: Vec<RedFlag>,
    /// How many days of the window have an entry.
    pub adherence: Adherence,
}

/// A stretch of days, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// First day.
    pub from: NaiveDate,
    /// Last day (the analysis date).
    pub to: NaiveDate,
    /// Number of days.
    pub days: u32,
}

/// The pattern a stretch of days is consistent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatternKind {
    /// Local foot pain: first-step peak, heel tenderness, no nerve signs.
    PlantarFasciitisLike,
    /// Nerve-related pain from the back: radiating pain, numbness, weakness, no first-step peak.
    BackRelated,
    /// Both sets of signs.
    Mixed,
    /// Too few logged days, or no answers that tell the sources apart.
    InsufficientData,
}

impl PatternKind {
    /// The JSON word.
    pub fn as_str(self) -> &'static str {
        match self {
            PatternKind::PlantarFasciitisLike => "plantar_fasciitis_like",
            PatternKind::BackRelated => "back_related",
            PatternKind::Mixed => "mixed",
            PatternKind::InsufficientData => "insufficient_data",
        }
    }

    /// Words for sentences ("consistent with …").
    pub fn describe(self) -> &'static str {
        match self {
            PatternKind::PlantarFasciitisLike => "a plantar-fasciitis-like (foot) pattern",
            PatternKind::BackRelated => "a back-related (nerve) pattern",
            PatternKind::Mixed => "a mixed pattern (both foot and back/nerve signs)",
            PatternKind::InsufficientData => "no pattern yet (too little data)",
        }
    }
}

/// How consistent the days are with each source, 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Weighted share of days showing the foot signs.
    pub foot: f64,
    /// Weighted share of days showing the back (nerve) signs.
    pub back: f64,
}

/// The pattern of the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pattern {
    /// The pattern named.
    pub kind: PatternKind,
    /// Foot and back scores.
    pub scores: Scores,
    /// Days with at least one entry in the window.
    pub days_logged: u32,
    /// Fewest logged days needed to name a pattern.
    pub min_days_logged: u32,
    /// How many more logged days are needed (0 when enough).
    pub days_needed: u32,
    /// Each sign observed in the window, strongest first.
    pub evidence: Vec<Evidence>,
    /// One sentence.
    pub summary: String,
}

/// One sign over the window: on which days it showed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The sign.
    pub sign: Sign,
    /// The source it leans to.
    pub leans_to: Source,
    /// Its weight in the score.
    pub weight: f64,
    /// Days showing the sign.
    pub days_present: u32,
    /// Days on which the answers could tell.
    pub days_observed: u32,
    /// `days_present / days_observed`.
    pub share: f64,
    /// The days showing the sign.
    pub dates: Vec<NaiveDate>,
    /// Name of the rating in `values`, when the sign has one.
    pub value_name: Option<String>,
    /// The rating on each of `dates` (empty for yes/no signs).
    pub values: Vec<u8>,
    /// One sentence.
    pub sentence: String,
}

/// What a trend says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Less pain (or fewer nerve signs), by a clinically meaningful amount.
    Improving,
    /// More pain (or more nerve signs), by a clinically meaningful amount.
    Worsening,
    /// No clinically meaningful, statistically clear change.
    Stable,
    /// Too few days with this measure.
    InsufficientData,
}

impl Direction {
    /// The JSON word.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Improving => "improving",
            Direction::Worsening => "worsening",
            Direction::Stable => "stable",
            Direction::InsufficientData => "insufficient_data",
        }
    }
}

/// A measure followed over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Pain with the first steps in the morning, 0–10.
    FirstStepPain,
    /// Pain after rest, 0–10.
    RestPain,
    /// Pain sitting or bending, 0–10.
    SittingPain,
    /// Pain after standing or activity, 0–10.
    ActivityPain,
    /// Nerve-sign score 0–5: numbness severity 0–3, +1 radiating pain, +1 weakness.
    NerveSigns,
}

impl Measure {
    /// The four pain ratings, 0–10.
    pub const PAIN: [Measure; 4] = [
        Measure::FirstStepPain,
        Measure::RestPain,
        Measure::SittingPain,
        Measure::ActivityPain,
    ];

    /// Every measure, in report order.
    pub const ALL: [Measure; 5] = [
        Measure::FirstStepPain,
        Measure::RestPain,
        Measure::SittingPain,
        Measure::ActivityPain,
        Measure::NerveSigns,
    ];

    /// The entry field a pain measure reads, under the same name; `None` for the nerve-sign
    /// score, which is computed from several fields.
    pub fn field(self) -> Option<Field> {
        match self {
            Measure::FirstStepPain => Some(Field::FirstStepPain),
            Measure::RestPain => Some(Field::RestPain),
            Measure::SittingPain => Some(Field::SittingPain),
            Measure::ActivityPain => Some(Field::ActivityPain),
            Measure::NerveSigns => None,
        }
    }

    /// Words for sentences.
    pub fn describe(self) -> &'static str {
        match self {
            Measure::FirstStepPain => "first-step pain",
            Measure::RestPain => "pain after rest",
            Measure::SittingPain => "pain sitting or bending",
            Measure::ActivityPain => "pain after activity",
            Measure::NerveSigns => "nerve signs (score 0-5)",
        }
    }
}

/// The trend of one measure over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// The measure.
    pub measure: Measure,
    /// What the trend says.
    pub direction: Direction,
    /// Days with the measure in the window.
    pub n: u32,
    /// Mann–Kendall S.
    pub s: Option<i64>,
    /// Mann–Kendall Z (continuity corrected).
    pub z: Option<f64>,
    /// Kendall's tau.
    pub tau: Option<f64>,
    /// Two-sided p-value of the Mann–Kendall test.
    pub p: Option<f64>,
    /// Theil–Sen slope, per week.
    pub slope_per_week: Option<f64>,
    /// Change along the Theil–Sen line from the first to the last day with the measure.
    pub change: Option<f64>,
    /// The Theil–Sen line's value on the first day with the measure.
    pub start_level: Option<f64>,
    /// The Theil–Sen line's value on the last day with the measure.
    pub end_level: Option<f64>,
    /// First day with the measure in the window.
    pub from: Option<NaiveDate>,
    /// Last day with the measure in the window.
    pub to: Option<NaiveDate>,
    /// One sentence.
    pub sentence: String,
}

/// The trends of all measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trends {
    /// First-step pain.
    pub first_step_pain: Trend,
    /// Pain after rest.
    pub rest_pain: Trend,
    /// Pain sitting or bending.
    pub sitting_pain: Trend,
    /// Pain after activity.
    pub activity_pain: Trend,
    /// Nerve-sign score.
    pub nerve_signs: Trend,
}

impl Trends {
    /// The trends in report order.
    pub fn all(&self) -> [&Trend; 5] {
        [
            &self.first_step_pain,
            &self.rest_pain,
            &self.sitting_pain,
            &self.activity_pain,
            &self.nerve_signs,
        ]
    }
}

/// Whether a treatment was followed by less pain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Pain fell by a clinically meaningful amount.
    Helped,
    /// Pain changed by less than a clinically meaningful amount.
    NoClearChange,
    /// Pain rose by a clinically meaningful amount.
    Worse,
    /// Too few logged days before or after.
    InsufficientData,
}

impl Verdict {
    /// The JSON word.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Helped => "helped",
            Verdict::NoClearChange => "no_clear_change",
            Verdict::Worse => "worse",
            Verdict::InsufficientData => "insufficient_data",
        }
    }
}

/// Mean of one pain rating over a stretch of days.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Period {
    /// First day of the stretch.
    pub from: NaiveDate,
    /// Last day of the stretch.
    pub to: NaiveDate,
    /// Days in the stretch with the rating.
    pub days: u32,
    /// Mean of the rating, when any day had one.
    pub mean_pain: Option<f64>,
}

/// Pain before and after a treatment started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreatmentResponse {
    /// The treatment.
    pub treatment: Treatment,
    /// First day it was logged.
    pub start: NaiveDate,
    /// The pain rating compared: the one with the highest mean before the start (the
    /// patient's main complaint).
    pub measure: Measure,
    /// The weeks before the start.
    pub before: Period,
    /// The weeks after the start (from two weeks after it).
    pub after: Period,
    /// `after.mean_pain − before.mean_pain`.
    pub change: Option<f64>,
    /// Whether it helped.
    pub helped: Verdict,
    /// One sentence.
    pub sentence: String,
}

/// A stretch of days on one side of a pattern shift.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// First logged day.
    pub from: NaiveDate,
    /// Last logged day.
    pub to: NaiveDate,
    /// Logged days.
    pub days_logged: u32,
    /// Pattern of the stretch.
    pub kind: PatternKind,
    /// Scores of the stretch.
    pub scores: Scores,
}

/// How often a sign showed before and after a shift.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SignChange {
    /// The sign.
    pub sign: Sign,
    /// The source it leans to.
    pub leans_to: Source,
    /// Share of observed days showing it before.
    pub share_before: f64,
    /// Share of observed days showing it after.
    pub share_after: f64,
}

/// A change of pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shift {
    /// First logged day of the new pattern.
    pub date: NaiveDate,
    /// Pattern before.
    pub from: PatternKind,
    /// Pattern after.
    pub to: PatternKind,
    /// The days before.
    pub before: Segment,
    /// The days after.
    pub after: Segment,
    /// The signs that changed most.
    pub evidence: Vec<SignChange>,
    /// One sentence.
    pub sentence: String,
}

/// What a red flag is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedFlagKind {
    /// Numbness, tingling or weakness reported in the window.
    NewNerveSigns,
    /// Weakness reported on a clearly growing share of days.
    WorseningWeakness,
    /// Six weeks or more of conservative treatment without a meaningful fall in pain.
    NoImprovementOnConservativeCare,
}

impl RedFlagKind {
    /// The JSON word.
    pub fn as_str(self) -> &'static str {
        match self {
            RedFlagKind::NewNerveSigns => "new_nerve_signs",
            RedFlagKind::WorseningWeakness => "worsening_weakness",
            RedFlagKind::NoImprovementOnConservativeCare => "no_improvement_on_conservative_care",
        }
    }
}

/// A sign that needs a clinician.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedFlag {
    /// What it is about.
    pub kind: RedFlagKind,
    /// The days that triggered it.
    pub dates: Vec<NaiveDate>,
    /// One sentence, pointing to a clinician.
    pub sentence: String,
}

/// How many days of the window have an entry.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Adherence {
    /// Days with at least one entry.
    pub days_logged: u32,
    /// Days in the window.
    pub days_in_window: u32,
    /// `days_logged / days_in_window`.
    pub ratio: f64,
}

/// A readable multi-line report.
pub fn render_text(report: &Report) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(
        text,
        "Heel-pain diary report, {} to {} ({} days)",
        report.window.from, report.window.to, report.window.days
    );
    let _ = writeln!(
        text,
        "Logged {} of {} days ({:.0}%).",
        report.adherence.days_logged,
        report.adherence.days_in_window,
        report.adherence.ratio * 100.0
    );
    let _ = writeln!(text, "\nPattern: {}", report.pattern.kind.as_str());
    let _ = writeln!(text, "  {}", report.pattern.summary);
    for item in report
        .pattern
        .evidence
        .iter()
        .filter(|item| item.days_present > 0)
    {
        let _ = writeln!(text, "  - {}", item.sentence);
    }

    let _ = writeln!(text, "\nTrends:");
    for trend in report.trends.all() {
        let _ = writeln!(
            text,
            "  {:<15} {}",
            format!("{}:", trend.direction.as_str()),
            trend.sentence
        );
    }

    let _ = writeln!(text, "\nTreatments:");
    if report.treatments.is_empty() {
        let _ = writeln!(text, "  No treatment logged.");
    }
    for response in &report.treatments {
        let _ = writeln!(
            text,
            "  {} ({}): {}",
            response.treatment,
            response.helped.as_str(),
            response.sentence
        );
    }

    let _ = writeln!(text, "\nPattern shifts:");
    if report.shifts.is_empty() {
        let _ = writeln!(text, "  None detected.");
    }
    for shift in &report.shifts {
        let _ = writeln!(text, "  {}: {}", shift.date, shift.sentence);
    }

    let _ = writeln!(text, "\nRed flags:");
    if report.red_flags.is_empty() {
        let _ = writeln!(text, "  None.");
    }
    for flag in &report.red_flags {
        let _ = writeln!(text, "  ! {}: {}", flag.kind.as_str(), flag.sentence);
    }
    let _ = writeln!(
        text,
        "\nThis report describes patterns in the diary and the evidence for them, not their \
         cause: only a clinician can say where the pain comes from."
    );
    text
}

#[cfg(test)]
mod tests {
    use heeldiary_core::Kind;

    use super::*;

    #[test]
    fn pain_measures_are_the_score_fields_under_their_names() {
        let scores: Vec<Field> = Field::ALL
            .iter()
            .copied()
            .filter(|field| field.kind() == Kind::Score)
            .collect();
        let read: Vec<Field> = Measure::PAIN.iter().filter_map(|m| m.field()).collect();
        assert_eq!(read, scores);
        for measure in Measure::ALL {
            let name = serde_json::to_value(measure).unwrap();
            match measure.field() {
                Some(field) => assert_eq!(name, field.as_str()),
                None => assert!(!Measure::PAIN.contains(&measure)),
            }
        }
    }
}
