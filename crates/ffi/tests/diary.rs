//! The `Diary` API through its Rust face, which is what the generated Kotlin, Swift and Python
//! call: values, refusals and their error kinds, history, import and export, trends, status and
//! encryption. The sync against a real server is in `tests/ffi/test_diary.py` (Python binding)
//! and `tests/e2e/tests/encrypted_sync.rs`.

use heeldiary_ffi::{
    encrypt_diary, encryption_available, rekey_diary, Diary, EntryField, EntryInput, EntryPatch,
    FfiError, ListFilter, Location, Severity, Treatment,
};

fn day(d: u32) -> EntryInput {
    EntryInput {
        day: Some(format!("2026-11-{d:02}")),
        ..EntryInput::default()
    }
}

fn open(dir: &tempfile::TempDir, name: &str) -> std::sync::Arc<Diary> {
    Diary::open(dir.path().join(name).display().to_string(), None).expect("diary opens")
}

fn all(diary: &Diary) -> Vec<heeldiary_ffi::Entry> {
    diary.list(ListFilter::default()).unwrap()
}

#[test]
fn log_get_edit_delete_with_the_entry_json_names() {
    let dir = tempfile::tempdir().unwrap();
    let diary = open(&dir, "a.db");
    let id = diary
        .log(EntryInput {
            first_step_pain: Some(7),
            locations: Some(vec![Location::HeelBottom]),
            numbness: Some(Severity::Absent),
            treatments: Some(vec![Treatment::NightSplint, Treatment::Stretching]),
            note: Some("first steps hurt".into()),
            ..day(1)
        })
        .unwrap();
    let entry = diary.get(id.clone()).unwrap();
    assert_eq!(entry.day, "2026-11-01");
    assert_eq!(entry.first_step_pain, Some(7));
    assert_eq!(entry.numbness, Some(Severity::Absent));
    // The vocabulary's order, as the core keeps it.
    assert_eq!(
        entry.treatments,
        vec![Treatment::Stretching, Treatment::NightSplint]
    );

    let edited = diary
        .edit(
            id.clone(),
            EntryPatch {
                values: EntryInput {
                    first_step_pain: Some(4),
                    ..EntryInput::default()
                },
                clear: vec![EntryField::Note],
            },
        )
        .unwrap();
    assert_eq!((edited.first_step_pain, edited.note), (Some(4), None));
    let history = diary.history(id.clone()).unwrap();
    assert_eq!(history.len(), 2);
    let first = &history[0].changes;
    assert!(first
        .iter()
        .any(|c| c.field == "first_step_pain" && c.value_json == "7" && !c.current));
    assert!(history[1]
        .changes
        .iter()
        .any(|c| c.field == "note" && c.value_json == "null" && c.current));

    diary.delete(id.clone()).unwrap();
    assert!(
        matches!(diary.get(id.clone()), Err(FfiError::NotFound { id: missing }) if missing == id)
    );
    assert!(all(&diary).is_empty());
    let with_deleted = diary
        .list(ListFilter {
            include_deleted: true,
            ..ListFilter::default()
        })
        .unwrap();
    assert!(with_deleted[0].deleted);
}

