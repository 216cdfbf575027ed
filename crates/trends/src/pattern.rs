//! Which source the days are consistent with: the signs of the design notes' table, scored per
//! day and summed over a stretch of days.
//!
//! Every sign is observed on a day only when the patient answered what it needs (a missing
//! answer is not a "no"). A source's score is the weighted mean, over its observed signs, of the
//! share of days showing the sign: 0 (none of its signs on any day) to 1 (all of them every day).

use chrono::NaiveDate;
use heeldiary_core::{Field, Location, Severity, Trigger};
use serde::{Deserialize, Serialize};

use crate::days::{Day, BACKFILLED_WEIGHT};
use crate::report::{round, Evidence, Pattern, PatternKind, Scores, SubReading};

/// Fewest logged days in the window before a pattern is named.
pub const MIN_DAYS_FOR_PATTERN: u32 = 7;

/// Pain from which a first-step peak, or its absence, can be judged; on days with little pain
/// neither says anything about the source.
const PAIN_TO_JUDGE_PEAK: u8 = 4;

/// Which source a sign leans to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Local, plantar-fasciitis-like.
    Foot,
    /// Back-related: nerve root or spinal canal.
    Back,
    /// A nerve caught at the heel (tarsal tunnel, Baxter's nerve).
    HeelNerve,
}

impl Source {
    /// Every source.
    pub const ALL: [Source; 3] = [Source::Foot, Source::Back, Source::HeelNerve];

    fn describe(self) -> &'static str {
        match self {
            Source::Foot => "a foot (plantar-fasciitis-like) source",
            Source::Back => "a back-related (nerve) source",
            Source::HeelNerve => "a nerve caught at the heel",
        }
    }
}

/// A sign read from the diary, with the source it leans to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sign {
    /// First-step pain of at least 4 and above activity pain.
    FirstStepPeak,
    /// Heel tender to pressure.
    HeelTender,
    /// Pain eased with walking (moving after rest).
    EasesWithMovement,
    /// Pain only at the heel or arch.
    LocalHeelPain,
    /// None of radiating pain, numbness/tingling or weakness.
    NoNerveSigns,
    /// Worse with standing or running, and not eased by sitting or bending forward.
    WorseWithStanding,
    /// Morning stiffness.
    MorningStiffness,
    /// Pain radiating from the back down the leg.
    Radiating,
    /// Numbness, tingling or burning, with pain that radiates or sits above the foot.
    NumbnessTingling,
    /// Weakness standing on toes or pushing off.
    Weakness,
    /// Pain at rest or at night, with pain that radiates or sits above the foot.
    NightPain,
    /// Pain linked to sitting or bending, whether worse (disc) or eased (stenosis).
    SittingOrBending,
    /// Pain of 4 or more while first-step pain stays below 4.
    NoFirstStepPeak,
    /// Pain in the lower back, buttock, thigh or calf.
    ProximalPain,
    /// Worse with coughing or sneezing.
    WorseWithCoughing,
    /// Numbness, tingling or burning in the heel or sole, with no radiating pain and no pain
    /// above the foot.
    HeelNumbness,
    /// Pain at night or at rest, with no radiating pain and no pain above the foot.
    HeelNightPain,
    /// Pain after rest of 4 or more, above first-step pain, kept to the foot.
    RestPainAboveFirstStep,
    /// Worse with sitting, bending or lifting (the disc direction); evidence only, not scored.
    WorseSittingOrBending,
    /// Walking or standing pain eased by sitting or bending forward (the stenosis direction);
    /// evidence only, not scored.
    EasedBySittingOrBending,
}

const PROXIMAL: [Location; 4] = [
    Location::LowerBack,
    Location::Buttock,
    Location::Thigh,
    Location::Calf,
];

