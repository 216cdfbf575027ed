//! Pattern shifts over the whole history: where the mix of signs changes, and whether the
//! pattern named on each side differs.
//!
//! Binary segmentation: the history is split where the foot and back scores of the two sides
//! differ most (weighted by √(n₁n₂/(n₁+n₂)) so that splits near the ends, which rest on few days,
//! do not win by chance), and each side is split again while the difference stays large.
//! Neighbouring segments with the same pattern are then joined, and a shift is reported where
//! the pattern changes.

use crate::days::Day;
use crate::pattern::{Sign, Tally};
use crate::report::{round, PatternKind, Scores, Segment, Shift, SignChange};

/// Fewest logged days on each side of a shift: two weeks, so that a bad week is not a shift.
pub const MIN_DAYS_PER_SIDE: usize = 14;
/// Smallest change of foot plus back score that counts as a change of signs.
const MIN_SCORE_CHANGE: f64 = 0.2;
/// Smallest change in a sign's share of days shown as evidence of a shift.
const MIN_SHARE_CHANGE: f64 = 0.2;
/// Bound on the number of splits, so that a long noisy history cannot take long.
const MAX_SPLITS: usize = 64;

/// Shifts over `days` (the whole history, in date order).
pub(crate) fn shifts(days: &[Day]) -> Vec<Shift> {
    if days.len() < 2 * MIN_DAYS_PER_SIDE {
        return Vec::new();
    }
    let mut prefix = Vec::with_capacity(days.len() + 1);
    let mut running = Tally::default();
    prefix.push(running);
    for day in days {
        running.add(day);
        prefix.push(running);
    }
    let tally = |from: usize, to: usize| prefix[to].minus(&prefix[from]);

    let mut splits = Vec::new();
    let mut pending = vec![(0, days.len())];
    while let Some((from, to)) = pending.pop() {
        if splits.len() >= MAX_SPLITS {
            break;
        }
        if let Some(split) = best_split(from, to, &tally) {
            splits.push(split);
            pending.push((from, split));
            pending.push((split, to));
        }
    }
    splits.sort_unstable();

    // Segments between splits, joined while the pattern stays the same.
    let mut bounds = vec![0];
    bounds.extend(splits);
    bounds.push(days.len());
    let mut runs: Vec<(usize, usize, PatternKind)> = Vec::new();
    for pair in bounds.windows(2) {
        let kind = tally(pair[0], pair[1]).kind();
        match runs.last_mut() {
            Some(last) if last.2 == kind => last.1 = pair[1],
            _ => runs.push((pair[0], pair[1], kind)),
        }
    }
    runs.windows(2)
        .filter(|pair| {
            // An unclear stretch names no pattern, so there is no shift into or out of it.
            let named = |kind: PatternKind| {
                !matches!(kind, PatternKind::InsufficientData | PatternKind::Unclear)
            };
            named(pair[0].2) && named(pair[1].2)
        })
        .map(|pair| {
            let (before_from, before_to, _) = pair[0];
            let (after_from, after_to, _) = pair[1];
            shift(
                &days[before_from..before_to],
                &tally(before_from, before_to),
                &days[after_from..after_to],
                &tally(after_from, after_to),
            )
        })
        .collect()
}

fn score_change(before: Scores, after: Scores) -> f64 {
    (after.foot - before.foot).abs()
        + (after.back - before.back).abs()
        + (after.heel_nerve - before.heel_nerve).abs()
}

/// The split of `from..to` where the scores change most, if the change is large enough.
fn best_split(from: usize, to: usize, tally: &impl Fn(usize, usize) -> Tally) -> Option<usize> {
    if to - from < 2 * MIN_DAYS_PER_SIDE {
        return None;
    }
    let mut best: Option<(f64, usize)> = None;
    for split in from + MIN_DAYS_PER_SIDE..=to - MIN_DAYS_PER_SIDE {
        let (Some(before), Some(after)) = (tally(from, split).scores(), tally(split, to).scores())
        else {
            continue;
        };
        let change = score_change(before, after);
        if change < MIN_SCORE_CHANGE {
            continue;
        }
        let (left, right) = ((split - from) as f64, (to - split) as f64);
        let weighted = change * (left * right / (left + right)).sqrt();
        if best.is_none_or(|(best_weighted, _)| weighted > best_weighted) {
            best = Some((weighted, split));
        }
    }
    best.map(|(_, split)| split)
}

fn segment(days: &[Day], tally: &Tally) -> Segment {
    let scores = tally.scores().unwrap_or(Scores {
        foot: 0.0,
        back: 0.0,
        heel_nerve: 0.0,
    });
    Segment {
        from: days.first().map(|day| day.date).unwrap_or_default(),
        to: days.last().map(|day| day.date).unwrap_or_default(),
        days_logged: tally.days(),
        kind: tally.kind(),
        scores: Scores {
            foot: round(scores.foot),
            back: round(scores.back),
            heel_nerve: round(scores.heel_nerve),
        },
    }
}

fn shift(before_days: &[Day], before: &Tally, after_days: &[Day], after: &Tally) -> Shift {
    let before_segment = segment(before_days, before);
    let after_segment = segment(after_days, after);
    let mut evidence: Vec<SignChange> = Sign::ALL
        .iter()
        .filter_map(|sign| {
            let (share_before, share_after) = (before.share(*sign)?, after.share(*sign)?);
            ((share_after - share_before).abs() >= MIN_SHARE_CHANGE).then(|| SignChange {
                sign: *sign,
                leans_to: sign.leans_to(),
                share_before: round(share_before),
                share_after: round(share_after),
            })
        })
        .collect();
    let strength = |change: &SignChange| {
        (change.share_after - change.share_before).abs() * change.sign.weight()
    };
    evidence.sort_by(|a, b| strength(b).total_cmp(&strength(a)));
    evidence.truncate(4);
    let changes: Vec<String> = evidence
        .iter()
        .map(|change| {
            format!(
                "{} on {:.0}% of days before and {:.0}% after",
                change.sign.what(),
                change.share_before * 100.0,
                change.share_after * 100.0
            )
        })
        .collect();
    let sentence = format!(
        "From {} the days changed from being consistent with {} ({} logged days from {} to {}, foot {:.2}, back {:.2}) to being consistent with {} ({} logged days to {}, foot {:.2}, back {:.2}){}.{}",
        after_segment.from,
        before_segment.kind.describe(),
        before_segment.days_logged,
        before_segment.from,
        before_segment.to,
        before_segment.scores.foot,
        before_segment.scores.back,
        after_segment.kind.describe(),
        after_segment.days_logged,
        after_segment.to,
        after_segment.scores.foot,
        after_segment.scores.back,
        if changes.is_empty() {
            String::new()
        } else {
            format!(": {}", changes.join("; "))
        },
        // New nerve signs change what a clinician would look for: say so.
        if matches!(after_segment.kind, PatternKind::BackRelated | PatternKind::Mixed)
            && before_segment.kind == PatternKind::PlantarFasciitisLike
        {
            " A change towards back or nerve signs is worth discussing with a clinician."
        } else {
            ""
        }
    );
    Shift {
        date: after_segment.from,
        from: before_segment.kind,
        to: after_segment.kind,
        before: before_segment,
        after: after_segment,
        evidence,
        sentence,
    }
}
