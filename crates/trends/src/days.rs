//! One summary per logged day: the entries of a day folded into what the analysis reads.
//!
//! A patient may check in several times a day (morning and evening, or on two devices). Each
//! check-in describes part of the day, so the day keeps the worst pain reported for each
//! measure, a sign counts as present if any check-in reported it, and lists are merged. These
//! folds do not depend on the order of the entries.

use chrono::{Datelike, NaiveDate, TimeDelta};
use heeldiary_core::{
    Entry, Field, FieldRef, Kind, Location, Severity, Treatment, Trigger, Word, WordSet,
};

use crate::report::Measure;

/// One field over the check-ins of a day, folded by its kind: the highest score or count, a
/// sign present if any check-in reported it, the last word of the vocabulary reported (for a
/// severity, the worst), every word of a list.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
enum Folded {
    #[default]
    Unanswered,
    Number(u32),
    Flag(bool),
    Word(usize),
    Words(WordSet),
}

impl Folded {
    /// What the analysis keeps of a field's value: days, times, text and the tombstone are not
    /// folded.
    fn of(value: FieldRef<'_>) -> Folded {
        match value {
            FieldRef::Number(n) => Folded::Number(n),
            FieldRef::Flag(yes) => Folded::Flag(yes),
            FieldRef::Word(at) => Folded::Word(at),
            FieldRef::Words(set) => Folded::Words(set),
            FieldRef::Absent | FieldRef::Day(_) | FieldRef::Instant(_) | FieldRef::Text(_) => {
                Folded::Unanswered
            }
        }
    }

    /// The fold of two check-ins' values; it does not depend on their order.
    fn with(self, other: Folded) -> Folded {
        match (self, other) {
            (Folded::Unanswered, value) | (value, Folded::Unanswered) => value,
            (Folded::Number(a), Folded::Number(b)) => Folded::Number(a.max(b)),
            (Folded::Flag(a), Folded::Flag(b)) => Folded::Flag(a || b),
            (Folded::Word(a), Folded::Word(b)) => Folded::Word(a.max(b)),
            (Folded::Words(a), Folded::Words(b)) => Folded::Words(a.union(b)),
            // One field holds one kind: two kinds cannot meet.
            (kept, _) => kept,
        }
    }
}

/// What the analysis knows about one logged day: every field of the entry table, folded over
/// the day's check-ins, read through the field's name.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Day {
    pub date: NaiveDate,
    /// Day number on a continuous scale, so that gaps between logged days count as time.
    pub number: i64,
    /// Every check-in of the day was written more than a day after it: recalled, not
    /// observed on the day, so it counts less.
    pub backfilled: bool,
    values: [Folded; Field::ALL.len()],
}

impl Day {
    fn from_entry(entry: &Entry) -> Day {
        let mut values = [Folded::Unanswered; Field::ALL.len()];
        for field in Field::ALL {
            values[field.index()] = Folded::of(entry.get(*field));
        }
        Day {
            date: entry.day,
            number: i64::from(entry.day.num_days_from_ce()),
            backfilled: entry.backfilled,
            values,
        }
    }

    /// Folds another check-in of the same day into this one.
    fn absorb(&mut self, entry: &Entry) {
        self.backfilled &= entry.backfilled;
        for field in Field::ALL {
            let value = &mut self.values[field.index()];
            *value = value.with(Folded::of(entry.get(*field)));
        }
    }

    /// Whether any check-in of the day answered `field`.
    pub fn answered(&self, field: Field) -> bool {
        self.values[field.index()] != Folded::Unanswered
    }

    /// A score or count of the day.
    pub fn number(&self, field: Field) -> Option<u32> {
        match self.values[field.index()] {
            Folded::Number(n) => Some(n),
            _ => None,
        }
    }

    /// A pain score of the day (0–10).
    pub fn score(&self, field: Field) -> Option<u8> {
        debug_assert_eq!(field.kind(), Kind::Score, "{field} is not a score");
        self.number(field).and_then(|n| u8::try_from(n).ok())
    }

    /// A yes/no answer of the day.
    pub fn flag(&self, field: Field) -> Option<bool> {
        match self.values[field.index()] {
            Folded::Flag(yes) => Some(yes),
            _ => None,
        }
    }

