//! An entry whose stored values do not fit its fields is reported with its id and the field,
//! never left out of a list as if it did not exist.

use heeldiary_core::EntryInput;
use heeldiary_store::{Store, StoreError};
use serde_json::json;

#[test]
fn an_entry_whose_values_do_not_fit_is_an_error_naming_it() -> Result<(), Box<dyn std::error::Error>>
{
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("diary.sqlite3");
    let mut store = Store::open(&path)?;
    let input: EntryInput =
        serde_json::from_value(json!({"day": "2026-11-01", "first_step_pain": 7}))?;
    let entry = store.log(input)?;
    // In the stored patch, first_step_pain is code 3 and 7 is the small integer 0x87; make it
    // the string "seven" (tag 5, length 5).
    let conn = rusqlite::Connection::open(&path)?;
    let patch: Vec<u8> = conn.query_row("SELECT patch FROM ops", [], |r| r.get(0))?;
    let at = patch
        .windows(2)
        .position(|w| w == [3, 0x87])
        .expect("first_step_pain = 7 in the stored patch");
    let changed_patch = [&patch[..at], &[3, 5, 5], b"seven", &patch[at + 2..]].concat();
    let changed = conn.execute("UPDATE ops SET patch = ?1", [changed_patch])?;
    assert_eq!(changed, 1);
    for outcome in [
        store.list(None, None).map(|_| ()),
        store.get(entry.id).map(|_| ()),
    ] {
        match outcome {
            Err(StoreError::Corrupt(reason)) => assert!(
                reason.starts_with(&format!("entry {}: first_step_pain: ", entry.id)),
                "{reason}"
            ),
            other => panic!("expected the entry to be reported, got {other:?}"),
        }
    }
    Ok(())
}
