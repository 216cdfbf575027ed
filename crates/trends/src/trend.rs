//! Trend of each measure over the window: the Mann–Kendall test, with the Hamed–Rao correction
//! because daily scores are serially correlated, for whether there is a monotonic trend; the
//! Theil–Sen slope for how large it is; and a step test (the last two weeks against the four
//! before, by ranks and the Hodges–Lehmann shift) because on whole-number scores with many ties
//! the Theil–Sen slope stays 0 through a clear step.
//!
//! Both tests widen their variance for the day-to-day correlation, estimated once per measure
//! over the last twelve weeks in six-week blocks (see [`lag1_in_blocks`]): four weeks alone
//! cannot tell a wander from a trend when neighbouring days are alike. A measure names a
//! direction only when the line and the step agree on it: the larger of their two p-values is
//! the measure's (an intersection–union test, which needs no adjustment for the pair), a wander
//! rarely fools both, and a real change over the last weeks shows in both. The five measures of
//! a report are one family, adjusted by Holm's method. A direction is named only when the
//! adjusted p is significant and the change (along the line, or else the step's shift) is
//! clinically meaningful.

use chrono::NaiveDate;

use crate::days::{between, offset, Day};
use crate::report::{round, Direction, Measure, Period, Step, Trend, Trends};
use crate::stats::{
    holm, is_meaningful_pain_change, lag1_in_blocks, mann_kendall_hamed_rao_given,
    rank_shift_given, theil_sen,
};
use crate::summary::TrendSummary;

/// Fewest days with a measure before its trend is judged.
pub const MIN_DAYS_FOR_TREND: usize = 8;

/// Significance level for the family of tests of one report, after Holm's adjustment. 10%
/// rather than the usual 5% because a direction also needs a clinically meaningful change,
/// which keeps false alarms low on its own, while four weeks of a gappy diary give few points.
pub const SIGNIFICANCE: f64 = 0.10;

/// Smallest meaningful change of the nerve-sign score (0–5): one sign appearing or going, or
/// numbness changing by a grade.
const MEANINGFUL_NERVE_CHANGE: f64 = 1.0;

/// Length of the recent stretch of the step test.
pub const STEP_RECENT_DAYS: i64 = 14;
/// Length of the earlier stretch of the step test.
pub const STEP_EARLIER_DAYS: i64 = 28;
/// Days of history whose day-to-day correlation widens the tests' variance.
const CONTEXT_DAYS: i64 = 84;
/// Shortest block the day-to-day correlation is estimated in: shorter blocks lose too much of
/// a slow wander to their own line.
const MIN_CORRELATION_BLOCK: usize = 14;
/// Fewest days with the measure on each side of the step test.
const MIN_STEP_DAYS: u32 = 6;

fn is_meaningful(measure: Measure, change: f64, baseline: f64) -> bool {
    match measure {
        Measure::NerveSigns => change.abs() + 1e-9 >= MEANINGFUL_NERVE_CHANGE,
        _ => is_meaningful_pain_change(change, baseline),
    }
}

/// Highest value of a measure.
fn top(measure: Measure) -> f64 {
    match measure {
        Measure::NerveSigns => 5.0,
        _ => 10.0,
    }
}

/// What the tests found for one measure, before the family adjustment.
struct Tested {
    measure: Measure,
    n: usize,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    line: Option<Line>,
    step: Option<Step>,
    /// Lag-1 correlation of the measure from day to day, as estimated.
    correlation: f64,
}

struct Line {
    /// Whether the values differ at all: a constant series can show no trend.
    varies: bool,
    s: i64,
    z: f64,
    tau: f64,
    p: f64,
    variance_ratio: f64,
    slope_per_day: f64,
    start_level: f64,
    end_level: f64,
}

/// Trends of every measure: the Mann–Kendall line over `window` (the window's days, in date
/// order) and the step over the last six weeks of `history` to `as_of`.
pub(crate) fn trends(window: &[Day], history: &[Day], as_of: NaiveDate) -> Trends {
    let [first_step_pain, rest_pain, sitting_pain, activity_pain, nerve_signs] =
        judged(window, history, as_of).map(word);
    Trends {
        first_step_pain,
        rest_pain,
        sitting_pain,
        activity_pain,
        nerve_signs,
    }
}

