//! The report: what was found, each finding with its evidence and one plain sentence, in a
//! shape that serialises to the stable JSON described by `schema/trends-report.schema.json`.

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
    /// Nerve signs kept to the heel or sole (burning, numbness, night or rest pain) without a
    /// first-step peak or pain above the foot: consistent with a nerve caught at the heel.
    HeelNerveLike,
    /// Enough days, but no reading is supported: the signs are too weak or too mixed.
    Unclear,
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
            PatternKind::HeelNerveLike => "heel_nerve_like",
            PatternKind::Unclear => "unclear",
            PatternKind::InsufficientData => "insufficient_data",
        }
    }

    /// Words for a patient: no identifiers, no technical names.
    pub fn describe_plainly(self) -> &'static str {
        match self {
            PatternKind::PlantarFasciitisLike => {
                "the pattern often seen when the tissue under the heel is irritated (worst with the first steps, a tender heel)"
            }
            PatternKind::BackRelated => {
                "the pattern often seen when a nerve from the lower back is involved (pain spreading down the leg, numbness or tingling)"
            }
            PatternKind::Mixed => "both the heel pattern and the nerve-from-the-back pattern",
            PatternKind::HeelNerveLike => {
                "the pattern often seen when a nerve near the heel is irritated (burning or numbness in the heel or sole, pain at night or at rest)"
            }
            PatternKind::Unclear => "no clear pattern yet",
            PatternKind::InsufficientData => "no pattern yet: too few days with answers",
        }
    }

    /// Words for sentences ("consistent with …").
    pub fn describe(self) -> &'static str {
        match self {
            PatternKind::PlantarFasciitisLike => "a plantar-fasciitis-like (foot) pattern",
            PatternKind::BackRelated => "a back-related (nerve) pattern",
            PatternKind::Mixed => "a mixed pattern (both foot and back/nerve signs)",
            PatternKind::HeelNerveLike => {
                "a heel-nerve-like pattern (burning or numbness kept to the heel or sole, night or rest pain, no first-step peak)"
            }
            PatternKind::Unclear => "no clear pattern (the signs of each source are weak or mixed)",
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
    /// Weighted share of days showing the heel-nerve signs.
    #[serde(default)]
    pub heel_nerve: f64,
}

/// A closer reading of a back-related picture: which way sitting and bending act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubReading {
    /// Walking or standing pain eased by sitting or bending forward (the spinal canal).
    StenosisLike,
    /// Pain made worse by sitting, bending or lifting (a disc pressing on a nerve root).
    DiscLike,
}

impl SubReading {
    /// The JSON word.
    pub fn as_str(self) -> &'static str {
        match self {
            SubReading::StenosisLike => "stenosis_like",
            SubReading::DiscLike => "disc_like",
        }
    }

    /// Words for sentences.
    pub fn describe(self) -> &'static str {
        match self {
            SubReading::StenosisLike => {
                "a stenosis-like reading: walking or standing pain eased by sitting or bending forward"
            }
            SubReading::DiscLike => {
                "a disc-like reading: pain made worse by sitting, bending or lifting"
            }
        }
    }

    /// Words for a patient.
    pub fn describe_plainly(self) -> &'static str {
        match self {
            SubReading::StenosisLike => {
                "pain that comes on with walking or standing and eases when sitting or leaning forward"
            }
            SubReading::DiscLike => "pain made worse by sitting, bending or lifting",
        }
    }
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
    /// Which way sitting and bending act in a back-related or mixed picture, when the days
    /// say clearly.
    pub sub_reading: Option<SubReading>,
    /// Logged days whose entries were all written more than a day after the day they
    /// describe; they count half in the scores.
    pub days_backfilled: u32,
    /// What the diary would need for a reading (empty unless the kind is `unclear` or
    /// `insufficient_data`).
    pub missing: Vec<String>,
    /// Each sign observed in the window, strongest first.
    pub evidence: Vec<Evidence>,
    /// One sentence, with figures, for a clinician.
    pub summary: String,
    /// One sentence in plain words for the patient.
    pub patient_summary: String,
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
    /// How many of the observed days were back-filled (written more than a day after the day).
    pub days_backfilled: u32,
    /// Share of the observed days showing the sign, each day weighted as in the scores (a
    /// back-filled day counts half); `days_present / days_observed` when none was back-filled.
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
    /// The p-value of the line and the step agreeing (the larger of the two, each corrected
    /// for day-to-day correlation), adjusted for testing five measures (Holm): the one
    /// compared with the significance level.
    pub p_adjusted: Option<f64>,
    /// Step change: the last two weeks against the four before.
    pub step: Option<Step>,
    /// One sentence, with figures, for a clinician.
    pub sentence: String,
    /// One sentence in plain words for the patient.
    pub patient_sentence: String,
}

