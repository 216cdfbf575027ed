//! Which source the days are consistent with: the signs of the design notes' table, scored per
//! day and summed over a stretch of days.
//!
//! Every sign is observed on a day only when the patient answered what it needs (a missing
//! answer is not a "no"). A source's score is the weighted mean, over its observed signs, of the
//! share of days showing the sign: 0 (none of its signs on any day) to 1 (all of them every day).

use chrono::NaiveDate;
use heeldiary_core::{Field, Location, Severity, Trigger};
use serde::{Deserialize, Serialize};

use crate::days::Day;
use crate::report::{round, Evidence, Pattern, PatternKind, Scores};

/// Fewest logged days in the window before a pattern is named.
pub const MIN_DAYS_FOR_PATTERN: u32 = 7;

/// A foot score from which the foot signs count as clearly present (for `mixed`).
const FOOT_PRESENT: f64 = 0.40;
/// A back score from which the back signs count as clearly present (for `mixed`). Lower than
/// the foot threshold because nerve signs come and go from day to day while first-step pain
/// and heel tenderness are steady.
const BACK_PRESENT: f64 = 0.25;

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
}

/// A sign read from the diary, with the source it leans to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sign {
    /// First-step pain of at least 4 and above sitting and activity pain.
    FirstStepPeak,
    /// Heel tender to pressure.
    HeelTender,
    /// Pain eased with walking (moving after rest).
    EasesWithMovement,
    /// Pain only at the heel or arch.
    LocalHeelPain,
    /// None of radiating pain, numbness/tingling or weakness.
    NoNerveSigns,
    /// Worse with standing or running.
    WorseWithStanding,
    /// Morning stiffness.
    MorningStiffness,
    /// Pain radiating from the back down the leg.
    Radiating,
    /// Numbness, tingling or burning.
    NumbnessTingling,
    /// Weakness standing on toes or pushing off.
    Weakness,
    /// Pain at rest or at night.
    NightPain,
    /// Pain linked to sitting or bending, whether worse (disc) or eased (stenosis).
    SittingOrBending,
    /// Pain of 4 or more without a first-step peak.
    NoFirstStepPeak,
    /// Pain in the lower back, buttock, thigh or calf.
    ProximalPain,
    /// Worse with coughing or sneezing.
    WorseWithCoughing,
}

const PROXIMAL: [Location; 4] = [
    Location::LowerBack,
    Location::Buttock,
    Location::Thigh,
    Location::Calf,
];