impl Sign {
    /// Every sign, foot signs first.
    pub const ALL: [Sign; 20] = [
        Sign::FirstStepPeak,
        Sign::HeelTender,
        Sign::EasesWithMovement,
        Sign::LocalHeelPain,
        Sign::NoNerveSigns,
        Sign::WorseWithStanding,
        Sign::MorningStiffness,
        Sign::Radiating,
        Sign::NumbnessTingling,
        Sign::Weakness,
        Sign::NightPain,
        Sign::SittingOrBending,
        Sign::NoFirstStepPeak,
        Sign::ProximalPain,
        Sign::WorseWithCoughing,
        Sign::HeelNumbness,
        Sign::HeelNightPain,
        Sign::RestPainAboveFirstStep,
        Sign::WorseSittingOrBending,
        Sign::EasedBySittingOrBending,
    ];

    /// The source this sign leans to.
    pub fn leans_to(self) -> Source {
        match self {
            Sign::FirstStepPeak
            | Sign::HeelTender
            | Sign::EasesWithMovement
            | Sign::LocalHeelPain
            | Sign::NoNerveSigns
            | Sign::WorseWithStanding
            | Sign::MorningStiffness => Source::Foot,
            Sign::HeelNumbness | Sign::HeelNightPain | Sign::RestPainAboveFirstStep => {
                Source::HeelNerve
            }
            _ => Source::Back,
        }
    }

    /// How much the sign counts in its source's score. The classic signs of the brief count
    /// most; signs shared with other conditions count less: standing also hurts in stenosis,
    /// and sitting/bending goes both ways (worse in a disc, eased in stenosis). The two
    /// directions of sitting/bending are shown as evidence and name the sub-reading, but only
    /// their union is scored, so a disc picture is not marked down for lacking stenosis signs.
    pub fn weight(self) -> f64 {
        match self {
            Sign::FirstStepPeak => 3.0,
            Sign::HeelTender
            | Sign::Radiating
            | Sign::NumbnessTingling
            | Sign::Weakness
            | Sign::HeelNumbness => 2.0,
            Sign::HeelNightPain => 1.5,
            Sign::EasesWithMovement
            | Sign::LocalHeelPain
            | Sign::NoNerveSigns
            | Sign::NightPain
            | Sign::NoFirstStepPeak
            | Sign::ProximalPain
            | Sign::SittingOrBending
            | Sign::RestPainAboveFirstStep => 1.0,
            Sign::WorseWithStanding | Sign::MorningStiffness | Sign::WorseWithCoughing => 0.5,
            Sign::WorseSittingOrBending | Sign::EasedBySittingOrBending => 0.0,
        }
    }

    fn index(self) -> usize {
        Sign::ALL
            .iter()
            .position(|sign| *sign == self)
            .unwrap_or_default()
    }

