//! Synthetic diaries with known ground truth, for tests, the accuracy report and benchmarks.
//!
//! Each [`Scenario`] is a story a diary can tell (a foot pattern, a back pattern, a treatment
//! that helps, a pattern that shifts…); a [`Variant`] says how cleanly it is logged (noisy
//! ratings and odd days, missing days). [`generate_variant`] writes the diary, deterministic
//! for a seed; [`ground_truth`] says what an analysis at the diary's last day should find, and
//! [`check`] compares a report with it.
//!
//! Diaries also carry what real ones do: some days split into a morning and an evening
//! check-in, and some deleted entries with alarming values that the analysis must ignore.

use chrono::{Datelike, Days, NaiveDate, Timelike};
use heeldiary_core::{Entry, Location, Severity, Side, Treatment, Trigger};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::report::{Direction, PatternKind, RedFlagKind, Report, SubReading, Urgency, Verdict};

/// Shortest diary for which every scenario's ground truth holds with the default window.
pub const MIN_DAYS: u32 = 70;
/// Diary length used by the accuracy report and the tests.
pub const DEFAULT_DAYS: u32 = 90;
/// How far a detected shift may be from the true one and still count as recovered.
pub const SHIFT_DATE_TOLERANCE_DAYS: i64 = 7;

/// The story a synthetic diary tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// First-step pain, heel tenderness, no nerve signs, steady.
    FootPattern,
    /// Radiating pain, numbness, some weakness, sitting pain, no first-step peak, steady.
    BackPattern,
    /// First-step pain and heel tenderness together with radiating pain and numbness.
    Mixed,
    /// A foot pattern whose pain falls after orthotics start five weeks before the end.
    ImprovingWithTreatment,
    /// A foot pattern whose pain rises over the last four weeks despite daily stretching.
    Worsening,
    /// A foot pattern, then numbness, radiating and sitting pain appear (a mixed pattern).
    PatternShift,
    /// Both feet heavy and aching after walking or standing, eased by sitting or bending
    /// forward; no tender heel, no first-step peak (a stenosis-like back picture).
    Stenosis,
    /// Burning or numbness in the heel and sole, pain at rest and at night, no first-step peak,
    /// no back or leg pain (a nerve caught at the heel).
    HeelNerve,
    /// A back pattern in both legs; in its last week numbness in the saddle area and weakness.
    CaudaEquina,
    /// A mixed picture whose sitting pain is above its first-step pain every day: first-step
    /// pain high and a tender heel together with radiating pain and numbness.
    MixedSittingPeak,
    /// A steady foot pattern logged in weekly batches: every entry written up to a week late.
    Backfilled,
    /// A steady foot pattern whose ratings wander from day to day with lag-1 correlation
    /// `tenths / 10` and no trend: any direction named is false.
    AutocorrelatedNull {
        /// The day-to-day correlation, in tenths.
        tenths: u8,
    },
}

impl Scenario {
    /// The null diaries of the accuracy report, at correlation 0.3, 0.6 and 0.8.
    pub const NULLS: [Scenario; 3] = [
        Scenario::AutocorrelatedNull { tenths: 3 },
        Scenario::AutocorrelatedNull { tenths: 6 },
        Scenario::AutocorrelatedNull { tenths: 8 },
    ];

    /// Every scenario.
    pub const ALL: [Scenario; 14] = [
        Scenario::FootPattern,
        Scenario::BackPattern,
        Scenario::Mixed,
        Scenario::ImprovingWithTreatment,
        Scenario::Worsening,
        Scenario::PatternShift,
        Scenario::Stenosis,
        Scenario::HeelNerve,
        Scenario::CaudaEquina,
        Scenario::MixedSittingPeak,
        Scenario::Backfilled,
        Scenario::NULLS[0],
        Scenario::NULLS[1],
        Scenario::NULLS[2],
    ];

    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::FootPattern => "foot_pattern",
            Scenario::BackPattern => "back_pattern",
            Scenario::Mixed => "mixed",
            Scenario::ImprovingWithTreatment => "improving_with_treatment",
            Scenario::Worsening => "worsening",
            Scenario::PatternShift => "pattern_shift",
            Scenario::Stenosis => "stenosis",
            Scenario::HeelNerve => "heel_nerve",
            Scenario::CaudaEquina => "cauda_equina",
            Scenario::MixedSittingPeak => "mixed_sitting_peak",
            Scenario::Backfilled => "backfilled",
            Scenario::AutocorrelatedNull { tenths: 3 } => "null_correlation_0.3",
            Scenario::AutocorrelatedNull { tenths: 6 } => "null_correlation_0.6",
            Scenario::AutocorrelatedNull { tenths: 8 } => "null_correlation_0.8",
            Scenario::AutocorrelatedNull { .. } => "null_correlated",
        }
    }

    /// Day-to-day correlation of the ratings' noise.
    fn correlation(self) -> f64 {
        match self {
            Scenario::AutocorrelatedNull { tenths } => f64::from(tenths.min(9)) / 10.0,
            _ => 0.0,
        }
    }
}

