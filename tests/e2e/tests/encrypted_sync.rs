//! Encrypted diaries sync like plain ones: two devices of one patient, each with its own key,
//! converge through the real `heeldiary-server` binary, and neither file shows a note in clear.

use heeldiary_client::SyncOptions;
use heeldiary_core::EntryInput;
use heeldiary_e2e::{Backend, Server};
use heeldiary_store::{DiaryKey, Store, StoreError};
use serde_json::json;

fn input(value: serde_json::Value) -> EntryInput {
    serde_json::from_value(value).expect("valid input")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn two_encrypted_diaries_of_one_patient_converge() {
    assert!(
        heeldiary_store::encryption_available(),
        "the e2e tests link SQLCipher"
    );
    let backend = Backend::sqlite();
    let server = Server::start(&backend);
    let (patient, code) = server.add_patient();
    let dir = tempfile::tempdir().unwrap();
    let (phone_path, tablet_path) = (dir.path().join("phone.db"), dir.path().join("tablet.db"));
    let phone_key = DiaryKey::from_secret(b"the phone's key, thirty-two byte").unwrap();
    let tablet_key = DiaryKey::from_secret(b"the tablet's key, another secret").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let options = SyncOptions::default();

    let mut phone = Store::open_with_key(&phone_path, Some(&phone_key)).unwrap();
    let entry = phone
        .log(input(
            json!({"day": "2026-11-01", "first_step_pain": 6, "note": "encrypted-sync-note"}),
        ))
        .unwrap();
    rt.block_on(heeldiary_client::enrol(
        &mut phone,
        &server.url,
        &code,
        None,
    ))
    .unwrap();
    assert_eq!(
        rt.block_on(heeldiary_client::sync(&mut phone, &options))
            .unwrap()
            .pushed,
        1
    );

    let mut tablet = Store::open_with_key(&tablet_path, Some(&tablet_key)).unwrap();
    rt.block_on(heeldiary_client::enrol(
        &mut tablet,
        &server.url,
        &server.new_code(&patient),
        None,
    ))
    .unwrap();
    assert_eq!(
        rt.block_on(heeldiary_client::sync(&mut tablet, &options))
            .unwrap()
            .pulled,
        1
    );
    assert_eq!(
        tablet.get(entry.id).unwrap().note.as_deref(),
        Some("encrypted-sync-note")
    );

    tablet
        .edit(entry.id, input(json!({"first_step_pain": 3})))
        .unwrap();
    rt.block_on(heeldiary_client::sync(&mut tablet, &options))
        .unwrap();
    rt.block_on(heeldiary_client::sync(&mut phone, &options))
        .unwrap();
    assert_eq!(phone.get(entry.id).unwrap().first_step_pain, Some(3));
    drop((phone, tablet));

    for path in [&phone_path, &tablet_path] {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            !contains(&bytes, b"encrypted-sync-note"),
            "{} shows the note",
            path.display()
        );
    }
    // Each file opens with its own key only.
    assert!(matches!(
        Store::open_with_key(&tablet_path, Some(&phone_key)),
        Err(StoreError::WrongKey)
    ));
}