    /// Whether the day shows the sign; `None` when the day's answers cannot tell.
    fn observe(self, day: &Day) -> Option<bool> {
        // Asked of every day for every sign: each part is worked out only by the signs that read it.
        let triggers = || day.any_trigger().then_some(());
        let locations = || day.any_location().then_some(());
        let kept_to_foot = || !day.above_foot_or_radiating();
        match self {
            Sign::FirstStepPeak => first_step_peak(day),
            Sign::NoFirstStepPeak => {
                let first_step = day.score(Field::FirstStepPain)?;
                let others = day
                    .score(Field::SittingPain)
                    .max(day.score(Field::ActivityPain))?;
                // High first-step pain is a foot sign in its own right even when another pain
                // is higher (a mixed picture): its missing peak says nothing for the back.
                match (
                    first_step >= PAIN_TO_JUDGE_PEAK,
                    others >= PAIN_TO_JUDGE_PEAK,
                ) {
                    (false, true) => Some(true),
                    (true, _) if first_step > others => Some(false),
                    _ => None,
                }
            }
            Sign::HeelTender => day.flag(Field::HeelTender),
            Sign::EasesWithMovement => triggers().map(|()| day.eased_with(Trigger::Walking)),
            Sign::LocalHeelPain => locations().map(|()| {
                let heel = [Location::HeelBottom, Location::HeelBack, Location::Arch]
                    .into_iter()
                    .any(|place| day.has_location(place));
                heel && !PROXIMAL.into_iter().any(|place| day.has_location(place))
            }),
            Sign::NoNerveSigns => day.nerve_score().map(|score| score == 0.0),
            Sign::WorseWithStanding => triggers().map(|()| {
                (day.worse_with(Trigger::Standing) || day.worse_with(Trigger::Running))
                    && !eased_by_sitting_or_bending(day)
            }),
            Sign::MorningStiffness => day.flag(Field::MorningStiffness),
            Sign::Radiating => day.flag(Field::Radiating),
            Sign::NumbnessTingling => day
                .numbness()
                .map(|severity| severity != Severity::Absent && !kept_to_foot()),
            Sign::Weakness => day.flag(Field::Weakness),
            Sign::NightPain => day
                .flag(Field::NightPain)
                .map(|night| night && !kept_to_foot()),
            Sign::HeelNumbness => day
                .numbness()
                .map(|severity| severity != Severity::Absent && kept_to_foot()),
            Sign::HeelNightPain => day
                .flag(Field::NightPain)
                .map(|night| night && kept_to_foot()),
            Sign::RestPainAboveFirstStep => {
                let rest = day.score(Field::RestPain)?;
                let first_step = day.score(Field::FirstStepPain)?;
                Some(rest >= PAIN_TO_JUDGE_PEAK && rest > first_step && kept_to_foot())
            }
            Sign::SittingOrBending => {
                if day.score(Field::SittingPain).is_none() && !day.any_trigger() {
                    return None;
                }
                Some(worse_sitting_or_bending(day) || eased_by_sitting_or_bending(day))
            }
            Sign::WorseSittingOrBending => {
                if day.score(Field::SittingPain).is_none() && !day.any_trigger() {
                    return None;
                }
                Some(worse_sitting_or_bending(day))
            }
            Sign::EasedBySittingOrBending => triggers().map(|()| eased_by_sitting_or_bending(day)),
            Sign::ProximalPain => {
                locations().map(|()| PROXIMAL.into_iter().any(|place| day.has_location(place)))
            }
            Sign::WorseWithCoughing => triggers().map(|()| day.worse_with(Trigger::Coughing)),
        }
    }

    /// The rating shown next to each date in the evidence, and its name.
    fn value(self, day: &Day) -> Option<u8> {
        match self {
            Sign::FirstStepPeak | Sign::NoFirstStepPeak => day.score(Field::FirstStepPain),
            Sign::SittingOrBending | Sign::WorseSittingOrBending => day.score(Field::SittingPain),
            Sign::EasedBySittingOrBending => day.score(Field::ActivityPain),
            Sign::RestPainAboveFirstStep => day.score(Field::RestPain),
            Sign::NumbnessTingling | Sign::HeelNumbness => day.numbness().map(Severity::rank),
            _ => None,
        }
    }