/// The figures of [`trends`], in [`Measure::ALL`] order, without the sentences.
pub(crate) fn trend_summaries(
    window: &[Day],
    history: &[Day],
    as_of: NaiveDate,
) -> [TrendSummary; 5] {
    judged(window, history, as_of).map(|judged| TrendSummary {
        measure: judged.tested.measure,
        direction: judged.direction,
        n: judged.tested.n as u32,
        slope_per_week: judged
            .tested
            .line
            .as_ref()
            .map(|line| round(line.slope_per_day * 7.0)),
        p: judged.tested.line.as_ref().map(|line| line.p),
    })
}

/// Every measure tested, adjusted as one family and judged, in [`Measure::ALL`] order.
fn judged(window: &[Day], history: &[Day], as_of: NaiveDate) -> [Judged; 5] {
    let tested = Measure::ALL.map(|measure| test(measure, window, history, as_of));
    let family: Vec<Option<f64>> = tested.iter().map(agreement_p).collect();
    let adjusted = holm(&family);
    tested.map(|t| {
        let index = Measure::ALL
            .iter()
            .position(|m| *m == t.measure)
            .unwrap_or(0);
        judge(t, adjusted[index])
    })
}

/// The p-value of "the line and the step agree on a direction": the larger of the two when
/// they point the same way, 1 when they point apart, the line's alone when the diary is too
/// short for a step. `None` (left out of the family) without a line, or when the measure did
/// not vary over the window: such a measure can name no direction whatever happens, so
/// counting it would only make the others' adjustment stricter (Tarone's argument).
fn agreement_p(tested: &Tested) -> Option<f64> {
    let line = tested.line.as_ref().filter(|line| line.varies)?;
    let Some(step) = &tested.step else {
        return Some(line.p);
    };
    let agree = line.s != 0 && step.shift != 0.0 && (line.s > 0) == (step.shift > 0.0);
    Some(if agree { line.p.max(step.p) } else { 1.0 })
}

fn test(measure: Measure, window: &[Day], history: &[Day], as_of: NaiveDate) -> Tested {
    let points: Vec<(&Day, f64)> = window
        .iter()
        .filter_map(|day| day.measure(measure).map(|v| (day, v)))
        .collect();
    let n = points.len();
    let values: Vec<f64> = points.iter().map(|(_, v)| *v).collect();
    let times: Vec<f64> = points.iter().map(|(day, _)| day.number as f64).collect();
    let context: Vec<f64> = between(history, offset(as_of, 1 - CONTEXT_DAYS), as_of)
        .iter()
        .filter_map(|day| day.measure(measure))
        .collect();
    // A window longer than the context is its own context.
    let series = if context.len() > values.len() {
        &context
    } else {
        &values
    };
    // Blocks as long as the six weeks the step test spans: long enough that a block's own
    // line takes little of a slow wander, short enough that a change over the months before
    // stays out of the estimate. The last block is the step test's six weeks, allowed a step
    // before its last two weeks.
    let count_since = |days_back: i64| {
        between(history, offset(as_of, 1 - days_back), as_of)
            .iter()
            .filter(|day| day.measure(measure).is_some())
            .count()
    };
    let step_span = count_since(STEP_RECENT_DAYS + STEP_EARLIER_DAYS);
    let recent = count_since(STEP_RECENT_DAYS);
    let correlation = lag1_in_blocks(
        series,
        step_span.max(MIN_CORRELATION_BLOCK),
        (series.len() >= step_span).then_some(recent),
    )
    .unwrap_or(0.0);
    let line = (n >= MIN_DAYS_FOR_TREND)
        .then(|| {
            let (test, variance_ratio) = mann_kendall_hamed_rao_given(&values, correlation)?;
            let fit = theil_sen(&times, &values)?;
            let (first, last) = (*times.first()?, *times.last()?);
            // The fitted line is a summary of days on a bounded scale: its ends stay on it.
            let start_level = fit.at(first).clamp(0.0, top(measure));
            let end_level = fit.at(last).clamp(0.0, top(measure));
            Some(Line {
                varies: values.iter().any(|v| *v != values[0]),
                s: test.s,
                z: test.z,
                tau: test.tau,
                p: test.p,
                variance_ratio,
                slope_per_day: fit.slope,
                start_level,
                end_level,
            })
        })
        .flatten();
    Tested {
        measure,
        n,
        from: points.first().map(|(day, _)| day.date),
        to: points.last().map(|(day, _)| day.date),
        line,
        step: step(measure, history, as_of, correlation),
        correlation,
    }
}

