//! One summary per logged day: the entries of a day folded into what the analysis reads.
//!
//! A patient may check in several times a day (morning and evening, or on two devices). Each
//! check-in describes part of the day, so the day keeps the worst pain reported for each
//! measure, a sign counts as present if any check-in reported it, and lists are merged. These
//! folds do not depend on the order of the entries.

use chrono::{Datelike, NaiveDate, TimeDelta};
use heeldiary_core::{Entry, Location, Severity, Treatment, Trigger};

use crate::report::Measure;

/// A set of words from one of the core vocabularies, as bits over the vocabulary's `ALL` list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WordSet(u32);

impl WordSet {
    fn from_words<T: Copy + PartialEq>(all: &[T], words: &[T]) -> Self {
        let bits = words
            .iter()
            .filter_map(|word| all.iter().position(|candidate| candidate == word))
            .fold(0u32, |bits, index| bits | (1 << index));
        WordSet(bits)
    }

    fn contains<T: Copy + PartialEq>(self, all: &[T], word: T) -> bool {
        all.iter()
            .position(|candidate| *candidate == word)
            .is_some_and(|index| self.0 & (1 << index) != 0)
    }

    fn union(self, other: WordSet) -> WordSet {
        WordSet(self.0 | other.0)
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// What the analysis knows about one logged day.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Day {
    pub date: NaiveDate,
    /// Day number on a continuous scale, so that gaps between logged days count as time.
    pub number: i64,
    pub first_step_pain: Option<u8>,
    pub rest_pain: Option<u8>,
    pub sitting_pain: Option<u8>,
    pub activity_pain: Option<u8>,
    pub radiating: Option<bool>,
    pub numbness: Option<Severity>,
    pub weakness: Option<bool>,
    pub heel_tender: Option<bool>,
    pub morning_stiffness: Option<bool>,
    pub night_pain: Option<bool>,
    locations: WordSet,
    worse_with: WordSet,
    eased_with: WordSet,
    /// Sorted, without repeats.
    pub treatments: Vec<Treatment>,
}

impl Day {
    fn from_entry(entry: &Entry) -> Day {
        let mut treatments = entry.treatments.clone();
        treatments.sort();
        treatments.dedup();
        Day {
            date: entry.day,
            number: i64::from(entry.day.num_days_from_ce()),
            first_step_pain: entry.first_step_pain,
            rest_pain: entry.rest_pain,
            sitting_pain: entry.sitting_pain,
            activity_pain: entry.activity_pain,
            radiating: entry.radiating,
            numbness: entry.numbness,
            weakness: entry.weakness,
            heel_tender: entry.heel_tender,
            morning_stiffness: entry.morning_stiffness,
            night_pain: entry.night_pain,
            locations: WordSet::from_words(Location::ALL, &entry.locations),
            worse_with: WordSet::from_words(Trigger::ALL, &entry.worse_with),
            eased_with: WordSet::from_words(Trigger::ALL, &entry.eased_with),
            treatments,
        }
    }

    /// Folds another check-in of the same day into this one.
    fn absorb(&mut self, entry: &Entry) {
        let other = Day::from_entry(entry);
        self.first_step_pain = self.first_step_pain.max(other.first_step_pain);
        self.rest_pain = self.rest_pain.max(other.rest_pain);
        self.sitting_pain = self.sitting_pain.max(other.sitting_pain);
        self.activity_pain = self.activity_pain.max(other.activity_pain);
        // `Some(true)` > `Some(false)` > `None`: a sign reported once counts for the day.
        self.radiating = self.radiating.max(other.radiating);
        self.numbness = self.numbness.max(other.numbness);
        self.weakness = self.weakness.max(other.weakness);
        self.heel_tender = self.heel_tender.max(other.heel_tender);
        self.morning_stiffness = self.morning_stiffness.max(other.morning_stiffness);
        self.night_pain = self.night_pain.max(other.night_pain);
        self.locations = self.locations.union(other.locations);
        self.worse_with = self.worse_with.union(other.worse_with);
        self.eased_with = self.eased_with.union(other.eased_with);
        self.treatments.extend(other.treatments);
        self.treatments.sort();
        self.treatments.dedup();
    }

