//! The store through its public API, as a mobile shell or the CLI uses it.

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDate};
use heeldiary_core::wire::PulledOp;
use heeldiary_core::{EntryInput, Field};
use heeldiary_store::{Store, StoreError, SCHEMA_VERSION};
use proptest::prelude::*;
use serde_json::{json, Value};
use uuid::Uuid;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn input(value: Value) -> EntryInput {
    serde_json::from_value(value).expect("valid input shape")
}

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn fixed_time(text: &'static str) -> Arc<dyn Fn() -> DateTime<FixedOffset> + Send + Sync> {
    Arc::new(move || DateTime::parse_from_rfc3339(text).unwrap())
}

#[test]
fn log_get_list_edit_delete_round_trip() -> TestResult {
    let mut store = Store::open_in_memory()?;
    let a = store.log(input(
        json!({"day": "2026-11-01", "first_step_pain": 7, "heel_tender": true}),
    ))?;
    let b = store.log(input(
        json!({"day": "2026-11-03", "sitting_pain": 4, "radiating": true}),
    ))?;
    assert_eq!(store.get(a.id)?.first_step_pain, Some(7));

    let in_range = store.list(Some(day("2026-11-02")), Some(day("2026-11-30")))?;
    assert_eq!(
        in_range.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![b.id]
    );
    assert_eq!(store.list(None, None)?.len(), 2);

    let edited = store.edit(a.id, input(json!({"first_step_pain": 4, "note": "better"})))?;
    assert_eq!(
        (edited.first_step_pain, edited.note.as_deref()),
        (Some(4), Some("better"))
    );
    let cleared = store.edit(a.id, input(json!({"note": null})))?;
    assert_eq!(cleared.note, None);

    store.delete(b.id)?;
    assert!(matches!(store.get(b.id), Err(StoreError::NotFound(id)) if id == b.id));
    assert!(store.get_any(b.id)?.deleted);
    assert_eq!(store.list(None, None)?.len(), 1);
    assert!(matches!(
        store.edit(b.id, input(json!({"rest_pain": 1}))),
        Err(StoreError::NotFound(_))
    ));
    Ok(())
}