/// How cleanly a diary is logged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Variant {
    /// Ratings scatter more (SD 1 point instead of 0.5), one day in ten is odd (random ratings,
    /// a flipped answer, a stray radiating pain or trigger), and answers are skipped at random.
    pub noisy: bool,
    /// Share of days with no entry, 0 to 1.
    pub missing_share: f64,
}

impl Variant {
    /// Every day logged, ratings close to the story.
    pub const CLEAN: Variant = Variant {
        noisy: false,
        missing_share: 0.0,
    };
    /// Noisy ratings and odd days, every day logged.
    pub const NOISY: Variant = Variant {
        noisy: true,
        missing_share: 0.0,
    };
    /// Noisy, and 40% of days missing.
    pub const NOISY_SPARSE: Variant = Variant {
        noisy: true,
        missing_share: 0.4,
    };
    /// The three variants of the accuracy report.
    pub const ALL: [Variant; 3] = [Variant::CLEAN, Variant::NOISY, Variant::NOISY_SPARSE];

    /// Short name for reports.
    pub fn name(&self) -> String {
        match (self.noisy, self.missing_share > 0.0) {
            (false, false) => "clean".to_owned(),
            (true, false) => "noisy".to_owned(),
            (noisy, true) => format!(
                "{}{:.0}% missing",
                if noisy { "noisy + " } else { "" },
                self.missing_share * 100.0
            ),
        }
    }
}

/// A shift the analysis should find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedShift {
    /// First day of the new pattern.
    pub date: NaiveDate,
    /// Pattern before.
    pub from: PatternKind,
    /// Pattern after.
    pub to: PatternKind,
}

/// What an analysis of a scenario's diary at its last day, with the default window, should find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroundTruth {
    /// The last day of the diary: the analysis date.
    pub as_of: NaiveDate,
    /// Pattern of the last four weeks.
    pub pattern: PatternKind,
    /// Trend of first-step pain over the last four weeks.
    pub first_step_trend: Direction,
    /// A treatment started during the diary and its verdict, if the story has one.
    pub treatment: Option<(Treatment, Verdict)>,
    /// The pattern shift, if the story has one (otherwise none may be reported).
    pub shift: Option<ExpectedShift>,
    /// The red flags expected, in order: all must be raised.
    pub red_flags: Vec<RedFlagKind>,
    /// Red flags that may be raised or not (the story makes them likely but not certain).
    pub optional_flags: Vec<RedFlagKind>,
    /// The sub-reading of the pattern, when the story has one.
    pub sub_reading: Option<SubReading>,
    /// The first red flag must be urgent.
    pub urgent_first: bool,
    /// No measure changes in the window: any direction named is false.
    pub no_trend: bool,
}

/// Which parts of the ground truth a report recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recovery {
    /// Pattern kind right.
    pub pattern: bool,
    /// First-step trend direction right.
    pub first_step_trend: bool,
    /// Treatment verdict right (or none expected).
    pub treatment: bool,
    /// Shift found with the right kinds within the tolerance, or none found when none expected.
    pub shift: bool,
    /// Exactly the expected red flags (optional ones aside), urgent first when expected.
    pub red_flags: bool,
    /// No measure other than first-step pain names a direction the story does not have
    /// (checked only for stories without any trend).
    pub no_false_direction: bool,
}

impl Recovery {
    /// Whether everything was recovered.
    pub fn all(&self) -> bool {
        self.pattern
            && self.first_step_trend
            && self.treatment
            && self.shift
            && self.red_flags
            && self.no_false_direction
    }
}