/// The last two weeks to `as_of` against the four weeks before, the variance widened for the
/// day-to-day correlation `correlation`.
fn step(measure: Measure, history: &[Day], as_of: NaiveDate, correlation: f64) -> Option<Step> {
    let recent_from = offset(as_of, 1 - STEP_RECENT_DAYS);
    let earlier_to = offset(recent_from, -1);
    let earlier_from = offset(recent_from, -STEP_EARLIER_DAYS);
    let values = |from, to| -> Vec<f64> {
        between(history, from, to)
            .iter()
            .filter_map(|day| day.measure(measure))
            .collect()
    };
    let earlier = values(earlier_from, earlier_to);
    let recent = values(recent_from, as_of);
    if (earlier.len() as u32) < MIN_STEP_DAYS || (recent.len() as u32) < MIN_STEP_DAYS {
        return None;
    }
    let shift = rank_shift_given(&earlier, &recent, Some(correlation))?;
    let period = |from, to, values: &[f64]| Period {
        from,
        to,
        days: values.len() as u32,
        mean_pain: Some(round(values.iter().sum::<f64>() / values.len() as f64)),
    };
    Some(Step {
        earlier: period(earlier_from, earlier_to, &earlier),
        recent: period(recent_from, as_of, &recent),
        shift: round(shift.shift),
        p: shift.p,
    })
}

/// What a measure's tests say once the family is adjusted: its direction, and whether the
/// step rather than the line names it.
struct Judged {
    tested: Tested,
    p_adjusted: Option<f64>,
    direction: Direction,
    by_step: bool,
    /// Whether the adjusted p is below the significance level.
    significant: bool,
}

fn judge(tested: Tested, p_adjusted: Option<f64>) -> Judged {
    let Some(line) = &tested.line else {
        return Judged {
            tested,
            p_adjusted,
            direction: Direction::InsufficientData,
            by_step: false,
            significant: false,
        };
    };
    let change = line.end_level - line.start_level;
    let significant = p_adjusted.is_some_and(|p| p < SIGNIFICANCE);
    let line_clear = significant
        && is_meaningful(tested.measure, change, line.start_level)
        && (line.s < 0) == (change < 0.0)
        && change != 0.0;
    let step_clear = tested.step.as_ref().is_some_and(|step| {
        significant
            && step.shift != 0.0
            && is_meaningful(
                tested.measure,
                step.shift,
                step.earlier.mean_pain.unwrap_or(0.0),
            )
    });
    let (direction, by_step) = match (line_clear, step_clear, &tested.step) {
        (true, _, _) if change < 0.0 => (Direction::Improving, false),
        (true, _, _) => (Direction::Worsening, false),
        (false, true, Some(step)) if step.shift < 0.0 => (Direction::Improving, true),
        (false, true, Some(_)) => (Direction::Worsening, true),
        _ => (Direction::Stable, false),
    };
    Judged {
        tested,
        p_adjusted,
        direction,
        by_step,
        significant,
    }
}

