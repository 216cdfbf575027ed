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
use crate::report::{Measure, Period, RedFlag, RedFlagKind, Urgency};
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

/// Red flags at `as_of`, from the whole `history` and the `window` days (both in date order)
/// and `signs` read from that history, urgent first.
pub(crate) fn red_flags(
    history: &[Day],
    window: &[Day],
    as_of: NaiveDate,
    signs: &SignHistory,
) -> Vec<RedFlag> {
    let mut flags: Vec<RedFlag> = findings(history, window, as_of, signs)
        .into_iter()
        .flatten()
        .map(|finding| finding.word(history))
        .collect();
    flags.sort_by_key(|flag| flag.urgency);
    flags
}

/// The kinds of the flags [`red_flags`] raises, in its order, found without wording them.
pub(crate) fn red_flag_kinds(
    history: &[Day],
    window: &[Day],
    as_of: NaiveDate,
    signs: &SignHistory,
) -> Vec<RedFlagKind> {
    let mut found: Vec<(Urgency, RedFlagKind)> = findings(history, window, as_of, signs)
        .into_iter()
        .flatten()
        .map(|finding| (finding.urgency(), finding.kind()))
        .collect();
    // The same stable sort as the worded flags', so both list the kinds in one order.
    found.sort_by_key(|(urgency, _)| *urgency);
    found.into_iter().map(|(_, kind)| kind).collect()
}

fn findings<'a>(
    history: &'a [Day],
    window: &'a [Day],
    as_of: NaiveDate,
    signs: &'a SignHistory,
) -> [Option<Finding<'a>>; 9] {
    [
        compression_sign(&signs.saddle_numbness, as_of, Field::SaddleNumbness),
        compression_sign(
            &signs.bladder_bowel_change,
            as_of,
            Field::BladderBowelChange,
        ),
        new_weakness(history, as_of, &signs.weakness_run),
        both_sides(window, as_of, signs),
        worsening_weakness(history, as_of, &signs.weakness),
        nerve_signs(window, signs),
        fever_or_weight_loss(window, &signs.fever_or_weight_loss),
        night_pain_not_easing(history, as_of, &signs.night_pain),
        no_improvement_on_conservative_care(history, as_of, signs.course.as_ref()),
    ]
}

/// What the red flags read of a history, kept up to date one logged day at a time: the latest
/// episode of each sign, the current run of answers with weakness, the onset of the current
/// nerve signs and the current course of conservative care. A report reads its history into
/// it once; summaries of successive periods of one history add each day once, so that a period
/// costs its own days rather than the whole history again.
#[derive(Debug, Clone, Default)]
pub(crate) struct SignHistory {
    saddle_numbness: EpisodeTracker,
    bladder_bowel_change: EpisodeTracker,
    weakness: EpisodeTracker,
    weakness_run: WeaknessRun,
    both_sides: EpisodeTracker,
    /// Days with nerve signs read so far.
    nerve_sign_days: u32,
    /// Days with nerve signs before the current two-sided episode started.
    nerve_sign_days_before_both_sides: u32,
    /// Numbness rank plus 4 for weakness: what changes the nerve-signs flag's `last_changed`.
    numbness_or_weakness: EpisodeTracker,
    nerve_onset: NerveOnset,
    fever_or_weight_loss: EpisodeTracker,
    night_pain: EpisodeTracker,
    course: Option<Course>,
}

impl SignHistory {
    /// The signs of `days` (in date order).
    pub(crate) fn of_days(days: &[Day]) -> SignHistory {
        let mut signs = SignHistory::default();
        for day in days {
            signs.add(day);
        }
        signs
    }