    fn value_name(self) -> Option<&'static str> {
        match self {
            Sign::FirstStepPeak | Sign::NoFirstStepPeak => Some(Field::FirstStepPain.as_str()),
            Sign::SittingOrBending | Sign::WorseSittingOrBending => {
                Some(Field::SittingPain.as_str())
            }
            Sign::EasedBySittingOrBending => Some(Field::ActivityPain.as_str()),
            Sign::RestPainAboveFirstStep => Some(Field::RestPain.as_str()),
            Sign::NumbnessTingling | Sign::HeelNumbness => Some("numbness_rank_1_to_3"),
            _ => None,
        }
    }

    /// Plain words for the sign ("the heel was tender to pressure").
    pub(crate) fn what(self) -> &'static str {
        match self {
            Sign::FirstStepPeak => {
                "first-step pain was the day's peak (4/10 or more, above activity pain)"
            }
            Sign::HeelTender => "the heel was tender to pressure",
            Sign::EasesWithMovement => "pain eased with walking",
            Sign::LocalHeelPain => "pain was only at the heel or arch",
            Sign::NoNerveSigns => "there was no numbness, tingling, weakness or radiating pain",
            Sign::WorseWithStanding => "pain was worse with standing or running",
            Sign::MorningStiffness => "there was morning stiffness",
            Sign::Radiating => "pain radiated from the back down the leg",
            Sign::NumbnessTingling => {
                "there was numbness, tingling or burning with pain spreading down the leg or above the foot"
            }
            Sign::Weakness => "there was weakness standing on toes or pushing off",
            Sign::NightPain => {
                "there was pain at rest or at night with pain spreading down the leg or above the foot"
            }
            Sign::SittingOrBending => "pain was linked to sitting or bending (either way)",
            Sign::NoFirstStepPeak => "pain reached 4/10 or more while first-step pain stayed below 4",
            Sign::ProximalPain => "pain was felt in the lower back, buttock, thigh or calf",
            Sign::WorseWithCoughing => "pain was worse with coughing or sneezing",
            Sign::HeelNumbness => {
                "there was numbness, tingling or burning kept to the foot (no pain spreading down the leg or above the foot)"
            }
            Sign::HeelNightPain => "there was pain at night or at rest kept to the foot",
            Sign::RestPainAboveFirstStep => {
                "pain after rest was 4/10 or more and above first-step pain, kept to the foot"
            }
            Sign::WorseSittingOrBending => "pain was worse with sitting, bending or lifting",
            Sign::EasedBySittingOrBending => {
                "walking or standing pain was eased by sitting or bending forward"
            }
        }
    }

    /// Plain words for "the sign on `present` of `observed` days".
    pub(crate) fn describe(self, present: u32, observed: u32) -> String {
        format!("{} on {present} of {observed} days", self.what())
    }
}

/// Worse with sitting, bending or lifting, or sitting pain high and at least activity pain.
fn worse_sitting_or_bending(day: &Day) -> bool {
    let trigger = day.worse_with(Trigger::Sitting)
        || day.worse_with(Trigger::Bending)
        || day.worse_with(Trigger::Lifting);
    let sitting_pain_high = day.score(Field::SittingPain).is_some_and(|sitting| {
        sitting >= PAIN_TO_JUDGE_PEAK && sitting >= day.score(Field::ActivityPain).unwrap_or(0)
    });
    trigger || sitting_pain_high
}

/// Walking or standing pain (a trigger, or activity pain of 4 or more) eased by sitting or
/// bending forward: the neurogenic claudication of a narrowed spinal canal.
fn eased_by_sitting_or_bending(day: &Day) -> bool {
    let eased = day.eased_with(Trigger::Sitting) || day.eased_with(Trigger::Bending);
    let walking_or_standing = day.worse_with(Trigger::Walking)
        || day.worse_with(Trigger::Standing)
        || day
            .score(Field::ActivityPain)
            .is_some_and(|activity| activity >= PAIN_TO_JUDGE_PEAK);
    eased && walking_or_standing
}

/// First-step pain is the day's peak: at least 4 and at least a point above activity pain.
/// Neither sitting pain nor pain after rest is compared: sitting pain belongs to the back
/// picture (a mixed picture has both), and pain after rest is high in plantar fasciitis for
/// the same reason as the first steps. `None` when first-step pain is missing or all pain is
/// low.
fn first_step_peak(day: &Day) -> Option<bool> {
    let first_step = day.score(Field::FirstStepPain)?;
    let activity = day.score(Field::ActivityPain).unwrap_or(0);
    let others = activity.max(day.score(Field::SittingPain).unwrap_or(0));
    if first_step.max(others) < PAIN_TO_JUDGE_PEAK {
        return None;
    }
    Some(first_step >= PAIN_TO_JUDGE_PEAK && first_step > activity)
}

