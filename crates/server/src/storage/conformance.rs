//! The behaviour every [`Storage`] backend must show, as one suite of generic async tests.
//!
//! Built only for tests and with the `test-support` feature. Each function takes a fresh handle
//! and panics on a failure. Tests only touch patients they
//! create themselves, so a backend may run them on a shared database. Run the whole suite for a
//! backend with [`storage_conformance!`](crate::storage_conformance):
//!
//! ```ignore
//! heeldiary_server::storage_conformance!(async {
//!     let storage = heeldiary_server::storage::SqliteStorage::open_in_memory().await.unwrap();
//!     (storage, ())
//! });
//! ```

use chrono::{DateTime, Duration, TimeZone, Utc};
use heeldiary_core::wire::{PushResult, PushStatus};
use heeldiary_core::{merge, EntryState, Field, Hlc, Op, Patch};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{
    HeldOwnOps, NewCode, NewDevice, NewPatient, PullPage, PushAfter, Role, Storage, StorageError,
};
use crate::secrets::{SecretHash, TokenSecret};

/// Expands to one `#[tokio::test]` per conformance test. `$make` is evaluated once per test and
/// is a future of `(storage, guard)`: the guard (a temporary directory, a scratch database, or
/// `()`) is dropped when the test ends.
///
/// For a backend that needs a server the run may not have, write `storage_conformance!(optional:
/// $make)` with a future of `Option<(storage, guard)>`: on `None` (after saying loudly on stderr
/// that it skips) each test passes without running.
#[macro_export]
macro_rules! storage_conformance {
    ($make:expr) => {
        $crate::storage_conformance!(optional: async { Some($make.await) });
    };
    (optional: $make:expr) => {
        $crate::storage_conformance!(@each $make;
            health_answers,
            patients_are_created_once,
            enrolment_consumes_the_code_once,
            expired_and_unknown_codes_are_refused,
            a_repeated_enrolment_is_answered_again_for_the_first_caller_only,
            a_device_id_enrols_once,
            revoked_devices_stay_revoked,
            push_is_idempotent,
            small_and_large_pushes_are_stored_alike,
            repeats_within_one_batch_are_stored_once,
            a_reused_sequence_is_refused,
            cursors_follow_commit_order,
            concurrent_pushes_leave_no_cursor_gaps,
            pull_pages_after_a_cursor,
            a_pull_leaves_out_the_own_operations_the_device_holds,
            concurrent_edits_merge_into_the_entry_state,
            tombstones_mark_the_entry_deleted,
            patients_are_isolated,
            a_failed_push_writes_nothing,
            a_push_after_an_operation_waits_for_that_very_operation,
            a_fresh_code_confirms_an_enrolment_whose_answer_was_lost,
            a_patient_and_its_first_code_are_created_together,
            a_new_device_identity_is_registered_once,
            a_declared_restore_changes_the_epoch,
            entry_history_is_paged,
            erasing_a_patient_removes_its_rows_and_leaves_a_record,
            providers_are_created_once_per_email,
            a_setup_link_sets_the_password_once,
            sessions_end_when_idle_or_when_the_provider_is_disabled,
            shares_grant_access_until_unshared,
            share_codes_rotate_and_disabled_providers_take_no_share,
            break_glass_grants_access_until_it_ends,
            provider_tokens_work_until_revoked,
            the_access_log_keeps_every_read_of_one_patient,
            patient_entries_are_the_merged_states,
            erasing_a_patient_removes_its_shares_and_grants_but_not_the_access_log,
            export_entries_page_the_stored_states_by_id_and_by_day,
            export_entries_by_day_read_one_snapshot,
            exports_are_in_the_access_log_with_the_analyst_or_the_administrator,
        );
    };
    (@each $make:expr; $($test:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let Some((storage, guard)) = $make.await else {
                    return;
                };
                $crate::storage::conformance::$test(storage).await;
                drop(guard);
            }
        )+
    };
}

/// A fixed instant with whole milliseconds, so stored times compare exactly.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap()
}

async fn new_patient<S: Storage>(s: &S) -> Uuid {
    let patient_id = Uuid::now_v7();
    s.create_patient(NewPatient {
        patient_id,
        label: Some("conformance".into()),
        created_at: t0(),
    })
    .await
    .unwrap();
    patient_id
}

async fn new_code<S: Storage>(s: &S, patient_id: Uuid, expires_at: DateTime<Utc>) -> SecretHash {
    let code = crate::secrets::new_code();
    s.issue_code(NewCode {
        code_hash: code.hash,
        patient_id,
        created_at: t0(),
        expires_at,
    })
    .await
    .unwrap();
    code.hash
}

fn device(device_id: Uuid) -> NewDevice {
    NewDevice {
        device_id,
        token_hash: TokenSecret::generate().hash,
        role: Role::Device,
        label: Some("phone".into()),
    }
}

/// A new patient with one enrolled device: (patient, device). Also for a backend's own tests.
pub async fn enrolled<S: Storage>(s: &S) -> (Uuid, Uuid) {
    let patient = new_patient(s).await;
    let device_id = add_device(s, patient).await;
    (patient, device_id)
}

async fn add_device<S: Storage>(s: &S, patient: Uuid) -> Uuid {
    let code = new_code(s, patient, t0() + Duration::hours(24)).await;
    let device_id = Uuid::now_v7();
    let got = s.enrol(code, device(device_id), t0()).await.unwrap();
    assert_eq!(got, patient);
    device_id
}

pub(crate) fn op(
    device: Uuid,
    seq: u64,
    entry: Uuid,
    wall_ms: u64,
    patch: &[(Field, Value)],
) -> Op {
    Op {
        entry_id: entry,
        device_id: device,
        device_seq: seq,
        hlc: Hlc {
            wall_ms,
            counter: 0,
            node: device,
        },
        patch: patch.iter().cloned().collect::<Patch>(),
    }
}

pub(crate) fn create(device: Uuid, seq: u64, entry: Uuid, wall_ms: u64) -> Op {
    op(
        device,
        seq,
        entry,
        wall_ms,
        &[
            (Field::Day, json!("2026-11-01")),
            (Field::RecordedAt, json!("2026-11-01T08:00:00+01:00")),
            (Field::FirstStepPain, json!(7)),
        ],
    )
}

/// A patient whose entries take every shape a stored state has: written once; edited by a
/// second device (one field changed, one cleared, one added); deleted. Returns the patient and
/// its states as [`states_read`] gives them. For a backend's migration tests.
pub async fn states_of_every_shape<S: Storage>(s: &S) -> (Uuid, Vec<(Uuid, EntryState)>) {
    let (patient, phone) = enrolled(s).await;
    let tablet = add_device(s, patient).await;
    let [once, edited, deleted] = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
    let mut from_phone = vec![
        create(phone, 1, once, 1_000),
        create(phone, 2, edited, 1_001),
        create(phone, 3, deleted, 1_002),
    ];
    from_phone[1]
        .patch
        .insert(Field::Note, json!("a \"quoted\" note é"));
    from_phone[1]
        .patch
        .insert(Field::Locations, json!(["arch", "heel_bottom"]));
    let from_tablet = vec![
        op(
            tablet,
            1,
            edited,
            2_000,
            &[
                (Field::FirstStepPain, json!(3)),
                (Field::Locations, Value::Null),
                (Field::Numbness, json!("mild")),
            ],
        ),
        op(tablet, 2, deleted, 2_001, &[(Field::Deleted, json!(true))]),
    ];
    s.push(patient, from_phone, t0()).await.unwrap();
    s.push(patient, from_tablet, t0() + Duration::minutes(1))
        .await
        .unwrap();
    let states = states_read(s, patient).await;
    assert_eq!(states.len(), 3);
    (patient, states)
}

/// The states of `patient`'s entries as every reader of them gets them (the provider's list,
/// an entry's history, the export's pages), checking that those readers agree.
pub async fn states_read<S: Storage>(s: &S, patient: Uuid) -> Vec<(Uuid, EntryState)> {
    let listed = s.patient_entries(patient).await.unwrap();
    let exported = s.export_entries(patient, None, 100).await.unwrap();
    assert_eq!(exported.len(), listed.len());
    for (id, state) in &listed {
        let history = s.entry(patient, *id, 0, 100).await.unwrap().unwrap();
        assert_eq!(&history.state, state, "{id}");
        let export = exported.iter().find(|e| e.entry_id == *id).unwrap();
        assert_eq!(export.deleted, state.is_deleted(), "{id}");
        if !export.deleted {
            assert_eq!(&EntryState::from_stored(&export.state).unwrap(), state);
            assert_eq!(
                EntryState::entry_from_stored(*id, &export.state),
                state.to_entry(*id)
            );
        }
    }
    listed
}

