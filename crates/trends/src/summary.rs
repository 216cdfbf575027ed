//! The figures of a report over a period without its evidence and sentences: what a table of
//! many patients' periods keeps, at a fraction of the cost of wording every finding.

use crate::report::{Direction, Measure, PatternKind, RedFlagKind, Scores, Window};

/// The figures of a period's [`Report`](crate::Report): the same values the report holds
/// (computed by the same code), without the evidence, the sentences, the treatment responses
/// and the pattern shifts.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodSummary {
    /// The days the pattern, trends and adherence describe.
    pub window: Window,
    /// Days of the window with at least one entry.
    pub days_logged: u32,
    /// The pattern the days of the window are consistent with.
    pub pattern: PatternKind,
    /// Its scores, rounded as in the report.
    pub scores: Scores,
    /// The trend of each measure, in [`Measure::ALL`] order.
    pub trends: [TrendSummary; 5],
    /// The kinds of the red flags raised, in the report's order (urgent first).
    pub red_flags: Vec<RedFlagKind>,
}

/// The figures of one measure's [`Trend`](crate::Trend).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendSummary {
    /// The measure.
    pub measure: Measure,
    /// What the trend says.
    pub direction: Direction,
    /// Days with the measure in the window.
    pub n: u32,
    /// Theil–Sen slope per week, rounded as in the report.
    pub slope_per_week: Option<f64>,
    /// Two-sided p-value of the Mann–Kendall test.
    pub p: Option<f64>,
}