/// Present and observed days of each sign over a stretch of days, each day weighted (a
/// back-filled day counts half).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Tally {
    present: [f64; Sign::ALL.len()],
    observed: [f64; Sign::ALL.len()],
    days: u32,
    backfilled: u32,
}

/// A foot score from which the foot signs count as clearly present.
const FOOT_PRESENT: f64 = 0.40;
/// A back score from which the back signs count as clearly present. Lower than the foot
/// threshold because nerve signs come and go from day to day while first-step pain and heel
/// tenderness are steady.
const BACK_PRESENT: f64 = 0.25;
/// A heel-nerve score from which a heel-nerve reading is named.
const HEEL_NERVE_PRESENT: f64 = 0.50;
/// Share of observed days from which one direction of sitting/bending names the sub-reading.
const SUB_READING_SHARE: f64 = 0.50;

impl Tally {
    pub fn of_days(days: &[Day]) -> Tally {
        let mut tally = Tally::default();
        for day in days {
            tally.add(day);
        }
        tally
    }

    pub fn add(&mut self, day: &Day) {
        self.days += 1;
        self.backfilled += u32::from(day.backfilled);
        let weight = day.weight();
        for (index, sign) in Sign::ALL.iter().enumerate() {
            if let Some(present) = sign.observe(day) {
                self.observed[index] += weight;
                if present {
                    self.present[index] += weight;
                }
            }
        }
    }

    /// The tally of the days counted in `self` but not in `earlier` (for prefix sums).
    pub fn minus(&self, earlier: &Tally) -> Tally {
        let mut difference = *self;
        for index in 0..Sign::ALL.len() {
            difference.present[index] -= earlier.present[index];
            difference.observed[index] -= earlier.observed[index];
        }
        difference.days -= earlier.days;
        difference.backfilled -= earlier.backfilled;
        difference
    }

    pub fn days(&self) -> u32 {
        self.days
    }

    pub fn backfilled(&self) -> u32 {
        self.backfilled
    }

    /// Weighted share of observed days showing the sign; `None` if never observed.
    pub fn share(&self, sign: Sign) -> Option<f64> {
        let index = sign.index();
        // Prefix-sum differences can leave a rounding residue instead of zero.
        (self.observed[index] > 1e-9)
            .then(|| (self.present[index] / self.observed[index]).clamp(0.0, 1.0))
    }

    fn score(&self, source: Source) -> Option<f64> {
        let (weighted, weights) = Sign::ALL
            .iter()
            .filter(|sign| sign.leans_to() == source && sign.weight() > 0.0)
            .filter_map(|sign| {
                self.share(*sign)
                    .map(|share| (share * sign.weight(), sign.weight()))
            })
            .fold((0.0, 0.0), |(sum, total), (value, weight)| {
                (sum + value, total + weight)
            });
        (weights > 0.0).then(|| weighted / weights)
    }

    /// Foot, back and heel-nerve scores; `None` when no sign of any source was observed.
    pub fn scores(&self) -> Option<Scores> {
        let [foot, back, heel_nerve] = Source::ALL.map(|source| self.score(source));
        if foot.is_none() && back.is_none() && heel_nerve.is_none() {
            return None;
        }
        Some(Scores {
            foot: foot.unwrap_or(0.0),
            back: back.unwrap_or(0.0),
            heel_nerve: heel_nerve.unwrap_or(0.0),
        })
    }

    /// [`scores`](Self::scores), with 0 for every source when no sign was observed.
    pub fn scores_or_zero(&self) -> Scores {
        self.scores().unwrap_or(Scores {
            foot: 0.0,
            back: 0.0,
            heel_nerve: 0.0,
        })
    }

    /// The pattern these days are consistent with, or `InsufficientData`.
    pub fn kind(&self) -> PatternKind {
        if self.days < MIN_DAYS_FOR_PATTERN {
            return PatternKind::InsufficientData;
        }
        self.scores()
            .map_or(PatternKind::InsufficientData, classify)
    }

