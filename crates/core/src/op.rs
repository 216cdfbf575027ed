//! Field-level operations and their merge: the current value of each field is the one written
//! by the operation with the highest clock stamp. The merge is commutative, associative and
//! idempotent, so devices and the server converge whatever order operations arrive in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::entry::Entry;
use crate::error::ValidationError;
use crate::field::{Field, Patch};
use crate::hlc::Hlc;

/// One change to one entry: the fields it sets, stamped with the writer's clock and numbered in
/// the writer's own sequence. `(device_id, device_seq)` identifies it everywhere, which makes
/// retried deliveries harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Op {
    /// The entry the operation changes.
    pub entry_id: Uuid,
    /// The device that wrote it.
    pub device_id: Uuid,
    /// Position in that device's own sequence, from 1.
    pub device_seq: u64,
    /// When it was written.
    pub hlc: Hlc,
    /// The fields it sets; `null` clears a field, `deleted: true` is a tombstone.
    pub patch: Patch,
}

impl Op {
    /// Whether this operation deletes its entry.
    pub fn is_tombstone(&self) -> bool {
        self.patch.get(&Field::Deleted) == Some(&Value::Bool(true))
    }

    /// Checks the operation's shape: its stamp belongs to its device, it sets at least one field,
    /// and every value keeps its field's rule (see [`Field::normalise`]). `today` is the writer's
    /// local date, against which future days are judged; `None` skips that one rule, for a
    /// receiver (the server) that cannot know the writer's calendar and bounds its clock instead.
    pub fn validate(&self, today: Option<chrono::NaiveDate>) -> Result<(), ValidationError> {
        let today = today.unwrap_or(chrono::NaiveDate::MAX);
        if self.hlc.node != self.device_id {
            return Err(ValidationError::new(
                "hlc",
                "was not made by the operation's device",
            ));
        }
        if self.device_seq == 0 {
            return Err(ValidationError::new("device_seq", "must start at 1"));
        }
        if self.patch.is_empty() {
            return Err(ValidationError::new("patch", "must set at least one field"));
        }
        for (field, value) in &self.patch {
            let canonical = field
                .normalise(value.clone(), today)
                .map_err(|e| e.within("patch"))?;
            if &canonical != value {
                return Err(ValidationError::new(
                    format!("patch.{field}"),
                    "is not in canonical form (lists sorted without repeats, snake_case words)",
                ));
            }
        }
        Ok(())
    }
}

/// The current value of one field and the stamp of the operation that wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldValue {
    /// Stamp of the winning operation.
    pub hlc: Hlc,
    /// Its value (`null` when cleared).
    pub value: Value,
}

/// What applying one operation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Fields whose current value changed.
    pub changed: Vec<Field>,
    /// Fields where this operation and another device's concurrent write disagreed; the higher
    /// stamp kept the field, the other value stays in the history.
    pub conflicts: Vec<Field>,
}

/// The merged state of one entry: for each field, the value with the highest stamp.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EntryState {
    /// Field values with their winning stamps.
    pub fields: BTreeMap<Field, FieldValue>,
}

impl EntryState {
    /// Folds `op` in. Ties on the stamp (only possible for a replay of the same operation, or a
    /// forged one) fall to the greater value text, so the result never depends on order.
    pub fn apply(&mut self, op: &Op) -> ApplyOutcome {
        let mut outcome = ApplyOutcome::default();
        for (field, value) in &op.patch {
            match self.fields.get_mut(field) {
                Some(current) => {
                    let incoming_wins =
                        (op.hlc, value.to_string()) > (current.hlc, current.value.to_string());
                    if current.hlc.node != op.hlc.node && &current.value != value {
                        outcome.conflicts.push(*field);
                    }
                    if incoming_wins {
                        if &current.value != value {
                            outcome.changed.push(*field);
                        }
                        *current = FieldValue {
                            hlc: op.hlc,
                            value: value.clone(),
                        };
                    }
                }
                None => {
                    self.fields.insert(
                        *field,
                        FieldValue {
                            hlc: op.hlc,
                            value: value.clone(),
                        },
                    );
                    outcome.changed.push(*field);
                }
            }
        }
        outcome
    }

    /// Whether a tombstone won.
    pub fn is_deleted(&self) -> bool {
        self.fields
            .get(&Field::Deleted)
            .is_some_and(|f| f.value == Value::Bool(true))
    }

    /// The highest stamp of any field: when the entry last changed.
    pub fn last_changed(&self) -> Option<Hlc> {
        self.fields.values().map(|f| f.hlc).max()
    }

