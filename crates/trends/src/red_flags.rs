//! Red flags: signs that need a clinician, each with how soon (`urgent`: today; `soon`: within
//! days; `review`: at the next review), when its episode started and when it last changed.
//!
//! Decisions, so that a reader of a report knows what triggered a flag:
//! - Urgent (signs of cauda equina compression, BMJ Best Practice; NHS RefHelp): numbness in
//!   the saddle area or a change in bladder or bowel control on any day of the last two weeks;
//!   weakness that appeared within the last days (three logged days in a row, the last within
//!   two days of the analysis date, after two weeks with it on at most a quarter of the
//!   answered days); nerve signs (numbness, radiating pain, weakness) in both legs first seen
//!   in the last two weeks; weakness on a clearly growing share of days.
//! - Soon: numbness, tingling or weakness on any day of the window (whether or not new: the
//!   flag says when the current episode began and whether it followed two weeks or more of
//!   logged days without them); fever or unexplained weight loss with the back pain; pain at
//!   night or at rest on at least 85% of the answered days of the last two weeks, not fewer in
//!   its second week than its first; saddle or bladder/bowel signs older than two weeks; nerve
//!   signs in both legs for longer than two weeks. Radiating pain alone raises none.
//! - Weakness is "getting worse" when its share of days in the last two weeks is at least 30
//!   points above the four weeks before, and the rise is statistically clear (one-sided
//!   two-proportion test, p < 0.001), on at least three days.
//! - Review, "not improving after 6+ weeks of conservative treatment": the current course of
//!   conservative treatment (uses no more than two weeks apart, the last within two weeks) has
//!   lasted at least 42 days, and the mean of the main pain rating (the highest in the course's
//!   first three weeks) in the last two weeks is not a clinically meaningful amount below the
//!   course's first three weeks.
//!
//! Flags are listed urgent first.

use chrono::NaiveDate;
use heeldiary_core::{Field, Side, Treatment};

use crate::days::{between, offset, Day};
use crate::report::{RedFlag, RedFlagKind, Urgency};
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

/// Days within which a sign of nerve compression in the spine counts as recent: urgent.
pub const URGENT_RECENT_DAYS: i64 = 14;
/// Logged days in a row with weakness that make new weakness urgent.
pub const NEW_WEAKNESS_DAYS: usize = 3;
/// Largest share of answered days with weakness in the two weeks before a run for the run to
/// count as new weakness.
const NEW_WEAKNESS_EARLIER_SHARE: f64 = 0.25;
/// Share of answered days with night pain, over the last two weeks, for a "not easing" flag.
const NIGHT_PAIN_SHARE: f64 = 0.85;
/// Fewest answered days of night pain in the last two weeks for a "not easing" flag.
const MIN_NIGHT_PAIN_ANSWERS: u32 = 7;

const CLINICIAN: &str = "discuss with a clinician soon; if both legs, the saddle area, or bladder or bowel control are affected, see a clinician the same day";
const URGENT: &str = "this needs a clinician today (urgent care or an emergency department), as a sign that can go with pressure on the nerves at the base of the spine";

/// Red flags at `as_of`, from the whole `history` and the `window` days (both in date order),
/// urgent first.
pub(crate) fn red_flags(history: &[Day], window: &[Day], as_of: NaiveDate) -> Vec<RedFlag> {
    let mut flags: Vec<RedFlag> = [
        compression_sign(history, as_of, Field::SaddleNumbness),
        compression_sign(history, as_of, Field::BladderBowelChange),
        new_weakness(history, as_of),
        both_sides(history, window, as_of),
        worsening_weakness(history, as_of),
        nerve_signs(history, window),
        fever_or_weight_loss(history, window),
        night_pain_not_easing(history, as_of),
        no_improvement_on_conservative_care(history, as_of),
    ]
    .into_iter()
    .flatten()
    .collect();
    flags.sort_by_key(|flag| flag.urgency);
    flags
}

/// The latest episode of a sign: `state` reads it on a day (`None` unanswered, 0 absent, more
/// for present, larger for worse). The episode starts at the latest appearance after at least
/// [`CLEAR_DAYS_BEFORE_NEW`] answered days without it (or the first ever), and last changed on
/// the latest answered day whose state differs from the answered day before it.
struct Episode {
    started: NaiveDate,
    last_changed: NaiveDate,
    dates: Vec<NaiveDate>,
}