    /// Which way sitting and bending act, when one direction shows on at least half the
    /// observed days and more often than the other.
    pub fn sub_reading(&self, kind: PatternKind) -> Option<SubReading> {
        if !matches!(kind, PatternKind::BackRelated | PatternKind::Mixed) {
            return None;
        }
        let eased = self.share(Sign::EasedBySittingOrBending).unwrap_or(0.0);
        let worse = self.share(Sign::WorseSittingOrBending).unwrap_or(0.0);
        if eased >= SUB_READING_SHARE && eased > worse {
            Some(SubReading::StenosisLike)
        } else if worse >= SUB_READING_SHARE && worse > eased {
            Some(SubReading::DiscLike)
        } else {
            None
        }
    }
}

/// Names the pattern from the scores: heel-nerve signs clearly present and ahead of both
/// others; both foot and back signs clearly present is `mixed`; otherwise the source whose
/// signs are clearly present. When none is, the reading is `unclear` rather than the larger of
/// two small scores.
pub(crate) fn classify(scores: Scores) -> PatternKind {
    let foot = scores.foot >= FOOT_PRESENT;
    let back = scores.back >= BACK_PRESENT;
    if scores.heel_nerve >= HEEL_NERVE_PRESENT
        && scores.heel_nerve > scores.back
        && scores.heel_nerve > scores.foot
    {
        PatternKind::HeelNerveLike
    } else if foot && back {
        PatternKind::Mixed
    } else if foot && scores.foot >= scores.back {
        PatternKind::PlantarFasciitisLike
    } else if back && scores.back > scores.foot {
        PatternKind::BackRelated
    } else {
        PatternKind::Unclear
    }
}

/// What an unclear or empty reading lacks: the telling answers given on fewer than half of
/// the logged days, or, when they were given, that the signs were weak on every side.
fn missing(kind: PatternKind, tally: &Tally) -> Vec<String> {
    if !matches!(kind, PatternKind::Unclear | PatternKind::InsufficientData) {
        return Vec::new();
    }
    if tally.days < MIN_DAYS_FOR_PATTERN {
        return vec![format!(
            "at least {MIN_DAYS_FOR_PATTERN} logged days ({} more)",
            MIN_DAYS_FOR_PATTERN - tally.days
        )];
    }
    let half = f64::from(tally.days) * BACKFILLED_WEIGHT;
    let asked = [
        (
            Sign::FirstStepPeak,
            "first-step pain with activity pain to compare",
        ),
        (Sign::HeelTender, "whether the heel is tender to pressure"),
        (Sign::Radiating, "whether pain radiates down the leg"),
        (Sign::NoNerveSigns, "numbness, tingling or weakness answers"),
        (Sign::ProximalPain, "where it hurts"),
    ];
    let mut missing: Vec<String> = asked
        .into_iter()
        .filter(|(sign, _)| tally.observed[sign.index()] < half)
        .map(|(_, what)| what.to_owned())
        .collect();
    if missing.is_empty() {
        missing.push(format!(
            "clearer signs: none of the foot score (at least {FOOT_PRESENT:.2}), back score (at least {BACK_PRESENT:.2}) or heel-nerve score (at least {HEEL_NERVE_PRESENT:.2}) was reached"
        ));
    }
    missing
}

/// The pattern the days of a window are consistent with, and its scores as a report gives
/// them: what a summary keeps of [`window_pattern`].
pub(crate) fn window_kind_and_scores(days: &[Day]) -> (PatternKind, Scores) {
    let tally = Tally::of_days(days);
    (tally.kind(), reported(tally.scores_or_zero()))
}

/// Scores as a report gives them: rounded.
fn reported(scores: Scores) -> Scores {
    Scores {
        foot: round(scores.foot),
        back: round(scores.back),
        heel_nerve: round(scores.heel_nerve),
    }
}