    /// The local day the entry describes, as written (`YYYY-MM-DD`), once an operation has
    /// set it: what day indexes store.
    pub fn day(&self) -> Option<&str> {
        self.fields.get(&Field::Day).and_then(|f| f.value.as_str())
    }
}

/// Why a merged entry state does not make an [`Entry`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Its day or first recording has not arrived yet: an edit was delivered before the
    /// operation that creates the entry. Not a fault: the entry completes when that arrives, and
    /// lists leave it out until then.
    #[error("entry {id} is not complete yet: no `{missing}` has arrived")]
    Incomplete {
        /// The entry.
        id: Uuid,
        /// The first field it still lacks.
        missing: Field,
    },
    /// A stored value does not fit its field: a fault in the data, never to be skipped quietly.
    #[error("entry {id}: {source}")]
    Invalid {
        /// The entry.
        id: Uuid,
        /// The field and why.
        source: ValidationError,
    },
}

impl EntryError {
    /// Whether the entry is merely not complete yet (see [`EntryError::Incomplete`]).
    pub fn is_incomplete(&self) -> bool {
        matches!(self, EntryError::Incomplete { .. })
    }
}

/// Merges any collection of operations on one entry, in any order, with any repeats.
pub fn merge<'a>(entry_id: Uuid, ops: impl IntoIterator<Item = &'a Op>) -> MergedEntry {
    let mut state = EntryState::default();
    for op in ops {
        debug_assert_eq!(op.entry_id, entry_id);
        state.apply(op);
    }
    MergedEntry {
        id: entry_id,
        state,
    }
}

/// An entry id with its merged state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedEntry {
    /// The entry.
    pub id: Uuid,
    /// Its merged field values.
    pub state: EntryState,
}