fn episode(history: &[Day], state: impl Fn(&Day) -> Option<u8>) -> Option<Episode> {
    let mut clear_run = 0u32;
    let mut current: Option<Episode> = None;
    let mut previous: Option<u8> = None;
    for day in history {
        let Some(value) = state(day) else { continue };
        if value > 0 {
            match &mut current {
                Some(episode) if clear_run < CLEAR_DAYS_BEFORE_NEW => episode.dates.push(day.date),
                _ => {
                    current = Some(Episode {
                        started: day.date,
                        last_changed: day.date,
                        dates: vec![day.date],
                    })
                }
            }
            clear_run = 0;
        } else {
            clear_run += 1;
        }
        if let (Some(episode), Some(before)) = (&mut current, previous) {
            if before != value && day.date >= episode.started {
                episode.last_changed = day.date;
            }
        }
        previous = Some(value);
    }
    current
}

fn yes(day: &Day, field: Field) -> Option<u8> {
    day.flag(field).map(u8::from)
}

fn plain_date(date: NaiveDate) -> String {
    date.format("%-d %B %Y").to_string()
}

/// Saddle numbness or a bladder/bowel change: urgent when seen in the last two weeks.
fn compression_sign(history: &[Day], as_of: NaiveDate, field: Field) -> Option<RedFlag> {
    let episode = episode(history, |day| yes(day, field))?;
    let last = *episode.dates.last()?;
    let recent = (as_of - last).num_days() < URGENT_RECENT_DAYS;
    let (kind, what, plain) = match field {
        Field::SaddleNumbness => (
            RedFlagKind::SaddleNumbness,
            "numbness in the saddle area (between the legs, inner thighs or buttocks)",
            "numbness between the legs, in the inner thighs or buttocks",
        ),
        _ => (
            RedFlagKind::BladderBowelChange,
            "a new change in bladder or bowel control",
            "a new change in bladder or bowel control",
        ),
    };
    let count = episode.dates.len();
    let (urgency, advice, patient) = if recent {
        (
            Urgency::Urgent,
            URGENT.to_owned(),
            format!(
                "Seek urgent care today (an urgent care service or emergency department): {plain} was recorded, last on {}. With back or leg pain this needs checking the same day.",
                plain_date(last)
            ),
        )
    } else {
        (
            Urgency::Soon,
            "last reported more than two weeks ago; ask about it at a clinician visit soon, and the same day if it returns".to_owned(),
            format!(
                "Tell a clinician soon: {plain} was recorded, last on {}. If it comes back, seek urgent care the same day.",
                plain_date(last)
            ),
        )
    };
    Some(RedFlag {
        kind,
        urgency,
        started: episode.started,
        last_changed: episode.last_changed,
        sentence: format!(
            "{} reported on {count} day(s) from {} to {last}: {advice}.",
            crate::pattern::capitalise(what),
            episode.started
        ),
        patient_sentence: patient,
        dates: episode.dates,
    })
}

/// Weakness that appeared within the last days: [`NEW_WEAKNESS_DAYS`] logged days in a row
/// with it, the last within two days of `as_of`, after two weeks with it on at most a quarter
/// of the answered days. Progressive weakness must not wait for a statistical test.
fn new_weakness(history: &[Day], as_of: NaiveDate) -> Option<RedFlag> {
    let answered: Vec<&Day> = history
        .iter()
        .filter(|day| day.flag(Field::Weakness).is_some())
        .collect();
    let run_len = answered
        .iter()
        .rev()
        .take_while(|day| day.flag(Field::Weakness) == Some(true))
        .count();
    if run_len < NEW_WEAKNESS_DAYS {
        return None;
    }
    let run = &answered[answered.len() - run_len..];
    let (first, last) = (run[0].date, run[run_len - 1].date);
    if (as_of - last).num_days() > 2 || (as_of - first).num_days() >= URGENT_RECENT_DAYS {
        return None;
    }
    let before = between(history, offset(first, -RECENT_DAYS), offset(first, -1));
    let (present, answers) = weakness_counts(before);
    if answers > 0 && f64::from(present) / f64::from(answers) > NEW_WEAKNESS_EARLIER_SHARE {
        return None;
    }
    let dates: Vec<NaiveDate> = run.iter().map(|day| day.date).collect();
    Some(RedFlag {
        kind: RedFlagKind::NewWeakness,
        urgency: Urgency::Urgent,
        started: first,
        last_changed: first,
        sentence: format!(
            "Weakness standing on toes or pushing off on {run_len} logged days in a row from {first} to {last}, after {present} of {answers} answered days with it in the two weeks before: days consistent with new or progressing weakness; {URGENT}."
        ),
        patient_sentence: format!(
            "Seek urgent care today: weakness in the leg or foot (hard to stand on your toes or push off) was recorded on {run_len} days in a row since {}. New or growing weakness needs checking the same day.",
            plain_date(first)
        ),
        dates,
    })
}

