//! The real `heeldiary` binary against a temporary diary file, as a patient would run it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

struct Diary {
    _dir: tempfile::TempDir,
    db: PathBuf,
}

impl Diary {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("diary.sqlite3");
        Diary { _dir: dir, db }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_heeldiary"))
            .args(args)
            .env("HEELDIARY_DB", &self.db)
            .output()
            .expect("heeldiary runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            out.stdout.is_empty(),
            "a failed command prints nothing on stdout"
        );
        String::from_utf8(out.stderr).expect("utf-8 error")
    }

    fn entries(&self) -> Vec<Value> {
        self.ok(&["list", "--json"])
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.db.parent().unwrap().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn log_prints_only_the_new_id_and_list_shows_the_fields() {
    let d = Diary::new();
    let id = d.ok(&[
        "log",
        "--date",
        "2026-11-01",
        "--first-step-pain",
        "7",
        "--sitting-pain",
        "1",
        "--where",
        "heel-bottom,arch",
        "--side",
        "left",
        "--numbness",
        "none",
        "--heel-tender",
        "--radiating=false",
        "--worse-with",
        "standing",
        "--steps",
        "4200",
        "--standing-minutes",
        "90",
        "--treatment",
        "stretching,ice",
        "--note",
        "first steps hurt",
    ]);
    let id = id.trim();
    assert!(
        uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 7),
        "{id}"
    );
    let entries = d.entries();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e["id"], id);
    assert_eq!(e["first_step_pain"], 7);
    assert_eq!(e["locations"], serde_json::json!(["heel_bottom", "arch"]));
    assert_eq!(e["radiating"], false);
    assert_eq!(e["heel_tender"], true);
    assert_eq!(e["treatments"], serde_json::json!(["stretching", "ice"]));
    assert_eq!(e["steps"], 4200);
    assert_eq!(e["note"], "first steps hurt");
    let table = d.ok(&["list"]);
    assert!(
        table.contains("2026-11-01") && table.contains(id) && table.contains("stretching,ice"),
        "{table}"
    );
}

