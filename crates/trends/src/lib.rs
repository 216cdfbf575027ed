//! Pattern and trend analysis of a patient's heel-pain diary.
//!
//! Given a patient's entries and an analysis date, [`analyse`] reports which pattern the days
//! follow (plantar-fasciitis-like, back-related, mixed), how each pain measure and the nerve
//! signs are trending, whether pain fell after each treatment, when the pattern changed, which
//! red flags need a clinician, and how regularly the diary was kept. Every finding carries its
//! evidence (dates, values, statistics) and one plain sentence in the "consistent with …"
//! register: the analysis describes patterns, it never diagnoses.
//!
//! The crate is pure functions over [`heeldiary_core::Entry`] values, read through the core's
//! field table ([`heeldiary_core::Field`]): a day folds its check-ins field by field by kind. It must never depend on
//! an I/O crate (files, network, databases, clocks) nor on any heeldiary crate other than
//! `heeldiary-core`, so the same analysis runs on a phone, on the server and in batch jobs.
//!
//! The synthetic cohort generator (`cohort`: diaries with known ground truth) is behind the
//! `cohort` feature, off by default: the tests, the benchmark and the `trends-accuracy` tool
//! turn it on, the analysis a phone links carries no generator. The example uses it:
//!
//! ```
//! use chrono::NaiveDate;
//! use heeldiary_trends::{analyse, cohort, Options, PatternKind};
//!
//! let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
//! let entries = cohort::generate(cohort::Scenario::FootPattern, 7, start, 60);
//! let options = Options::new(start + chrono::Days::new(59));
//! let report = analyse(&entries, &options);
//! assert_eq!(report.pattern.kind, PatternKind::PlantarFasciitisLike);
//! println!("{}", heeldiary_trends::render_text(&report));
//! ```

mod alert;
#[cfg(feature = "cohort")]
pub mod cohort;
mod days;
mod pattern;
mod red_flags;
mod render;
mod report;
mod shift;
pub mod stats;
mod summary;
mod treatment;
mod trend;

use chrono::NaiveDate;
use heeldiary_core::Entry;
use rayon::prelude::*;

use crate::red_flags::SignHistory;

pub use alert::{has_urgent_sign, urgent_alert, UrgentAlert, URGENT_FIELDS};
pub use pattern::MIN_DAYS_FOR_PATTERN;
pub use render::{render, render_text, Audience};
pub use report::{
    Adherence, Direction, Evidence, Measure, Pattern, PatternKind, Period, RedFlag, RedFlagKind,
    Report, Scores, Segment, Shift, Sign, SignAsked, SignChange, Source, Step, SubReading,
    TreatmentResponse, Trend, Trends, Urgency, Verdict, Window,
};
pub use summary::{PeriodSummary, TrendSummary};
pub use trend::MIN_DAYS_FOR_TREND;

/// What to analyse: the analysis date and the window the pattern, trends and adherence cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Days in the window, ending on `as_of` (0 is taken as 1).
    pub window_days: u32,
    /// The analysis date: entries after it are ignored.
    pub as_of: NaiveDate,
}

impl Options {
    /// Four weeks: long enough for a trend test, short enough to describe the current state.
    pub const DEFAULT_WINDOW_DAYS: u32 = 28;

    /// The default window ending on `as_of`.
    pub fn new(as_of: NaiveDate) -> Self {
        Options {
            window_days: Self::DEFAULT_WINDOW_DAYS,
            as_of,
        }
    }

    /// The same options with another window length.
    pub fn with_window_days(self, window_days: u32) -> Self {
        Options {
            window_days,
            ..self
        }
    }

    /// The window as a stretch of days.
    pub fn window(&self) -> Window {
        let days = self.window_days.max(1);
        Window {
            from: days::offset(self.as_of, 1 - i64::from(days)),
            to: self.as_of,
            days,
        }
    }
}