/// Whether the day has numbness, radiating pain or weakness.
fn nerve_sign(day: &Day) -> bool {
    day.has_numbness_or_weakness() || day.flag(Field::Radiating) == Some(true)
}

/// Nerve signs in both legs: urgent when first seen in the last two weeks (signs that turned
/// two-sided), soon when they have been two-sided for longer.
fn both_sides(history: &[Day], window: &[Day], as_of: NaiveDate) -> Option<RedFlag> {
    let two_sided =
        |day: &Day| day.word::<Side>(Field::Side) == Some(Side::Both) && nerve_sign(day);
    let last = window.iter().rev().find(|day| two_sided(day))?.date;
    let episode = episode(history, |day| {
        day.word::<Side>(Field::Side)
            .map(|side| u8::from(side == Side::Both && nerve_sign(day)))
    })?;
    let earlier_one_sided = history
        .iter()
        .take_while(|day| day.date < episode.started)
        .filter(|day| nerve_sign(day))
        .count();
    let recent = (as_of - episode.started).num_days() < URGENT_RECENT_DAYS;
    let turned = if earlier_one_sided > 0 {
        format!(", after {earlier_one_sided} earlier day(s) with nerve signs on one side")
    } else {
        String::new()
    };
    let (urgency, advice, patient) = if recent {
        (
            Urgency::Urgent,
            URGENT.to_owned(),
            format!(
                "Seek urgent care today: numbness, tingling, spreading pain or weakness in both legs was recorded since {}. Nerve signs that spread to both legs need checking the same day.",
                plain_date(episode.started)
            ),
        )
    } else {
        (
            Urgency::Soon,
            format!("{CLINICIAN}, and the same day if they grow or bladder, bowel or saddle-area changes appear"),
            format!(
                "See a clinician soon about nerve signs in both legs (recorded since {}). Seek urgent care the same day if they get worse, or if numbness between the legs or a change in bladder or bowel control appears.",
                plain_date(episode.started)
            ),
        )
    };
    Some(RedFlag {
        kind: RedFlagKind::NerveSignsBothSides,
        urgency,
        started: episode.started,
        last_changed: episode.last_changed,
        sentence: format!(
            "Nerve signs (numbness, radiating pain or weakness) in both legs on {} logged day(s) from {} to {last}{turned}: {advice}.",
            episode.dates.len(),
            episode.started
        ),
        patient_sentence: patient,
        dates: episode.dates,
    })
}

/// Fever or unexplained weight loss with the back pain, on any day of the window: soon.
fn fever_or_weight_loss(history: &[Day], window: &[Day]) -> Option<RedFlag> {
    let days: Vec<&Day> = window
        .iter()
        .filter(|day| day.flag(Field::FeverOrWeightLoss) == Some(true))
        .collect();
    let last = days.last()?.date;
    let episode = episode(history, |day| yes(day, Field::FeverOrWeightLoss))?;
    let with_night = days
        .iter()
        .filter(|day| day.flag(Field::NightPain) == Some(true))
        .count();
    let night = if with_night > 0 {
        format!(", {with_night} of them with pain at night or at rest")
    } else {
        String::new()
    };
    Some(RedFlag {
        kind: RedFlagKind::FeverOrWeightLoss,
        urgency: Urgency::Soon,
        started: episode.started,
        last_changed: episode.last_changed,
        sentence: format!(
            "Fever or unexplained weight loss with the pain on {} logged day(s) of the window, last on {last}{night}: signs a clinician rules out infection or other illness with; {CLINICIAN}.",
            days.len()
        ),
        patient_sentence: format!(
            "Book a clinician appointment in the next few days: fever or weight loss without a reason was recorded with the pain (last on {}). If you feel very unwell, seek care the same day.",
            plain_date(last)
        ),
        dates: days.iter().map(|day| day.date).collect(),
    })
}

