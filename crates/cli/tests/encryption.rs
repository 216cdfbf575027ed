//! Encryption at rest through the real `heeldiary` binary: a key file opens the diary, a wrong
//! key is refused without touching the file, `rekey` and `encrypt` keep every entry and its
//! history, and nothing of the diary can be read from the file without the key.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

struct Diary {
    dir: tempfile::TempDir,
    db: PathBuf,
}

impl Diary {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("diary.sqlite3");
        Diary { dir, db }
    }

    /// A key file holding `secret`.
    fn key(&self, name: &str, secret: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, secret).expect("key file");
        path
    }

    fn run(&self, key: Option<&Path>, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_heeldiary"));
        command
            .args(args)
            .env("HEELDIARY_DB", &self.db)
            .env_remove("HEELDIARY_KEY_FILE");
        if let Some(key) = key {
            command.env("HEELDIARY_KEY_FILE", key);
        }
        command.output().expect("heeldiary runs")
    }

    fn ok(&self, key: Option<&Path>, args: &[&str]) -> String {
        let out = self.run(key, args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    fn fails(&self, key: Option<&Path>, args: &[&str]) -> String {
        let out = self.run(key, args);
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8(out.stderr).expect("utf-8 error")
    }

    /// Every file of the diary (the database and any journal beside it), byte for byte.
    fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("diary.sqlite3"))
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect();
        files.sort();
        files
    }

    fn show(&self, key: Option<&Path>, id: &str) -> Value {
        serde_json::from_str(&self.ok(key, &["show", id, "--json"])).expect("show --json")
    }
}

const SECRET: &str = "c2VjcmV0LWtleS1vbmUtZm9yLXRoZS1kaWFyeS0xMjM0NQ==\n";
const OTHER: &str = "b3RoZXIta2V5LXR3by1mb3ItdGhlLWRpYXJ5LTY3ODkwMQ==\n";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What the `sqlite3` shell (or, where it is missing, plain SQLite without a key) reads.
fn readable_without_key(db: &Path) -> bool {
    match Command::new("sqlite3")
        .arg(db)
        .arg("SELECT count(*) FROM sqlite_master")
        .output()
    {
        Ok(out) => out.status.success(),
        Err(_) => rusqlite::Connection::open(db)
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .is_ok(),
    }
}

#[test]
fn an_encrypted_diary_reads_only_with_its_key() {
    let diary = Diary::new();
    let key = diary.key("k1", SECRET);
    let id = diary
        .ok(
            Some(&key),
            &[
                "log",
                "--date",
                "2026-11-01",
                "--first-step-pain",
                "6",
                "--note",
                "secret-heel-note",
            ],
        )
        .trim()
        .to_string();
    diary.ok(Some(&key), &["edit", &id, "--first-step-pain", "3"]);
    assert_eq!(diary.show(Some(&key), &id)["entry"]["first_step_pain"], 3);

    assert!(
        !readable_without_key(&diary.db),
        "not even the schema without the key"
    );
    for (name, bytes) in diary.files() {
        assert!(
            !contains(&bytes, b"secret-heel-note"),
            "the note is in clear in {name}"
        );
        assert!(
            !contains(&bytes, b"first_step_pain"),
            "a field name is in clear in {name}"
        );
    }

    let before = diary.files();
    let wrong = diary.key("k2", OTHER);
    let error = diary.fails(Some(&wrong), &["list"]);
    assert!(
        error.contains("the key does not open this diary"),
        "{error}"
    );
    assert_eq!(
        diary.files(),
        before,
        "a wrong key leaves the file untouched"
    );

    let error = diary.fails(None, &["list"]);
    assert!(error.contains("encrypted"), "{error}");
    assert!(
        error.contains("--key-file"),
        "the CLI says how to give the key: {error}"
    );
    assert_eq!(diary.files(), before, "no key leaves the file untouched");
}