    /// The value of a measure on this day.
    pub fn measure(&self, measure: Measure) -> Option<f64> {
        match measure {
            Measure::FirstStepPain => self.first_step_pain.map(f64::from),
            Measure::RestPain => self.rest_pain.map(f64::from),
            Measure::SittingPain => self.sitting_pain.map(f64::from),
            Measure::ActivityPain => self.activity_pain.map(f64::from),
            Measure::NerveSigns => self.nerve_score(),
        }
    }

    /// Numbness, tingling or burning reported (any severity above none).
    pub fn has_numbness(&self) -> bool {
        self.numbness.is_some_and(|s| s != Severity::None)
    }

    /// Numbness, tingling or weakness: the signs the brief says need a clinician.
    pub fn has_numbness_or_weakness(&self) -> bool {
        self.has_numbness() || self.weakness == Some(true)
    }

    /// Whether the patient answered any of numbness, tingling or weakness that day.
    pub fn numbness_or_weakness_answered(&self) -> bool {
        self.numbness.is_some() || self.weakness.is_some()
    }

    /// Nerve-sign score of the day, 0–5: numbness severity (0–3), plus one for radiating pain,
    /// plus one for weakness. `None` when none of the three was answered.
    pub fn nerve_score(&self) -> Option<f64> {
        if self.numbness.is_none() && self.radiating.is_none() && self.weakness.is_none() {
            return None;
        }
        let numbness = self.numbness.map_or(0, Severity::rank);
        let radiating = u8::from(self.radiating == Some(true));
        let weakness = u8::from(self.weakness == Some(true));
        Some(f64::from(numbness + radiating + weakness))
    }

    pub fn has_location(&self, location: Location) -> bool {
        self.locations.contains(Location::ALL, location)
    }

    pub fn any_location(&self) -> bool {
        !self.locations.is_empty()
    }

    pub fn worse_with(&self, trigger: Trigger) -> bool {
        self.worse_with.contains(Trigger::ALL, trigger)
    }

    pub fn eased_with(&self, trigger: Trigger) -> bool {
        self.eased_with.contains(Trigger::ALL, trigger)
    }

    /// Whether the patient filled in what worsened or eased the pain that day.
    pub fn any_trigger(&self) -> bool {
        !self.worse_with.is_empty() || !self.eased_with.is_empty()
    }
}

/// The logged days up to and including `as_of`, in date order, deleted entries left out.
pub(crate) fn summarise(entries: &[Entry], as_of: NaiveDate) -> Vec<Day> {
    let mut kept: Vec<&Entry> = entries
        .iter()
        .filter(|entry| !entry.deleted && entry.day <= as_of)
        .collect();
    kept.sort_by_key(|entry| entry.day);
    let mut days: Vec<Day> = Vec::new();
    for entry in kept {
        match days.last_mut() {
            Some(day) if day.date == entry.day => day.absorb(entry),
            _ => days.push(Day::from_entry(entry)),
        }
    }
    days
}

/// The days whose date lies in `from..=to` (days must be in date order).
pub(crate) fn between(days: &[Day], from: NaiveDate, to: NaiveDate) -> &[Day] {
    let start = days.partition_point(|day| day.date < from);
    let end = days.partition_point(|day| day.date <= to);
    &days[start..end.max(start)]
}

/// `date` moved by `days`, held at the ends of the calendar instead of overflowing.
pub(crate) fn offset(date: NaiveDate, days: i64) -> NaiveDate {
    date.checked_add_signed(TimeDelta::days(days))
        .unwrap_or(if days < 0 {
            NaiveDate::MIN
        } else {
            NaiveDate::MAX
        })
}