#[test]
fn history_keeps_every_value_and_marks_the_current_one() -> TestResult {
    let mut store = Store::open_in_memory()?;
    let e = store.log(input(json!({"day": "2026-11-01", "first_step_pain": 7})))?;
    store.edit(e.id, input(json!({"first_step_pain": 4})))?;
    store.delete(e.id)?;
    let history = store.history(e.id)?;
    assert_eq!(history.len(), 3);
    let first = history[0]
        .changes
        .iter()
        .find(|c| c.field == Field::FirstStepPain)
        .unwrap();
    assert_eq!((first.value.clone(), first.current), (json!(7), false));
    let second = &history[1].changes[0];
    assert_eq!((second.value.clone(), second.current), (json!(4), true));
    assert_eq!(history[2].changes[0].field, Field::Deleted);
    assert!(history.windows(2).all(|w| w[0].hlc < w[1].hlc));
    assert_eq!(
        history.iter().map(|h| h.device_seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    Ok(())
}

#[test]
fn bad_values_name_the_field_and_write_nothing() -> TestResult {
    let mut store = Store::open_in_memory()?;
    store.set_time_source(fixed_time("2026-11-10T09:00:00+01:00"));
    let err = store
        .log(input(json!({"day": "2026-11-01", "first_step_pain": 11})))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "first_step_pain: must be between 0 and 10, got 11"
    );
    let err = store.log(input(json!({"day": "2026-11-12"}))).unwrap_err();
    assert!(
        err.to_string().contains("more than one day in the future"),
        "{err}"
    );
    assert!(store.log(input(json!({"day": "2026-11-11"}))).is_ok());
    assert!(
        matches!(store.log(input(json!({"first_step_pain": 3}))), Err(StoreError::Invalid(e)) if e.field == "day")
    );
    assert_eq!(store.list(None, None)?.len(), 1);
    assert_eq!(store.all_ops()?.len(), 1);
    let err: Result<EntryInput, _> =
        serde_json::from_value(json!({"day": "2026-11-01", "pain": 3}));
    assert!(err.unwrap_err().to_string().contains("pain: unknown field"));
    Ok(())
}

#[test]
fn a_late_recording_is_marked_backfilled() -> TestResult {
    let mut store = Store::open_in_memory()?;
    store.set_time_source(fixed_time("2026-11-10T09:00:00+01:00"));
    let late = store.log(input(json!({"day": "2026-11-08"})))?;
    let next_day = store.log(input(json!({"day": "2026-11-09"})))?;
    assert!(late.backfilled);
    assert!(!next_day.backfilled);
    assert_eq!(late.recorded_at.to_rfc3339(), "2026-11-10T09:00:00+01:00");
    Ok(())
}

#[test]
fn import_is_all_or_nothing() -> TestResult {
    let mut store = Store::open_in_memory()?;
    let good: Vec<EntryInput> = (1..=28)
        .map(|d| input(json!({"day": format!("2026-10-{d:02}"), "first_step_pain": 6})))
        .collect();
    let mut bad = good.clone();
    bad[9] = input(json!({"day": "2026-10-10", "first_step_pain": 42}));
    match store.import(bad, |_| {}) {
        Err(StoreError::Import { index, source }) => {
            assert_eq!(index, 9);
            assert!(source.to_string().contains("first_step_pain"));
        }
        other => panic!("expected an import error, got {other:?}"),
    }
    assert!(store.list(None, None)?.is_empty());
    assert!(store.all_ops()?.is_empty());
    // The failed import left no gap in the device sequence.
    let mut seen = 0;
    let summary = store.import(good, |n| seen = n)?;
    assert_eq!((summary.entries, seen), (28, 28));
    assert_eq!(
        store
            .unpushed(100)?
            .iter()
            .map(|o| o.device_seq)
            .collect::<Vec<_>>(),
        (1..=28).collect::<Vec<u64>>()
    );
    Ok(())
}

#[test]
fn import_keeps_given_ids_and_refuses_repeats() -> TestResult {
    let mut store = Store::open_in_memory()?;
    let id = Uuid::now_v7();
    let line = json!({"id": id, "day": "2026-10-01", "recorded_at": "2026-10-01T07:00:00+02:00", "backfilled": false});
    store.import([input(line.clone())], |_| {})?;
    assert_eq!(
        store.get(id)?.recorded_at.to_rfc3339(),
        "2026-10-01T07:00:00+02:00"
    );
    let err = store.import([input(line)], |_| {}).unwrap_err();
    assert!(
        matches!(err, StoreError::Import { index: 0, ref source } if matches!(**source, StoreError::AlreadyExists(x) if x == id))
    );
    Ok(())
}

#[test]
fn a_reopened_diary_keeps_its_device_clock_and_sequence() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("nested/diary.sqlite3");
    let (device, first) = {
        let mut store = Store::open(&path)?;
        let e = store.log(input(json!({"day": "2026-11-01"})))?;
        (store.device_id(), e.id)
    };
    let mut store = Store::open(&path)?;
    assert_eq!(store.device_id(), device);
    let second = store.log(input(json!({"day": "2026-11-02"})))?;
    let ops = store.all_ops()?;
    assert_eq!(
        ops.iter().map(|o| o.device_seq).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(ops[0].hlc < ops[1].hlc);
    assert_eq!(
        store
            .list(None, None)?
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        vec![first, second.id]
    );
    let mode: String =
        rusqlite::Connection::open(&path)?.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    assert_eq!(mode, "wal");
    Ok(())
}

#[test]
fn opening_a_diary_and_reading_it_writes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("diary.sqlite3");
    Store::open(&path)?.log(input(json!({"day": "2026-11-01"})))?;
    // `data_version` moves on for this connection whenever another one commits to the file.
    let observer = rusqlite::Connection::open(&path)?;
    let version = || observer.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0));
    let before = version()?;
    let store = Store::open(&path)?;
    assert_eq!(store.list(None, None)?.len(), 1);
    store.sync_state()?;
    drop(store);
    assert_eq!(version()?, before, "opening and reading committed a write");
    let auto_vacuum: i64 = observer.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    assert_eq!(
        auto_vacuum, 2,
        "the file hands freed pages back (incremental)"
    );

    // A write after it is seen, so the check above could fail.
    Store::open(&path)?.log(input(json!({"day": "2026-11-02"})))?;
    assert_ne!(version()?, before);
    Ok(())
}

