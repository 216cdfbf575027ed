//! Whether pain fell after each treatment started: the mean of the patient's main pain rating
//! in the four weeks before the start against weeks 3 to 6 after it.
//!
//! The main rating is the one with the highest mean before the start (first-step pain in a foot
//! pattern, often sitting pain in a back pattern): it is the complaint the treatment is for, and
//! comparing one rating keeps the clinically meaningful threshold (2 points or 30%) on the
//! scale it was defined for. The first two weeks after a start are left out because the
//! treatments in the diary (stretching, orthotics, splints, physical therapy, injections) act
//! over weeks; conservative care is usually judged after four to six weeks.
//!
//! Treatments first logged within [`TOGETHER_DAYS`] days of each other are judged together,
//! once: the diary cannot separate their effects. And since heel pain often improves with
//! time alone, a fall after a start is reported as an association, never as proof.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use heeldiary_core::Treatment;

use crate::days::{between, offset, Day};
use crate::report::{round, Measure, Period, TreatmentResponse, Verdict};
use crate::stats::is_meaningful_pain_change;

/// Treatments whose first logged days are at most this many days apart started together.
pub const TOGETHER_DAYS: i64 = 3;
/// Fewest days with the rating on each side of the start.
pub const MIN_DAYS_EACH_SIDE: u32 = 7;
/// Length of the period before the start.
const BEFORE_DAYS: i64 = 28;
/// Days after the start that are not counted.
const SETTLING_DAYS: i64 = 14;
/// Length of the period after the settling days.
const AFTER_DAYS: i64 = 28;

/// Mean of `measure` over the days in `from..=to`.
pub(crate) fn period(days: &[Day], measure: Measure, from: NaiveDate, to: NaiveDate) -> Period {
    let values: Vec<f64> = between(days, from, to)
        .iter()
        .filter_map(|day| day.measure(measure))
        .collect();
    let mean_pain =
        (!values.is_empty()).then(|| round(values.iter().sum::<f64>() / values.len() as f64));
    Period {
        from,
        to,
        days: values.len() as u32,
        mean_pain,
    }
}

/// The pain rating with the highest mean over `from..=to` among those logged on at least
/// `min_days` days (first-step pain when none is).
pub(crate) fn main_complaint(
    days: &[Day],
    from: NaiveDate,
    to: NaiveDate,
    min_days: u32,
) -> Measure {
    Measure::PAIN
        .into_iter()
        .map(|measure| (measure, period(days, measure, from, to)))
        .filter(|(_, period)| period.days >= min_days)
        .filter_map(|(measure, period)| Some((measure, period.mean_pain?)))
        // Ties keep the earlier measure (first-step pain first).
        .fold(
            None,
            |best: Option<(Measure, f64)>, (measure, mean)| match best {
                Some((_, best_mean)) if best_mean >= mean => best,
                _ => Some((measure, mean)),
            },
        )
        .map_or(Measure::FirstStepPain, |(measure, _)| measure)
}

/// The response to each treatment in the history (`days` in date order), by start date.
pub(crate) fn responses(days: &[Day]) -> Vec<TreatmentResponse> {
    let mut starts: BTreeMap<Treatment, NaiveDate> = BTreeMap::new();
    for day in days {
        for treatment in day.treatments() {
            starts.entry(treatment).or_insert(day.date);
        }
    }
    let mut starts: Vec<(NaiveDate, Treatment)> = starts
        .into_iter()
        .map(|(treatment, start)| (start, treatment))
        .collect();
    starts.sort();
    // Groups of starts, each within TOGETHER_DAYS of the group's first.
    let mut groups: Vec<Vec<(NaiveDate, Treatment)>> = Vec::new();
    for start in starts {
        match groups.last_mut() {
            Some(group) if (start.0 - group[0].0).num_days() <= TOGETHER_DAYS => group.push(start),
            _ => groups.push(vec![start]),
        }
    }
    groups
        .into_iter()
        .map(|group| {
            let (start, treatment) = group[0];
            let together: Vec<Treatment> = group[1..].iter().map(|(_, t)| *t).collect();
            response(days, treatment, together, start)
        })
        .collect()
}

/// The names of a treatment and those started with it ("stretching and ice").
fn names(treatment: Treatment, together: &[Treatment]) -> String {
    let mut all: Vec<String> = std::iter::once(treatment)
        .chain(together.iter().copied())
        .map(|t| t.to_string().replace('_', " "))
        .collect();
    match all.len() {
        1 => all.remove(0),
        _ => {
            let last = all.pop().unwrap_or_default();
            format!("{} and {last}", all.join(", "))
        }
    }
}