/// The trend of a judged measure, with its sentences.
fn word(judged: Judged) -> Trend {
    let Judged {
        tested,
        p_adjusted,
        direction,
        by_step,
        significant,
    } = judged;
    let Tested {
        measure,
        n,
        from,
        to,
        line,
        step,
        correlation,
    } = tested;
    let what = measure.describe();
    let Some(line) = line else {
        return Trend {
            measure,
            direction: Direction::InsufficientData,
            n: n as u32,
            s: None,
            z: None,
            tau: None,
            p: None,
            slope_per_week: None,
            change: None,
            start_level: None,
            end_level: None,
            from,
            to,
            p_adjusted: None,
            step: None,
            sentence: format!(
                "Too few days with {what} in the window to judge a trend ({n} logged, at least {MIN_DAYS_FOR_TREND} needed)."
            ),
            patient_sentence: format!(
                "{}: not enough days logged yet to see a change ({n} so far, {MIN_DAYS_FOR_TREND} needed).",
                crate::pattern::capitalise(what)
            ),
        };
    };
    let change = line.end_level - line.start_level;
    let (from_date, to_date) = (from.unwrap_or_default(), to.unwrap_or_default());
    let mut numbers = format!(
        "Theil-Sen slope {:+.2} per week, change {:+.1} from about {:.1} to {:.1} between {from_date} and {to_date}; Mann-Kendall tau {:+.2}, p {} after the Hamed-Rao correction for a day-to-day correlation of {:.2} (variance x{:.2}), n {n}",
        line.slope_per_day * 7.0,
        change,
        line.start_level,
        line.end_level,
        line.tau,
        format_p(line.p),
        correlation,
        line.variance_ratio,
    );
    if let Some(step) = &step {
        numbers.push_str(&format!(
            "; step: mean {:.1} over {} days from {} to {} against {:.1} over {} days from {} to {}, Hodges-Lehmann shift {:+.1}, rank-test p {}",
            step.recent.mean_pain.unwrap_or_default(),
            step.recent.days,
            step.recent.from,
            step.recent.to,
            step.earlier.mean_pain.unwrap_or_default(),
            step.earlier.days,
            step.earlier.from,
            step.earlier.to,
            step.shift,
            format_p(step.p),
        ));
    }
    numbers.push_str(&format!(
        "; {}, Holm-adjusted over the report's five measures: p {}",
        if step.is_some() {
            "the line and the step must agree, so the larger p counts"
        } else {
            "too few days for a step test, so the line alone counts"
        },
        format_p(p_adjusted.unwrap_or(1.0)),
    ));
    let sentence = match (direction, by_step) {
        (Direction::Improving, false) => format!(
            "Days consistent with improving {what}: a clinically meaningful fall ({numbers})."
        ),
        (Direction::Worsening, false) => format!(
            "Days consistent with worsening {what}: a clinically meaningful rise ({numbers})."
        ),
        (Direction::Improving, true) => format!(
            "Days consistent with improving {what}: a clinically meaningful step down in the last two weeks ({numbers})."
        ),
        (Direction::Worsening, true) => format!(
            "Days consistent with worsening {what}: a clinically meaningful step up in the last two weeks ({numbers})."
        ),
        _ if significant => format!(
            "The ranks of {what} lean one way, but the change along the line is not clinically meaningful ({numbers}); consistent with stable {what}."
        ),
        _ => format!("No clear trend in {what} ({numbers}); consistent with stable {what}."),
    };
    let plain_what = crate::pattern::capitalise(what);
    let patient_sentence = match (direction, &step) {
        (Direction::Improving | Direction::Worsening, Some(step)) if by_step => format!(
            "{plain_what}: {} in the last two weeks (about {:.1} on average, against {:.1} in the four weeks before).",
            if direction == Direction::Improving { "better" } else { "worse" },
            step.recent.mean_pain.unwrap_or_default(),
            step.earlier.mean_pain.unwrap_or_default(),
        ),
        (Direction::Improving, _) => format!(
            "{plain_what}: getting better, from about {:.0} to about {:.0} over these weeks.",
            line.start_level, line.end_level
        ),
        (Direction::Worsening, _) => format!(
            "{plain_what}: getting worse, from about {:.0} to about {:.0} over these weeks. Tell your clinician.",
            line.start_level, line.end_level
        ),
        _ => format!("{plain_what}: no clear change over these weeks."),
    };
    Trend {
        measure,
        direction,
        n: n as u32,
        s: Some(line.s),
        z: Some(round(line.z)),
        tau: Some(round(line.tau)),
        p: Some(line.p),
        slope_per_week: Some(round(line.slope_per_day * 7.0)),
        change: Some(round(change)),
        start_level: Some(round(line.start_level)),
        end_level: Some(round(line.end_level)),
        from,
        to,
        p_adjusted,
        step,
        sentence,
        patient_sentence,
    }
}

/// A p-value for a sentence: three decimals, or "< 0.001".
pub(crate) fn format_p(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".to_owned()
    } else {
        format!("= {p:.3}")
    }
}