#[test]
fn a_version_one_diary_upgrades_and_keeps_its_entries() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("old.sqlite3");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/client-v1.sqlite3"
        ),
        &path,
    )?;
    let version: u32 =
        rusqlite::Connection::open(&path)?.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    assert_eq!(version, 1);

    let mut store = Store::open(&path)?;
    let entries = store.list(None, None)?;
    assert_eq!(
        entries
            .iter()
            .map(|e| e.day.to_string())
            .collect::<Vec<_>>(),
        vec!["2026-10-01", "2026-10-02"]
    );
    assert_eq!(entries[0].first_step_pain, Some(5));
    assert_eq!(store.history(entries[0].id)?.len(), 2);
    assert!(matches!(store.enrolment(), Err(StoreError::NotEnrolled)));
    assert_eq!(store.sync_state()?.pending, 5);
    // Writing continues the old device's sequence.
    let next = store.log(input(json!({"day": "2026-10-04"})))?;
    assert_eq!(store.history(next.id)?[0].device_seq, 6);
    let version: u32 =
        rusqlite::Connection::open(&path)?.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    assert_eq!(version, SCHEMA_VERSION);
    // The upgraded file has exactly the schema of a fresh one.
    let fresh_path = dir.path().join("fresh.sqlite3");
    drop(Store::open(&fresh_path)?);
    assert_eq!(schema_of(&path)?, schema_of(&fresh_path)?);
    Ok(())
}

fn schema_of(path: &std::path::Path) -> rusqlite::Result<Vec<(String, String)>> {
    let conn = rusqlite::Connection::open(path)?;
    let mut stmt =
        conn.prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

#[test]
fn a_diary_from_a_newer_version_is_refused_and_left_alone() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("future.sqlite3");
    drop(Store::open(&path)?);
    rusqlite::Connection::open(&path)?.pragma_update(None, "user_version", SCHEMA_VERSION + 1)?;
    let err = Store::open(&path).err().expect("refused");
    assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
    let version: u32 =
        rusqlite::Connection::open(&path)?.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    assert_eq!(version, SCHEMA_VERSION + 1);
    Ok(())
}

/// Delivers every op of `from` to `to` as the server would: in a given order, with cursors.
fn deliver(from: &Store, to: &mut Store, order: &[usize]) -> Result<usize, StoreError> {
    let ops = from.all_ops()?;
    let pulled: Vec<PulledOp> = order
        .iter()
        .filter_map(|&i| ops.get(i % ops.len().max(1)).cloned())
        .enumerate()
        .map(|(n, op)| PulledOp {
            cursor: n as u64 + 1,
            received_at: chrono::Utc::now(),
            op,
        })
        .collect();
    Ok(to.apply_pulled(&pulled, pulled.len() as u64)?.conflicts)
}

#[test]
fn pulled_edits_merge_field_by_field() -> TestResult {
    let mut phone = Store::open_in_memory()?;
    let mut tablet = Store::open_in_memory()?;
    let e = phone.log(input(json!({"day": "2026-11-01", "first_step_pain": 7})))?;
    deliver(&phone, &mut tablet, &[0])?;
    phone.edit(e.id, input(json!({"first_step_pain": 2})))?;
    tablet.edit(e.id, input(json!({"sitting_pain": 5})))?;
    let all = [0, 1, 2];
    deliver(&phone, &mut tablet, &all)?;
    deliver(&tablet, &mut phone, &all)?;
    for store in [&phone, &tablet] {
        let merged = store.get(e.id)?;
        assert_eq!(
            (merged.first_step_pain, merged.sitting_pain),
            (Some(2), Some(5))
        );
    }
    assert_eq!(phone.entry_state(e.id)?, tablet.entry_state(e.id)?);
    assert_eq!(tablet.sync_state()?.pull_cursor, 3);
    Ok(())
}

#[test]
fn a_clock_ahead_of_the_server_is_corrected_and_stops_winning() -> TestResult {
    let mut fast = Store::open_in_memory()?;
    fast.set_time_source(fixed_time("2026-11-10T12:00:00+00:00"));
    let within = fast.log(input(json!({"day": "2026-11-09", "rest_pain": 2})))?;
    fast.set_time_source(fixed_time("2026-11-10T14:00:00+00:00"));
    let e = fast.log(input(json!({"day": "2026-11-09", "first_step_pain": 9})))?;
    // The server's clock says 11:58: the first write is within the tolerance, the second not.
    let server_now =
        DateTime::parse_from_rfc3339("2026-11-10T11:58:00+00:00")?.timestamp_millis() as u64;
    let kept = fast.all_ops()?[0].hlc;
    assert_eq!(fast.correct_clock(server_now)?, 1);
    let ops = fast.all_ops()?;
    assert_eq!(
        ops[0].hlc, kept,
        "an op the server may hold already keeps its stamp"
    );
    assert!(
        ops[1].hlc > kept && ops[1].hlc.wall_ms <= server_now + heeldiary_core::MAX_CLOCK_AHEAD_MS
    );
    assert_eq!(fast.sync_state()?.clock_offset_ms, -(2 * 3600 + 120) * 1000);
    assert_eq!(fast.now().timestamp_millis() as u64, server_now);
    // The state was rebuilt with the new stamps.
    assert_eq!(
        fast.entry_state(e.id)?.unwrap().last_changed(),
        Some(ops[1].hlc)
    );
    assert_eq!(fast.get(within.id)?.rest_pain, Some(2));
    // New writes follow the corrected clock, after every stamp already handed out.
    let next = fast.log(input(json!({"day": "2026-11-09"})))?;
    let stamp = fast.history(next.id)?[0].hlc;
    assert!(stamp > ops[1].hlc && stamp.wall_ms <= server_now + heeldiary_core::MAX_CLOCK_AHEAD_MS);
    Ok(())
}