#[test]
fn rekey_keeps_every_entry_and_its_history_and_retires_the_old_key() {
    let diary = Diary::new();
    let old = diary.key("k1", SECRET);
    let new = diary.key("k2", OTHER);
    let id = diary
        .ok(
            Some(&old),
            &["log", "--date", "2026-11-01", "--first-step-pain", "6"],
        )
        .trim()
        .to_string();
    diary.ok(Some(&old), &["edit", &id, "--first-step-pain", "3"]);
    diary.ok(
        Some(&old),
        &["log", "--date", "2026-11-02", "--rest-pain", "2"],
    );
    let before = diary.show(Some(&old), &id);
    let status_before: Value =
        serde_json::from_str(&diary.ok(Some(&old), &["status", "--json"])).unwrap();

    let new_arg = new.display().to_string();
    diary.ok(Some(&old), &["rekey", "--new-key-file", &new_arg]);

    assert_eq!(
        diary.show(Some(&new), &id),
        before,
        "entry and history kept"
    );
    assert_eq!(diary.ok(Some(&new), &["list", "--json"]).lines().count(), 2);
    let status_after: Value =
        serde_json::from_str(&diary.ok(Some(&new), &["status", "--json"])).unwrap();
    assert_eq!(
        status_after["device_id"], status_before["device_id"],
        "same device"
    );
    let error = diary.fails(Some(&old), &["list"]);
    assert!(
        error.contains("the key does not open this diary"),
        "{error}"
    );
    assert!(
        !diary.dir.path().join("diary.sqlite3.rewrite").exists(),
        "no copy left behind"
    );
}

#[test]
fn encrypt_turns_a_plain_diary_into_an_encrypted_one_with_everything_kept() {
    let diary = Diary::new();
    let mut ids = Vec::new();
    for day in ["2026-11-01", "2026-11-02", "2026-11-03"] {
        ids.push(
            diary
                .ok(
                    None,
                    &[
                        "log",
                        "--date",
                        day,
                        "--first-step-pain",
                        "4",
                        "--note",
                        "plain-note",
                    ],
                )
                .trim()
                .to_string(),
        );
    }
    diary.ok(None, &["edit", &ids[0], "--first-step-pain", "5"]);
    diary.ok(None, &["delete", &ids[2]]);
    let histories: Vec<Value> = ids.iter().map(|id| diary.show(None, id)).collect();
    assert!(
        readable_without_key(&diary.db),
        "a plain diary stays a standard SQLite file"
    );

    let key = diary.key("k1", SECRET);
    let key_arg = key.display().to_string();
    diary.ok(None, &["encrypt", "--key-file", &key_arg]);

    assert!(!readable_without_key(&diary.db));
    for (name, bytes) in diary.files() {
        assert!(
            !contains(&bytes, b"plain-note"),
            "the note is in clear in {name}"
        );
    }
    let after: Vec<Value> = ids.iter().map(|id| diary.show(Some(&key), id)).collect();
    assert_eq!(
        after, histories,
        "every entry, deleted or not, with its history"
    );
    assert_eq!(diary.ok(Some(&key), &["list", "--json"]).lines().count(), 2);

    let error = diary.fails(Some(&key), &["encrypt"]);
    assert!(
        error.contains("encrypted"),
        "encrypting twice is refused: {error}"
    );
}

#[test]
fn a_key_for_a_plain_diary_and_a_short_key_are_refused_with_the_reason() {
    let diary = Diary::new();
    diary.ok(None, &["log", "--date", "2026-11-01", "--rest-pain", "1"]);
    let key = diary.key("k1", SECRET);
    let error = diary.fails(Some(&key), &["list"]);
    assert!(error.contains("not encrypted"), "{error}");
    assert!(error.contains("heeldiary encrypt"), "{error}");

    let short = diary.key("short", "tooshort\n");
    let error = diary.fails(Some(&short), &["list"]);
    assert!(
        error.contains("the key holds 8 bytes; at least 16"),
        "{error}"
    );
}

#[test]
fn a_failed_encrypt_leaves_the_plain_diary_as_it_was() {
    let diary = Diary::new();
    let id = diary
        .ok(
            None,
            &["log", "--date", "2026-11-01", "--first-step-pain", "4"],
        )
        .trim()
        .to_string();
    // The copy cannot be written where a folder stands in its way: the rewrite fails half-way,
    // after the plain file was read and before anything replaced it.
    std::fs::create_dir(diary.dir.path().join("diary.sqlite3.rewrite")).unwrap();
    std::fs::write(
        diary.dir.path().join("diary.sqlite3.rewrite").join("x"),
        "x",
    )
    .unwrap();
    let key = diary.key("k1", SECRET);
    let key_arg = key.display().to_string();
    diary.fails(None, &["encrypt", "--key-file", &key_arg]);
    assert!(readable_without_key(&diary.db));
    assert_eq!(diary.show(None, &id)["entry"]["first_step_pain"], 4);
}
