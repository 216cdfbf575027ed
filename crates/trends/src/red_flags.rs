//! Red flags from the brief's "when to see a doctor": numbness, tingling or weakness in the leg
//! or foot, weakness getting worse, and pain that persists despite conservative care.
//!
//! Decisions, so that a reader of a report knows what triggered a flag:
//! - Numbness, tingling or weakness reported on any day of the window raises a flag: the brief
//!   asks anyone who has them to see a clinician, whether or not they are new. The flag says
//!   when the current episode began and whether it followed two weeks or more of logged days
//!   without them (a new sign). Radiating pain alone does not raise it.
//! - Weakness is "getting worse" when its share of days in the last two weeks is at least 30
//!   points above the four weeks before, and the rise is statistically clear (one-sided
//!   two-proportion test, p < 0.001), on at least three days.
//! - "Not improving after 6+ weeks of conservative treatment": the current course of
//!   conservative treatment (uses no more than two weeks apart, the last within two weeks) has
//!   lasted at least 42 days, and the mean of the main pain rating (the highest in the course's
//!   first three weeks) in the last two weeks is not a clinically meaningful amount below the
//!   course's first three weeks.

use chrono::NaiveDate;
use heeldiary_core::{Field, Treatment};

use crate::days::{between, offset, Day};
use crate::report::{RedFlag, RedFlagKind};
use crate::stats::{is_meaningful_pain_change, normal_cdf};
use crate::treatment::{main_complaint, period};

/// Logged days without nerve signs after which their return counts as new.
pub const CLEAR_DAYS_BEFORE_NEW: u32 = 14;
/// Days of conservative treatment after which pain should have improved (six weeks).
pub const CONSERVATIVE_CARE_DAYS: i64 = 42;
/// Longest gap between two uses of conservative treatment within one course.
const MAX_GAP_IN_COURSE: i64 = 14;
/// Length of the recent period compared for weakness and for pain.
const RECENT_DAYS: i64 = 14;
/// Length of the earlier period compared for weakness.
const EARLIER_DAYS: i64 = 28;
/// Length of the start of a course of conservative care, compared with the recent period.
const COURSE_START_DAYS: i64 = 21;
/// Fewest days with a pain rating in each compared period.
const MIN_PAIN_DAYS: u32 = 4;
/// Fewest recent days with weakness for a worsening flag.
const MIN_RECENT_WEAKNESS_DAYS: u32 = 3;
/// Fewest earlier days with a weakness answer to compare against.
const MIN_EARLIER_WEAKNESS_ANSWERS: u32 = 5;
/// Smallest rise in the share of days with weakness.
const MIN_WEAKNESS_RISE: f64 = 0.30;
/// One-sided significance level for the rise in weakness.
const WEAKNESS_SIGNIFICANCE: f64 = 0.001;

const CLINICIAN: &str = "discuss with a clinician soon; if both legs, the saddle area, or bladder or bowel control are affected, see a clinician the same day";