#[test]
fn two_handles_on_one_diary_never_reuse_a_sequence_or_go_back_in_time() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("diary.sqlite3");
    let mut app = Store::open(&path)?;
    let mut cli = Store::open(&path)?;
    let a = app.log(input(json!({"day": "2026-11-01"})))?;
    let b = cli.log(input(json!({"day": "2026-11-02"})))?;
    cli.import(
        (3..=5).map(|d| input(json!({"day": format!("2026-11-0{d}")}))),
        |_| {},
    )?;
    app.edit(a.id, input(json!({"rest_pain": 3})))?;
    cli.edit(b.id, input(json!({"rest_pain": 4})))?;
    let ops = app.all_ops()?;
    assert_eq!(
        ops.iter().map(|o| o.device_seq).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<u64>>()
    );
    assert!(
        ops.windows(2).all(|w| w[0].hlc < w[1].hlc),
        "stamps follow the order of writes"
    );
    assert_eq!(app.list(None, None)?.len(), 5);
    Ok(())
}

#[test]
fn the_enrolment_secret_is_chosen_once_and_kept() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("diary.sqlite3");
    let first = Store::open(&path)?.enrolment_secret()?;
    assert_eq!(first.len(), 64);
    assert!(first
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(Store::open(&path)?.enrolment_secret()?, first);
    assert_ne!(Store::open_in_memory()?.enrolment_secret()?, first);
    Ok(())
}

#[test]
fn a_clock_correction_by_one_handle_holds_for_the_other() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("diary.sqlite3");
    let (mut app, mut cli) = (Store::open(&path)?, Store::open(&path)?);
    for store in [&mut app, &mut cli] {
        store.set_time_source(fixed_time("2026-11-10T14:00:00+00:00"));
    }
    app.log(input(json!({"day": "2026-11-10"})))?;
    let server_now = DateTime::parse_from_rfc3339("2026-11-10T12:00:00+00:00")?;
    assert_eq!(cli.correct_clock(server_now.timestamp_millis() as u64)?, 1);
    let later = app.log(input(json!({"day": "2026-11-10"})))?;
    let stamp = app.history(later.id)?[0].hlc;
    assert!(
        stamp.wall_ms < server_now.timestamp_millis() as u64 + 60_000,
        "the app handle stamps with the corrected clock"
    );
    assert_eq!(later.recorded_at, server_now);
    cli.log(input(json!({"day": "2026-11-10"})))?;
    assert_eq!(
        app.sync_state()?.pending,
        3,
        "pending counts what the other handle wrote"
    );
    Ok(())
}

#[test]
fn an_own_operation_pulled_back_moves_the_sequence_on() -> TestResult {
    // A diary restored from an old copy learns from the server what it wrote since.
    let mut restored = Store::open_in_memory()?;
    let device = restored.device_id();
    let later = heeldiary_core::Op {
        entry_id: Uuid::now_v7(),
        device_id: device,
        device_seq: 7,
        hlc: heeldiary_core::Hlc {
            wall_ms: 1_000,
            counter: 0,
            node: device,
        },
        patch: [
            (Field::Day, json!("2026-11-01")),
            (Field::RecordedAt, json!("2026-11-01T08:00:00.000+00:00")),
        ]
        .into(),
    };
    restored.apply_pulled(
        &[PulledOp {
            cursor: 1,
            received_at: chrono::Utc::now(),
            op: later,
        }],
        1,
    )?;
    let next = restored.log(input(json!({"day": "2026-11-02"})))?;
    assert_eq!(restored.history(next.id)?[0].device_seq, 8);
    Ok(())
}