impl Sign {
    /// Every sign, foot signs first.
    pub const ALL: [Sign; 15] = [
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
            _ => Source::Back,
        }
    }

    /// How much the sign counts in its source's score. The classic signs of the brief count
    /// most; signs shared with other conditions count less: standing also hurts in stenosis,
    /// and sitting/bending goes both ways (worse in a disc, eased in stenosis), so it is only
    /// weak evidence for a back source.
    pub fn weight(self) -> f64 {
        match self {
            Sign::FirstStepPeak => 3.0,
            Sign::HeelTender | Sign::Radiating | Sign::NumbnessTingling | Sign::Weakness => 2.0,
            Sign::EasesWithMovement
            | Sign::LocalHeelPain
            | Sign::NoNerveSigns
            | Sign::NightPain
            | Sign::NoFirstStepPeak
            | Sign::ProximalPain => 1.0,
            Sign::SittingOrBending => 0.75,
            Sign::WorseWithStanding | Sign::MorningStiffness | Sign::WorseWithCoughing => 0.5,
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
        let triggers = day.any_trigger().then_some(());
        let locations = day.any_location().then_some(());
        match self {
            Sign::FirstStepPeak => first_step_peak(day),
            Sign::NoFirstStepPeak => {
                day.score(Field::SittingPain)
                    .or(day.score(Field::ActivityPain))?;
                first_step_peak(day).map(|peak| !peak)
            }
            Sign::HeelTender => day.flag(Field::HeelTender),
            Sign::EasesWithMovement => triggers.map(|()| day.eased_with(Trigger::Walking)),
            Sign::LocalHeelPain => locations.map(|()| {
                let heel = [Location::HeelBottom, Location::HeelBack, Location::Arch]
                    .into_iter()
                    .any(|place| day.has_location(place));
                heel && !PROXIMAL.into_iter().any(|place| day.has_location(place))
            }),
            Sign::NoNerveSigns => day.nerve_score().map(|score| score == 0.0),
            Sign::WorseWithStanding => triggers
                .map(|()| day.worse_with(Trigger::Standing) || day.worse_with(Trigger::Running)),
            Sign::MorningStiffness => day.flag(Field::MorningStiffness),
            Sign::Radiating => day.flag(Field::Radiating),
            Sign::NumbnessTingling => day.numbness().map(|severity| severity != Severity::None),
            Sign::Weakness => day.flag(Field::Weakness),
            Sign::NightPain => day.flag(Field::NightPain),
            Sign::SittingOrBending => {
                if day.score(Field::SittingPain).is_none() && !day.any_trigger() {
                    return None;
                }
                let trigger = day.worse_with(Trigger::Sitting)
                    || day.worse_with(Trigger::Bending)
                    || day.worse_with(Trigger::Lifting)
                    || day.eased_with(Trigger::Sitting)
                    || day.eased_with(Trigger::Bending);
                let sitting_pain_high = day.score(Field::SittingPain).is_some_and(|sitting| {
                    sitting >= PAIN_TO_JUDGE_PEAK
                        && sitting >= day.score(Field::ActivityPain).unwrap_or(0)
                });
                Some(trigger || sitting_pain_high)
            }
            Sign::ProximalPain => {
                locations.map(|()| PROXIMAL.into_iter().any(|place| day.has_location(place)))
            }
            Sign::WorseWithCoughing => triggers.map(|()| day.worse_with(Trigger::Coughing)),
        }
    }

    /// The rating shown next to each date in the evidence, and its name.
    fn value(self, day: &Day) -> Option<u8> {
        match self {
            Sign::FirstStepPeak | Sign::NoFirstStepPeak => day.score(Field::FirstStepPain),
            Sign::SittingOrBending => day.score(Field::SittingPain),
            Sign::NumbnessTingling => day.numbness().map(Severity::rank),
            _ => None,
        }
    }

    fn value_name(self) -> Option<&'static str> {
        match self {
            Sign::FirstStepPeak | Sign::NoFirstStepPeak => Some(Field::FirstStepPain.as_str()),
            Sign::SittingOrBending => Some(Field::SittingPain.as_str()),
            Sign::NumbnessTingling => Some("numbness_rank_1_to_3"),
            _ => None,
        }
    }

    /// Plain words for the sign ("the heel was tender to pressure").
    pub(crate) fn what(self) -> &'static str {
        match self {
            Sign::FirstStepPeak => {
                "first-step pain was the day's peak (4/10 or more, above sitting and activity pain)"
            }
            Sign::HeelTender => "the heel was tender to pressure",
            Sign::EasesWithMovement => "pain eased with walking",
            Sign::LocalHeelPain => "pain was only at the heel or arch",
            Sign::NoNerveSigns => "there was no numbness, tingling, weakness or radiating pain",
            Sign::WorseWithStanding => "pain was worse with standing or running",
            Sign::MorningStiffness => "there was morning stiffness",
            Sign::Radiating => "pain radiated from the back down the leg",
            Sign::NumbnessTingling => "there was numbness, tingling or burning",
            Sign::Weakness => "there was weakness standing on toes or pushing off",
            Sign::NightPain => "there was pain at rest or at night",
            Sign::SittingOrBending => "pain was linked to sitting or bending",
            Sign::NoFirstStepPeak => "pain reached 4/10 or more without a first-step peak",
            Sign::ProximalPain => "pain was felt in the lower back, buttock, thigh or calf",
            Sign::WorseWithCoughing => "pain was worse with coughing or sneezing",
        }
    }

    /// Plain words for "the sign on `present` of `observed` days".
    pub(crate) fn describe(self, present: u32, observed: u32) -> String {
        format!("{} on {present} of {observed} days", self.what())
    }
}

/// First-step pain is the day's peak: at least 4 and at least a point above sitting and
/// activity pain. Pain after rest is not compared: in plantar fasciitis it is high too, for the
/// same reason as the first steps. `None` when first-step pain is missing or all pain is low.
fn first_step_peak(day: &Day) -> Option<bool> {
    let first_step = day.score(Field::FirstStepPain)?;
    let others = day
        .score(Field::SittingPain)
        .max(day.score(Field::ActivityPain))
        .unwrap_or(0);
    if first_step.max(others) < PAIN_TO_JUDGE_PEAK {
        return None;
    }
    Some(first_step >= PAIN_TO_JUDGE_PEAK && first_step > others)
}

