//! Encryption at rest through the store's API: a key opens only its diary, a refused key
//! writes nothing, and rewriting a file under another key keeps everything in it.
//!
//! Whether the build links SQLCipher depends on the packages built with this one (see the
//! README); without it, a key is refused with `EncryptionUnavailable`, which is checked too.

use std::path::Path;

use heeldiary_core::EntryInput;
use heeldiary_store::{DiaryKey, Enrolment, Store, StoreError};
use serde_json::{json, Value};
use uuid::Uuid;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn input(value: Value) -> EntryInput {
    serde_json::from_value(value).expect("valid input shape")
}

fn key(secret: &str) -> DiaryKey {
    DiaryKey::from_secret(secret.as_bytes()).expect("a long enough secret")
}

/// Every file of the diary at `path` (database, WAL, shared memory), byte for byte.
fn files(path: &Path) -> Vec<(String, Vec<u8>)> {
    let dir = path.parent().unwrap();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&name))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    found.sort();
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A diary with a live entry edited once, a deleted one, and an enrolment.
fn fill(store: &mut Store) -> Result<(Uuid, Uuid), StoreError> {
    let kept = store.log(input(
        json!({"day": "2026-11-01", "first_step_pain": 6, "note": "a-private-note"}),
    ))?;
    store.edit(kept.id, input(json!({"first_step_pain": 3})))?;
    let gone = store.log(input(json!({"day": "2026-11-02", "rest_pain": 2})))?;
    store.delete(gone.id)?;
    store.set_enrolment(&Enrolment {
        server_url: "http://127.0.0.1:9".into(),
        patient_id: Uuid::now_v7(),
        token: "device-token".into(),
    })?;
    Ok((kept.id, gone.id))
}

/// Everything a rewrite must keep: entries (deleted too), histories, device, enrolment.
fn snapshot(store: &Store, ids: &[Uuid]) -> Result<String, StoreError> {
    let mut all = vec![store.device_id().to_string(), store.enrolment()?.server_url];
    for id in ids {
        all.push(serde_json::to_string(&store.get_any(*id)?).unwrap());
        all.push(serde_json::to_string(&store.history(*id)?).unwrap());
    }
    all.push(serde_json::to_string(&store.sync_state()?).unwrap());
    Ok(all.join("\n"))
}

#[test]
fn without_sqlcipher_a_key_is_refused_and_nothing_is_made() -> TestResult {
    if heeldiary_store::encryption_available() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("diary.sqlite3");
    let refused = Store::open_with_key(&path, Some(&key("a secret of sixteen+ bytes")));
    assert!(
        matches!(refused, Err(StoreError::EncryptionUnavailable)),
        "{:?}",
        refused.err()
    );
    Ok(())
}

#[test]
fn a_diary_opens_only_with_its_key_and_a_refusal_writes_nothing() -> TestResult {
    if !heeldiary_store::encryption_available() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("diary.sqlite3");
    let right = key("the right key, thirty-two bytes!");
    let mut store = Store::open_with_key(&path, Some(&right))?;
    let (kept, gone) = fill(&mut store)?;
    let before = snapshot(&store, &[kept, gone])?;
    drop(store);

    for (name, bytes) in files(&path) {
        assert!(
            !contains(&bytes, b"a-private-note"),
            "note in clear in {name}"
        );
        assert!(
            !contains(&bytes, b"CREATE TABLE"),
            "schema in clear in {name}"
        );
    }
    let on_disk = files(&path);
    let wrong = Store::open_with_key(&path, Some(&key("a wrong key, thirty-two bytes...")));
    assert!(
        matches!(wrong, Err(StoreError::WrongKey)),
        "{:?}",
        wrong.err()
    );
    assert!(matches!(Store::open(&path), Err(StoreError::KeyRequired)));
    assert_eq!(files(&path), on_disk, "refusals leave every file as it was");

    let store = Store::open_with_key(&path, Some(&right))?;
    assert_eq!(snapshot(&store, &[kept, gone])?, before);
    Ok(())
}