/// `n` ops of `device`, numbered from `first_seq`, each creating its own entry. Also for a
/// backend's own tests.
pub fn batch(device: Uuid, first_seq: u64, n: u64) -> Vec<Op> {
    (first_seq..first_seq + n)
        .map(|seq| create(device, seq, Uuid::now_v7(), 1_000 + seq))
        .collect()
}

fn statuses(results: &[PushResult]) -> Vec<PushStatus> {
    results.iter().map(|r| r.status).collect()
}

async fn all_ops<S: Storage>(s: &S, patient: Uuid) -> Vec<heeldiary_core::wire::PulledOp> {
    let page = s.pull(patient, 0, u32::MAX / 2).await.unwrap();
    assert!(!page.has_more);
    page.ops
}

/// The backend answers a health check.
pub async fn health_answers<S: Storage>(s: S) {
    s.health().await.unwrap();
}

/// A patient id can be created once.
pub async fn patients_are_created_once<S: Storage>(s: S) {
    let patient_id = new_patient(&s).await;
    let again = s
        .create_patient(NewPatient {
            patient_id,
            label: None,
            created_at: t0(),
        })
        .await;
    assert!(matches!(again, Err(StorageError::Conflict(_))), "{again:?}");
    assert!(s.list_devices(patient_id).await.unwrap().is_empty());
}

/// Enrolment registers the device with its token hash and uses the code up.
pub async fn enrolment_consumes_the_code_once<S: Storage>(s: S) {
    let patient = new_patient(&s).await;
    let code = new_code(&s, patient, t0() + Duration::hours(1)).await;
    let first = device(Uuid::now_v7());
    assert_eq!(s.enrol(code, first.clone(), t0()).await.unwrap(), patient);
    let credentials = s
        .authenticate(patient, first.device_id)
        .await
        .unwrap()
        .unwrap();
    assert!(credentials.token_hash.matches(&first.token_hash));
    assert_eq!(credentials.role, Role::Device);
    assert!(!credentials.revoked);

    let second = device(Uuid::now_v7());
    let again = s.enrol(code, second.clone(), t0()).await;
    assert!(matches!(again, Err(StorageError::InvalidCode)), "{again:?}");
    assert_eq!(
        s.authenticate(patient, second.device_id).await.unwrap(),
        None
    );

    let listed = s.list_devices(patient).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].device_id, first.device_id);
    assert_eq!(listed[0].label.as_deref(), Some("phone"));
    assert_eq!(listed[0].enrolled_at, t0());
    assert_eq!(listed[0].revoked_at, None);
}

/// The device whose enrolment answer was lost can ask again with the same code and the same
/// token secret for a short while, even past the code's expiry, and is answered again; a caller
/// with another secret (who learnt the code and the device id) cannot, nor the device later,
/// nor a revoked one.
pub async fn a_repeated_enrolment_is_answered_again_for_the_first_caller_only<S: Storage>(s: S) {
    let patient = new_patient(&s).await;
    let expires = t0() + Duration::minutes(1);
    let code = new_code(&s, patient, expires).await;
    let phone = device(Uuid::now_v7());
    s.enrol(code, phone.clone(), expires - Duration::seconds(1))
        .await
        .unwrap();
    let after_expiry = expires + Duration::seconds(5);
    assert_eq!(
        s.enrol(code, phone.clone(), after_expiry).await.unwrap(),
        patient
    );
    let credentials = s
        .authenticate(patient, phone.device_id)
        .await
        .unwrap()
        .unwrap();
    assert!(credentials.token_hash.matches(&phone.token_hash));
    assert_eq!(s.list_devices(patient).await.unwrap().len(), 1);

    let impostor = NewDevice {
        token_hash: crate::secrets::new_code().hash,
        ..phone.clone()
    };
    let stolen = s.enrol(code, impostor, after_expiry).await;
    assert!(
        matches!(stolen, Err(StorageError::InvalidCode)),
        "{stolen:?}"
    );
    let still = s
        .authenticate(patient, phone.device_id)
        .await
        .unwrap()
        .unwrap();
    assert!(still.token_hash.matches(&phone.token_hash));
    let other = s.enrol(code, device(Uuid::now_v7()), after_expiry).await;
    assert!(matches!(other, Err(StorageError::InvalidCode)), "{other:?}");
    let late = s
        .enrol(code, phone.clone(), expires + super::ENROL_REPEAT_WINDOW)
        .await;
    assert!(matches!(late, Err(StorageError::InvalidCode)), "{late:?}");
    s.revoke_device(patient, phone.device_id, after_expiry)
        .await
        .unwrap();
    let revoked = s.enrol(code, phone, after_expiry).await;
    assert!(
        matches!(revoked, Err(StorageError::InvalidCode)),
        "{revoked:?}"
    );
}

/// Codes stop working at their expiry; unknown codes never work; codes need a patient.
pub async fn expired_and_unknown_codes_are_refused<S: Storage>(s: S) {
    let patient = new_patient(&s).await;
    let expires = t0() + Duration::hours(1);
    let code = new_code(&s, patient, expires).await;
    let late = s.enrol(code, device(Uuid::now_v7()), expires).await;
    assert!(matches!(late, Err(StorageError::InvalidCode)), "{late:?}");
    let just_in_time = expires - Duration::milliseconds(1);
    assert_eq!(
        s.enrol(code, device(Uuid::now_v7()), just_in_time)
            .await
            .unwrap(),
        patient
    );

    let unknown = crate::secrets::new_code().hash;
    let refused = s.enrol(unknown, device(Uuid::now_v7()), t0()).await;
    assert!(
        matches!(refused, Err(StorageError::InvalidCode)),
        "{refused:?}"
    );

    let orphan = s
        .issue_code(NewCode {
            code_hash: crate::secrets::new_code().hash,
            patient_id: Uuid::now_v7(),
            created_at: t0(),
            expires_at: expires,
        })
        .await;
    assert!(matches!(orphan, Err(StorageError::NotFound)), "{orphan:?}");
}

/// A device id enrolled for one patient cannot enrol again, for any patient, and the refused
/// code stays usable.
pub async fn a_device_id_enrols_once<S: Storage>(s: S) {
    let (first_patient, device_id) = enrolled(&s).await;
    let other_patient = new_patient(&s).await;
    let code = new_code(&s, other_patient, t0() + Duration::hours(1)).await;
    let clash = s.enrol(code, device(device_id), t0()).await;
    assert!(matches!(clash, Err(StorageError::Conflict(_))), "{clash:?}");
    assert_eq!(
        s.authenticate(other_patient, device_id).await.unwrap(),
        None
    );
    assert!(s
        .authenticate(first_patient, device_id)
        .await
        .unwrap()
        .is_some());
    // Same patient, same id: refused too.
    let own = new_code(&s, first_patient, t0() + Duration::hours(1)).await;
    let twice = s.enrol(own, device(device_id), t0()).await;
    assert!(matches!(twice, Err(StorageError::Conflict(_))), "{twice:?}");
    // The refused code was not used up.
    assert_eq!(
        s.enrol(code, device(Uuid::now_v7()), t0()).await.unwrap(),
        other_patient
    );
}