/// Analyses one patient's entries (any order, several per day allowed; deleted entries and
/// entries after `options.as_of` are ignored).
///
/// The pattern, trends and adherence describe the window; treatment response, pattern shifts
/// and red flags use the whole history up to `as_of`.
pub fn analyse(entries: &[Entry], options: &Options) -> Report {
    let history = days::summarise(entries, options.as_of);
    window_report(&history, &SignHistory::of_days(&history), options, true)
}

/// The warning signs the diary asks about, with the logged days of `days` that answered each.
fn signs_asked(days: &[days::Day]) -> Vec<SignAsked> {
    use heeldiary_core::Field;
    [
        (Field::SaddleNumbness, "numbness between the legs"),
        (Field::BladderBowelChange, "bladder or bowel change"),
        (Field::Weakness, "weakness in the leg or foot"),
        (Field::Numbness, "numbness or tingling"),
        (Field::Side, "which side (one or both legs)"),
        (Field::FeverOrWeightLoss, "fever or weight loss"),
        (Field::NightPain, "pain at night"),
    ]
    .into_iter()
    .map(|(field, question)| SignAsked {
        field,
        question: question.to_owned(),
        days_answered: days.iter().filter(|day| day.answered(field)).count() as u32,
    })
    .collect()
}

/// A patient's logged days folded as the analysis reads them: one compact summary per calendar
/// day, however many entries the day holds. Built one entry at a time, so a caller that streams
/// a long diary keeps only these summaries (bounded by the days of the diary, not its entries).
///
/// ```
/// use chrono::NaiveDate;
/// use heeldiary_trends::{analyse, cohort, DayHistory, Options};
///
/// let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
/// let entries = cohort::generate(cohort::Scenario::FootPattern, 7, start, 60);
/// let mut history = DayHistory::default();
/// for entry in &entries {
///     history.add(entry);
/// }
/// let options = Options::new(start + chrono::Days::new(59));
/// let period = history.period_report(&options);
/// let full = analyse(&entries, &options);
/// assert_eq!(period.pattern, full.pattern);
/// assert_eq!(period.red_flags, full.red_flags);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayHistory {
    days: Vec<days::Day>,
}

impl DayHistory {
    /// Folds in one entry (deleted entries are ignored). Entries may come in any order; in day
    /// order each one costs a constant time.
    pub fn add(&mut self, entry: &Entry) {
        if entry.deleted {
            return;
        }
        days::absorb_into(&mut self.days, entry);
    }

    /// Number of days with an entry.
    pub fn len(&self) -> usize {
        self.days.len()
    }

    /// Whether no day has an entry.
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    /// The first day with an entry.
    pub fn first_day(&self) -> Option<NaiveDate> {
        self.days.first().map(|day| day.date)
    }

    /// The parts of [`analyse`] that describe the window: pattern, trends, red flags and
    /// adherence, equal to what [`analyse`] reports over the same entries. Treatment responses
    /// and pattern shifts describe the whole history rather than a period, cost the most, and
    /// are left empty.
    pub fn period_report(&self, options: &Options) -> Report {
        let history = self.up_to(options.as_of);
        window_report(history, &SignHistory::of_days(history), options, false)
    }

    /// The figures of [`period_report`](Self::period_report), without its evidence and
    /// sentences.
    pub fn period_summary(&self, options: &Options) -> PeriodSummary {
        self.summaries().summary(options)
    }

    /// Summaries of successive periods of this history (see [`PeriodSummaries`]).
    pub fn summaries(&self) -> PeriodSummaries<'_> {
        PeriodSummaries {
            days: &self.days,
            signs: SignHistory::default(),
            read: 0,
        }
    }

    /// The days up to and including `as_of`.
    fn up_to(&self, as_of: NaiveDate) -> &[days::Day] {
        let upto = self.days.partition_point(|day| day.date <= as_of);
        &self.days[..upto]
    }
}