    /// Reads the next logged day: days must come in date order.
    pub(crate) fn add(&mut self, day: &Day) {
        let date = day.date;
        self.saddle_numbness
            .add(date, yes(day, Field::SaddleNumbness));
        self.bladder_bowel_change
            .add(date, yes(day, Field::BladderBowelChange));
        self.weakness.add(date, yes(day, Field::Weakness));
        self.weakness_run.add(day);
        if self.both_sides.add(date, two_sided(day)) {
            self.nerve_sign_days_before_both_sides = self.nerve_sign_days;
        }
        self.nerve_sign_days += u32::from(nerve_sign(day));
        self.numbness_or_weakness
            .add(date, numbness_or_weakness(day));
        self.nerve_onset.add(day);
        self.fever_or_weight_loss
            .add(date, yes(day, Field::FeverOrWeightLoss));
        self.night_pain.add(date, yes(day, Field::NightPain));
        if conservative(day) {
            let treatments = day
                .treatments()
                .filter(|treatment| treatment.is_conservative());
            match &mut self.course {
                Some(course) if (date - course.last_use).num_days() <= MAX_GAP_IN_COURSE => {
                    course.last_use = date;
                    for treatment in treatments {
                        if !course.treatments.contains(&treatment) {
                            course.treatments.push(treatment);
                        }
                    }
                }
                _ => {
                    self.course = Some(Course {
                        start: date,
                        last_use: date,
                        treatments: treatments.collect(),
                    })
                }
            }
        }
    }
}

/// The latest episode of a sign: it starts at the latest appearance after at least
/// [`CLEAR_DAYS_BEFORE_NEW`] answered days without it (or the first ever), and last changed on
/// the latest answered day whose state differs from the answered day before it.
#[derive(Debug, Clone)]
struct Episode {
    started: NaiveDate,
    last_changed: NaiveDate,
    dates: Vec<NaiveDate>,
}

/// The latest [`Episode`] of a sign over the days read so far.
#[derive(Debug, Clone, Default)]
struct EpisodeTracker {
    clear_run: u32,
    current: Option<Episode>,
    previous: Option<u8>,
}

impl EpisodeTracker {
    /// Reads the sign's state on the next day (`None` unanswered, 0 absent, more for present,
    /// larger for worse). Returns whether a new episode started on that day.
    fn add(&mut self, date: NaiveDate, state: Option<u8>) -> bool {
        let Some(value) = state else { return false };
        let mut started = false;
        if value > 0 {
            match &mut self.current {
                Some(episode) if self.clear_run < CLEAR_DAYS_BEFORE_NEW => episode.dates.push(date),
                _ => {
                    self.current = Some(Episode {
                        started: date,
                        last_changed: date,
                        dates: vec![date],
                    });
                    started = true;
                }
            }
            self.clear_run = 0;
        } else {
            self.clear_run += 1;
        }
        if let (Some(episode), Some(before)) = (&mut self.current, self.previous) {
            if before != value && date >= episode.started {
                episode.last_changed = date;
            }
        }
        self.previous = Some(value);
        started
    }

    fn episode(&self) -> Option<&Episode> {
        self.current.as_ref()
    }
}

/// The trailing run of answers with weakness, over the days that answered it.
#[derive(Debug, Clone, Copy, Default)]
struct WeaknessRun {
    days: usize,
    first: Option<NaiveDate>,
    last: Option<NaiveDate>,
}

impl WeaknessRun {
    fn add(&mut self, day: &Day) {
        match day.flag(Field::Weakness) {
            Some(true) => {
                if self.days == 0 {
                    self.first = Some(day.date);
                }
                self.days += 1;
                self.last = Some(day.date);
            }
            Some(false) => self.days = 0,
            None => {}
        }
    }
}

/// The onset of the current nerve signs: the latest appearance of numbness or weakness after
/// [`CLEAR_DAYS_BEFORE_NEW`] answered days without them, or the first ever, with the clear
/// days before it.
#[derive(Debug, Clone, Copy, Default)]
struct NerveOnset {
    clear_run: u32,
    onset: Option<(NaiveDate, u32)>,
}

impl NerveOnset {
    fn add(&mut self, day: &Day) {
        if day.has_numbness_or_weakness() {
            if self.onset.is_none() || self.clear_run >= CLEAR_DAYS_BEFORE_NEW {
                self.onset = Some((day.date, self.clear_run));
            }
            self.clear_run = 0;
        } else if day.numbness_or_weakness_answered() {
            self.clear_run += 1;
        }
    }
}

/// The current course of conservative treatment: uses no more than [`MAX_GAP_IN_COURSE`]
/// days apart.
#[derive(Debug, Clone)]
struct Course {
    start: NaiveDate,
    last_use: NaiveDate,
    /// The conservative treatments used in the course, each once.
    treatments: Vec<Treatment>,
}