#[test]
fn bad_input_names_the_field_exits_non_zero_and_writes_nothing() {
    let d = Diary::new();
    d.ok(&["log", "--date", "2026-11-01", "--first-step-pain", "3"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["log", "--first-step-pain", "11"],
            "first_step_pain: must be between 0 and 10, got 11",
        ),
        (&["log", "--steps", "-5"], "steps: must not be negative"),
        (
            &["log", "--numbness", "extreme"],
            "numbness: unknown value `extreme`",
        ),
        (
            &["log", "--where", "knee"],
            "locations: unknown value `knee`",
        ),
        (
            &["log", "--date", "2999-01-01"],
            "more than one day in the future",
        ),
        (
            &["log", "--note", &"x".repeat(2001)],
            "note: is 2001 characters",
        ),
        (&["log", "--date", "2026-02-30"], "invalid value"),
    ];
    for (args, expected) in cases {
        let err = d.fails(args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    assert_eq!(d.entries().len(), 1);
}

#[test]
fn edit_and_delete_keep_history() {
    let d = Diary::new();
    let id = d
        .ok(&[
            "log",
            "--date",
            "2026-11-01",
            "--first-step-pain",
            "7",
            "--note",
            "x",
        ])
        .trim()
        .to_string();
    d.ok(&["edit", &id, "--first-step-pain", "4", "--clear", "note"]);
    let e = &d.entries()[0];
    assert_eq!(
        (e["first_step_pain"].clone(), e.get("note")),
        (Value::from(4), None)
    );

    let shown: Value = serde_json::from_str(&d.ok(&["show", &id, "--json"])).unwrap();
    let history = shown["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    let first_values: Vec<(Value, Value)> = history
        .iter()
        .flat_map(|h| h["changes"].as_array().unwrap().iter())
        .filter(|c| c["field"] == "first_step_pain")
        .map(|c| (c["value"].clone(), c["current"].clone()))
        .collect();
    assert_eq!(
        first_values,
        vec![
            (Value::from(7), Value::from(false)),
            (Value::from(4), Value::from(true))
        ]
    );
    let text = d.ok(&["show", &id]);
    assert!(text.contains("first_step_pain=7 (superseded)"), "{text}");

    d.ok(&["delete", &id]);
    assert!(d.entries().is_empty());
    let shown: Value = serde_json::from_str(&d.ok(&["show", &id, "--json"])).unwrap();
    assert_eq!(shown["entry"]["deleted"], true);
    assert_eq!(shown["history"].as_array().unwrap().len(), 3);
    assert!(d
        .fails(&["edit", &id, "--rest-pain", "2"])
        .contains("no entry with id"));
    assert!(d
        .fails(&["delete", "0190c3a4-0000-7000-8000-000000000001"])
        .contains("no entry"));
    assert!(d
        .fails(&["edit", &id, "--clear", "pain"])
        .contains("unknown field `pain`"));
}

#[test]
fn import_takes_good_files_and_refuses_a_file_with_one_bad_line() {
    let d = Diary::new();
    let good: String = (1..=28)
        .map(|day| {
            format!("{{\"day\":\"2026-10-{day:02}\",\"first_step_pain\":6,\"heel_tender\":true}}\n")
        })
        .collect();
    let mut bad: String = (1..=9)
        .map(|day| format!("{{\"day\":\"2026-09-{day:02}\",\"first_step_pain\":5}}\n"))
        .collect();
    bad.push_str("{\"day\":\"2026-09-10\",\"first_step_pain\":42}\n");
    let err = d.fails(&["import", arg(&d.write("bad.ndjson", &bad))]);
    assert!(
        err.contains("line 10: first_step_pain: must be between 0 and 10, got 42"),
        "{err}"
    );
    assert!(err.contains("nothing was imported"));
    assert!(d.entries().is_empty());

    let err = d.fails(&[
        "import",
        arg(&d.write("syntax.ndjson", "{\"day\":\"2026-09-01\"}\n{oops\n")),
    ]);
    assert!(err.starts_with("error: line 2, column 2:"), "{err}");
    let err = d.fails(&[
        "import",
        arg(&d.write("unknown.ndjson", "{\"day\":\"2026-09-01\",\"mood\":3}\n")),
    ]);
    assert!(err.contains("line 1: mood: unknown field"), "{err}");
    assert!(!err.contains("column"), "{err}");

    assert_eq!(
        d.ok(&["import", arg(&d.write("good.ndjson", &good))])
            .trim(),
        "imported 28 entries"
    );
    assert_eq!(d.entries().len(), 28);
}

#[test]
fn list_json_output_imports_back_into_another_diary() {
    let a = Diary::new();
    a.ok(&[
        "log",
        "--date",
        "2026-11-01",
        "--first-step-pain",
        "7",
        "--numbness",
        "mild",
        "--radiating",
    ]);
    a.ok(&[
        "log",
        "--date",
        "2026-11-02",
        "--sitting-pain",
        "6",
        "--worse-with",
        "sitting,bending",
    ]);
    let exported = a.ok(&["list", "--json"]);
    let b = Diary::new();
    b.ok(&["import", arg(&b.write("export.ndjson", &exported))]);
    assert_eq!(a.entries(), b.entries());
    // Importing the same ids twice is refused, naming the entry.
    assert!(b
        .fails(&["import", arg(&b.write("again.ndjson", &exported))])
        .contains("exists already"));
}

#[test]
fn list_filters_by_day_range() {
    let d = Diary::new();
    for day in ["2026-10-30", "2026-11-01", "2026-11-05"] {
        d.ok(&["log", "--date", day]);
    }
    let days = |args: &[&str]| -> Vec<String> {
        d.ok(args)
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["day"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(
        days(&["list", "--json", "--from", "2026-11-01"]),
        vec!["2026-11-01", "2026-11-05"]
    );
    assert_eq!(
        days(&["list", "--json", "--to", "2026-11-01"]),
        vec!["2026-10-30", "2026-11-01"]
    );
    assert_eq!(
        days(&[
            "list",
            "--json",
            "--from",
            "2026-11-02",
            "--to",
            "2026-11-04"
        ]),
        Vec::<String>::new()
    );
}

#[test]
fn the_diary_is_a_plain_sqlite_file_in_wal_mode() {
    let d = Diary::new();
    let id = d.ok(&["log", "--date", "2026-11-01", "--rest-pain", "2"]);
    let conn = rusqlite::Connection::open(&d.db).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    let stored: Vec<u8> = conn
        .query_row("SELECT entry_id FROM ops", [], |r| r.get(0))
        .unwrap();
    let stored = uuid::Uuid::from_slice(&stored).unwrap().to_string();
    assert_eq!(
        (mode.as_str(), check.as_str(), stored.as_str()),
        ("wal", "ok", id.trim())
    );
}

#[test]
fn sync_without_enrolment_says_what_to_do() {
    let d = Diary::new();
    let err = d.fails(&["sync"]);
    assert!(
        err.contains("heeldiary enroll --server URL --code CODE"),
        "{err}"
    );
    let status: Value = serde_json::from_str(&d.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["server_url"], Value::Null);
    assert_eq!(status["sync"]["pending"], 0);
    let err = d.fails(&["enroll", "--server", "not a url", "--code", "X"]);
    assert!(err.contains("invalid server URL"), "{err}");
}

#[test]
fn enrol_is_another_spelling_of_enroll() {
    let d = Diary::new();
    let err = d.fails(&["enrol", "--server", "not a url", "--code", "X"]);
    assert!(err.contains("invalid server URL"), "{err}");
    assert!(d.ok(&["enrol", "--help"]).contains("--code"));
}

#[test]
fn help_describes_every_command() {
    let d = Diary::new();
    let help = d.ok(&["--help"]);
    for command in [
        "log", "list", "show", "edit", "delete", "import", "enroll", "sync", "status",
    ] {
        assert!(help.contains(command), "help lacks {command}");
    }
    assert!(d.ok(&["log", "--help"]).contains("--first-step-pain"));
}

#[test]
fn trends_reports_a_pattern_with_evidence_and_never_a_diagnosis() {
    let d = Diary::new();
    let lines: String = (1..=28)
        .map(|day| {
            format!("{{\"day\":\"2026-03-{day:02}\",\"first_step_pain\":7,\"rest_pain\":5,\"sitting_pain\":1,\"heel_tender\":true,\"numbness\":\"none\",\"radiating\":false}}\n")
        })
        .collect();
    d.ok(&["import", arg(&d.write("foot.ndjson", &lines))]);
    let report: Value =
        serde_json::from_str(&d.ok(&["trends", "--json", "--as-of", "2026-03-28"])).unwrap();
    assert_eq!(report["pattern"]["kind"], "plantar_fasciitis_like");
    assert_eq!(report["adherence"]["days_logged"], 28);
    assert_eq!(report["window"]["from"], "2026-03-01");
    let text = d.ok(&[
        "trends",
        "--as-of",
        "2026-03-28",
        "--window",
        "14",
        "--for",
        "clinician",
    ]);
    assert!(text.contains("consistent with"), "{text}");
    assert!(text.contains("Mann-Kendall"), "{text}");
    assert!(!text.to_lowercase().contains("you have"), "{text}");
    // The patient's text is the default: plain words, no statistics, no identifiers.
    let plain = d.ok(&["trends", "--as-of", "2026-03-28", "--window", "14"]);
    assert!(plain.contains("Warning signs: none recorded"), "{plain}");
    for word in ["Mann", "Kendall", "Theil", "p =", "_like", "you have"] {
        assert!(!plain.contains(word), "{word}: {plain}");
    }
    assert!(d.fails(&["trends", "--window", "3"]).contains("--window"));
    assert!(d.fails(&["trends", "--for", "nurse"]).contains("--for"));
}

#[test]
fn logging_an_urgent_sign_answers_at_once_and_an_ordinary_entry_does_not() {
    let d = Diary::new();
    let out = d.run(&["log", "--date", "2026-11-01", "--saddle-numbness", "--json"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("urgent care today"), "{stderr}");
    let logged: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(logged["urgent_alert"]["urgency"], "urgent");
    assert_eq!(logged["entry"]["saddle_numbness"], true);
    let calm = d.run(&["log", "--date", "2026-11-01", "--first-step-pain", "5"]);
    assert!(calm.status.success());
    assert!(
        calm.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&calm.stderr)
    );
    let quiet: Value =
        serde_json::from_str(&d.ok(&["log", "--date", "2026-11-01", "--json"])).unwrap();
    assert_eq!(quiet["urgent_alert"], Value::Null);
}