#[test]
fn an_entry_written_once_is_stored_once_in_binary() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("diary.sqlite3");
    let mut store = Store::open(&path)?;
    let e = store.log(input(json!({"day": "2026-11-01", "rest_pain": 3})))?;
    let conn = rusqlite::Connection::open(&path)?;
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
    assert_eq!(
        count("SELECT count(*) FROM outbox")?,
        1,
        "queued for the push"
    );
    store.mark_pushed(1)?;
    assert_eq!(
        count("SELECT count(*) FROM outbox")?,
        0,
        "off the queue once acknowledged"
    );
    let (id, patch_bytes): (Vec<u8>, i64) =
        conn.query_row("SELECT entry_id, length(patch) FROM ops", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    assert_eq!(id, e.id.as_bytes().to_vec());
    assert!(patch_bytes < 30, "{patch_bytes} bytes of patch");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    assert_eq!(tables, ["device", "devices", "ops", "outbox", "sync_state"]);
    assert_eq!(store.history(e.id)?.len(), 1);
    assert_eq!(store.rebuild_states()?, 1);
    Ok(())
}

#[test]
fn a_synced_diary_keeps_no_dead_space_from_its_push_queue() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("diary.sqlite3");
    let mut store = Store::open(&path)?;
    let days = (0..3_000).map(|i| {
        let day = chrono::NaiveDate::from_ymd_opt(2010, 1, 1).unwrap() + chrono::Days::new(i);
        input(json!({"day": day.to_string(), "note": "queued until the server has it"}))
    });
    store.import(days, |_| {})?;
    let conn = rusqlite::Connection::open(&path)?;
    let pages = |pragma: &str| conn.query_row(pragma, [], |r| r.get::<_, i64>(0));
    let before = pages("PRAGMA page_count")?;
    store.mark_pushed(1_500)?;
    assert!(pages("PRAGMA freelist_count")? > 0, "half the queue freed");
    store.mark_pushed(3_000)?;
    assert_eq!(pages("PRAGMA freelist_count")?, 0);
    assert!(pages("PRAGMA page_count")? < before);
    assert_eq!(store.list(None, None)?.len(), 3_000);
    Ok(())
}

#[test]
fn an_unreadable_operation_is_reported_not_hidden() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("diary.sqlite3");
    let mut store = Store::open(&path)?;
    store.log(input(json!({"day": "2026-11-01"})))?;
    rusqlite::Connection::open(&path)?.execute(
        "INSERT INTO ops (entry_id, device_no, device_seq, hlc_ms, hlc_counter, patch)
         SELECT randomblob(16), device_no, 99, 1, 0, x'ff07' FROM devices",
        [],
    )?;
    for err in [store.list(None, None).err(), store.rebuild_states().err()] {
        assert!(matches!(err, Some(StoreError::Corrupt(_))), "{err:?}");
    }
    Ok(())
}

#[test]
fn the_clock_offset_follows_the_server_and_goes_once_the_device_clock_is_right() -> TestResult {
    let mut store = Store::open_in_memory()?;
    store.set_time_source(fixed_time("2026-11-10T12:00:00+00:00"));
    let at = |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis() as u64
    };
    store.learn_server_time(at("2026-11-10T12:03:00+00:00"))?;
    assert_eq!(
        store.sync_state()?.clock_offset_ms,
        0,
        "within the tolerance"
    );
    store.learn_server_time(at("2026-11-10T10:00:00+00:00"))?;
    assert_eq!(store.sync_state()?.clock_offset_ms, -2 * 3600 * 1000);
    assert_eq!(store.now().to_rfc3339(), "2026-11-10T10:00:00+00:00");
    // The device clock was set right: the correction goes.
    store.set_time_source(fixed_time("2026-11-10T10:00:01+00:00"));
    store.learn_server_time(at("2026-11-10T10:00:00+00:00"))?;
    assert_eq!(store.sync_state()?.clock_offset_ms, 0);
    Ok(())
}