fn response(
    days: &[Day],
    treatment: Treatment,
    started_with: Vec<Treatment>,
    start: NaiveDate,
) -> TreatmentResponse {
    let (before_from, before_to) = (offset(start, -BEFORE_DAYS), offset(start, -1));
    let measure = main_complaint(days, before_from, before_to, MIN_DAYS_EACH_SIDE);
    let before = period(days, measure, before_from, before_to);
    let after_from = offset(start, SETTLING_DAYS);
    let after = period(
        days,
        measure,
        after_from,
        offset(after_from, AFTER_DAYS - 1),
    );
    let enough = before.days >= MIN_DAYS_EACH_SIDE && after.days >= MIN_DAYS_EACH_SIDE;
    let means = before.mean_pain.zip(after.mean_pain);
    let (change, helped) = match means {
        Some((before_mean, after_mean)) if enough => {
            let change = after_mean - before_mean;
            let verdict = if !is_meaningful_pain_change(change, before_mean) {
                Verdict::NoClearChange
            } else if change < 0.0 {
                Verdict::Helped
            } else {
                Verdict::Worse
            };
            (Some(round(change)), verdict)
        }
        _ => (None, Verdict::InsufficientData),
    };
    let name = names(treatment, &started_with);
    let sentence = sentence(
        &name,
        !started_with.is_empty(),
        start,
        measure,
        &before,
        &after,
        change,
        helped,
    );
    let patient_sentence = patient_sentence(&name, !started_with.is_empty(), start, helped);
    TreatmentResponse {
        treatment,
        started_with,
        start,
        measure,
        before,
        after,
        change,
        helped,
        sentence,
        patient_sentence,
    }
}

/// Said with every "helped": heel pain often settles with time alone.
const ASSOCIATION: &str = "heel pain often improves with time alone, so the diary shows an association, not proof that the treatment caused it";

/// Said of treatments started together.
const TOGETHER: &str = "started together; the diary cannot separate them";

#[allow(clippy::too_many_arguments)]
fn sentence(
    treatment: &str,
    together: bool,
    start: NaiveDate,
    measure: Measure,
    before: &Period,
    after: &Period,
    change: Option<f64>,
    helped: Verdict,
) -> String {
    let side = |period: &Period| {
        format!(
            "{} ({} days, {} to {})",
            period
                .mean_pain
                .map_or_else(|| "-".to_owned(), |mean| format!("{mean:.1}")),
            period.days,
            period.from,
            period.to
        )
    };
    let numbers = format!(
        "mean {} {} in the 4 weeks before and {} in weeks 3 to 6 after starting {treatment} on {start}, change {:+.1}",
        measure.describe(),
        side(before),
        side(after),
        change.unwrap_or_default()
    );
    let together = if together {
        format!(" ({TOGETHER})")
    } else {
        String::new()
    };
    match helped {
        Verdict::Helped => format!(
            "Days consistent with less pain after starting {treatment}{together}: {numbers}, a clinically meaningful fall; {ASSOCIATION}."
        ),
        Verdict::Worse => format!(
            "Days consistent with more pain after starting {treatment}{together}: {numbers}, a clinically meaningful rise; discuss with a clinician."
        ),
        Verdict::NoClearChange => format!(
            "No clear change after starting {treatment}{together}: {numbers}, less than a clinically meaningful 2 points or 30%."
        ),
        Verdict::InsufficientData => format!(
            "Too few logged days to judge {treatment}, first logged on {start}: {} days with {} in the 4 weeks before ({} to {}) and {} in weeks 3 to 6 after ({} to {}); at least {MIN_DAYS_EACH_SIDE} are needed on each side.",
            before.days, measure.describe(), before.from, before.to, after.days, after.from, after.to
        ),
    }
}

fn patient_sentence(treatment: &str, together: bool, start: NaiveDate, helped: Verdict) -> String {
    let together = if together {
        " These were started at about the same time, so the diary cannot tell which one made the difference."
    } else {
        ""
    };
    match helped {
        Verdict::Helped => format!(
            "Pain was clearly lower in the weeks after starting {treatment} ({start}).{together} Heel pain often improves with time alone, so this does not prove the treatment caused it."
        ),
        Verdict::Worse => format!(
            "Pain was clearly higher in the weeks after starting {treatment} ({start}).{together} Talk to your clinician about it."
        ),
        Verdict::NoClearChange => format!(
            "No clear change in pain after starting {treatment} ({start}).{together}"
        ),
        Verdict::InsufficientData => format!(
            "Not enough days logged around the start of {treatment} ({start}) to tell whether pain changed."
        ),
    }
}