/// A step change of a measure: its last two weeks against the four weeks before, by a rank
/// test (Mann–Whitney, variance widened for day-to-day correlation) and the Hodges–Lehmann
/// shift (median of every recent-minus-earlier difference).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The earlier stretch.
    pub earlier: Period,
    /// The recent stretch.
    pub recent: Period,
    /// Hodges–Lehmann shift, recent minus earlier.
    pub shift: f64,
    /// Two-sided p-value of the rank test.
    pub p: f64,
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
    /// Treatments first logged within a few days of this one: the diary cannot tell their
    /// effects apart, so the verdict is about them together.
    pub started_with: Vec<Treatment>,
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
    /// One sentence, with figures, for a clinician.
    pub sentence: String,
    /// One sentence in plain words for the patient.
    pub patient_sentence: String,
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
    /// Numbness in the saddle area (between the legs, inner thighs, buttocks).
    SaddleNumbness,
    /// A new change in bladder or bowel control.
    BladderBowelChange,
    /// Weakness that appeared within the last days, on at least three logged days in a row.
    NewWeakness,
    /// Nerve signs in both legs where they were in one.
    NerveSignsBothSides,
    /// Fever or unexplained weight loss with the back pain.
    FeverOrWeightLoss,
    /// Pain at night or at rest on most days, not easing.
    NightPainNotEasing,
}

impl RedFlagKind {
    /// The JSON word.
    pub fn as_str(self) -> &'static str {
        match self {
            RedFlagKind::NewNerveSigns => "new_nerve_signs",
            RedFlagKind::WorseningWeakness => "worsening_weakness",
            RedFlagKind::NoImprovementOnConservativeCare => "no_improvement_on_conservative_care",
            RedFlagKind::SaddleNumbness => "saddle_numbness",
            RedFlagKind::BladderBowelChange => "bladder_bowel_change",
            RedFlagKind::NewWeakness => "new_weakness",
            RedFlagKind::NerveSignsBothSides => "nerve_signs_both_sides",
            RedFlagKind::FeverOrWeightLoss => "fever_or_weight_loss",
            RedFlagKind::NightPainNotEasing => "night_pain_not_easing",
        }
    }
}

/// How soon a red flag needs a clinician.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// Today: urgent care or an emergency department (signs of nerve compression in the spine).
    Urgent,
    /// Within days: book an appointment.
    Soon,
    /// At the next review: the plan of care may need to change.
    Review,
}

impl Urgency {
    /// The JSON word.
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Urgent => "urgent",
            Urgency::Soon => "soon",
            Urgency::Review => "review",
        }
    }
}

/// A sign that needs a clinician.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedFlag {
    /// What it is about.
    pub kind: RedFlagKind,
    /// How soon it needs a clinician.
    pub urgency: Urgency,
    /// The first day of the current episode of the sign.
    pub started: NaiveDate,
    /// The last day on which the sign came, went or changed.
    pub last_changed: NaiveDate,
    /// The days that triggered it.
    pub dates: Vec<NaiveDate>,
    /// One sentence, with figures, for a clinician.
    pub sentence: String,
    /// One sentence in plain words for the patient, saying whom to see and how soon.
    pub patient_sentence: String,
}

/// One of the warning signs the diary asks about, and on how many logged days of the
/// history it was answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignAsked {
    /// The entry field that asks it.
    pub field: Field,
    /// Plain words for it.
    pub question: String,
    /// Logged days with an answer.
    pub days_answered: u32,
}

/// How many days of the window have an entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adherence {
    /// Days with at least one entry.
    pub days_logged: u32,
    /// Days in the window.
    pub days_in_window: u32,
    /// `days_logged / days_in_window`.
    pub ratio: f64,
    /// Logged days of the window written more than a day after the day they describe.
    pub days_backfilled: u32,
    /// The warning signs the diary asks about, and how often each was answered.
    pub signs_asked: Vec<SignAsked>,
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