/// Compares a report with the ground truth of its diary.
pub fn check(report: &Report, truth: &GroundTruth) -> Recovery {
    let treatment = truth.treatment.is_none_or(|(treatment, verdict)| {
        report
            .treatments
            .iter()
            .any(|response| response.treatment == treatment && response.helped == verdict)
    });
    let shift = match truth.shift {
        None => report.shifts.is_empty(),
        Some(expected) => {
            report.shifts.len() == 1
                && report.shifts[0].from == expected.from
                && report.shifts[0].to == expected.to
                && (report.shifts[0].date - expected.date).num_days().abs()
                    <= SHIFT_DATE_TOLERANCE_DAYS
        }
    };
    let mut flags: Vec<RedFlagKind> = report
        .red_flags
        .iter()
        .map(|flag| flag.kind)
        .filter(|kind| !truth.optional_flags.contains(kind))
        .collect();
    flags.sort();
    let urgent_first = !truth.urgent_first
        || report
            .red_flags
            .first()
            .is_some_and(|flag| flag.urgency == Urgency::Urgent);
    let no_false_direction =
        !truth.no_trend
            || report.trends.all().iter().all(|trend| {
                !matches!(trend.direction, Direction::Improving | Direction::Worsening)
            });
    Recovery {
        pattern: report.pattern.kind == truth.pattern
            && truth
                .sub_reading
                .is_none_or(|sub| report.pattern.sub_reading == Some(sub)),
        first_step_trend: report.trends.first_step_pain.direction == truth.first_step_trend,
        treatment,
        shift,
        red_flags: flags == truth.red_flags && urgent_first,
        no_false_direction,
    }
}

/// Typical day of a pattern: mean ratings at full pain and how often each answer is yes.
struct Profile {
    first_step: f64,
    rest: f64,
    sitting: f64,
    activity: f64,
    heel_tender: f64,
    morning_stiffness: f64,
    radiating: f64,
    numbness: f64,
    weakness: f64,
    night_pain: f64,
    worse_with: &'static [(Trigger, f64)],
    eased_with: &'static [(Trigger, f64)],
    locations: &'static [(Location, f64)],
}

const FOOT: Profile = Profile {
    first_step: 7.0,
    rest: 5.0,
    sitting: 1.0,
    activity: 4.0,
    heel_tender: 0.9,
    morning_stiffness: 0.8,
    radiating: 0.0,
    numbness: 0.0,
    weakness: 0.0,
    night_pain: 0.05,
    worse_with: &[(Trigger::Standing, 0.6), (Trigger::Running, 0.2)],
    eased_with: &[(Trigger::Walking, 0.7), (Trigger::Rest, 0.2)],
    locations: &[(Location::HeelBottom, 0.95), (Location::Arch, 0.2)],
};

const BACK: Profile = Profile {
    first_step: 3.0,
    rest: 4.0,
    sitting: 6.0,
    activity: 5.0,
    heel_tender: 0.1,
    morning_stiffness: 0.1,
    radiating: 0.85,
    numbness: 0.75,
    weakness: 0.25,
    night_pain: 0.5,
    worse_with: &[
        (Trigger::Sitting, 0.6),
        (Trigger::Bending, 0.5),
        (Trigger::Lifting, 0.3),
        (Trigger::Coughing, 0.2),
    ],
    eased_with: &[(Trigger::Walking, 0.15), (Trigger::Rest, 0.3)],
    locations: &[
        (Location::LowerBack, 0.8),
        (Location::Buttock, 0.6),
        (Location::Thigh, 0.4),
        (Location::Calf, 0.4),
        (Location::HeelBottom, 0.7),
        (Location::Foot, 0.3),
    ],
};

const MIXED: Profile = Profile {
    first_step: 7.0,
    rest: 5.0,
    sitting: 4.5,
    activity: 4.0,
    heel_tender: 0.85,
    morning_stiffness: 0.7,
    radiating: 0.6,
    numbness: 0.7,
    weakness: 0.1,
    night_pain: 0.3,
    worse_with: &[
        (Trigger::Standing, 0.5),
        (Trigger::Sitting, 0.5),
        (Trigger::Running, 0.1),
    ],
    eased_with: &[(Trigger::Walking, 0.6)],
    locations: &[
        (Location::HeelBottom, 0.95),
        (Location::LowerBack, 0.5),
        (Location::Buttock, 0.4),
        (Location::Calf, 0.2),
    ],
};

