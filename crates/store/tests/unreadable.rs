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
    let changed = rusqlite::Connection::open(&path)?.execute(
        "UPDATE ops SET patch = replace(patch, '\"first_step_pain\":7', '\"first_step_pain\":\"seven\"')",
        [],
    )?;
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