fn yes(day: &Day, field: Field) -> Option<u8> {
    day.flag(field).map(u8::from)
}

/// Whether the day has numbness, radiating pain or weakness.
fn nerve_sign(day: &Day) -> bool {
    day.has_numbness_or_weakness() || day.flag(Field::Radiating) == Some(true)
}

/// Nerve signs in both legs, when the day says which side.
fn two_sided(day: &Day) -> Option<u8> {
    day.word::<Side>(Field::Side)
        .map(|side| u8::from(side == Side::Both && nerve_sign(day)))
}

fn numbness_or_weakness(day: &Day) -> Option<u8> {
    if !day.numbness_or_weakness_answered() {
        return None;
    }
    let numbness = day.numbness().map_or(0, heeldiary_core::Severity::rank);
    Some(numbness + 4 * u8::from(day.flag(Field::Weakness) == Some(true)))
}

fn conservative(day: &Day) -> bool {
    day.treatments()
        .any(|treatment| treatment.is_conservative())
}

fn plain_date(date: NaiveDate) -> String {
    date.format("%-d %B %Y").to_string()
}

/// A red flag raised, with what its sentences need: found for every period, worded only for
/// a report.
enum Finding<'a> {
    Compression(Compression<'a>),
    NewWeakness(NewWeakness),
    BothSides(BothSides<'a>),
    WorseningWeakness(WorseningWeakness<'a>),
    NerveSigns(NerveSigns<'a>),
    FeverOrWeightLoss(FeverOrWeightLoss<'a>),
    NightPainNotEasing(NightPainNotEasing<'a>),
    NoImprovement(NoImprovement<'a>),
}

impl Finding<'_> {
    fn kind(&self) -> RedFlagKind {
        match self {
            Finding::Compression(found) => match found.field {
                Field::SaddleNumbness => RedFlagKind::SaddleNumbness,
                _ => RedFlagKind::BladderBowelChange,
            },
            Finding::NewWeakness(_) => RedFlagKind::NewWeakness,
            Finding::BothSides(_) => RedFlagKind::NerveSignsBothSides,
            Finding::WorseningWeakness(_) => RedFlagKind::WorseningWeakness,
            Finding::NerveSigns(_) => RedFlagKind::NewNerveSigns,
            Finding::FeverOrWeightLoss(_) => RedFlagKind::FeverOrWeightLoss,
            Finding::NightPainNotEasing(_) => RedFlagKind::NightPainNotEasing,
            Finding::NoImprovement(_) => RedFlagKind::NoImprovementOnConservativeCare,
        }
    }

    fn urgency(&self) -> Urgency {
        match self {
            Finding::Compression(Compression { recent, .. })
            | Finding::BothSides(BothSides { recent, .. }) => {
                if *recent {
                    Urgency::Urgent
                } else {
                    Urgency::Soon
                }
            }
            Finding::NewWeakness(_) | Finding::WorseningWeakness(_) => Urgency::Urgent,
            Finding::NerveSigns(_)
            | Finding::FeverOrWeightLoss(_)
            | Finding::NightPainNotEasing(_) => Urgency::Soon,
            Finding::NoImprovement(_) => Urgency::Review,
        }
    }

    /// The flag with its dates and sentences; `history` is the one it was found in.
    fn word(self, history: &[Day]) -> RedFlag {
        let urgency = self.urgency();
        let kind = self.kind();
        let worded = match self {
            Finding::Compression(found) => found.word(urgency),
            Finding::NewWeakness(found) => found.word(history),
            Finding::BothSides(found) => found.word(),
            Finding::WorseningWeakness(found) => found.word(),
            Finding::NerveSigns(found) => found.word(),
            Finding::FeverOrWeightLoss(found) => found.word(),
            Finding::NightPainNotEasing(found) => found.word(),
            Finding::NoImprovement(found) => found.word(history),
        };
        RedFlag {
            kind,
            urgency,
            started: worded.started,
            last_changed: worded.last_changed,
            dates: worded.dates,
            sentence: worded.sentence,
            patient_sentence: worded.patient_sentence,
        }
    }
}

/// A flag's own part of a [`RedFlag`]: its kind and urgency come from the finding.
struct Worded {
    started: NaiveDate,
    last_changed: NaiveDate,
    dates: Vec<NaiveDate>,
    sentence: String,
    patient_sentence: String,
}

/// Saddle numbness or a bladder/bowel change: urgent when seen in the last two weeks.
struct Compression<'a> {
    field: Field,
    episode: &'a Episode,
    last: NaiveDate,
    recent: bool,
}

fn compression_sign(sign: &EpisodeTracker, as_of: NaiveDate, field: Field) -> Option<Finding<'_>> {
    let episode = sign.episode()?;
    let last = *episode.dates.last()?;
    Some(Finding::Compression(Compression {
        field,
        episode,
        last,
        recent: (as_of - last).num_days() < URGENT_RECENT_DAYS,
    }))
}

impl Compression<'_> {
    fn word(self, urgency: Urgency) -> Worded {
        let Compression {
            field,
            episode,
            last,
            ..
        } = self;
        let (what, plain) = match field {
            Field::SaddleNumbness => (
                "numbness in the saddle area (between the legs, inner thighs or buttocks)",
                "numbness between the legs, in the inner thighs or buttocks",
            ),
            _ => (
                "a new change in bladder or bowel control",
                "a new change in bladder or bowel control",
            ),
        };
        let count = episode.dates.len();
        let (advice, patient) = if urgency == Urgency::Urgent {
            (
                URGENT.to_owned(),
                format!(
                    "Seek urgent care today (an urgent care service or emergency department): {plain} was recorded, last on {}. With back or leg pain this needs checking the same day.",
                    plain_date(last)
                ),
            )
        } else {
            (
                "last reported more than two weeks ago; ask about it at a clinician visit soon, and the same day if it returns".to_owned(),
                format!(
                    "Tell a clinician soon: {plain} was recorded, last on {}. If it comes back, seek urgent care the same day.",
                    plain_date(last)
                ),
            )
        };
        Worded {
            started: episode.started,
            last_changed: episode.last_changed,
            sentence: format!(
                "{} reported on {count} day(s) from {} to {last}: {advice}.",
                crate::pattern::capitalise(what),
                episode.started
            ),
            patient_sentence: patient,
            dates: episode.dates.clone(),
        }
    }
}

/// Weakness that appeared within the last days: [`NEW_WEAKNESS_DAYS`] logged days in a row
/// with it, the last within two days of `as_of`, after two weeks with it on at most a quarter
/// of the answered days. Progressive weakness must not wait for a statistical test.
struct NewWeakness {
    first: NaiveDate,
    last: NaiveDate,
    run_len: usize,
    present: u32,
    answers: u32,
}

fn new_weakness(history: &[Day], as_of: NaiveDate, run: &WeaknessRun) -> Option<Finding<'static>> {
    let run_len = run.days;
    if run_len < NEW_WEAKNESS_DAYS {
        return None;
    }
    let (first, last) = (run.first?, run.last?);
    if (as_of - last).num_days() > 2 || (as_of - first).num_days() >= URGENT_RECENT_DAYS {
        return None;
    }
    let before = between(history, offset(first, -RECENT_DAYS), offset(first, -1));
    let (present, answers) = weakness_counts(before);
    if answers > 0 && f64::from(present) / f64::from(answers) > NEW_WEAKNESS_EARLIER_SHARE {
        return None;
    }
    Some(Finding::NewWeakness(NewWeakness {
        first,
        last,
        run_len,
        present,
        answers,
    }))
}

impl NewWeakness {
    fn word(self, history: &[Day]) -> Worded {
        let NewWeakness {
            first,
            last,
            run_len,
            present,
            answers,
        } = self;
        // The run is every answered day from its first to its last.
        let dates: Vec<NaiveDate> = between(history, first, last)
            .iter()
            .filter(|day| day.flag(Field::Weakness).is_some())
            .map(|day| day.date)
            .collect();
        Worded {
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
        }
    }
}

/// Nerve signs in both legs: urgent when first seen in the last two weeks (signs that turned
/// two-sided), soon when they have been two-sided for longer.
struct BothSides<'a> {
    episode: &'a Episode,
    last: NaiveDate,
    earlier_one_sided: u32,
    recent: bool,
}