fn arb_action() -> impl Strategy<Value = (u8, u8, u8)> {
    (0u8..4, 0u8..8, 0u8..11)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever local writes happen, the stored states equal a fresh fold of the operation log.
    #[test]
    fn stored_states_are_the_fold_of_the_log(actions in prop::collection::vec(arb_action(), 1..40)) {
        let mut store = Store::open_in_memory().unwrap();
        let mut ids = Vec::new();
        for (kind, target, value) in actions {
            let target = ids.get(target as usize % ids.len().max(1)).copied();
            match (kind, target) {
                (0, _) | (_, None) => ids.push(store.log(input(json!({"day": format!("2026-10-{:02}", value + 1), "rest_pain": value}))).unwrap().id),
                (1, Some(id)) => { let _ = store.edit(id, input(json!({"first_step_pain": value}))); }
                (2, Some(id)) => { let _ = store.edit(id, input(json!({"day": format!("2026-09-{:02}", value + 1)}))); }
                (_, Some(id)) => { let _ = store.delete(id); }
            }
        }
        let before: Vec<_> = ids.iter().map(|id| store.entry_state(*id).unwrap()).collect();
        let listed = store.list(None, None).unwrap();
        store.rebuild_states().unwrap();
        let after: Vec<_> = ids.iter().map(|id| store.entry_state(*id).unwrap()).collect();
        prop_assert_eq!(before, after);
        prop_assert_eq!(listed, store.list(None, None).unwrap());
    }

    /// Two devices that exchange their logs in any order, with repeats, end equal.
    #[test]
    fn devices_converge_whatever_the_delivery_order(
        writes in prop::collection::vec((any::<bool>(), 0u8..3, 0u8..11), 1..25),
        order_a in prop::collection::vec(0usize..200, 0..80),
        order_b in prop::collection::vec(0usize..200, 0..80),
    ) {
        let mut a = Store::open_in_memory().unwrap();
        let mut b = Store::open_in_memory().unwrap();
        let shared = a.log(input(json!({"day": "2026-11-01"}))).unwrap();
        deliver(&a, &mut b, &[0]).unwrap();
        for (on_a, field, value) in writes {
            let store = if on_a { &mut a } else { &mut b };
            let name = ["first_step_pain", "sitting_pain", "rest_pain"][field as usize];
            store.edit(shared.id, input(json!({ name: value }))).unwrap();
        }
        // Partial, shuffled, repeated deliveries first; then everything.
        deliver(&a, &mut b, &order_b).unwrap();
        deliver(&b, &mut a, &order_a).unwrap();
        let everything: Vec<usize> = (0..200).collect();
        deliver(&a, &mut b, &everything).unwrap();
        deliver(&b, &mut a, &everything).unwrap();
        prop_assert_eq!(a.entry_state(shared.id).unwrap(), b.entry_state(shared.id).unwrap());
        prop_assert_eq!(a.all_ops().unwrap().len(), b.all_ops().unwrap().len());
    }
}

fn pulled(ops: &[heeldiary_core::Op], first_cursor: u64) -> Vec<PulledOp> {
    ops.iter()
        .enumerate()
        .map(|(n, op)| PulledOp {
            cursor: first_cursor + n as u64,
            received_at: chrono::Utc::now(),
            op: op.clone(),
        })
        .collect()
}

#[test]
fn a_copied_diary_never_skips_a_clashing_operation_and_moves_its_own_to_a_new_identity(
) -> TestResult {
    let dir = tempfile::tempdir()?;
    let (a_path, b_path) = (dir.path().join("a.sqlite3"), dir.path().join("b.sqlite3"));
    let mut original = Store::open(&a_path)?;
    original.log(input(json!({"day": "2026-11-01", "note": "e1"})))?;
    original.mark_pushed(1)?;
    drop(original);
    std::fs::copy(&a_path, &b_path)?;
    let (mut original, mut copy) = (Store::open(&a_path)?, Store::open(&b_path)?);
    let shared_id = original.device_id();
    original.log(input(json!({"day": "2026-11-02", "note": "e2"})))?;
    let e3 = copy.log(input(json!({"day": "2026-11-03", "note": "e3"})))?;
    let from_original = pulled(&original.all_ops()?[1..], 2);
    // Same device id, same sequence 2, another operation: refused, never counted as had.
    let clash = copy.apply_pulled(&from_original, 2).unwrap_err();
    assert!(
        matches!(clash, StoreError::SequenceTaken { device_id, device_seq: 2 } if device_id == shared_id),
        "{clash}"
    );
    assert_eq!(
        copy.sync_state()?.pull_cursor,
        0,
        "nothing of the page applied"
    );

    let (new_id, secret) = copy.next_identity()?;
    assert_eq!(
        copy.next_identity()?,
        (new_id, secret.clone()),
        "kept for a retry"
    );
    assert_eq!(copy.adopt_identity(new_id, Some("new-token"))?, 1);
    assert_eq!(copy.device_id(), new_id);
    assert_eq!(copy.enrolment_secret()?, secret);
    let moved = copy.history(e3.id)?;
    assert_eq!((moved[0].device_id, moved[0].device_seq), (new_id, 1));
    assert_eq!(copy.unpushed(10)?.len(), 1);
    copy.apply_pulled(&from_original, 2)?;
    let mut notes: Vec<_> = copy
        .list(None, None)?
        .into_iter()
        .filter_map(|e| e.note)
        .collect();
    notes.sort();
    assert_eq!(notes, ["e1", "e2", "e3"]);
    // A reopened copy keeps its new identity and goes on with its sequence.
    drop(copy);
    let mut copy = Store::open(&b_path)?;
    assert_eq!(copy.device_id(), new_id);
    let e4 = copy.log(input(json!({"day": "2026-11-04", "note": "e4"})))?;
    assert_eq!(copy.history(e4.id)?[0].device_seq, 2);
    Ok(())
}