    /// A one-word answer of the day; `W` is the field's vocabulary.
    pub fn word<W: Word>(&self, field: Field) -> Option<W> {
        debug_assert_eq!(field.kind(), Kind::Word(W::VOCABULARY), "{field}");
        match self.values[field.index()] {
            Folded::Word(at) => W::EVERY.get(at).copied(),
            _ => None,
        }
    }

    /// The words of a list answer of the day (empty when unanswered).
    pub fn words(&self, field: Field) -> WordSet {
        match self.values[field.index()] {
            Folded::Words(set) => set,
            _ => WordSet::default(),
        }
    }

    /// The value of a measure on this day.
    pub fn measure(&self, measure: Measure) -> Option<f64> {
        match measure.field() {
            Some(field) => self.score(field).map(f64::from),
            None => self.nerve_score(),
        }
    }

    /// Numbness, tingling or burning of the day.
    pub fn numbness(&self) -> Option<Severity> {
        self.word(Field::Numbness)
    }

    /// Numbness, tingling or burning reported (any severity above none).
    pub fn has_numbness(&self) -> bool {
        self.numbness().is_some_and(|s| s != Severity::Absent)
    }

    /// Numbness, tingling or weakness: the signs the brief says need a clinician.
    pub fn has_numbness_or_weakness(&self) -> bool {
        self.has_numbness() || self.flag(Field::Weakness) == Some(true)
    }

    /// Whether the patient answered any of numbness, tingling or weakness that day.
    pub fn numbness_or_weakness_answered(&self) -> bool {
        self.numbness().is_some() || self.flag(Field::Weakness).is_some()
    }

    /// Nerve-sign score of the day, 0–5: numbness severity (0–3), plus one for radiating pain,
    /// plus one for weakness. `None` when none of the three was answered.
    pub fn nerve_score(&self) -> Option<f64> {
        let numbness = self.numbness();
        let radiating = self.flag(Field::Radiating);
        let weakness = self.flag(Field::Weakness);
        if numbness.is_none() && radiating.is_none() && weakness.is_none() {
            return None;
        }
        let numbness = numbness.map_or(0, Severity::rank);
        let radiating = u8::from(radiating == Some(true));
        let weakness = u8::from(weakness == Some(true));
        Some(f64::from(numbness + radiating + weakness))
    }

    /// How much the day counts in the pattern: half when it was back-filled.
    pub fn weight(&self) -> f64 {
        if self.backfilled {
            BACKFILLED_WEIGHT
        } else {
            1.0
        }
    }

    /// Pain radiated down the leg, or was felt above the foot (lower back, buttock, thigh,
    /// calf): what ties numbness and night pain to the back rather than the heel.
    pub fn above_foot_or_radiating(&self) -> bool {
        self.flag(Field::Radiating) == Some(true)
            || [
                Location::LowerBack,
                Location::Buttock,
                Location::Thigh,
                Location::Calf,
            ]
            .into_iter()
            .any(|place| self.has_location(place))
    }

    pub fn has_location(&self, location: Location) -> bool {
        self.words(Field::Locations).contains(location)
    }

    pub fn any_location(&self) -> bool {
        !self.words(Field::Locations).is_empty()
    }

    pub fn worse_with(&self, trigger: Trigger) -> bool {
        self.words(Field::WorseWith).contains(trigger)
    }

    pub fn eased_with(&self, trigger: Trigger) -> bool {
        self.words(Field::EasedWith).contains(trigger)
    }

    /// Whether the patient filled in what worsened or eased the pain that day.
    pub fn any_trigger(&self) -> bool {
        !self.words(Field::WorseWith).is_empty() || !self.words(Field::EasedWith).is_empty()
    }

    /// The treatments of the day, in the vocabulary's order.
    pub fn treatments(&self) -> impl Iterator<Item = Treatment> {
        self.words(Field::Treatments).words::<Treatment>()
    }
}

