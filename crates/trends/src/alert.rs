//! The alert at logging time: an entry carrying an urgent sign is answered at once, on the
//! device, without a server or a report. This is the call a phone app makes after saving an
//! entry; `heeldiary log` makes the same call.

use heeldiary_core::{Entry, Field, Side};
use serde::{Deserialize, Serialize};

use crate::report::{RedFlagKind, Urgency};
use crate::{analyse, Options};

/// What to tell a person who just logged an urgent sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrgentAlert {
    /// Always `urgent`.
    pub urgency: Urgency,
    /// The signs, in words.
    pub signs: Vec<String>,
    /// One plain sentence: seek urgent care today.
    pub message: String,
}

/// The urgent signs one entry carries by itself: saddle numbness, a change in bladder or
/// bowel control, weakness in both legs.
fn signs_of(entry: &Entry) -> Vec<String> {
    let mut signs = Vec::new();
    if entry.deleted {
        return signs;
    }
    if entry.saddle_numbness == Some(true) {
        signs.push("numbness between the legs, inner thighs or buttocks".to_owned());
    }
    if entry.bladder_bowel_change == Some(true) {
        signs.push("a new change in bladder or bowel control".to_owned());
    }
    if entry.weakness == Some(true) && entry.side == Some(Side::Both) {
        signs.push("weakness in both legs".to_owned());
    }
    signs
}

/// Words for an urgent red flag found in the diary so far.
fn sign_of_flag(kind: RedFlagKind) -> Option<&'static str> {
    match kind {
        RedFlagKind::NewWeakness => Some("weakness that is new in the last few days"),
        RedFlagKind::WorseningWeakness => Some("weakness on more and more days"),
        RedFlagKind::NerveSignsBothSides => Some("nerve signs that have spread to both legs"),
        _ => None,
    }
}

/// The alert for `logged`, just saved, given the diary's entries (`history`, which may or may
/// not include `logged`): the urgent signs of the entry itself, and urgent red flags of the
/// diary up to its day that the entry's day is part of. `None` when nothing is urgent.
pub fn urgent_alert(history: &[Entry], logged: &Entry) -> Option<UrgentAlert> {
    let mut signs = signs_of(logged);
    if !logged.deleted {
        let mut entries: Vec<Entry> = history
            .iter()
            .filter(|entry| entry.id != logged.id)
            .cloned()
            .collect();
        entries.push(logged.clone());
        let report = analyse(&entries, &Options::new(logged.day));
        for flag in &report.red_flags {
            if flag.urgency != Urgency::Urgent || !flag.dates.contains(&logged.day) {
                continue;
            }
            if let Some(sign) = sign_of_flag(flag.kind) {
                signs.push(sign.to_owned());
            }
        }
    }
    if signs.is_empty() {
        return None;
    }
    signs.dedup();
    Some(UrgentAlert {
        urgency: Urgency::Urgent,
        message: format!(
            "Urgent: you recorded {}. Seek urgent care today (an urgent care service or emergency department, or call your local emergency number if you cannot pass urine or the numbness is spreading). These signs can go with pressure on the nerves at the base of the spine and need checking the same day.",
            signs.join(" and ")
        ),
        signs,
    })
}

/// Whether an entry's own answers hold an urgent sign (the check without the diary).
pub fn has_urgent_sign(entry: &Entry) -> bool {
    !signs_of(entry).is_empty()
}

/// The entry fields that ask about urgent signs by themselves.
pub const URGENT_FIELDS: [Field; 2] = [Field::SaddleNumbness, Field::BladderBowelChange];