#[test]
fn a_new_server_epoch_forgets_acknowledgements_and_the_cursor() -> TestResult {
    let mut store = Store::open_in_memory()?;
    store.log(input(json!({"day": "2026-11-01"})))?;
    let (first, restored) = (Uuid::new_v4(), Uuid::new_v4());
    assert!(!store.observe_epoch(first)?, "the first epoch is just kept");
    store.mark_pushed(1)?;
    store.apply_pulled(&[], 5)?;
    assert!(!store.observe_epoch(first)?);
    assert_eq!(store.sync_state()?.pending, 0);
    assert!(store.observe_epoch(restored)?);
    let state = store.sync_state()?;
    assert_eq!((state.pending, state.pull_cursor), (1, 0));
    assert_eq!(store.server_epoch()?, Some(restored));
    Ok(())
}

#[test]
fn only_the_page_that_ends_a_sync_records_it_finished_with_its_cursor() -> TestResult {
    let mut sender = Store::open_in_memory()?;
    sender.log(input(json!({"day": "2026-11-01", "note": "a"})))?;
    sender.log(input(json!({"day": "2026-11-02", "note": "b"})))?;
    let ops = pulled(&sender.all_ops()?, 1);
    let mut store = Store::open_in_memory()?;
    let before = chrono::Utc::now();
    store.apply_pulled(&ops[..1], 1)?;
    let state = store.sync_state()?;
    assert_eq!((state.pull_cursor, state.last_sync_at), (1, None));

    let applied = store.apply_last_pulled(&ops[1..], 2)?;
    assert_eq!(applied.applied, 1);
    let state = store.sync_state()?;
    assert_eq!(state.pull_cursor, 2);
    let finished = state.last_sync_at.expect("the run is recorded as finished");
    assert!(finished >= before && finished <= chrono::Utc::now());
    assert_eq!(store.list(None, None)?.len(), 2);

    // A last page that fails writes nothing: neither its operations, nor the cursor, nor the
    // time. Here it holds another entry's operation under this diary's own id and sequence 1.
    let mut copy = Store::open_in_memory()?;
    copy.log(input(json!({"day": "2026-11-03"})))?;
    let mut clash = pulled(&sender.all_ops()?[..1], 1);
    clash[0].op.device_id = copy.device_id();
    let refused = copy.apply_last_pulled(&clash, 9).unwrap_err();
    assert!(
        matches!(refused, StoreError::SequenceTaken { .. }),
        "{refused}"
    );
    let state = copy.sync_state()?;
    assert_eq!((state.pull_cursor, state.last_sync_at), (0, None));
    Ok(())
}