/// Red flags at `as_of`, from the whole `history` and the `window` days (both in date order).
pub(crate) fn red_flags(history: &[Day], window: &[Day], as_of: NaiveDate) -> Vec<RedFlag> {
    [
        nerve_signs(history, window),
        worsening_weakness(history, as_of),
        no_improvement_on_conservative_care(history, as_of),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn nerve_signs(history: &[Day], window: &[Day]) -> Option<RedFlag> {
    let flagged: Vec<&Day> = window
        .iter()
        .filter(|day| day.has_numbness_or_weakness())
        .collect();
    let last = flagged.last()?;
    // The current episode: the latest appearance after a clear stretch, or the first ever.
    let mut clear_run = 0u32;
    let mut onset: Option<(NaiveDate, u32)> = None;
    for day in history.iter().take_while(|day| day.date <= last.date) {
        if day.has_numbness_or_weakness() {
            if onset.is_none() || clear_run >= CLEAR_DAYS_BEFORE_NEW {
                onset = Some((day.date, clear_run));
            }
            clear_run = 0;
        } else if day.numbness_or_weakness_answered() {
            clear_run += 1;
        }
    }
    let (onset_date, clear_before) = onset?;
    let numbness_days = flagged.iter().filter(|day| day.has_numbness()).count();
    let weakness_days = flagged
        .iter()
        .filter(|day| day.flag(Field::Weakness) == Some(true))
        .count();
    let since = if clear_before >= CLEAR_DAYS_BEFORE_NEW {
        format!("new since {onset_date}, after {clear_before} logged days without them")
    } else {
        format!("reported since {onset_date}")
    };
    Some(RedFlag {
        kind: RedFlagKind::NewNerveSigns,
        dates: flagged.iter().map(|day| day.date).collect(),
        sentence: format!(
            "Numbness, tingling or burning on {numbness_days} and weakness on {weakness_days} of {} logged days in the window ({since}). These signs in the leg or foot are a reason to see a clinician: {CLINICIAN}.",
            window.len()
        ),
    })
}

/// Days with weakness and days with a weakness answer, over `days`.
fn weakness_counts(days: &[Day]) -> (u32, u32) {
    let answered = days
        .iter()
        .filter(|day| day.flag(Field::Weakness).is_some())
        .count() as u32;
    let present = days
        .iter()
        .filter(|day| day.flag(Field::Weakness) == Some(true))
        .count() as u32;
    (present, answered)
}

fn worsening_weakness(history: &[Day], as_of: NaiveDate) -> Option<RedFlag> {
    let recent_from = offset(as_of, 1 - RECENT_DAYS);
    let earlier_to = offset(recent_from, -1);
    let earlier_from = offset(recent_from, -EARLIER_DAYS);
    let recent = between(history, recent_from, as_of);
    let earlier = between(history, earlier_from, earlier_to);
    let (recent_present, recent_answered) = weakness_counts(recent);
    let (earlier_present, earlier_answered) = weakness_counts(earlier);
    if recent_present < MIN_RECENT_WEAKNESS_DAYS || earlier_answered < MIN_EARLIER_WEAKNESS_ANSWERS
    {
        return None;
    }
    let recent_share = f64::from(recent_present) / f64::from(recent_answered);
    let earlier_share = f64::from(earlier_present) / f64::from(earlier_answered);
    let rise = recent_share - earlier_share;
    let pooled =
        f64::from(recent_present + earlier_present) / f64::from(recent_answered + earlier_answered);
    let spread = (pooled
        * (1.0 - pooled)
        * (1.0 / f64::from(recent_answered) + 1.0 / f64::from(earlier_answered)))
    .sqrt();
    let p = 1.0 - normal_cdf(rise / spread);
    let clear_rise = p < WEAKNESS_SIGNIFICANCE;
    if rise < MIN_WEAKNESS_RISE || !clear_rise {
        return None;
    }
    Some(RedFlag {
        kind: RedFlagKind::WorseningWeakness,
        dates: recent
            .iter()
            .filter(|day| day.flag(Field::Weakness) == Some(true))
            .map(|day| day.date)
            .collect(),
        sentence: format!(
            "Weakness standing on toes or pushing off on {recent_present} of {recent_answered} answered days from {recent_from} to {as_of}, against {earlier_present} of {earlier_answered} from {earlier_from} to {earlier_to} (one-sided p {}): days consistent with weakness getting worse; {CLINICIAN}.",
            crate::trend::format_p(p)
        ),
    })
}

fn conservative(day: &Day) -> bool {
    day.treatments()
        .any(|treatment| treatment.is_conservative())
}

fn no_improvement_on_conservative_care(history: &[Day], as_of: NaiveDate) -> Option<RedFlag> {
    let uses: Vec<&Day> = history.iter().filter(|day| conservative(day)).collect();
    let last = uses.last()?;
    if (as_of - last.date).num_days() > MAX_GAP_IN_COURSE {
        return None;
    }
    let mut start_index = uses.len() - 1;
    while start_index > 0
        && (uses[start_index].date - uses[start_index - 1].date).num_days() <= MAX_GAP_IN_COURSE
    {
        start_index -= 1;
    }
    let course = &uses[start_index..];
    let start = course[0].date;
    let course_days = (last.date - start).num_days();
    if course_days < CONSERVATIVE_CARE_DAYS {
        return None;
    }
    let first_to = offset(start, COURSE_START_DAYS - 1);
    let measure = main_complaint(history, start, first_to, MIN_PAIN_DAYS);
    let first = period(history, measure, start, first_to);
    let latest = period(history, measure, offset(as_of, 1 - RECENT_DAYS), as_of);
    let (Some(first_mean), Some(latest_mean)) = (first.mean_pain, latest.mean_pain) else {
        return None;
    };
    if first.days < MIN_PAIN_DAYS || latest.days < MIN_PAIN_DAYS {
        return None;
    }
    let change = latest_mean - first_mean;
    if change < 0.0 && is_meaningful_pain_change(change, first_mean) {
        return None;
    }
    let mut treatments: Vec<Treatment> = course
        .iter()
        .flat_map(|day| day.treatments())
        .filter(|treatment| treatment.is_conservative())
        .collect();
    treatments.sort();
    treatments.dedup();
    let names: Vec<&str> = treatments.iter().map(|t| t.as_str()).collect();
    let mut dates = vec![start];
    dates.extend(
        between(history, latest.from, latest.to)
            .iter()
            .filter(|day| day.measure(measure).is_some())
            .map(|day| day.date),
    );
    dates.dedup();
    Some(RedFlag {
        kind: RedFlagKind::NoImprovementOnConservativeCare,
        dates,
        sentence: format!(
            "Conservative treatment ({}) logged from {start} to {} ({} weeks), and mean {} went from {first_mean:.1} in its first three weeks ({} days) to {latest_mean:.1} in the last two weeks ({} days), change {change:+.1}: pain not improving after 6+ weeks of conservative care; discuss with a clinician.",
            names.join(", "),
            last.date,
            course_days / 7,
            measure.describe(),
            first.days,
            latest.days
        ),
    })
}