/// Pattern of the days of the window (`window_days` long, from `from` to `to`).
pub(crate) fn window_pattern(days: &[Day], from: NaiveDate, to: NaiveDate) -> Pattern {
    let tally = Tally::of_days(days);
    let kind = tally.kind();
    let days_logged = tally.days();
    let scores = tally.scores_or_zero();
    let sub_reading = tally.sub_reading(kind);
    let mut evidence: Vec<Evidence> = Sign::ALL
        .iter()
        .filter_map(|sign| evidence_for(*sign, days))
        .collect();
    evidence.sort_by(|a, b| {
        (b.share * b.weight)
            .total_cmp(&(a.share * a.weight))
            .then(b.weight.total_cmp(&a.weight))
    });
    let missing = missing(kind, &tally);
    let reading = Reading {
        kind,
        sub_reading,
        days_logged,
        days_backfilled: tally.backfilled(),
        scores,
        from,
        to,
    };
    let summary = summarise(&reading, &evidence, &missing);
    let patient_summary = summarise_plainly(&reading, &missing);
    Pattern {
        kind,
        scores: reported(scores),
        days_logged,
        min_days_logged: MIN_DAYS_FOR_PATTERN,
        days_needed: MIN_DAYS_FOR_PATTERN.saturating_sub(days_logged),
        sub_reading,
        days_backfilled: tally.backfilled(),
        missing,
        evidence,
        summary,
        patient_summary,
    }
}

fn evidence_for(sign: Sign, days: &[Day]) -> Option<Evidence> {
    let mut observed = 0u32;
    let mut backfilled = 0u32;
    // The share weighs days as the scores do (a back-filled day counts half), so that the
    // evidence a reading shows is the evidence it rests on.
    let (mut weighted_present, mut weighted_observed) = (0.0, 0.0);
    let mut dates = Vec::new();
    let mut values = Vec::new();
    for day in days {
        let Some(present) = sign.observe(day) else {
            continue;
        };
        observed += 1;
        backfilled += u32::from(day.backfilled);
        weighted_observed += day.weight();
        if present {
            weighted_present += day.weight();
            dates.push(day.date);
            if let Some(value) = sign.value(day) {
                values.push(value);
            }
        }
    }
    if observed == 0 || weighted_observed <= 0.0 {
        return None;
    }
    let present = dates.len() as u32;
    let share = (weighted_present / weighted_observed).clamp(0.0, 1.0);
    let leaning = match sign {
        Sign::WorseSittingOrBending => {
            "this direction is consistent with a disc-like back source".to_owned()
        }
        Sign::EasedBySittingOrBending => {
            "this direction is consistent with a stenosis-like back source".to_owned()
        }
        _ => format!(
            "this sign is consistent with {}",
            sign.leans_to().describe()
        ),
    };
    let weighting = match backfilled {
        0 => String::new(),
        n => format!(
            " ({n} of the {observed} days back-filled, counted half: weighted share {share:.2})"
        ),
    };
    let sentence = format!(
        "{}{weighting}; {leaning}.",
        capitalise(&sign.describe(present, observed))
    );
    Some(Evidence {
        sign,
        leans_to: sign.leans_to(),
        weight: sign.weight(),
        days_present: present,
        days_observed: observed,
        days_backfilled: backfilled,
        share: round(share),
        dates,
        value_name: sign
            .value_name()
            .filter(|_| !values.is_empty())
            .map(str::to_owned),
        values,
        sentence,
    })
}

/// What a summary says: the reading and the days it rests on.
struct Reading {
    kind: PatternKind,
    sub_reading: Option<SubReading>,
    days_logged: u32,
    days_backfilled: u32,
    scores: Scores,
    from: NaiveDate,
    to: NaiveDate,
}

impl Reading {
    fn backfilled_note(&self) -> String {
        match self.days_backfilled {
            0 => String::new(),
            n => format!(
                " {n} of the {} days were written more than a day later and count half.",
                self.days_logged
            ),
        }
    }
}

