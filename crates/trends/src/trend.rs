//! Trend of each measure over the window: Mann–Kendall test for whether there is a monotonic
//! trend, Theil–Sen slope for how large it is. A direction is named only when the test is
//! significant and the change along the slope is clinically meaningful.

use crate::days::Day;
use crate::report::{round, Direction, Measure, Trend, Trends};
use crate::stats::{is_meaningful_pain_change, mann_kendall, theil_sen};

/// Fewest days with a measure before its trend is judged.
pub const MIN_DAYS_FOR_TREND: usize = 8;

/// Significance level of the two-sided Mann–Kendall test. 10% rather than the usual 5%
/// because a direction also needs a clinically meaningful change along the Theil–Sen line,
/// which keeps false alarms low on its own, while four weeks of a gappy diary give few points
/// and a stricter test would miss real changes of several points.
pub const SIGNIFICANCE: f64 = 0.10;

/// Smallest meaningful change of the nerve-sign score (0–5): one sign appearing or going, or
/// numbness changing by a grade.
const MEANINGFUL_NERVE_CHANGE: f64 = 1.0;

fn is_meaningful(measure: Measure, change: f64, baseline: f64) -> bool {
    match measure {
        Measure::NerveSigns => change.abs() + 1e-9 >= MEANINGFUL_NERVE_CHANGE,
        _ => is_meaningful_pain_change(change, baseline),
    }
}

/// Trends of every measure over `days` (the window's days, in date order).
pub(crate) fn trends(days: &[Day]) -> Trends {
    Trends {
        first_step_pain: trend(Measure::FirstStepPain, days),
        rest_pain: trend(Measure::RestPain, days),
        sitting_pain: trend(Measure::SittingPain, days),
        activity_pain: trend(Measure::ActivityPain, days),
        nerve_signs: trend(Measure::NerveSigns, days),
    }
}

fn trend(measure: Measure, days: &[Day]) -> Trend {
    let points: Vec<(&Day, f64)> = days
        .iter()
        .filter_map(|day| day.measure(measure).map(|v| (day, v)))
        .collect();
    let n = points.len();
    let from = points.first().map(|(day, _)| day.date);
    let to = points.last().map(|(day, _)| day.date);
    let values: Vec<f64> = points.iter().map(|(_, v)| *v).collect();
    let times: Vec<f64> = points.iter().map(|(day, _)| day.number as f64).collect();
    let statistics = (n >= MIN_DAYS_FOR_TREND)
        .then(|| Some((mann_kendall(&values)?, theil_sen(&times, &values)?)))
        .flatten();
    let (Some((test, line)), Some(first), Some(last)) =
        (statistics, times.first().copied(), times.last().copied())
    else {
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
            sentence: format!(
                "Too few days with {} in the window to judge a trend ({n} logged, at least {MIN_DAYS_FOR_TREND} needed).",
                measure.describe()
            ),
        };
    };
    let start_level = line.at(first);
    let end_level = line.at(last);
    let change = end_level - start_level;
    let significant = test.p < SIGNIFICANCE;
    let meaningful = is_meaningful(measure, change, start_level);
    // The test and the slope must agree on the sign; with many ties they can differ.
    let direction = if significant && meaningful && (test.s < 0) == (change < 0.0) {
        if change < 0.0 {
            Direction::Improving
        } else {
            Direction::Worsening
        }
    } else {
        Direction::Stable
    };
    let (from_date, to_date) = (from.unwrap_or_default(), to.unwrap_or_default());
    let numbers = format!(
        "Theil-Sen slope {:+.2} per week, change {:+.1} from about {:.1} to {:.1} between {from_date} and {to_date}; Mann-Kendall tau {:+.2}, p {}, n {n}",
        line.slope * 7.0,
        change,
        start_level,
        end_level,
        test.tau,
        format_p(test.p)
    );
    let what = measure.describe();
    let sentence = match direction {
        Direction::Improving => format!(
            "Days consistent with improving {what}: a clinically meaningful fall ({numbers})."
        ),
        Direction::Worsening => format!(
            "Days consistent with worsening {what}: a clinically meaningful rise ({numbers})."
        ),
        _ if !significant => format!(
            "No clear trend in {what} ({numbers}); consistent with stable {what}."
        ),
        _ => format!(
            "A statistically clear but not clinically meaningful change in {what} ({numbers}); consistent with stable {what}."
        ),
    };
    Trend {
        measure,
        direction,
        n: n as u32,
        s: Some(test.s),
        z: Some(round(test.z)),
        tau: Some(round(test.tau)),
        p: Some(test.p),
        slope_per_week: Some(round(line.slope * 7.0)),
        change: Some(round(change)),
        start_level: Some(round(start_level)),
        end_level: Some(round(end_level)),
        from,
        to,
        sentence,
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