fn both_sides<'a>(window: &[Day], as_of: NaiveDate, signs: &'a SignHistory) -> Option<Finding<'a>> {
    let last = window
        .iter()
        .rev()
        .find(|day| two_sided(day) == Some(1))?
        .date;
    let episode = signs.both_sides.episode()?;
    Some(Finding::BothSides(BothSides {
        episode,
        last,
        earlier_one_sided: signs.nerve_sign_days_before_both_sides,
        recent: (as_of - episode.started).num_days() < URGENT_RECENT_DAYS,
    }))
}

impl BothSides<'_> {
    fn word(self) -> Worded {
        let BothSides {
            episode,
            last,
            earlier_one_sided,
            recent,
        } = self;
        let turned = if earlier_one_sided > 0 {
            format!(", after {earlier_one_sided} earlier day(s) with nerve signs on one side")
        } else {
            String::new()
        };
        let (advice, patient) = if recent {
            (
                URGENT.to_owned(),
                format!(
                    "Seek urgent care today: numbness, tingling, spreading pain or weakness in both legs was recorded since {}. Nerve signs that spread to both legs need checking the same day.",
                    plain_date(episode.started)
                ),
            )
        } else {
            (
                format!("{CLINICIAN}, and the same day if they grow or bladder, bowel or saddle-area changes appear"),
                format!(
                    "See a clinician soon about nerve signs in both legs (recorded since {}). Seek urgent care the same day if they get worse, or if numbness between the legs or a change in bladder or bowel control appears.",
                    plain_date(episode.started)
                ),
            )
        };
        Worded {
            started: episode.started,
            last_changed: episode.last_changed,
            sentence: format!(
                "Nerve signs (numbness, radiating pain or weakness) in both legs on {} logged day(s) from {} to {last}{turned}: {advice}.",
                episode.dates.len(),
                episode.started
            ),
            patient_sentence: patient,
            dates: episode.dates.clone(),
        }
    }
}