/// Weight of a back-filled day in the pattern: a diary typed in one evening recalls days
/// rather than observing them.
pub const BACKFILLED_WEIGHT: f64 = 0.5;

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
/// Folds `entry` into `days` (in date order): into its day's summary, or as a new day in its
/// place. Appending in day order is the common, constant-time case.
pub(crate) fn absorb_into(days: &mut Vec<Day>, entry: &Entry) {
    match days.last_mut() {
        Some(day) if day.date == entry.day => day.absorb(entry),
        Some(day) if day.date > entry.day => {
            let at = days.partition_point(|day| day.date < entry.day);
            match days.get_mut(at) {
                Some(day) if day.date == entry.day => day.absorb(entry),
                _ => days.insert(at, Day::from_entry(entry)),
            }
        }
        _ => days.push(Day::from_entry(entry)),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use heeldiary_core::EntryInput;
    use serde_json::{json, Value};

    fn entry(fields: Value) -> Entry {
        let mut object = json!({"day": "2026-11-01", "recorded_at": "2026-11-01T08:00:00Z"});
        object
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        let input: EntryInput = serde_json::from_value(object).unwrap();
        let patch = input
            .into_patch(NaiveDate::from_ymd_opt(2026, 11, 2).unwrap())
            .unwrap();
        let state = heeldiary_core::EntryState {
            fields: patch
                .into_iter()
                .map(|(field, value)| {
                    let hlc = heeldiary_core::Hlc::zero(uuid::Uuid::nil());
                    (field, heeldiary_core::FieldValue { hlc, value })
                })
                .collect(),
        };
        state.to_entry(uuid::Uuid::nil()).unwrap()
    }

    /// A value for every field a person answers, by its kind.
    fn answer(field: Field) -> Option<Value> {
        Some(match field.kind() {
            Kind::Score => json!(7),
            Kind::Count { max } => json!(max),
            Kind::Flag => json!(true),
            Kind::Word(vocabulary) => json!(vocabulary.words[1]),
            Kind::Words(vocabulary) => json!(vocabulary.words[..2]),
            Kind::Text { .. } => json!("a note"),
            Kind::Day | Kind::Instant | Kind::Tombstone => return None,
        })
    }

    #[test]
    fn a_day_reads_every_answered_field_through_its_name() {
        let answers: serde_json::Map<String, Value> = Field::ALL
            .iter()
            .filter_map(|field| Some((field.as_str().to_string(), answer(*field)?)))
            .collect();
        let full = entry(Value::Object(answers));
        let day = Day::from_entry(&full);
        for field in Field::ALL {
            let read = match field.kind() {
                Kind::Score | Kind::Count { .. } => day.number(*field).map(FieldRef::Number),
                Kind::Flag => day.flag(*field).map(FieldRef::Flag),
                Kind::Word(_) => match day.values[field.index()] {
                    Folded::Word(at) => Some(FieldRef::Word(at)),
                    _ => None,
                },
                Kind::Words(_) => Some(FieldRef::Words(day.words(*field))),
                Kind::Day | Kind::Instant | Kind::Text { .. } | Kind::Tombstone => continue,
            };
            assert_ne!(full.get(*field), FieldRef::Absent, "{field}");
            assert_eq!(read, Some(full.get(*field)), "{field}");
        }
    }

    #[test]
    fn check_ins_of_one_day_fold_to_the_worst_pain_and_every_sign_and_word() {
        let morning = entry(json!({
            "first_step_pain": 8, "heel_tender": false, "numbness": "moderate",
            "locations": ["arch"], "treatments": ["ice", "stretching"]
        }));
        let evening = entry(json!({
            "first_step_pain": 3, "sitting_pain": 4, "heel_tender": true, "numbness": "mild",
            "locations": ["calf"], "treatments": ["ice"]
        }));
        for (first, second) in [(&morning, &evening), (&evening, &morning)] {
            let days = summarise(&[first.clone(), second.clone()], first.day);
            assert_eq!(days.len(), 1);
            let day = &days[0];
            assert_eq!(day.score(Field::FirstStepPain), Some(8));
            assert_eq!(day.score(Field::SittingPain), Some(4));
            assert_eq!(day.score(Field::RestPain), None);
            assert_eq!(day.flag(Field::HeelTender), Some(true));
            assert_eq!(day.numbness(), Some(Severity::Moderate));
            assert!(day.has_location(Location::Arch) && day.has_location(Location::Calf));
            assert_eq!(
                day.treatments().collect::<Vec<_>>(),
                vec![Treatment::Stretching, Treatment::Ice]
            );
        }
    }
}