const STENOSIS: Profile = Profile {
    first_step: 1.0,
    rest: 1.0,
    sitting: 0.5,
    activity: 7.0,
    heel_tender: 0.05,
    morning_stiffness: 0.1,
    radiating: 0.05,
    numbness: 0.3,
    weakness: 0.0,
    night_pain: 0.05,
    worse_with: &[(Trigger::Walking, 0.8), (Trigger::Standing, 0.7)],
    eased_with: &[(Trigger::Sitting, 0.8), (Trigger::Bending, 0.5)],
    locations: &[
        (Location::Calf, 0.8),
        (Location::Thigh, 0.4),
        (Location::Foot, 0.6),
        (Location::HeelBottom, 0.4),
    ],
};

const HEEL_NERVE: Profile = Profile {
    first_step: 3.0,
    rest: 6.0,
    sitting: 4.0,
    activity: 5.0,
    heel_tender: 0.3,
    morning_stiffness: 0.1,
    radiating: 0.0,
    numbness: 0.85,
    weakness: 0.0,
    night_pain: 0.5,
    worse_with: &[(Trigger::Standing, 0.6), (Trigger::Rest, 0.3)],
    eased_with: &[],
    locations: &[(Location::HeelBottom, 0.9), (Location::Arch, 0.5)],
};

const MIXED_SITTING_PEAK: Profile = Profile {
    first_step: 7.0,
    rest: 5.0,
    sitting: 8.0,
    activity: 4.0,
    ..MIXED
};

/// The story's timeline for a diary of `days` days.
struct Timeline {
    days: i64,
}

impl Timeline {
    /// Day the treatment starts (improving scenario): five weeks before the end.
    fn treatment_start(&self) -> i64 {
        self.days - 35
    }

    /// First day of the default window, where the worsening begins.
    fn window_start(&self) -> i64 {
        self.days - 28
    }

    /// Day the pattern shifts: half-way, and at least six weeks before the end so that the
    /// last four weeks and the weakness comparison lie after it.
    fn shift_day(&self) -> i64 {
        (self.days - 42).min(self.days / 2)
    }

    /// First day of the urgent signs (cauda equina scenario): the last week.
    fn urgent_start(&self) -> i64 {
        self.days - 7
    }

    fn profile(&self, scenario: Scenario, day: i64) -> &'static Profile {
        match scenario {
            Scenario::BackPattern | Scenario::CaudaEquina => &BACK,
            Scenario::Stenosis => &STENOSIS,
            Scenario::HeelNerve => &HEEL_NERVE,
            Scenario::MixedSittingPeak => &MIXED_SITTING_PEAK,
            Scenario::Mixed => &MIXED,
            Scenario::PatternShift if day >= self.shift_day() => &MIXED,
            _ => &FOOT,
        }
    }

    /// Pain relative to the profile's full pain on `day`.
    fn pain_level(&self, scenario: Scenario, day: i64) -> f64 {
        match scenario {
            Scenario::ImprovingWithTreatment => {
                let since = (day - self.treatment_start()).max(0) as f64;
                (1.0 - (5.0 / 7.0) * since / 35.0).max(2.0 / 7.0)
            }
            Scenario::Worsening => {
                let since = (day - self.window_start()).max(0) as f64;
                3.0 / 7.0 + (5.0 / 7.0) * since / 27.0
            }
            _ => 1.0,
        }
    }

    fn treatments(&self, scenario: Scenario, day: i64) -> Vec<Treatment> {
        match scenario {
            Scenario::ImprovingWithTreatment if day >= self.treatment_start() => {
                vec![Treatment::Orthotics]
            }
            Scenario::Worsening => vec![Treatment::Stretching],
            _ => Vec::new(),
        }
    }
}