/// Fever or unexplained weight loss with the back pain, on any day of the window: soon.
struct FeverOrWeightLoss<'a> {
    window: &'a [Day],
    last: NaiveDate,
    episode: &'a Episode,
}

fn fever_or_weight_loss<'a>(window: &'a [Day], sign: &'a EpisodeTracker) -> Option<Finding<'a>> {
    let last = window
        .iter()
        .rev()
        .find(|day| day.flag(Field::FeverOrWeightLoss) == Some(true))?
        .date;
    Some(Finding::FeverOrWeightLoss(FeverOrWeightLoss {
        window,
        last,
        episode: sign.episode()?,
    }))
}

impl FeverOrWeightLoss<'_> {
    fn word(self) -> Worded {
        let FeverOrWeightLoss {
            window,
            last,
            episode,
        } = self;
        let days: Vec<&Day> = window
            .iter()
            .filter(|day| day.flag(Field::FeverOrWeightLoss) == Some(true))
            .collect();
        let with_night = days
            .iter()
            .filter(|day| day.flag(Field::NightPain) == Some(true))
            .count();
        let night = if with_night > 0 {
            format!(", {with_night} of them with pain at night or at rest")
        } else {
            String::new()
        };
        Worded {
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
        }
    }
}

/// Pain at night or at rest on nearly every answered day of the last two weeks, and not on
/// fewer days in the second week than in the first: soon.
struct NightPainNotEasing<'a> {
    from: NaiveDate,
    as_of: NaiveDate,
    present: u32,
    answered: u32,
    recent: &'a [Day],
    episode: &'a Episode,
}

fn night_pain_not_easing<'a>(
    history: &'a [Day],
    as_of: NaiveDate,
    sign: &'a EpisodeTracker,
) -> Option<Finding<'a>> {
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
    Some(Finding::NightPainNotEasing(NightPainNotEasing {
        from,
        as_of,
        present,
        answered,
        recent,
        episode: sign.episode()?,
    }))
}

impl NightPainNotEasing<'_> {
    fn word(self) -> Worded {
        let NightPainNotEasing {
            from,
            as_of,
            present,
            answered,
            recent,
            episode,
        } = self;
        Worded {
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
        }
    }
}

/// Numbness, tingling or weakness on a day of the window: soon, dated by the current episode.
struct NerveSigns<'a> {
    window: &'a [Day],
    onset: NaiveDate,
    clear_before: u32,
    /// The episode of the signs' severity, which dates their last change.
    severity: Option<&'a Episode>,
}