/// Summaries of periods of one [`DayHistory`], for a caller that reads many periods of it (a
/// table of months). What the red flags read of the history before a period is kept from one
/// summary to the next, so periods asked for in order of their analysis dates read each day
/// once rather than the whole history for every period; a period asked for out of order reads
/// the history again from its start.
///
/// ```
/// use chrono::NaiveDate;
/// use heeldiary_trends::{cohort, DayHistory, Options};
///
/// let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
/// let mut history = DayHistory::default();
/// for entry in &cohort::generate(cohort::Scenario::CaudaEquina, 7, start, 90) {
///     history.add(entry);
/// }
/// let mut summaries = history.summaries();
/// for days in [30, 60, 90] {
///     let options = Options::new(start + chrono::Days::new(days - 1));
///     let summary = summaries.summary(&options);
///     let report = history.period_report(&options);
///     assert_eq!(summary.pattern, report.pattern.kind);
///     let kinds: Vec<_> = report.red_flags.iter().map(|flag| flag.kind).collect();
///     assert_eq!(summary.red_flags, kinds);
/// }
/// ```
#[derive(Debug, Clone)]
pub struct PeriodSummaries<'h> {
    days: &'h [days::Day],
    /// What the red flags read of `days[..read]`.
    signs: SignHistory,
    read: usize,
}

impl PeriodSummaries<'_> {
    /// The summary of the period `options` describes, equal to
    /// [`DayHistory::period_summary`] with the same options.
    pub fn summary(&mut self, options: &Options) -> PeriodSummary {
        let upto = self.days.partition_point(|day| day.date <= options.as_of);
        if upto < self.read {
            self.signs = SignHistory::default();
            self.read = 0;
        }
        for day in &self.days[self.read..upto] {
            self.signs.add(day);
        }
        self.read = upto;
        window_summary(&self.days[..upto], &self.signs, options)
    }
}

/// The figures of [`window_report`] over the same days, from the same code.
fn window_summary(history: &[days::Day], signs: &SignHistory, options: &Options) -> PeriodSummary {
    let window = options.window();
    let window_days = days::between(history, window.from, window.to);
    let (pattern, scores) = pattern::window_kind_and_scores(window_days);
    PeriodSummary {
        window,
        days_logged: window_days.len() as u32,
        pattern,
        scores,
        trends: trend::trend_summaries(window_days, history, options.as_of),
        red_flags: red_flags::red_flag_kinds(history, window_days, options.as_of, signs),
    }
}

/// `history` is every logged day up to the analysis date, `signs` what the red flags read of
/// it.
fn window_report(
    history: &[days::Day],
    signs: &SignHistory,
    options: &Options,
    whole_history: bool,
) -> Report {
    let window = options.window();
    let window_days = days::between(history, window.from, window.to);
    let days_logged = window_days.len() as u32;
    Report {
        window,
        pattern: pattern::window_pattern(window_days, window.from, window.to),
        trends: trend::trends(window_days, history, options.as_of),
        treatments: if whole_history {
            treatment::responses(history)
        } else {
            Vec::new()
        },
        shifts: if whole_history {
            shift::shifts(history)
        } else {
            Vec::new()
        },
        red_flags: red_flags::red_flags(history, window_days, options.as_of, signs),
        adherence: Adherence {
            days_logged,
            days_in_window: window.days,
            ratio: report::round(f64::from(days_logged) / f64::from(window.days)),
            days_backfilled: window_days.iter().filter(|day| day.backfilled).count() as u32,
            signs_asked: signs_asked(window_days),
        },
    }
}

/// Analyses many patients in parallel (one report per patient, in the same order).
pub fn analyse_many<P>(patients: &[P], options: &Options) -> Vec<Report>
where
    P: AsRef<[Entry]> + Sync,
{
    patients
        .par_iter()
        .map(|entries| analyse(entries.as_ref(), options))
        .collect()
}