/// What an analysis at the last day of a `days`-long diary of `scenario` should find.
pub fn ground_truth(scenario: Scenario, start: NaiveDate, days: u32) -> GroundTruth {
    let timeline = Timeline {
        days: i64::from(days),
    };
    let day = |number: i64| start + Days::new(number.max(0) as u64);
    let as_of = day(timeline.days - 1);
    let steady = |pattern, red_flags| GroundTruth {
        as_of,
        pattern,
        first_step_trend: Direction::Stable,
        treatment: None,
        shift: None,
        red_flags,
        optional_flags: Vec::new(),
        sub_reading: None,
        urgent_first: false,
        no_trend: true,
    };
    match scenario {
        Scenario::FootPattern => steady(PatternKind::PlantarFasciitisLike, vec![]),
        Scenario::BackPattern => GroundTruth {
            // A quarter of days with weakness and half with night pain can line up as three
            // days of weakness in a row, or night pain on nearly every day of two weeks.
            optional_flags: vec![RedFlagKind::NewWeakness, RedFlagKind::NightPainNotEasing],
            ..steady(PatternKind::BackRelated, vec![RedFlagKind::NewNerveSigns])
        },
        Scenario::Mixed => steady(PatternKind::Mixed, vec![RedFlagKind::NewNerveSigns]),
        Scenario::ImprovingWithTreatment => GroundTruth {
            first_step_trend: Direction::Improving,
            treatment: Some((Treatment::Orthotics, Verdict::Helped)),
            no_trend: false,
            ..steady(PatternKind::PlantarFasciitisLike, vec![])
        },
        Scenario::Worsening => GroundTruth {
            first_step_trend: Direction::Worsening,
            no_trend: false,
            ..steady(
                PatternKind::PlantarFasciitisLike,
                vec![RedFlagKind::NoImprovementOnConservativeCare],
            )
        },
        Scenario::PatternShift => GroundTruth {
            shift: Some(ExpectedShift {
                date: day(timeline.shift_day()),
                from: PatternKind::PlantarFasciitisLike,
                to: PatternKind::Mixed,
            }),
            no_trend: false,
            ..steady(PatternKind::Mixed, vec![RedFlagKind::NewNerveSigns])
        },
        Scenario::Stenosis => GroundTruth {
            sub_reading: Some(SubReading::StenosisLike),
            ..steady(PatternKind::BackRelated, vec![RedFlagKind::NewNerveSigns])
        },
        Scenario::HeelNerve => steady(PatternKind::HeelNerveLike, vec![RedFlagKind::NewNerveSigns]),
        Scenario::CaudaEquina => GroundTruth {
            optional_flags: vec![
                RedFlagKind::WorseningWeakness,
                RedFlagKind::NewWeakness,
                RedFlagKind::NightPainNotEasing,
            ],
            urgent_first: true,
            // Weakness in the last week raises the nerve-sign score.
            no_trend: false,
            ..steady(
                PatternKind::BackRelated,
                vec![
                    RedFlagKind::NewNerveSigns,
                    RedFlagKind::SaddleNumbness,
                    RedFlagKind::NerveSignsBothSides,
                ],
            )
        },
        Scenario::MixedSittingPeak => steady(PatternKind::Mixed, vec![RedFlagKind::NewNerveSigns]),
        Scenario::Backfilled | Scenario::AutocorrelatedNull { .. } => {
            steady(PatternKind::PlantarFasciitisLike, vec![])
        }
    }
}

/// A clean diary of `days` days from `start` (see [`generate_variant`]).
pub fn generate(scenario: Scenario, seed: u64, start: NaiveDate, days: u32) -> Vec<Entry> {
    generate_variant(scenario, Variant::CLEAN, seed, start, days)
}

/// Random draws of one diary.
struct Writer {
    rng: StdRng,
    variant: Variant,
    /// The patient's own offset from the profile's ratings.
    bias: f64,
    /// Entries written so far, for distinct ids.
    written: u64,
    /// Day-to-day correlation of the ratings' noise (0: independent days).
    correlation: f64,
    /// The current noise of each of the four ratings, for correlated days.
    wander: [f64; 4],
}