/// Counts of days showing and observing each sign over a stretch of days.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Tally {
    present: [u32; Sign::ALL.len()],
    observed: [u32; Sign::ALL.len()],
    days: u32,
}

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
        for (index, sign) in Sign::ALL.iter().enumerate() {
            if let Some(present) = sign.observe(day) {
                self.observed[index] += 1;
                self.present[index] += u32::from(present);
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
        difference
    }

    pub fn days(&self) -> u32 {
        self.days
    }

    /// Share of observed days showing the sign; `None` if never observed.
    pub fn share(&self, sign: Sign) -> Option<f64> {
        let index = sign.index();
        (self.observed[index] > 0)
            .then(|| f64::from(self.present[index]) / f64::from(self.observed[index]))
    }

    fn score(&self, source: Source) -> Option<f64> {
        let (weighted, weights) = Sign::ALL
            .iter()
            .filter(|sign| sign.leans_to() == source)
            .filter_map(|sign| {
                self.share(*sign)
                    .map(|share| (share * sign.weight(), sign.weight()))
            })
            .fold((0.0, 0.0), |(sum, total), (value, weight)| {
                (sum + value, total + weight)
            });
        (weights > 0.0).then(|| weighted / weights)
    }

    /// Foot and back scores; `None` when no sign of either source was observed.
    pub fn scores(&self) -> Option<Scores> {
        let foot = self.score(Source::Foot);
        let back = self.score(Source::Back);
        if foot.is_none() && back.is_none() {
            return None;
        }
        Some(Scores {
            foot: foot.unwrap_or(0.0),
            back: back.unwrap_or(0.0),
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
}

/// Names the pattern from the two scores: both sets of signs clearly present is `mixed`;
/// otherwise the stronger source.
pub(crate) fn classify(scores: Scores) -> PatternKind {
    if scores.foot >= FOOT_PRESENT && scores.back >= BACK_PRESENT {
        PatternKind::Mixed
    } else if scores.foot >= scores.back {
        PatternKind::PlantarFasciitisLike
    } else {
        PatternKind::BackRelated
    }
}

/// Pattern of the days of the window (`window_days` long, from `from` to `to`).
pub(crate) fn window_pattern(days: &[Day], from: NaiveDate, to: NaiveDate) -> Pattern {
    let tally = Tally::of_days(days);
    let kind = tally.kind();
    let days_logged = tally.days();
    let scores = tally.scores().unwrap_or(Scores {
        foot: 0.0,
        back: 0.0,
    });
    let mut evidence: Vec<Evidence> = Sign::ALL
        .iter()
        .filter_map(|sign| evidence_for(*sign, days))
        .collect();
    evidence.sort_by(|a, b| {
        (b.share * b.weight)
            .total_cmp(&(a.share * a.weight))
            .then(b.weight.total_cmp(&a.weight))
    });
    let summary = summarise(kind, days_logged, scores, &evidence, from, to);
    Pattern {
        kind,
        scores: Scores {
            foot: round(scores.foot),
            back: round(scores.back),
        },
        days_logged,
        min_days_logged: MIN_DAYS_FOR_PATTERN,
        days_needed: MIN_DAYS_FOR_PATTERN.saturating_sub(days_logged),
        evidence,
        summary,
    }
}

fn evidence_for(sign: Sign, days: &[Day]) -> Option<Evidence> {
    let mut observed = 0u32;
    let mut dates = Vec::new();
    let mut values = Vec::new();
    for day in days {
        match sign.observe(day) {
            Some(true) => {
                observed += 1;
                dates.push(day.date);
                if let Some(value) = sign.value(day) {
                    values.push(value);
                }
            }
            Some(false) => observed += 1,
            None => {}
        }
    }
    if observed == 0 {
        return None;
    }
    let present = dates.len() as u32;
    let source = match sign.leans_to() {
        Source::Foot => "a foot (plantar-fasciitis-like) source",
        Source::Back => "a back-related (nerve) source",
    };
    let sentence = format!(
        "{}; this sign is consistent with {source}.",
        capitalise(&sign.describe(present, observed))
    );
    Some(Evidence {
        sign,
        leans_to: sign.leans_to(),
        weight: sign.weight(),
        days_present: present,
        days_observed: observed,
        share: round(f64::from(present) / f64::from(observed)),
        dates,
        value_name: sign
            .value_name()
            .filter(|_| !values.is_empty())
            .map(str::to_owned),
        values,
        sentence,
    })
}

fn summarise(
    kind: PatternKind,
    days_logged: u32,
    scores: Scores,
    evidence: &[Evidence],
    from: NaiveDate,
    to: NaiveDate,
) -> String {
    let strongest = |source: Source| -> Vec<String> {
        evidence
            .iter()
            .filter(|item| item.leans_to == source && item.share >= 0.5)
            .take(2)
            .map(|item| item.sign.describe(item.days_present, item.days_observed))
            .collect()
    };
    let score_text = format!(
        "foot score {:.2}, back score {:.2}",
        scores.foot, scores.back
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
                "{days_logged} days logged from {from} to {to}, but none records the signs that tell a foot pattern from a back pattern (pain ratings, tenderness, numbness, radiating pain)."
            );
        }
        PatternKind::Mixed => [strongest(Source::Foot), strongest(Source::Back)].concat(),
        PatternKind::PlantarFasciitisLike => strongest(Source::Foot),
        PatternKind::BackRelated => strongest(Source::Back),
    };
    let because = if reasons.is_empty() {
        String::new()
    } else {
        format!(": {}", reasons.join("; "))
    };
    format!(
        "The {days_logged} days logged from {from} to {to} are consistent with {} ({score_text}){because}.",
        kind.describe()
    )
}

pub(crate) fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