/// Revocation shows in authentication and the device list; repeating it keeps the first time.
pub async fn revoked_devices_stay_revoked<S: Storage>(s: S) {
    let (patient, phone) = enrolled(&s).await;
    let tablet = add_device(&s, patient).await;
    let at = t0() + Duration::minutes(5);
    s.revoke_device(patient, phone, at).await.unwrap();
    s.revoke_device(patient, phone, at + Duration::hours(1))
        .await
        .unwrap();
    assert!(
        s.authenticate(patient, phone)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(
        !s.authenticate(patient, tablet)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    let listed = s.list_devices(patient).await.unwrap();
    let phone_row = listed.iter().find(|d| d.device_id == phone).unwrap();
    assert_eq!(phone_row.revoked_at, Some(at));
    assert_eq!(listed.len(), 2);

    let unknown = s.revoke_device(patient, Uuid::now_v7(), at).await;
    assert!(
        matches!(unknown, Err(StorageError::NotFound)),
        "{unknown:?}"
    );
    let other_patients = s.revoke_device(Uuid::now_v7(), tablet, at).await;
    assert!(
        matches!(other_patients, Err(StorageError::NotFound)),
        "{other_patients:?}"
    );
    let nobody = s.list_devices(Uuid::now_v7()).await;
    assert!(matches!(nobody, Err(StorageError::NotFound)), "{nobody:?}");
}

/// A batch delivered twice is stored once; a body changed under a known `(device, seq)` with the
/// same entry and stamp is a duplicate of the stored one.
pub async fn push_is_idempotent<S: Storage>(s: S) {
    let (patient, dev) = enrolled(&s).await;
    let ops = batch(dev, 1, 3);
    let first = s.push(patient, ops.clone(), t0()).await.unwrap();
    assert_eq!(statuses(&first), vec![PushStatus::Applied; 3]);
    assert_eq!(
        first.iter().map(|r| r.device_seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let again = s.push(patient, ops.clone(), t0()).await.unwrap();
    assert_eq!(statuses(&again), vec![PushStatus::Duplicate; 3]);

    let mut altered = ops[1].clone();
    altered.patch.insert(Field::FirstStepPain, json!(1));
    let next = create(dev, 4, Uuid::now_v7(), 2_000);
    let mixed = s
        .push(patient, vec![altered, next.clone()], t0())
        .await
        .unwrap();
    assert_eq!(
        statuses(&mixed),
        vec![PushStatus::Duplicate, PushStatus::Applied]
    );
    let stored = all_ops(&s, patient).await;
    let bodies: Vec<Op> = stored.into_iter().map(|p| p.op).collect();
    assert_eq!(bodies, [ops, vec![next]].concat());
}

/// A push of a few operations and one of many (backends may store them by different paths) are
/// stored alike: every operation once, with consecutive cursors in the batch's order, and each
/// pushed again is a duplicate.
pub async fn small_and_large_pushes_are_stored_alike<S: Storage>(s: S) {
    let (patient, dev) = enrolled(&s).await;
    let small = batch(dev, 1, 2);
    let large = batch(dev, 3, 300);
    for ops in [&small, &large] {
        let results = s.push(patient, ops.clone(), t0()).await.unwrap();
        assert_eq!(statuses(&results), vec![PushStatus::Applied; ops.len()]);
    }
    for ops in [&small, &large] {
        let again = s.push(patient, ops.clone(), t0()).await.unwrap();
        assert_eq!(statuses(&again), vec![PushStatus::Duplicate; ops.len()]);
    }
    let stored = all_ops(&s, patient).await;
    assert_eq!(
        stored.iter().map(|p| p.cursor).collect::<Vec<_>>(),
        (1..=302).collect::<Vec<u64>>()
    );
    let bodies: Vec<Op> = stored.into_iter().map(|p| p.op).collect();
    assert_eq!(bodies, [small, large].concat());
    for op in &bodies {
        let state = s.entry(patient, op.entry_id, 0, 10).await.unwrap().unwrap();
        assert_eq!(state.ops.len(), 1);
    }
}

/// Another operation (another stamp or entry) under a stored or earlier `(device, seq)` is a
/// reused sequence: the batch is refused whole, so a copied diary cannot overwrite silently.
pub async fn a_reused_sequence_is_refused<S: Storage>(s: S) {
    let (patient, dev) = enrolled(&s).await;
    let original = create(dev, 1, Uuid::now_v7(), 10);
    s.push(patient, vec![original.clone()], t0()).await.unwrap();
    let fresh = create(dev, 2, Uuid::now_v7(), 20);
    let copy = create(dev, 1, Uuid::now_v7(), 30);
    let refused = s.push(patient, vec![fresh.clone(), copy], t0()).await;
    assert!(
        matches!(
            refused,
            Err(StorageError::SequenceReused {
                index: 1,
                device_seq: 1
            })
        ),
        "{refused:?}"
    );
    let restamped = create(dev, 2, fresh.entry_id, 40);
    let within = s.push(patient, vec![fresh, restamped], t0()).await;
    assert!(
        matches!(
            within,
            Err(StorageError::SequenceReused {
                index: 1,
                device_seq: 2
            })
        ),
        "{within:?}"
    );
    let stored: Vec<Op> = all_ops(&s, patient)
        .await
        .into_iter()
        .map(|p| p.op)
        .collect();
    assert_eq!(stored, vec![original]);
}

/// The same operation twice in one batch is applied once.
pub async fn repeats_within_one_batch_are_stored_once<S: Storage>(s: S) {
    let (patient, dev) = enrolled(&s).await;
    let one = create(dev, 1, Uuid::now_v7(), 10);
    let results = s
        .push(patient, vec![one.clone(), one.clone()], t0())
        .await
        .unwrap();
    assert_eq!(
        statuses(&results),
        vec![PushStatus::Applied, PushStatus::Duplicate]
    );
    assert_eq!(all_ops(&s, patient).await.len(), 1);
}

/// Applied operations get cursors 1, 2, 3… in commit order, with the push's receive time.
pub async fn cursors_follow_commit_order<S: Storage>(s: S) {
    let (patient, phone) = enrolled(&s).await;
    let tablet = add_device(&s, patient).await;
    let pushes = [
        (phone, batch(phone, 1, 2), t0()),
        (tablet, batch(tablet, 1, 3), t0() + Duration::seconds(1)),
        (phone, batch(phone, 3, 1), t0() + Duration::seconds(2)),
    ];
    let mut expected = Vec::new();
    for (_, ops, at) in &pushes {
        s.push(patient, ops.clone(), *at).await.unwrap();
        expected.extend(ops.iter().map(|op| (op.clone(), *at)));
    }
    let pulled = all_ops(&s, patient).await;
    assert_eq!(
        pulled.iter().map(|p| p.cursor).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<u64>>()
    );
    let got: Vec<(Op, DateTime<Utc>)> = pulled.into_iter().map(|p| (p.op, p.received_at)).collect();
    assert_eq!(got, expected);
}

/// Concurrent pushes of one patient never leave a gap or a reordering in the cursors.
pub async fn concurrent_pushes_leave_no_cursor_gaps<S: Storage>(s: S) {
    const BATCHES: u64 = 8;
    const PER_BATCH: u64 = 5;
    let (patient, phone) = enrolled(&s).await;
    let tablet = add_device(&s, patient).await;
    let tasks: Vec<_> = [phone, tablet]
        .into_iter()
        .map(|dev| {
            let s = s.clone();
            tokio::spawn(async move {
                for b in 0..BATCHES {
                    let ops = batch(dev, 1 + b * PER_BATCH, PER_BATCH);
                    let results = s.push(patient, ops, t0()).await.unwrap();
                    assert_eq!(
                        statuses(&results),
                        vec![PushStatus::Applied; PER_BATCH as usize]
                    );
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let pulled = all_ops(&s, patient).await;
    let total = 2 * BATCHES * PER_BATCH;
    assert_eq!(
        pulled.iter().map(|p| p.cursor).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<u64>>()
    );
    for dev in [phone, tablet] {
        let seqs: Vec<u64> = pulled
            .iter()
            .filter(|p| p.op.device_id == dev)
            .map(|p| p.op.device_seq)
            .collect();
        assert_eq!(seqs, (1..=BATCHES * PER_BATCH).collect::<Vec<u64>>());
    }
}

/// A pull leaves out the pulling device's own operations up to the sequence number it holds,
/// moves its cursor past them, and still delivers every other device's operation; a pull that
/// names nothing held gets everything.
pub async fn a_pull_leaves_out_the_own_operations_the_device_holds<S: Storage>(s: S) {
    let (patient, phone) = enrolled(&s).await;
    let tablet = add_device(&s, patient).await;
    // Cursors 1-3: phone 1-3; 4-5: tablet 1-2; 6-7: phone 4-5.
    for ops in [batch(phone, 1, 3), batch(tablet, 1, 2), batch(phone, 4, 2)] {
        s.push(patient, ops, t0()).await.unwrap();
    }
    // Another patient's longer feed must not be taken for this one's end.
    let (other, other_device) = enrolled(&s).await;
    s.push(other, batch(other_device, 1, 12), t0())
        .await
        .unwrap();
    let held = |device_id, through_seq| {
        Some(HeldOwnOps {
            device_id,
            through_seq,
        })
    };
    let pull = |after, limit, held| s.pull_leaving_out(patient, after, limit, held);
    let seen = |page: PullPage| {
        let cursors: Vec<u64> = page.ops.iter().map(|p| p.cursor).collect();
        (cursors, page.next_cursor, page.has_more)
    };

    let page = pull(0, 10, held(phone, 4)).await.unwrap();
    assert_eq!(seen(page), (vec![4, 5, 7], 7, false));
    let page = pull(0, 1, held(phone, 4)).await.unwrap();
    assert_eq!(seen(page), (vec![4], 4, true));
    let page = pull(4, 1, held(phone, 4)).await.unwrap();
    assert_eq!(seen(page), (vec![5], 5, true));
    let page = pull(5, 1, held(phone, 4)).await.unwrap();
    assert_eq!(seen(page), (vec![7], 7, false));
    // Held operations at the end of the feed: the cursor still moves to its end.
    let page = pull(0, 2, held(phone, 5)).await.unwrap();
    assert_eq!(seen(page), (vec![4, 5], 7, false));
    let page = pull(0, 1, held(phone, 5)).await.unwrap();
    assert_eq!(seen(page), (vec![4], 4, true));
    let page = pull(5, 10, held(phone, 5)).await.unwrap();
    assert_eq!(seen(page), (vec![], 7, false));
    let page = pull(7, 10, held(phone, 5)).await.unwrap();
    assert_eq!(seen(page), (vec![], 7, false));
    // Only the named device's operations are left out.
    let page = pull(0, 10, held(tablet, 2)).await.unwrap();
    assert_eq!(seen(page), (vec![1, 2, 3, 6, 7], 7, false));
    let page = pull(0, 10, held(phone, 0)).await.unwrap();
    assert_eq!(seen(page), ((1..=7).collect(), 7, false));
    // Without anything held, the whole feed as before.
    let page = pull(0, 10, None).await.unwrap();
    assert_eq!(seen(page), ((1..=7).collect(), 7, false));
    let page = s.pull(patient, 2, 3).await.unwrap();
    assert_eq!(seen(page), (vec![3, 4, 5], 5, true));
}

/// Pull returns pages after a cursor, says whether more follow, and is empty at the end.
pub async fn pull_pages_after_a_cursor<S: Storage>(s: S) {
    let (patient, dev) = enrolled(&s).await;
    let empty = s.pull(patient, 0, 10).await.unwrap();
    assert!(empty.ops.is_empty() && !empty.has_more);
    s.push(patient, batch(dev, 1, 5), t0()).await.unwrap();
    let cursors = |ops: &[heeldiary_core::wire::PulledOp]| -> Vec<u64> {
        ops.iter().map(|p| p.cursor).collect()
    };
    let page = s.pull(patient, 0, 2).await.unwrap();
    assert_eq!((cursors(&page.ops), page.has_more), (vec![1, 2], true));
    let page = s.pull(patient, 2, 2).await.unwrap();
    assert_eq!((cursors(&page.ops), page.has_more), (vec![3, 4], true));
    let page = s.pull(patient, 4, 2).await.unwrap();
    assert_eq!((cursors(&page.ops), page.has_more), (vec![5], false));
    let page = s.pull(patient, 5, 2).await.unwrap();
    assert_eq!((cursors(&page.ops), page.has_more), (vec![], false));
    let page = s.pull(patient, 3, 100).await.unwrap();
    assert_eq!((cursors(&page.ops), page.has_more), (vec![4, 5], false));
    let page = s.pull(patient, 0, 5).await.unwrap();
    assert_eq!(
        (cursors(&page.ops), page.has_more),
        (vec![1, 2, 3, 4, 5], false)
    );
}

/// Edits of one entry from two devices, delivered out of order, merge field by field: the
/// stored state equals core's merge of all operations, and every operation stays in history.
pub async fn concurrent_edits_merge_into_the_entry_state<S: Storage>(s: S) {
    let (patient, phone) = enrolled(&s).await;
    let tablet = add_device(&s, patient).await;
    let entry = Uuid::now_v7();
    let created = create(phone, 1, entry, 10);
    let phone_edit = op(phone, 2, entry, 30, &[(Field::FirstStepPain, json!(2))]);
    let tablet_old = op(tablet, 1, entry, 20, &[(Field::FirstStepPain, json!(9))]);
    let tablet_other = op(tablet, 2, entry, 25, &[(Field::SittingPain, json!(5))]);
    // The tablet's writes arrive first, the creation last.
    s.push(
        patient,
        vec![tablet_old.clone(), tablet_other.clone()],
        t0(),
    )
    .await
    .unwrap();
    s.push(patient, vec![phone_edit.clone()], t0())
        .await
        .unwrap();
    let before_creation = s.entry(patient, entry, 0, 1_000).await.unwrap().unwrap();
    assert!(before_creation
        .state
        .to_entry(entry)
        .is_err_and(|e| e.is_incomplete()));
    s.push(patient, vec![created.clone()], t0()).await.unwrap();

    let stored = s.entry(patient, entry, 0, 1_000).await.unwrap().unwrap();
    let all = [&tablet_old, &tablet_other, &phone_edit, &created];
    assert_eq!(stored.state, merge(entry, all).state);
    let shown = stored.state.to_entry(entry).unwrap();
    assert_eq!(shown.first_step_pain, Some(2));
    assert_eq!(shown.sitting_pain, Some(5));
    assert_eq!(
        stored.ops.iter().map(|p| &p.op).collect::<Vec<_>>(),
        all.to_vec()
    );
    assert_eq!(
        s.entry(patient, Uuid::now_v7(), 0, 1_000).await.unwrap(),
        None
    );
}

/// A tombstone with the highest stamp deletes the entry; its history stays.
pub async fn tombstones_mark_the_entry_deleted<S: Storage>(s: S) {
    let (patient, dev) = enrolled(&s).await;
    let entry = Uuid::now_v7();
    let tombstone = op(dev, 2, entry, 50, &[(Field::Deleted, json!(true))]);
    s.push(patient, vec![create(dev, 1, entry, 10), tombstone], t0())
        .await
        .unwrap();
    let stored = s.entry(patient, entry, 0, 1_000).await.unwrap().unwrap();
    assert!(stored.state.is_deleted());
    assert!(stored.state.to_entry(entry).unwrap().deleted);
    assert_eq!(stored.ops.len(), 2);
}

/// One patient's devices, operations and entries are invisible under another patient.
pub async fn patients_are_isolated<S: Storage>(s: S) {
    let (alice, alice_dev) = enrolled(&s).await;
    let (bob, bob_dev) = enrolled(&s).await;
    let entry = Uuid::now_v7();
    s.push(alice, vec![create(alice_dev, 1, entry, 10)], t0())
        .await
        .unwrap();
    s.push(bob, batch(bob_dev, 1, 2), t0()).await.unwrap();
    assert_eq!(s.authenticate(bob, alice_dev).await.unwrap(), None);
    assert_eq!(s.entry(bob, entry, 0, 1_000).await.unwrap(), None);
    let bobs = all_ops(&s, bob).await;
    assert_eq!(bobs.len(), 2);
    assert!(bobs.iter().all(|p| p.op.device_id == bob_dev));
    // Each patient's feed counts from 1.
    assert_eq!(bobs[0].cursor, 1);
    assert_eq!(all_ops(&s, alice).await[0].cursor, 1);
    let devices = s.list_devices(bob).await.unwrap();
    assert_eq!(
        devices.iter().map(|d| d.device_id).collect::<Vec<_>>(),
        vec![bob_dev]
    );
    let unknown = s.push(Uuid::now_v7(), batch(bob_dev, 3, 1), t0()).await;
    assert!(
        matches!(unknown, Err(StorageError::NotFound)),
        "{unknown:?}"
    );
}

/// A batch that fails part-way (here: a sequence number beyond what storage holds) leaves no
/// trace: no operation, no entry, no cursor used.
pub async fn a_failed_push_writes_nothing<S: Storage>(s: S) {
    let (patient, dev) = enrolled(&s).await;
    let good = create(dev, 1, Uuid::now_v7(), 10);
    let mut bad = create(dev, 2, Uuid::now_v7(), 11);
    bad.device_seq = u64::MAX;
    let failed = s.push(patient, vec![good.clone(), bad], t0()).await;
    assert!(failed.is_err(), "{failed:?}");
    assert!(all_ops(&s, patient).await.is_empty());
    assert_eq!(
        s.entry(patient, good.entry_id, 0, 1_000).await.unwrap(),
        None
    );
    s.push(patient, vec![good], t0()).await.unwrap();
    assert_eq!(all_ops(&s, patient).await[0].cursor, 1);
}

/// A push that names the operation it follows is stored only once the patient holds that
/// operation of the device with that stamp; refused, it writes nothing.
pub async fn a_push_after_an_operation_waits_for_that_very_operation<S: Storage>(s: S) {
    let (patient, dev) = enrolled(&s).await;
    let (first, second) = (batch(dev, 1, 3), batch(dev, 4, 2));
    let after = |op: &Op| PushAfter {
        device_id: dev,
        device_seq: op.device_seq,
        hlc: op.hlc,
    };
    let follows_first = after(&first[2]);
    // The second batch, sent as following `named`, is refused as out of order.
    let refused_after = async |named: PushAfter| {
        let answer = s
            .push_after(patient, Some(named), second.clone(), t0())
            .await;
        assert!(
            matches!(answer, Err(StorageError::OutOfOrder { device_seq: 3 })),
            "{answer:?}"
        );
    };
    // The first batch has not arrived: the second is refused and nothing of it is kept.
    refused_after(follows_first).await;
    assert!(all_ops(&s, patient).await.is_empty());
    s.push(patient, first.clone(), t0()).await.unwrap();
    // The right number with another stamp (the device re-stamped it since) is not the same
    // operation.
    let mut restamped = follows_first;
    restamped.hlc.wall_ms += 1;
    refused_after(restamped).await;
    // Another device's operation under the same number is not it either.
    let other_device = add_device(&s, patient).await;
    let others = batch(other_device, 1, 3);
    s.push(patient, others, t0()).await.unwrap();
    let elsewhere = PushAfter {
        device_id: other_device,
        ..follows_first
    };
    refused_after(elsewhere).await;
    assert_eq!(all_ops(&s, patient).await.len(), 6);
    let stored = s
        .push_after(patient, Some(follows_first), second.clone(), t0())
        .await
        .unwrap();
    assert_eq!(statuses(&stored), vec![PushStatus::Applied; 2]);
    let feed: Vec<(u64, u64)> = all_ops(&s, patient)
        .await
        .iter()
        .filter(|o| o.op.device_id == dev)
        .map(|o| (o.cursor, o.op.device_seq))
        .collect();
    assert_eq!(feed, vec![(1, 1), (2, 2), (3, 3), (7, 4), (8, 5)]);
    // Sent again after an answer that was lost, it is answered as duplicates.
    let again = s
        .push_after(patient, Some(follows_first), second, t0())
        .await
        .unwrap();
    assert_eq!(statuses(&again), vec![PushStatus::Duplicate; 2]);
}

// ---- provider review ----

use super::providers::{Access, AccessRecord, BreakGlass, NewProvider};

/// A new provider with a share code and a setup link valid until a day after [`t0`]: (id,
/// share code hash, setup hash).
async fn new_provider<S: Storage>(s: &S) -> (Uuid, SecretHash, SecretHash) {
    let provider_id = Uuid::now_v7();
    let (code, setup) = (
        crate::secrets::new_code(),
        crate::secrets::Opaque::generate(),
    );
    s.create_provider(NewProvider {
        provider_id,
        name: format!("Dr {provider_id}"),
        email: format!("{provider_id}@clinic.test"),
        share_code_hash: code.hash,
        setup_hash: setup.hash,
        setup_expires_at: t0() + Duration::hours(24),
        created_at: t0(),
    })
    .await
    .unwrap();
    (provider_id, code.hash, setup.hash)
}

/// A provider cannot be created twice with one email; it is found by id and by email.
pub async fn providers_are_created_once_per_email<S: Storage>(s: S) {
    let (id, _, _) = new_provider(&s).await;
    let again = NewProvider {
        provider_id: Uuid::now_v7(),
        name: "Other".into(),
        email: format!("{id}@clinic.test"),
        share_code_hash: crate::secrets::new_code().hash,
        setup_hash: crate::secrets::Opaque::generate().hash,
        setup_expires_at: t0(),
        created_at: t0(),
    };
    let err = s.create_provider(again).await.unwrap_err();
    assert!(matches!(err, StorageError::Conflict(_)), "{err}");
    let info = s.provider(id).await.unwrap().unwrap();
    assert_eq!(info.email, format!("{id}@clinic.test"));
    assert!(!info.has_password);
    assert_eq!(info.created_at, t0());
    assert!(s.list_providers().await.unwrap().contains(&info));
    let login = s.provider_login(info.email.clone()).await.unwrap().unwrap();
    assert_eq!(login.provider_id, id);
    assert_eq!(login.password_hash, None);
    assert!(s.provider(Uuid::now_v7()).await.unwrap().is_none());
    assert!(s
        .provider_login("nobody@clinic.test".into())
        .await
        .unwrap()
        .is_none());
}

/// A setup link sets the password once, and not after it expired.
pub async fn a_setup_link_sets_the_password_once<S: Storage>(s: S) {
    let (id, _, setup) = new_provider(&s).await;
    let late = s
        .set_password(setup, "$argon2id$late".into(), t0() + Duration::hours(25))
        .await
        .unwrap_err();
    assert!(matches!(late, StorageError::InvalidCode), "{late}");
    assert_eq!(
        s.set_password(setup, "$argon2id$first".into(), t0())
            .await
            .unwrap(),
        id
    );
    let again = s
        .set_password(setup, "$argon2id$second".into(), t0())
        .await
        .unwrap_err();
    assert!(matches!(again, StorageError::InvalidCode), "{again}");
    let login = s
        .provider_login(format!("{id}@clinic.test"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(login.password_hash.as_deref(), Some("$argon2id$first"));
    assert!(s.provider(id).await.unwrap().unwrap().has_password);
}

/// A session works while used, ends after inactivity or sign-out, and ends with its provider.
pub async fn sessions_end_when_idle_or_when_the_provider_is_disabled<S: Storage>(s: S) {
    let (id, _, _) = new_provider(&s).await;
    let (idle, used, out) = (
        crate::secrets::Opaque::generate().hash,
        crate::secrets::Opaque::generate().hash,
        crate::secrets::Opaque::generate().hash,
    );
    for session in [idle, used, out] {
        s.create_session(session, id, t0()).await.unwrap();
    }
    let later = t0() + Duration::minutes(20);
    assert_eq!(
        s.touch_session(used, later, t0() - Duration::minutes(1))
            .await
            .unwrap(),
        Some(id)
    );
    // Idle since before the limit: ended, and stays ended.
    assert_eq!(
        s.touch_session(idle, later, t0() + Duration::minutes(1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.touch_session(idle, t0(), t0()).await.unwrap(), None);
    // Used at `later`, so still live a while after.
    assert_eq!(
        s.touch_session(used, later, t0() + Duration::minutes(10))
            .await
            .unwrap(),
        Some(id)
    );
    s.end_session(out).await.unwrap();
    assert_eq!(s.touch_session(out, t0(), t0()).await.unwrap(), None);
    s.disable_provider(id, later).await.unwrap();
    assert_eq!(s.touch_session(used, later, t0()).await.unwrap(), None);
    assert!(matches!(
        s.disable_provider(Uuid::now_v7(), later).await,
        Err(StorageError::NotFound)
    ));
}

/// A share by code gives access at once; an unshare takes it away at once.
pub async fn shares_grant_access_until_unshared<S: Storage>(s: S) {
    let patient = new_patient(&s).await;
    let other_patient = new_patient(&s).await;
    let (provider, code, _) = new_provider(&s).await;
    let (stranger, _, _) = new_provider(&s).await;
    assert_eq!(s.access(provider, patient, t0()).await.unwrap(), None);
    let share = s.share(patient, code, t0()).await.unwrap();
    assert_eq!(share.provider_id, provider);
    assert_eq!(share.since, t0());
    // Sharing again keeps the first time.
    let again = s
        .share(patient, code, t0() + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(again.since, t0());
    assert_eq!(s.shares(patient).await.unwrap(), vec![share.clone()]);
    assert_eq!(
        s.access(provider, patient, t0()).await.unwrap(),
        Some(Access::Share)
    );
    assert_eq!(s.access(provider, other_patient, t0()).await.unwrap(), None);
    assert_eq!(s.access(stranger, patient, t0()).await.unwrap(), None);
    let listed = s.provider_patients(provider, t0()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].patient_id, patient);
    assert_eq!(listed[0].access, Access::Share);
    assert!(s
        .provider_patients(stranger, t0())
        .await
        .unwrap()
        .is_empty());
    s.unshare(patient, provider).await.unwrap();
    assert_eq!(s.access(provider, patient, t0()).await.unwrap(), None);
    assert!(s
        .provider_patients(provider, t0())
        .await
        .unwrap()
        .is_empty());
    assert!(s.shares(patient).await.unwrap().is_empty());
    assert!(matches!(
        s.unshare(patient, provider).await,
        Err(StorageError::NotFound)
    ));
    // An unknown patient and an unknown code get the same answer.
    assert!(matches!(
        s.share(Uuid::now_v7(), code, t0()).await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        s.share(patient, crate::secrets::new_code().hash, t0())
            .await,
        Err(StorageError::NotFound)
    ));
}

/// A rotated share code stops working (existing shares stay); a disabled provider can be
/// shared with no more and reads nothing.
pub async fn share_codes_rotate_and_disabled_providers_take_no_share<S: Storage>(s: S) {
    let (first, second) = (new_patient(&s).await, new_patient(&s).await);
    let (provider, old_code, _) = new_provider(&s).await;
    s.share(first, old_code, t0()).await.unwrap();
    let new_code = crate::secrets::new_code().hash;
    s.set_share_code(provider, new_code).await.unwrap();
    assert!(matches!(
        s.share(second, old_code, t0()).await,
        Err(StorageError::NotFound)
    ));
    assert_eq!(
        s.access(provider, first, t0()).await.unwrap(),
        Some(Access::Share)
    );
    s.share(second, new_code, t0()).await.unwrap();
    assert!(matches!(
        s.set_share_code(Uuid::now_v7(), new_code).await,
        Err(StorageError::NotFound)
    ));
    s.disable_provider(provider, t0()).await.unwrap();
    assert_eq!(s.access(provider, first, t0()).await.unwrap(), None);
    assert!(s
        .provider_patients(provider, t0())
        .await
        .unwrap()
        .is_empty());
    let third = new_patient(&s).await;
    assert!(matches!(
        s.share(third, new_code, t0()).await,
        Err(StorageError::NotFound)
    ));
    assert!(s
        .provider(provider)
        .await
        .unwrap()
        .unwrap()
        .disabled_at
        .is_some());
}

/// Break-glass gives access without a share from its start until its end, and not after.
pub async fn break_glass_grants_access_until_it_ends<S: Storage>(s: S) {
    let patient = new_patient(&s).await;
    let (provider, _, _) = new_provider(&s).await;
    let ends_at = t0() + Duration::minutes(30);
    s.grant_break_glass(BreakGlass {
        provider_id: provider,
        patient_id: patient,
        reason: "emergency department".into(),
        starts_at: t0(),
        ends_at,
    })
    .await
    .unwrap();
    let during = t0() + Duration::minutes(10);
    assert_eq!(
        s.access(provider, patient, during).await.unwrap(),
        Some(Access::BreakGlass)
    );
    let listed = s.provider_patients(provider, during).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].access, Access::BreakGlass);
    assert_eq!(s.access(provider, patient, ends_at).await.unwrap(), None);
    assert!(s
        .provider_patients(provider, ends_at)
        .await
        .unwrap()
        .is_empty());
    let unknown = s
        .grant_break_glass(BreakGlass {
            provider_id: provider,
            patient_id: Uuid::now_v7(),
            reason: "x".into(),
            starts_at: t0(),
            ends_at,
        })
        .await;
    assert!(matches!(unknown, Err(StorageError::NotFound)));
}

/// An API token names its provider until it is revoked or the provider disabled.
pub async fn provider_tokens_work_until_revoked<S: Storage>(s: S) {
    let (provider, _, _) = new_provider(&s).await;
    let (kept, revoked) = (Uuid::now_v7(), Uuid::now_v7());
    let hash = crate::secrets::Opaque::generate().hash;
    s.create_provider_token(kept, provider, hash, t0())
        .await
        .unwrap();
    s.create_provider_token(revoked, provider, hash, t0())
        .await
        .unwrap();
    let (id, stored) = s.provider_token(kept).await.unwrap().unwrap();
    assert_eq!(id, provider);
    assert!(stored.matches(&hash));
    s.revoke_provider_token(revoked, t0()).await.unwrap();
    assert!(s.provider_token(revoked).await.unwrap().is_none());
    assert!(s.provider_token(kept).await.unwrap().is_some());
    assert!(matches!(
        s.create_provider_token(Uuid::now_v7(), Uuid::now_v7(), hash, t0())
            .await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        s.revoke_provider_token(Uuid::now_v7(), t0()).await,
        Err(StorageError::NotFound)
    ));
    s.disable_provider(provider, t0()).await.unwrap();
    assert!(s.provider_token(kept).await.unwrap().is_none());
}

/// Every read is kept, in order, with the provider's name, for its patient only.
pub async fn the_access_log_keeps_every_read_of_one_patient<S: Storage>(s: S) {
    let (patient, other) = (new_patient(&s).await, new_patient(&s).await);
    let (provider, _, _) = new_provider(&s).await;
    let read = |what: &str, minutes: i64, break_glass: bool| AccessRecord {
        patient_id: patient,
        provider_id: provider,
        provider_name: String::new(),
        what: what.into(),
        at: t0() + Duration::minutes(minutes),
        address: Some("127.0.0.1".into()),
        break_glass,
    };
    s.record_access(read("page", 0, false)).await.unwrap();
    s.record_access(read("report", 1, true)).await.unwrap();
    let log = s.access_log(patient).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].what, "page");
    assert_eq!(log[1].what, "report");
    assert!(log[1].break_glass && !log[0].break_glass);
    assert_eq!(log[0].provider_name, format!("Dr {provider}"));
    assert_eq!(log[0].at, t0());
    assert_eq!(log[0].address.as_deref(), Some("127.0.0.1"));
    assert!(s.access_log(other).await.unwrap().is_empty());
}

/// The entries a provider reads are the merged states the pushes made.
pub async fn patient_entries_are_the_merged_states<S: Storage>(s: S) {
    let (patient, device) = enrolled(&s).await;
    let ops = batch(device, 1, 3);
    s.push(patient, ops.clone(), t0()).await.unwrap();
    let mut entries = s.patient_entries(patient).await.unwrap();
    entries.sort_by_key(|(id, _)| *id);
    let mut expected: Vec<_> = ops
        .iter()
        .map(|op| (op.entry_id, merge(op.entry_id, [op]).state))
        .collect();
    expected.sort_by_key(|(id, _)| *id);
    assert_eq!(entries, expected);
    assert!(s
        .patient_entries(new_patient(&s).await)
        .await
        .unwrap()
        .is_empty());
}

/// The export reads a patient's stored entries in id order, page after page: merged states, the
/// deleted flag, and the operations only of entries made by more than one; and the first live
/// day. The exports kept in time order read them in day order.
pub async fn export_entries_page_the_stored_states_by_id_and_by_day<S: Storage>(s: S) {
    let (patient, phone) = enrolled(&s).await;
    let tablet = add_device(&s, patient).await;
    let mut ops = batch(phone, 1, 5);
    let edited = ops[1].entry_id;
    let deleted = ops[3].entry_id;
    ops.push(op(
        phone,
        6,
        deleted,
        5_000,
        &[(Field::Deleted, json!(true))],
    ));
    s.push(patient, ops.clone(), t0()).await.unwrap();
    let tablet_edit = op(
        tablet,
        1,
        edited,
        6_000,
        &[(Field::FirstStepPain, json!(3))],
    );
    s.push(patient, vec![tablet_edit], t0() + Duration::minutes(5))
        .await
        .unwrap();
    let earlier = Uuid::now_v7();
    let mut early = create(phone, 7, earlier, 7_000);
    early.patch.insert(Field::Day, json!("2026-10-20"));
    s.push(patient, vec![early], t0()).await.unwrap();
    // Deleted before its day arrived (the tombstone came first), and one whose day has not
    // arrived yet.
    let dayless_deleted = Uuid::now_v7();
    let dayless = Uuid::now_v7();
    s.push(
        patient,
        vec![
            op(
                phone,
                8,
                dayless_deleted,
                8_000,
                &[(Field::Deleted, json!(true))],
            ),
            op(
                phone,
                9,
                dayless,
                9_000,
                &[(Field::FirstStepPain, json!(4))],
            ),
        ],
        t0(),
    )
    .await
    .unwrap();
    new_patient(&s).await;

    let mut read = Vec::new();
    let mut after = None;
    loop {
        let page = s.export_entries(patient, after, 2).await.unwrap();
        assert!(page.len() <= 2);
        after = page.last().map(|e| e.entry_id);
        let last = page.len() < 2;
        read.extend(page);
        if last {
            break;
        }
    }
    let ids: Vec<Uuid> = read.iter().map(|e| e.entry_id).collect();
    let mut expected: Vec<Uuid> = ops[..5].iter().map(|o| o.entry_id).collect();
    expected.extend([earlier, dayless_deleted, dayless]);
    expected.sort();
    assert_eq!(ids, expected);
    let (dayless_read, read): (Vec<_>, Vec<_>) = read
        .into_iter()
        .partition(|e| [dayless_deleted, dayless].contains(&e.entry_id));
    for e in &dayless_read {
        assert_eq!(e.day, None);
        assert_eq!(e.deleted, e.entry_id == dayless_deleted);
    }
    for e in &read {
        let stored = s.entry(patient, e.entry_id, 0, 100).await.unwrap().unwrap();
        assert_eq!(e.deleted, e.entry_id == deleted, "{}", e.entry_id);
        if e.deleted {
            assert_eq!(e.ops.len(), 2, "a deleted entry keeps its history");
            continue;
        }
        let state = EntryState::from_stored(&e.state).unwrap();
        assert_eq!(state, stored.state);
        if e.entry_id == edited {
            assert_eq!(e.ops, stored.ops);
            assert_eq!(e.updated_at, t0() + Duration::minutes(5));
        } else {
            assert!(
                e.ops.is_empty(),
                "an entry made by one operation has no history"
            );
            assert_eq!(e.updated_at, t0());
        }
    }
    assert_eq!(
        s.first_entry_day(patient).await.unwrap(),
        chrono::NaiveDate::from_ymd_opt(2026, 10, 20)
    );

    // By day, in pages of two: the deleted entry without a day first, then the entry about
    // the earlier day (written last), then the others in id order, deleted one included, the
    // same stored states; the entry whose day has not arrived is left out.
    let by_day = read_by_day(&s, patient, 2).await;
    let ids: Vec<Uuid> = by_day.iter().map(|e| e.entry_id).collect();
    let mut expected: Vec<Uuid> = ops[..5].iter().map(|o| o.entry_id).collect();
    expected.sort();
    expected.insert(0, earlier);
    expected.insert(0, dayless_deleted);
    assert_eq!(ids, expected);
    assert!(by_day[0].deleted);
    assert_eq!(by_day[0].day, None);
    for e in &by_day[1..] {
        let same = read.iter().find(|r| r.entry_id == e.entry_id).unwrap();
        assert_eq!(
            (&e.state, e.deleted, e.day),
            (&same.state, same.deleted, same.day)
        );
        assert!(e.ops.is_empty());
    }
    assert_eq!(by_day[1].day, chrono::NaiveDate::from_ymd_opt(2026, 10, 20));
    assert_eq!(by_day[2].day, chrono::NaiveDate::from_ymd_opt(2026, 11, 1));
    // A page as large as the diary, or larger, reads the same.
    for page in [7, 1_000] {
        let whole = read_by_day(&s, patient, page).await;
        assert_eq!(whole.iter().map(|e| e.entry_id).collect::<Vec<_>>(), ids);
    }

    let empty = new_patient(&s).await;
    assert_eq!(s.first_entry_day(empty).await.unwrap(), None);
    assert!(s.export_entries(empty, None, 10).await.unwrap().is_empty());
    assert!(read_by_day(&s, empty, 10).await.is_empty());
}

/// Every by-day page of a patient, each checked to be no larger than `page`.
async fn read_by_day<S: Storage>(s: &S, patient: Uuid, page: u32) -> Vec<super::ExportEntry> {
    let mut pages = s.export_entries_by_day(patient, page).await.unwrap();
    let mut read = Vec::new();
    while let Some(next) = pages.next_page().await.unwrap() {
        assert!(
            !next.is_empty() && next.len() <= page as usize,
            "{}",
            next.len()
        );
        read.extend(next);
    }
    assert_eq!(
        pages.next_page().await.unwrap(),
        None,
        "the end stays the end"
    );
    read
}

/// The by-day pages of a patient come from one snapshot, however long the caller takes between
/// them: an entry moved to an earlier or a later day meanwhile is listed once, with the day it
/// had; an entry deleted meanwhile is listed as it was; one added meanwhile is not listed.
pub async fn export_entries_by_day_read_one_snapshot<S: Storage>(s: S) {
    const ENTRIES: u64 = 40;
    let (patient, phone) = enrolled(&s).await;
    let first = chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
    let day = |n: u64| first + chrono::Days::new(n);
    let ops: Vec<Op> = (0..ENTRIES)
        .map(|n| {
            let mut create = create(phone, n + 1, Uuid::now_v7(), 1_000 + n);
            create.patch.insert(Field::Day, json!(day(n).to_string()));
            create
        })
        .collect();
    s.push(patient, ops.clone(), t0()).await.unwrap();

    let mut pages = s.export_entries_by_day(patient, 2).await.unwrap();
    let mut read = pages.next_page().await.unwrap().unwrap();
    // The reading side is at most a few pages ahead: the edits reach far past it.
    let moved_back = ops[ENTRIES as usize - 1].entry_id;
    let moved_on = ops[0].entry_id;
    let deleted = ops[30].entry_id;
    let edits = vec![
        op(
            phone,
            100,
            moved_back,
            50_000,
            &[(Field::Day, json!("2026-09-01"))],
        ),
        op(
            phone,
            101,
            moved_on,
            50_001,
            &[(Field::Day, json!("2027-01-01"))],
        ),
        op(
            phone,
            102,
            deleted,
            50_002,
            &[(Field::Deleted, json!(true))],
        ),
        create(phone, 103, Uuid::now_v7(), 50_003),
    ];
    s.push(patient, edits, t0() + Duration::minutes(1))
        .await
        .unwrap();
    while let Some(page) = pages.next_page().await.unwrap() {
        read.extend(page);
    }
    let listed: Vec<(Uuid, Option<chrono::NaiveDate>, bool)> = read
        .iter()
        .map(|e| (e.entry_id, e.day, e.deleted))
        .collect();
    let expected: Vec<_> = ops
        .iter()
        .enumerate()
        .map(|(n, o)| (o.entry_id, Some(day(n as u64)), false))
        .collect();
    assert_eq!(listed, expected);

    // A read started after the edits sees them.
    let after = read_by_day(&s, patient, 2).await;
    assert_eq!(after.len(), ENTRIES as usize + 1);
    assert_eq!(after[0].entry_id, moved_back);
    assert_eq!(after.last().unwrap().entry_id, moved_on);
    assert!(after.iter().any(|e| e.entry_id == deleted && e.deleted));
}

/// An export adds a line to the access log of each exported patient: under the analyst's id
/// (named in the log) or, for the administrator, the nil id.
pub async fn exports_are_in_the_access_log_with_the_analyst_or_the_administrator<S: Storage>(s: S) {
    let (alice, bob, carol) = (
        new_patient(&s).await,
        new_patient(&s).await,
        new_patient(&s).await,
    );
    let analyst_id = Uuid::now_v7();
    s.add_analyst(super::NewAnalyst {
        analyst_id,
        name: format!("Study {analyst_id}"),
        token_hash: TokenSecret::generate().hash,
        created_at: t0(),
    })
    .await
    .unwrap();
    let line = |patient_id: Uuid, provider_id: Uuid, what: &str| AccessRecord {
        patient_id,
        provider_id,
        provider_name: String::new(),
        what: what.into(),
        at: t0(),
        address: None,
        break_glass: false,
    };
    s.record_export_access(vec![
        line(alice, analyst_id, "research export (csv, de-identified)"),
        line(bob, analyst_id, "research export (csv, de-identified)"),
    ])
    .await
    .unwrap();
    s.record_export_access(vec![line(
        alice,
        super::ADMINISTRATOR_ID,
        "research export (csv, identified)",
    )])
    .await
    .unwrap();
    s.record_export_access(Vec::new()).await.unwrap();
    let log = s.access_log(alice).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].provider_id, analyst_id);
    assert_eq!(log[0].provider_name, format!("Study {analyst_id}"));
    assert_eq!(log[0].what, "research export (csv, de-identified)");
    assert_eq!(log[0].at, t0());
    assert_eq!(log[1].provider_id, Uuid::nil());
    assert_eq!(log[1].provider_name, "clinic administrator");
    assert_eq!(s.access_log(bob).await.unwrap().len(), 1);
    assert!(s.access_log(carol).await.unwrap().is_empty());
}

/// A device whose enrolment answer was lost, long after the repeat window, enrols with a fresh
/// code by proving it holds the same secret: the code is used, the device and token stay. A
/// revoked device cannot do that, nor can another patient's code, nor another secret.
pub async fn a_fresh_code_confirms_an_enrolment_whose_answer_was_lost<S: Storage>(s: S) {
    let patient = new_patient(&s).await;
    let phone = device(Uuid::now_v7());
    let first = new_code(&s, patient, t0() + Duration::hours(24)).await;
    s.enrol(first, phone.clone(), t0()).await.unwrap();
    let later = t0() + Duration::hours(2);
    let fresh = new_code(&s, patient, later + Duration::hours(24)).await;
    assert_eq!(s.enrol(fresh, phone.clone(), later).await.unwrap(), patient);
    assert_eq!(s.list_devices(patient).await.unwrap().len(), 1);
    let used = s.enrol(fresh, device(Uuid::now_v7()), later).await;
    assert!(matches!(used, Err(StorageError::InvalidCode)), "{used:?}");

    let elsewhere = new_patient(&s).await;
    let foreign = new_code(&s, elsewhere, later + Duration::hours(24)).await;
    let clash = s.enrol(foreign, phone.clone(), later).await;
    assert!(matches!(clash, Err(StorageError::Conflict(_))), "{clash:?}");
    s.revoke_device(patient, phone.device_id, later)
        .await
        .unwrap();
    let again = new_code(&s, patient, later + Duration::hours(24)).await;
    let revoked = s.enrol(again, phone, later).await;
    assert!(
        matches!(revoked, Err(StorageError::Conflict(_))),
        "{revoked:?}"
    );
    // The refused code still enrols a device with a new id.
    assert_eq!(
        s.enrol(again, device(Uuid::now_v7()), later).await.unwrap(),
        patient
    );
}

/// A patient and its first code are made together; a clash makes neither.
pub async fn a_patient_and_its_first_code_are_created_together<S: Storage>(s: S) {
    let patient_id = Uuid::now_v7();
    let code = crate::secrets::new_code();
    let make = |hash| {
        (
            NewPatient {
                patient_id,
                label: None,
                created_at: t0(),
            },
            NewCode {
                code_hash: hash,
                patient_id,
                created_at: t0(),
                expires_at: t0() + Duration::hours(1),
            },
        )
    };
    let (patient, first) = make(code.hash);
    s.create_patient_with_code(patient, first).await.unwrap();
    assert_eq!(
        s.enrol(code.hash, device(Uuid::now_v7()), t0())
            .await
            .unwrap(),
        patient_id
    );
    let second = crate::secrets::new_code();
    let (patient, again) = make(second.hash);
    let clash = s.create_patient_with_code(patient, again).await;
    assert!(matches!(clash, Err(StorageError::Conflict(_))), "{clash:?}");
    let orphan = s.enrol(second.hash, device(Uuid::now_v7()), t0()).await;
    assert!(
        matches!(orphan, Err(StorageError::InvalidCode)),
        "{orphan:?}"
    );
}

/// A device registers a new identity for its patient; asking again with the same secret is
/// answered again, with another secret or for another patient it is a conflict.
pub async fn a_new_device_identity_is_registered_once<S: Storage>(s: S) {
    let (patient, _) = enrolled(&s).await;
    let copy = device(Uuid::now_v7());
    s.add_device(patient, copy.clone(), t0()).await.unwrap();
    s.add_device(patient, copy.clone(), t0()).await.unwrap();
    assert_eq!(s.list_devices(patient).await.unwrap().len(), 2);
    let credentials = s
        .authenticate(patient, copy.device_id)
        .await
        .unwrap()
        .unwrap();
    assert!(credentials.token_hash.matches(&copy.token_hash));
    let other_secret = s.add_device(patient, device(copy.device_id), t0()).await;
    assert!(
        matches!(other_secret, Err(StorageError::Conflict(_))),
        "{other_secret:?}"
    );
    let (elsewhere, _) = enrolled(&s).await;
    let foreign = s.add_device(elsewhere, copy, t0()).await;
    assert!(
        matches!(foreign, Err(StorageError::Conflict(_))),
        "{foreign:?}"
    );
    let unknown = s
        .add_device(Uuid::now_v7(), device(Uuid::now_v7()), t0())
        .await;
    assert!(
        matches!(unknown, Err(StorageError::NotFound)),
        "{unknown:?}"
    );
}

/// Declaring a restore mints a new epoch, which every later read sees, a device's
/// credentials included.
pub async fn a_declared_restore_changes_the_epoch<S: Storage>(s: S) {
    async fn epoch_of<S: Storage>(s: &S, (patient, device): (Uuid, Uuid)) -> Uuid {
        let credentials = s.authenticate(patient, device).await.unwrap();
        credentials.expect("the device is enrolled").epoch
    }
    let phone = enrolled(&s).await;
    let before = s.epoch().await.unwrap();
    assert_eq!(s.epoch().await.unwrap(), before);
    assert_eq!(epoch_of(&s, phone).await, before);
    let after = s.mark_restored(t0()).await.unwrap();
    assert_ne!(after, before);
    assert_eq!(s.epoch().await.unwrap(), after);
    assert_eq!(epoch_of(&s, phone).await, after);
}

/// An entry's history comes in pages after a cursor.
pub async fn entry_history_is_paged<S: Storage>(s: S) {
    let (patient, phone) = enrolled(&s).await;
    let entry = Uuid::now_v7();
    let mut ops = vec![create(phone, 1, entry, 1_000)];
    for seq in 2..=25 {
        ops.push(op(
            phone,
            seq,
            entry,
            1_000 + seq,
            &[(Field::FirstStepPain, json!(seq % 11))],
        ));
    }
    s.push(patient, ops, t0()).await.unwrap();
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = s.entry(patient, entry, after, 10).await.unwrap().unwrap();
        assert!(page.ops.len() <= 10);
        seen.extend(page.ops.iter().map(|p| p.op.device_seq));
        after = page.ops.last().map_or(after, |p| p.cursor);
        if !page.has_more {
            break;
        }
    }
    assert_eq!(seen, (1..=25).collect::<Vec<_>>());
}

/// Erasing a patient removes its rows everywhere: no feed, no entries, no devices, no codes;
/// the record counts them and says when; other patients are untouched.
pub async fn erasing_a_patient_removes_its_rows_and_leaves_a_record<S: Storage>(s: S) {
    let (patient, phone) = enrolled(&s).await;
    let (other, other_phone) = enrolled(&s).await;
    let spare = new_code(&s, patient, t0() + Duration::hours(24)).await;
    s.push(patient, batch(phone, 1, 3), t0()).await.unwrap();
    s.push(other, batch(other_phone, 1, 2), t0()).await.unwrap();
    let entry = all_ops(&s, patient).await[0].op.entry_id;
    assert_eq!(s.erased_at(patient).await.unwrap(), None);

    let record = s
        .erase_patient(patient, "dpo".into(), t0() + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(record.patient_id, patient);
    assert_eq!(record.erased_by, "dpo");
    let removed = |table: &str| record.rows_removed.get(table).copied();
    assert_eq!(
        (
            removed("ops"),
            removed("entries"),
            removed("devices"),
            removed("enrolment_codes"),
            removed("patients")
        ),
        (Some(3), Some(3), Some(1), Some(2), Some(1)),
        "{record:?}"
    );
    assert_eq!(
        s.erased_at(patient).await.unwrap(),
        Some(t0() + Duration::hours(1))
    );
    assert!(all_ops(&s, patient).await.is_empty());
    assert_eq!(s.entry(patient, entry, 0, 10).await.unwrap(), None);
    assert_eq!(s.authenticate(patient, phone).await.unwrap(), None);
    assert!(matches!(
        s.list_devices(patient).await,
        Err(StorageError::NotFound)
    ));
    let spent = s.enrol(spare, device(Uuid::now_v7()), t0()).await;
    assert!(matches!(spent, Err(StorageError::InvalidCode)), "{spent:?}");
    let twice = s.erase_patient(patient, "dpo".into(), t0()).await;
    assert!(matches!(twice, Err(StorageError::NotFound)), "{twice:?}");
    assert_eq!(all_ops(&s, other).await.len(), 2);
    assert!(s.authenticate(other, other_phone).await.unwrap().is_some());
}

/// Erasing a patient removes its shares and break-glass grants with the rest; the access log (ids
/// only: who saw what, when) and the providers stay.
pub async fn erasing_a_patient_removes_its_shares_and_grants_but_not_the_access_log<S: Storage>(
    s: S,
) {
    let patient = new_patient(&s).await;
    let (provider, code, _) = new_provider(&s).await;
    s.share(patient, code, t0()).await.unwrap();
    s.grant_break_glass(BreakGlass {
        provider_id: provider,
        patient_id: patient,
        reason: "emergency".into(),
        starts_at: t0(),
        ends_at: t0() + Duration::hours(1),
    })
    .await
    .unwrap();
    s.record_access(AccessRecord {
        patient_id: patient,
        provider_id: provider,
        provider_name: String::new(),
        what: "page".into(),
        at: t0(),
        address: None,
        break_glass: false,
    })
    .await
    .unwrap();
    let record = s
        .erase_patient(patient, "dpo".into(), t0() + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(record.rows_removed.get("access_log"), None, "{record:?}");
    for table in ["shares", "break_glass"] {
        assert_eq!(
            record.rows_removed.get(table),
            Some(&1),
            "{table}: {record:?}"
        );
    }
    assert!(s.shares(patient).await.unwrap().is_empty());
    assert_eq!(s.access_log(patient).await.unwrap().len(), 1);
    assert!(s
        .provider_patients(provider, t0())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.access(provider, patient, t0()).await.unwrap(), None);
    assert!(s.provider(provider).await.unwrap().is_some());
}