impl Writer {
    fn normal(&mut self) -> f64 {
        // Box–Muller; 1 − u keeps the logarithm finite.
        let u: f64 = 1.0 - self.rng.random::<f64>();
        let v: f64 = self.rng.random();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    fn rating(&mut self, slot: usize, mean: f64, odd: bool) -> Option<u8> {
        // Correlated noise moves every day, answered or not: an AR(1) series with marginal
        // SD 1 (clean) or 1.5 (noisy) points. Independent noise is drawn only when answered,
        // as it always was, so the other scenarios keep their diaries.
        let wandered = (self.correlation > 0.0).then(|| {
            let rho = self.correlation;
            self.wander[slot] = rho * self.wander[slot] + (1.0 - rho * rho).sqrt() * self.normal();
            let spread = if self.variant.noisy { 1.5 } else { 1.0 };
            spread * self.wander[slot]
        });
        if self.skip_answer() {
            return None;
        }
        if odd && self.rng.random_bool(0.5) {
            return Some(self.rng.random_range(0..=10));
        }
        let noise = match wandered {
            Some(noise) => noise,
            None => (if self.variant.noisy { 1.0 } else { 0.5 }) * self.normal(),
        };
        let value = mean + self.bias + noise;
        Some(value.round().clamp(0.0, 10.0) as u8)
    }

    fn skip_answer(&mut self) -> bool {
        self.variant.noisy && self.rng.random_bool(0.15)
    }

    fn answer(&mut self, probability: f64) -> Option<bool> {
        if self.skip_answer() {
            return None;
        }
        Some(self.rng.random_bool(probability.clamp(0.0, 1.0)))
    }

    fn pick<T: Copy>(&mut self, choices: &[(T, f64)]) -> Vec<T> {
        choices
            .iter()
            .filter(|(_, probability)| self.rng.random_bool(*probability))
            .map(|(choice, _)| *choice)
            .collect()
    }

    fn entry(&mut self, day: NaiveDate) -> Entry {
        let recorded_at = day
            .and_hms_opt(8, 0, 0)
            .unwrap_or_default()
            .and_utc()
            .fixed_offset();
        let mut bytes = [0u8; 10];
        self.rng.fill(&mut bytes);
        // Milliseconds of the recording time plus a counter keep ids distinct and in order.
        let millis = recorded_at.timestamp_millis().max(0) as u64 + self.written;
        self.written += 1;
        let id = uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid();
        Entry::new(id, day, recorded_at)
    }

    fn numbness(&mut self, probability: f64) -> Option<Severity> {
        let present = self.answer(probability)?;
        if !present {
            return Some(Severity::Absent);
        }
        let grade: f64 = self.rng.random();
        Some(if grade < 0.6 {
            Severity::Mild
        } else if grade < 0.9 {
            Severity::Moderate
        } else {
            Severity::Severe
        })
    }

    /// The check-ins of one logged day (one, or a morning and an evening one).
    fn day_entries(
        &mut self,
        date: NaiveDate,
        profile: &Profile,
        level: f64,
        treatments: Vec<Treatment>,
    ) -> Vec<Entry> {
        let odd = self.variant.noisy && self.rng.random_bool(0.1);
        let mut entry = self.entry(date);
        entry.first_step_pain = self.rating(0, profile.first_step * level, odd);
        entry.rest_pain = self.rating(1, profile.rest * level, odd);
        entry.sitting_pain = self.rating(2, profile.sitting * level, odd);
        entry.activity_pain = self.rating(3, profile.activity * level, odd);
        entry.heel_tender = self.answer(profile.heel_tender);
        entry.morning_stiffness = self.answer(profile.morning_stiffness);
        entry.radiating = self.answer(profile.radiating);
        entry.numbness = self.numbness(profile.numbness);
        entry.weakness = self.answer(profile.weakness);
        entry.night_pain = self.answer(profile.night_pain);
        entry.worse_with = self.pick(profile.worse_with);
        entry.eased_with = self.pick(profile.eased_with);
        entry.locations = self.pick(profile.locations);
        entry.treatments = treatments;
        if odd {
            if self.rng.random_bool(0.5) {
                entry.heel_tender = entry.heel_tender.map(|tender| !tender);
            }
            if self.rng.random_bool(0.3) {
                entry.radiating = Some(true);
            }
            let stray = Trigger::ALL[self.rng.random_range(0..Trigger::ALL.len())];
            entry.worse_with.push(stray);
        }
        if !self.rng.random_bool(0.2) {
            return vec![entry];
        }
        // A morning and an evening check-in, each with part of the day.
        let mut evening = self.entry(date);
        evening.recorded_at = entry.recorded_at.with_hour(20).unwrap_or(entry.recorded_at);
        evening.sitting_pain = entry.sitting_pain.take();
        evening.activity_pain = entry.activity_pain.take();
        evening.night_pain = entry.night_pain.take();
        evening.radiating = entry.radiating.take();
        evening.weakness = entry.weakness.take();
        evening.worse_with = std::mem::take(&mut entry.worse_with);
        evening.eased_with = std::mem::take(&mut entry.eased_with);
        evening.treatments = std::mem::take(&mut entry.treatments);
        vec![entry, evening]
    }

    /// An entry deleted by the patient: alarming values the analysis must not see.
    fn deleted_entry(&mut self, date: NaiveDate) -> Entry {
        let mut entry = self.entry(date);
        entry.first_step_pain = Some(10);
        entry.sitting_pain = Some(10);
        entry.numbness = Some(Severity::Severe);
        entry.weakness = Some(true);
        entry.radiating = Some(true);
        entry.treatments = vec![Treatment::Surgery];
        entry.deleted = true;
        entry
    }
}

/// A diary of `days` days from `start` telling `scenario`, logged as `variant` says.
/// The same arguments always give the same entries.
pub fn generate_variant(
    scenario: Scenario,
    variant: Variant,
    seed: u64,
    start: NaiveDate,
    days: u32,
) -> Vec<Entry> {
    let mut rng = StdRng::seed_from_u64(seed);
    let bias = rng.random_range(-0.5..=0.5);
    let mut writer = Writer {
        rng,
        variant,
        bias,
        written: 0,
        correlation: scenario.correlation(),
        wander: [0.0; 4],
    };
    let timeline = Timeline {
        days: i64::from(days),
    };
    let mut entries = Vec::with_capacity(days as usize + days as usize / 4);
    for number in 0..timeline.days {
        let date = start + Days::new(number as u64);
        if writer.rng.random_bool(0.03) {
            entries.push(writer.deleted_entry(date));
        }
        if writer
            .rng
            .random_bool(variant.missing_share.clamp(0.0, 1.0))
        {
            continue;
        }
        let profile = timeline.profile(scenario, number);
        let level = timeline.pain_level(scenario, number);
        let treatments = timeline.treatments(scenario, number);
        let mut day = writer.day_entries(date, profile, level, treatments);
        match scenario {
            Scenario::CaudaEquina => {
                writer.cauda_equina(&mut day, number >= timeline.urgent_start())
            }
            Scenario::Backfilled => {
                for entry in &mut day {
                    write_up_on_sunday(entry);
                }
            }
            _ => {}
        }
        entries.extend(day);
    }
    entries
}

/// Moves an entry's recording to the Sunday evening ending its week, as a diary kept in
/// weekly batches is.
fn write_up_on_sunday(entry: &mut Entry) {
    let days_to_sunday = 6 - u64::from(entry.day.weekday().num_days_from_monday());
    let sunday = entry.day + Days::new(days_to_sunday);
    if let Some(evening) = sunday.and_hms_opt(21, 0, 0) {
        entry.recorded_at = evening.and_utc().fixed_offset();
        entry.backfilled = Entry::is_backfilled(entry.day, &entry.recorded_at);
    }
}

impl Writer {
    /// Both legs every day; weakness and saddle numbness only in the last week (asked, and
    /// answered no, before it).
    fn cauda_equina(&mut self, day: &mut [Entry], urgent: bool) {
        for entry in day.iter_mut() {
            entry.weakness = entry.weakness.map(|_| urgent);
        }
        if let Some(first) = day.first_mut() {
            first.side = Some(Side::Both);
            first.saddle_numbness = self.answer(if urgent { 1.0 } else { 0.0 });
        }
    }
}

/// A cohort of `patients` diaries of `days` days from `start`, cycling through the scenarios
/// and variants, patient `i` seeded with `seed + i`. Generated in parallel.
pub fn cohort(patients: usize, seed: u64, start: NaiveDate, days: u32) -> Vec<Vec<Entry>> {
    (0..patients)
        .into_par_iter()
        .map(|index| {
            let scenario = Scenario::ALL[index % Scenario::ALL.len()];
            let variant = Variant::ALL[(index / Scenario::ALL.len()) % Variant::ALL.len()];
            generate_variant(
                scenario,
                variant,
                seed.wrapping_add(index as u64),
                start,
                days,
            )
        })
        .collect()
}