#[test]
fn a_key_for_a_plain_diary_and_a_short_secret_are_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("diary.sqlite3");
    Store::open(&path)?.log(input(json!({"day": "2026-11-01"})))?;
    let on_disk = files(&path);
    let refused = Store::open_with_key(&path, Some(&key("a secret of sixteen+ bytes")));
    assert!(
        matches!(refused, Err(StoreError::NotEncrypted)),
        "{:?}",
        refused.err()
    );
    assert_eq!(files(&path), on_disk);

    let short = DiaryKey::from_secret(b"  fifteen bytes..\n\n");
    assert!(
        matches!(
            short,
            Err(StoreError::WeakKey {
                bytes: 15,
                needed: 16
            })
        ),
        "{short:?}"
    );
    assert_eq!(
        format!("{:?}", key("a secret of sixteen+ bytes")),
        "DiaryKey(..)"
    );
    assert_eq!(
        key("  same secret, spaces aside \n"),
        key("same secret, spaces aside")
    );
    Ok(())
}

#[test]
fn encrypt_and_rekey_keep_every_entry_history_and_the_enrolment() -> TestResult {
    if !heeldiary_store::encryption_available() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("diary.sqlite3");
    let mut store = Store::open(&path)?;
    let (kept, gone) = fill(&mut store)?;
    let before = snapshot(&store, &[kept, gone])?;
    drop(store);
    // A copy left by a crash in an earlier attempt is cleared, not mistaken for the result.
    std::fs::write(dir.path().join("diary.sqlite3.rewrite"), b"half-written")?;

    let first = key("the first key, thirty-two bytes.");
    Store::encrypt_file(&path, &first)?;
    assert!(matches!(Store::open(&path), Err(StoreError::KeyRequired)));
    assert_eq!(
        snapshot(&Store::open_with_key(&path, Some(&first))?, &[kept, gone])?,
        before
    );
    assert!(matches!(
        Store::encrypt_file(&path, &first),
        Err(StoreError::KeyRequired)
    ));

    let second = key("the second key, another secret.");
    Store::rekey_file(&path, &first, &second)?;
    assert!(matches!(
        Store::open_with_key(&path, Some(&first)),
        Err(StoreError::WrongKey)
    ));
    let mut store = Store::open_with_key(&path, Some(&second))?;
    assert_eq!(snapshot(&store, &[kept, gone])?, before);
    // The rewritten diary takes writes in WAL mode again, under the new key.
    store.log(input(json!({"day": "2026-11-03", "note": "after-rekey"})))?;
    drop(store);
    for (name, bytes) in files(&path) {
        assert!(!contains(&bytes, b"after-rekey"), "note in clear in {name}");
    }
    assert!(!dir.path().join("diary.sqlite3.rewrite").exists());
    let wrong = Store::rekey_file(&path, &first, &second);
    assert!(
        matches!(wrong, Err(StoreError::WrongKey)),
        "{:?}",
        wrong.err()
    );
    Ok(())
}

#[test]
fn a_rewrite_that_fails_half_way_leaves_the_old_file() -> TestResult {
    if !heeldiary_store::encryption_available() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("diary.sqlite3");
    let mut store = Store::open(&path)?;
    let (kept, gone) = fill(&mut store)?;
    let before = snapshot(&store, &[kept, gone])?;
    drop(store);
    // A folder where the copy goes: the rewrite reads the diary, then cannot make its copy.
    std::fs::create_dir_all(dir.path().join("diary.sqlite3.rewrite").join("in-the-way"))?;
    let failed = Store::encrypt_file(&path, &key("the first key, thirty-two bytes."));
    assert!(
        matches!(failed, Err(StoreError::Replace { .. })),
        "{:?}",
        failed.err()
    );
    assert_eq!(snapshot(&Store::open(&path)?, &[kept, gone])?, before);
    Ok(())
}