/// Pain at night or at rest on nearly every answered day of the last two weeks, and not on
/// fewer days in the second week than in the first: soon.
fn night_pain_not_easing(history: &[Day], as_of: NaiveDate) -> Option<RedFlag> {
    let from = offset(as_of, 1 - RECENT_DAYS);
    let recent = between(history, from, as_of);
    let count = |days: &[Day]| {
        let answered = days
            .iter()
            .filter(|day| day.flag(Field::NightPain).is_some())
            .count() as u32;
        let present = days
            .iter()
            .filter(|day| day.flag(Field::NightPain) == Some(true))
            .count() as u32;
        (present, answered)
    };
    let (present, answered) = count(recent);
    if answered < MIN_NIGHT_PAIN_ANSWERS
        || f64::from(present) < NIGHT_PAIN_SHARE * f64::from(answered)
    {
        return None;
    }
    let middle = offset(as_of, -RECENT_DAYS / 2);
    let (first_present, first_answered) = count(between(history, from, middle));
    let (second_present, second_answered) = count(between(history, offset(middle, 1), as_of));
    let share = |p: u32, a: u32| {
        if a == 0 {
            0.0
        } else {
            f64::from(p) / f64::from(a)
        }
    };
    if share(second_present, second_answered) + 1e-9 < share(first_present, first_answered) {
        return None;
    }
    let episode = episode(history, |day| yes(day, Field::NightPain))?;
    Some(RedFlag {
        kind: RedFlagKind::NightPainNotEasing,
        urgency: Urgency::Soon,
        started: episode.started,
        last_changed: episode.last_changed,
        sentence: format!(
            "Pain at night or at rest on {present} of {answered} answered days from {from} to {as_of}, not easing over the two weeks (night pain points to a nerve or spinal source rather than the heel's fascia); {CLINICIAN}."
        ),
        patient_sentence: format!(
            "Book a clinician appointment in the next few days: pain at night or at rest was recorded on {present} of {answered} days in the last two weeks and is not easing."
        ),
        dates: recent
            .iter()
            .filter(|day| day.flag(Field::NightPain) == Some(true))
            .map(|day| day.date)
            .collect(),
    })
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
    let last_changed = episode(history, |day| {
        if !day.numbness_or_weakness_answered() {
            return None;
        }
        let numbness = day.numbness().map_or(0, heeldiary_core::Severity::rank);
        Some(numbness + 4 * u8::from(day.flag(Field::Weakness) == Some(true)))
    })
    .map_or(onset_date, |episode| episode.last_changed.max(onset_date));
    Some(RedFlag {
        kind: RedFlagKind::NewNerveSigns,
        urgency: Urgency::Soon,
        started: onset_date,
        last_changed,
        dates: flagged.iter().map(|day| day.date).collect(),
        sentence: format!(
            "Numbness, tingling or burning on {numbness_days} and weakness on {weakness_days} of {} logged days in the window ({since}). These signs in the leg or foot are a reason to see a clinician: {CLINICIAN}.",
            window.len()
        ),
        patient_sentence: format!(
            "Book a clinician appointment in the next few days: numbness, tingling, burning or weakness was recorded on {} of your last {} logged days (since {}). Seek urgent care the same day if it spreads to both legs, weakness grows, or numbness between the legs or a bladder or bowel change appears.",
            flagged.len(),
            window.len(),
            plain_date(onset_date)
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
    let dates: Vec<NaiveDate> = recent
        .iter()
        .filter(|day| day.flag(Field::Weakness) == Some(true))
        .map(|day| day.date)
        .collect();
    let episode = episode(history, |day| yes(day, Field::Weakness))?;
    Some(RedFlag {
        kind: RedFlagKind::WorseningWeakness,
        urgency: Urgency::Urgent,
        started: episode.started,
        last_changed: episode.last_changed,
        sentence: format!(
            "Weakness standing on toes or pushing off on {recent_present} of {recent_answered} answered days from {recent_from} to {as_of}, against {earlier_present} of {earlier_answered} from {earlier_from} to {earlier_to} (one-sided p {}): days consistent with weakness getting worse; {URGENT}.",
            crate::trend::format_p(p)
        ),
        patient_sentence: format!(
            "Seek urgent care today: weakness in the leg or foot was recorded on {recent_present} of the last {recent_answered} answered days, more often than before. Growing weakness needs checking the same day."
        ),
        dates,
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
        urgency: Urgency::Review,
        started: start,
        last_changed: start,
        patient_sentence: format!(
            "Mention at your next clinician visit: after {} weeks of {} the pain has not clearly improved. Heel pain often takes months to settle, but a clinician may suggest a different plan.",
            course_days / 7,
            names.join(", ").replace('_', " ")
        ),
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