impl MergedEntry {
    /// See [`EntryState::to_entry`].
    pub fn to_entry(&self) -> Result<Entry, EntryError> {
        self.state.to_entry(self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn dev(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn op(device: u128, seq: u64, wall: u64, patch: Vec<(Field, Value)>) -> Op {
        Op {
            entry_id: Uuid::from_u128(99),
            device_id: dev(device),
            device_seq: seq,
            hlc: Hlc {
                wall_ms: wall,
                counter: 0,
                node: dev(device),
            },
            patch: patch.into_iter().collect(),
        }
    }

    fn create(device: u128, wall: u64) -> Op {
        op(
            device,
            1,
            wall,
            vec![
                (Field::Day, json!("2026-11-01")),
                (Field::RecordedAt, json!("2026-11-01T08:00:00.000+01:00")),
                (Field::FirstStepPain, json!(7)),
            ],
        )
    }

    #[test]
    fn concurrent_edits_of_different_fields_both_survive() {
        let a = op(1, 2, 20, vec![(Field::FirstStepPain, json!(2))]);
        let b = op(2, 1, 21, vec![(Field::SittingPain, json!(5))]);
        let entry = merge(Uuid::from_u128(99), [&create(1, 10), &a, &b])
            .to_entry()
            .unwrap();
        assert_eq!(entry.first_step_pain, Some(2));
        assert_eq!(entry.sitting_pain, Some(5));
    }

    #[test]
    fn same_field_goes_to_the_higher_stamp_and_reports_a_conflict() {
        let base = create(1, 10);
        let a = op(1, 2, 30, vec![(Field::FirstStepPain, json!(2))]);
        let b = op(2, 1, 25, vec![(Field::FirstStepPain, json!(9))]);
        let mut state = EntryState::default();
        state.apply(&base);
        state.apply(&a);
        let outcome = state.apply(&b);
        assert_eq!(outcome.conflicts, vec![Field::FirstStepPain]);
        assert!(outcome.changed.is_empty());
        assert_eq!(state.fields[&Field::FirstStepPain].value, json!(2));
    }

    #[test]
    fn tombstones_delete_and_an_edit_before_creation_waits_for_the_day() {
        let edit = op(2, 1, 20, vec![(Field::RestPain, json!(3))]);
        let waiting = merge(Uuid::from_u128(99), [&edit]).to_entry().unwrap_err();
        assert!(waiting.is_incomplete(), "{waiting}");
        let del = op(1, 2, 30, vec![(Field::Deleted, json!(true))]);
        let merged = merge(Uuid::from_u128(99), [&edit, &create(1, 10), &del]);
        assert!(merged.state.is_deleted());
        assert!(merged.to_entry().unwrap().deleted);
    }

    #[test]
    fn backfilled_is_derived_from_day_and_recording_time() {
        let late = op(
            1,
            1,
            10,
            vec![
                (Field::Day, json!("2026-11-01")),
                (Field::RecordedAt, json!("2026-11-03T00:30:00+01:00")),
            ],
        );
        assert!(
            merge(Uuid::from_u128(99), [&late])
                .to_entry()
                .unwrap()
                .backfilled
        );
        let next_day = op(
            1,
            1,
            10,
            vec![
                (Field::Day, json!("2026-11-01")),
                (Field::RecordedAt, json!("2026-11-02T23:30:00+01:00")),
            ],
        );
        assert!(
            !merge(Uuid::from_u128(99), [&next_day])
                .to_entry()
                .unwrap()
                .backfilled
        );
    }

    #[test]
    fn validation_checks_stamp_owner_and_canonical_values() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
        assert!(create(1, 10).validate(Some(today)).is_ok());
        let mut foreign = create(1, 10);
        foreign.device_id = dev(2);
        assert_eq!(foreign.validate(Some(today)).unwrap_err().field, "hlc");
        let bad = op(1, 1, 10, vec![(Field::FirstStepPain, json!(12))]);
        assert_eq!(
            bad.validate(Some(today)).unwrap_err().field,
            "patch.first_step_pain"
        );
        let unsorted = op(
            1,
            1,
            10,
            vec![(Field::Locations, json!(["arch", "heel_bottom"]))],
        );
        assert!(unsorted
            .validate(Some(today))
            .unwrap_err()
            .reason
            .contains("canonical"));
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        let field = prop::sample::select(vec![
            Field::Day,
            Field::RecordedAt,
            Field::FirstStepPain,
            Field::SittingPain,
            Field::Note,
            Field::Deleted,
        ]);
        (
            1u128..4,
            1u64..50,
            0u64..20,
            0u32..3,
            prop::collection::vec((field, 0u8..11), 1..4),
        )
            .prop_map(|(device, seq, wall, counter, sets)| Op {
                entry_id: Uuid::from_u128(99),
                device_id: dev(device),
                device_seq: seq,
                hlc: Hlc {
                    wall_ms: wall,
                    counter,
                    node: dev(device),
                },
                patch: sets
                    .into_iter()
                    .map(|(f, n)| {
                        let v = match f {
                            Field::Day => json!(format!("2026-11-{:02}", n + 1)),
                            Field::RecordedAt => {
                                json!(format!("2026-11-{:02}T08:00:00+00:00", n + 1))
                            }
                            Field::Note => json!(format!("note {n}")),
                            Field::Deleted => json!(true),
                            _ => json!(n),
                        };
                        (f, v)
                    })
                    .collect(),
            })
    }

    proptest! {
        #[test]
        fn merge_ignores_order_and_repeats(
            ops in prop::collection::vec(arb_op(), 1..30),
            seed in any::<u64>(),
            repeats in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let id = Uuid::from_u128(99);
            let reference = merge(id, &ops);
            let mut shuffled: Vec<&Op> = ops.iter().collect();
            for r in &repeats {
                shuffled.push(&ops[r.index(ops.len())]);
            }
            // Deterministic Fisher–Yates driven by the seed.
            let mut s = seed;
            for i in (1..shuffled.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            prop_assert_eq!(&merge(id, shuffled.iter().copied()).state, &reference.state);
            // Idempotent: applying everything again changes nothing.
            let mut again = reference.state.clone();
            for op in &ops {
                prop_assert!(again.apply(op).changed.is_empty());
            }
            prop_assert_eq!(&again, &reference.state);
        }

        #[test]
        fn merge_is_associative_across_partial_states(ops in prop::collection::vec(arb_op(), 2..20), split in any::<prop::sample::Index>()) {
            let id = Uuid::from_u128(99);
            let cut = split.index(ops.len());
            let left = merge(id, &ops[..cut]);
            let right = merge(id, &ops[cut..]);
            // Folding one side's winning values into the other equals merging everything at once.
            let mut combined = left.state.clone();
            for (field, fv) in &right.state.fields {
                let synthetic = Op { entry_id: id, device_id: fv.hlc.node, device_seq: 1, hlc: fv.hlc, patch: [(*field, fv.value.clone())].into() };
                combined.apply(&synthetic);
            }
            prop_assert_eq!(combined, merge(id, &ops).state);
        }
    }
}