fn nerve_signs<'a>(window: &'a [Day], signs: &'a SignHistory) -> Option<Finding<'a>> {
    if !window.iter().any(|day| day.has_numbness_or_weakness()) {
        return None;
    }
    // The days after the window's last day with the signs are without them, so they leave the
    // onset where that day left it.
    let (onset, clear_before) = signs.nerve_onset.onset?;
    Some(Finding::NerveSigns(NerveSigns {
        window,
        onset,
        clear_before,
        severity: signs.numbness_or_weakness.episode(),
    }))
}

impl NerveSigns<'_> {
    fn word(self) -> Worded {
        let NerveSigns {
            window,
            onset: onset_date,
            clear_before,
            severity,
        } = self;
        let flagged: Vec<&Day> = window
            .iter()
            .filter(|day| day.has_numbness_or_weakness())
            .collect();
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
        let last_changed =
            severity.map_or(onset_date, |episode| episode.last_changed.max(onset_date));
        Worded {
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
        }
    }
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

/// Weakness on a clearly growing share of days: urgent.
struct WorseningWeakness<'a> {
    recent_from: NaiveDate,
    as_of: NaiveDate,
    earlier_from: NaiveDate,
    earlier_to: NaiveDate,
    recent_present: u32,
    recent_answered: u32,
    earlier_present: u32,
    earlier_answered: u32,
    p: f64,
    recent: &'a [Day],
    episode: &'a Episode,
}

fn worsening_weakness<'a>(
    history: &'a [Day],
    as_of: NaiveDate,
    sign: &'a EpisodeTracker,
) -> Option<Finding<'a>> {
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
    Some(Finding::WorseningWeakness(WorseningWeakness {
        recent_from,
        as_of,
        earlier_from,
        earlier_to,
        recent_present,
        recent_answered,
        earlier_present,
        earlier_answered,
        p,
        recent,
        episode: sign.episode()?,
    }))
}

impl WorseningWeakness<'_> {
    fn word(self) -> Worded {
        let WorseningWeakness {
            recent_from,
            as_of,
            earlier_from,
            earlier_to,
            recent_present,
            recent_answered,
            earlier_present,
            earlier_answered,
            p,
            recent,
            episode,
        } = self;
        let dates: Vec<NaiveDate> = recent
            .iter()
            .filter(|day| day.flag(Field::Weakness) == Some(true))
            .map(|day| day.date)
            .collect();
        Worded {
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
        }
    }
}

/// Six weeks or more of conservative treatment without a meaningful fall in pain: review.
struct NoImprovement<'a> {
    course: &'a Course,
    course_days: i64,
    measure: Measure,
    first: Period,
    latest: Period,
    first_mean: f64,
    latest_mean: f64,
    change: f64,
}

fn no_improvement_on_conservative_care<'a>(
    history: &[Day],
    as_of: NaiveDate,
    course: Option<&'a Course>,
) -> Option<Finding<'a>> {
    let course = course?;
    if (as_of - course.last_use).num_days() > MAX_GAP_IN_COURSE {
        return None;
    }
    let start = course.start;
    let course_days = (course.last_use - start).num_days();
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
    Some(Finding::NoImprovement(NoImprovement {
        course,
        course_days,
        measure,
        first,
        latest,
        first_mean,
        latest_mean,
        change,
    }))
}

impl NoImprovement<'_> {
    fn word(self, history: &[Day]) -> Worded {
        let NoImprovement {
            course,
            course_days,
            measure,
            first,
            latest,
            first_mean,
            latest_mean,
            change,
        } = self;
        let start = course.start;
        let mut treatments = course.treatments.clone();
        treatments.sort();
        let names: Vec<&str> = treatments.iter().map(|t| t.as_str()).collect();
        let mut dates = vec![start];
        dates.extend(
            between(history, latest.from, latest.to)
                .iter()
                .filter(|day| day.measure(measure).is_some())
                .map(|day| day.date),
        );
        dates.dedup();
        Worded {
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
                course.last_use,
                course_days / 7,
                measure.describe(),
                first.days,
                latest.days
            ),
        }
    }
}