fn summarise(reading: &Reading, evidence: &[Evidence], missing: &[String]) -> String {
    let Reading {
        kind,
        days_logged,
        scores,
        from,
        to,
        ..
    } = *reading;
    let strongest = |source: Source| -> Vec<String> {
        evidence
            .iter()
            .filter(|item| item.leans_to == source && item.weight > 0.0 && item.share >= 0.5)
            .take(2)
            .map(|item| item.sign.describe(item.days_present, item.days_observed))
            .collect()
    };
    let score_text = format!(
        "foot score {:.2}, back score {:.2}, heel-nerve score {:.2}",
        scores.foot, scores.back, scores.heel_nerve
    );
    let reasons = match kind {
        PatternKind::InsufficientData if days_logged < MIN_DAYS_FOR_PATTERN => {
            return format!(
                "Only {days_logged} day(s) logged from {from} to {to}; at least {MIN_DAYS_FOR_PATTERN} are needed to describe a pattern ({} more).",
                MIN_DAYS_FOR_PATTERN - days_logged
            );
        }
        PatternKind::InsufficientData => {
            return format!(
                "{days_logged} days logged from {from} to {to}, but none records the signs that tell a foot pattern from a back pattern (pain ratings, tenderness, numbness, radiating pain).{}",
                reading.backfilled_note()
            );
        }
        PatternKind::Unclear => {
            return format!(
                "The {days_logged} days logged from {from} to {to} support no reading ({score_text}); missing: {}.{}",
                missing.join("; "),
                reading.backfilled_note()
            );
        }
        PatternKind::Mixed => [strongest(Source::Foot), strongest(Source::Back)].concat(),
        PatternKind::PlantarFasciitisLike => strongest(Source::Foot),
        PatternKind::BackRelated => strongest(Source::Back),
        PatternKind::HeelNerveLike => strongest(Source::HeelNerve),
    };
    let because = if reasons.is_empty() {
        String::new()
    } else {
        format!(": {}", reasons.join("; "))
    };
    let sub = reading
        .sub_reading
        .map(|sub| {
            let sign = match sub {
                SubReading::StenosisLike => Sign::EasedBySittingOrBending,
                SubReading::DiscLike => Sign::WorseSittingOrBending,
            };
            let days = evidence
                .iter()
                .find(|item| item.sign == sign)
                .map(|item| format!(" ({} of {} days)", item.days_present, item.days_observed))
                .unwrap_or_default();
            format!(" Within it, {}{days}.", sub.describe())
        })
        .unwrap_or_default();
    format!(
        "The {days_logged} days logged from {from} to {to} are consistent with {} ({score_text}){because}.{sub}{}",
        kind.describe(),
        reading.backfilled_note()
    )
}

fn summarise_plainly(reading: &Reading, missing: &[String]) -> String {
    let Reading {
        kind,
        days_logged,
        days_backfilled,
        ..
    } = *reading;
    let backfilled = match days_backfilled {
        0 => String::new(),
        n => format!(" {n} of these days were filled in later, so they count less."),
    };
    match kind {
        PatternKind::InsufficientData => format!(
            "There are not enough answers yet to see a pattern ({days_logged} days logged). Keep logging each day, including first-step pain and any numbness or tingling."
        ),
        PatternKind::Unclear => format!(
            "Your {days_logged} logged days do not yet show a clear pattern. It would help to record: {}.{backfilled}",
            missing.join("; ")
        ),
        _ => {
            let sub = reading
                .sub_reading
                .map(|sub| format!(" In particular: {}.", sub.describe_plainly()))
                .unwrap_or_default();
            format!(
                "Your {days_logged} logged days look like {}.{sub} This is a pattern in the diary, not a diagnosis; a clinician can examine the cause.{backfilled}",
                kind.describe_plainly()
            )
        }
    }
}

pub(crate) fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