#[test]
fn refusals_name_the_field_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let diary = open(&dir, "a.db");
    let refused = diary.log(EntryInput {
        first_step_pain: Some(11),
        ..day(1)
    });
    match refused {
        Err(FfiError::Invalid { field, reason }) => {
            assert_eq!(field, "first_step_pain");
            assert!(reason.contains("between 0 and 10"), "{reason}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    let no_day = diary.log(EntryInput::default());
    assert!(matches!(no_day, Err(FfiError::Invalid { field, .. }) if field == "day"));
    let bad_day = diary.log(EntryInput {
        day: Some("2026-13-01".into()),
        ..EntryInput::default()
    });
    assert!(matches!(bad_day, Err(FfiError::Invalid { field, .. }) if field == "day"));
    assert!(all(&diary).is_empty());

    let id = diary.log(day(1)).unwrap();
    let both = diary.edit(
        id.clone(),
        EntryPatch {
            values: EntryInput {
                note: Some("x".into()),
                ..EntryInput::default()
            },
            clear: vec![EntryField::Note],
        },
    );
    assert!(matches!(both, Err(FfiError::Invalid { field, .. }) if field == "note"));
    let clear_day = diary.edit(
        id.clone(),
        EntryPatch {
            values: EntryInput::default(),
            clear: vec![EntryField::Day],
        },
    );
    assert!(matches!(clear_day, Err(FfiError::Invalid { field, .. }) if field == "day"));
    assert!(
        matches!(diary.get("not-an-id".into()), Err(FfiError::Invalid { field, .. }) if field == "id")
    );
    let bad_filter = diary.list(ListFilter {
        from: Some("yesterday".into()),
        ..ListFilter::default()
    });
    assert!(matches!(bad_filter, Err(FfiError::Invalid { field, .. }) if field == "from"));
}

#[test]
fn export_imports_back_and_a_bad_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let diary = open(&dir, "a.db");
    for d in 1..=3 {
        diary
            .log(EntryInput {
                rest_pain: Some(d as u8),
                ..day(d)
            })
            .unwrap();
    }
    let text = diary.export_ndjson().unwrap();
    assert_eq!(text.lines().count(), 3);
    let other = open(&dir, "b.db");
    assert_eq!(other.import_ndjson(text.clone()).unwrap(), 3);
    assert_eq!(other.export_ndjson().unwrap(), text, "ids and values kept");

    let third = open(&dir, "c.db");
    let refused = third.import_ndjson(
        "{\"day\":\"2026-11-01\"}\n\n{\"day\":\"2026-11-02\",\"rest_pain\":42}\n".into(),
    );
    match refused {
        Err(FfiError::InvalidLine {
            line,
            field,
            reason,
        }) => {
            assert_eq!((line, field.as_str()), (3, "rest_pain"));
            assert!(reason.contains("42"), "{reason}");
        }
        other => panic!("expected InvalidLine, got {other:?}"),
    }
    let broken = third.import_ndjson("{\"day\":".into());
    assert!(matches!(broken, Err(FfiError::InvalidLine { line: 1, field, .. }) if field == "json"));
    assert!(all(&third).is_empty(), "all or nothing");
}

#[test]
fn trends_carry_the_sentences_and_the_full_report() {
    let dir = tempfile::tempdir().unwrap();
    let diary = open(&dir, "a.db");
    for d in 1..=20 {
        diary
            .log(EntryInput {
                first_step_pain: Some(8),
                heel_tender: Some(true),
                morning_stiffness: Some(true),
                numbness: Some(Severity::Absent),
                radiating: Some(false),
                ..day(d)
            })
            .unwrap();
    }
    let report = diary.trends(28, Some("2026-11-20".into())).unwrap();
    assert_eq!(
        (report.from.as_str(), report.to.as_str(), report.days),
        ("2026-10-24", "2026-11-20", 28)
    );
    assert_eq!(report.adherence.days_logged, 20);
    assert_eq!(report.pattern.kind, "plantar_fasciitis_like");
    assert!(
        report.pattern.summary.contains("consistent with"),
        "{}",
        report.pattern.summary
    );
    assert!(report
        .pattern
        .evidence
        .iter()
        .any(|e| e.sign == "heel_tender" && e.days_present == 20));
    assert!(report.trends.iter().any(|t| t.measure == "first_step_pain"));
    let json: serde_json::Value = serde_json::from_str(&report.report_json).unwrap();
    assert_eq!(json["pattern"]["kind"], "plantar_fasciitis_like");
    let bad = diary.trends(28, Some("20-11-2026".into()));
    assert!(matches!(bad, Err(FfiError::Invalid { field, .. }) if field == "as_of"));
}

#[test]
fn sync_before_enrolment_and_enrolment_with_no_server_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let diary = open(&dir, "a.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert!(matches!(
        rt.block_on(diary.sync()),
        Err(FfiError::NotEnrolled)
    ));
    let status = diary.status().unwrap();
    assert!(status.enrolment.is_none() && !status.encrypted);
    assert_eq!(status.pending, 0);
    diary.log(day(1)).unwrap();
    assert_eq!(diary.status().unwrap().pending, 1);

    // Nothing listens on port 9 of this machine: the enrolment retries, then reports offline.
    let offline = rt.block_on(diary.enroll("http://127.0.0.1:9".into(), "CODE".into(), None));
    assert!(
        matches!(offline, Err(FfiError::Offline { attempts }) if attempts > 1),
        "{offline:?}"
    );
    let bad_url = rt.block_on(diary.enroll("not a url".into(), "CODE".into(), None));
    assert!(
        matches!(bad_url, Err(FfiError::Server { .. })),
        "{bad_url:?}"
    );
}

#[test]
fn encrypted_diaries_open_with_their_key_only() {
    if !encryption_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.db").display().to_string();
    let key = b"0123456789abcdef0123456789abcdef".to_vec();
    let diary = Diary::open(path.clone(), Some(key.clone())).unwrap();
    let id = diary
        .log(EntryInput {
            note: Some("secret-heel-note".into()),
            ..day(1)
        })
        .unwrap();
    assert!(diary.status().unwrap().encrypted);
    drop(diary);

    assert!(matches!(
        Diary::open(path.clone(), None),
        Err(FfiError::KeyRequired)
    ));
    assert!(matches!(
        Diary::open(path.clone(), Some(b"another key of sixteen bytes".to_vec())),
        Err(FfiError::WrongKey)
    ));
    assert!(matches!(
        Diary::open(path.clone(), Some(b"short".to_vec())),
        Err(FfiError::Invalid { field, .. }) if field == "key"
    ));
    let new_key = b"a new key for the same diary file".to_vec();
    rekey_diary(path.clone(), key.clone(), new_key.clone()).unwrap();
    let reopened = Diary::open(path.clone(), Some(new_key)).unwrap();
    assert_eq!(
        reopened.get(id).unwrap().note.as_deref(),
        Some("secret-heel-note")
    );

    let plain = dir.path().join("plain.db").display().to_string();
    let plain_id = Diary::open(plain.clone(), None)
        .unwrap()
        .log(day(2))
        .unwrap();
    encrypt_diary(plain.clone(), key.clone()).unwrap();
    assert!(matches!(
        Diary::open(plain.clone(), None),
        Err(FfiError::KeyRequired)
    ));
    assert_eq!(
        Diary::open(plain, Some(key))
            .unwrap()
            .get(plain_id)
            .unwrap()
            .day,
        "2026-11-02"
    );
}