#[test]
fn a_re_stamped_operation_takes_a_new_sequence_and_loses_to_a_later_edit_elsewhere() -> TestResult {
    let mut fast = Store::open_in_memory()?;
    let mut right = Store::open_in_memory()?;
    // Written at 10:00 real time by a device whose clock says 12:00.
    fast.set_time_source(fixed_time("2026-11-10T12:00:00+00:00"));
    let e = fast.log(input(json!({"day": "2026-11-10", "first_step_pain": 9})))?;
    let refused = fast.all_ops()?[0].clone();
    // The other device sees it (the server held it, its clock having run fast too) and edits
    // at 10:30 real time, correctly stamped.
    right.apply_pulled(&pulled(std::slice::from_ref(&refused), 1), 1)?;
    right.set_time_source(fixed_time("2026-11-10T10:30:00+00:00"));
    let mut later = right.all_ops()?;
    right.edit(e.id, input(json!({"first_step_pain": 3})))?;
    later = right.all_ops()?[later.len()..].to_vec();
    fast.apply_pulled(&pulled(&later, 2), 2)?;
    // Now the fast device learns at 10:40 that its clock runs two hours ahead.
    fast.set_time_source(fixed_time("2026-11-10T12:40:00+00:00"));
    let server_now =
        DateTime::parse_from_rfc3339("2026-11-10T10:40:00+00:00")?.timestamp_millis() as u64;
    assert_eq!(fast.correct_clock(server_now)?, 1);
    let own: Vec<_> = fast
        .all_ops()?
        .into_iter()
        .filter(|op| op.device_id == fast.device_id())
        .collect();
    assert_eq!(own.len(), 1);
    assert_ne!(
        own[0].device_seq, refused.device_seq,
        "a sequence number never names two operations"
    );
    assert_ne!(own[0].hlc, refused.hlc);
    assert_eq!(
        fast.get(e.id)?.first_step_pain,
        Some(3),
        "the later real-time edit still wins after the re-stamp"
    );
    Ok(())
}

#[test]
fn own_operations_count_as_held_up_to_the_acknowledged_number_below_any_given_up() -> TestResult {
    let mut fast = Store::open_in_memory()?;
    assert_eq!(fast.held_own_through()?, 0, "nothing acknowledged yet");
    fast.set_time_source(fixed_time("2026-11-10T12:00:00+00:00"));
    fast.log(input(json!({"day": "2026-11-09"})))?;
    fast.mark_pushed(1)?;
    assert_eq!(fast.held_own_through()?, 1);
    // Two writes by a clock two hours ahead; the server may hold them (the answer was lost)
    // when it refuses them on the next push, and they are re-stamped under new numbers.
    fast.set_time_source(fixed_time("2026-11-10T14:00:00+00:00"));
    fast.log(input(json!({"day": "2026-11-10"})))?;
    fast.log(input(json!({"day": "2026-11-10", "rest_pain": 4})))?;
    let server_now =
        DateTime::parse_from_rfc3339("2026-11-10T12:00:00+00:00")?.timestamp_millis() as u64;
    assert_eq!(fast.correct_clock(server_now)?, 2);
    let own: Vec<u64> = fast.all_ops()?.iter().map(|op| op.device_seq).collect();
    assert_eq!(own, [1, 4, 5]);
    fast.mark_pushed(5)?;
    assert_eq!(
        (fast.sync_state()?.acked_seq, fast.held_own_through()?),
        (5, 1),
        "numbers 2 and 3 may name other operations on the server"
    );
    // A new identity gave up nothing, and starts its acknowledgements over.
    let (new_id, _) = fast.next_identity()?;
    fast.adopt_identity(new_id, None)?;
    assert_eq!(fast.held_own_through()?, 0);
    fast.log(input(json!({"day": "2026-11-10"})))?;
    fast.mark_pushed(1)?;
    assert_eq!(fast.held_own_through()?, 1);
    // A restored server: nothing counts as held until acknowledged again.
    fast.observe_epoch(Uuid::now_v7())?;
    fast.observe_epoch(Uuid::now_v7())?;
    assert_eq!(fast.held_own_through()?, 0);
    Ok(())
}

#[test]
fn a_diary_that_gave_up_numbers_before_they_were_recorded_holds_only_below_them() -> TestResult {
    let dir = tempfile::tempdir()?;
    for (missing, held) in [(None, 3), (Some(2), 1)] {
        let path = dir.path().join(format!("diary-{missing:?}.sqlite3"));
        let mut store = Store::open(&path)?;
        for d in 1..=3 {
            store.log(input(json!({"day": format!("2026-11-0{d}")})))?;
        }
        store.mark_pushed(3)?;
        drop(store);
        // The file as the version before wrote it, with a number given up by a re-stamp.
        let conn = rusqlite::Connection::open(&path)?;
        if let Some(seq) = missing {
            conn.execute("DELETE FROM ops WHERE device_seq = ?1", [seq])?;
        }
        conn.execute_batch(&format!(
            "ALTER TABLE sync_state DROP COLUMN first_given_up_seq;
             PRAGMA user_version = {};",
            SCHEMA_VERSION - 1
        ))?;
        drop(conn);
        let store = Store::open(&path)?;
        assert_eq!(store.held_own_through()?, held, "missing {missing:?}");
    }
    Ok(())
}
