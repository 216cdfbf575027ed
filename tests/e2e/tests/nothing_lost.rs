//! Nothing lost, through the real server binary and real diaries: a diary copied to a second
//! phone (or restored from an older backup) takes a new device identity and both copies
//! converge; a server restored from a backup and declared so (`admin mark-restored`) gets back
//! everything from its devices; an enrolment whose answer was lost is confirmed by a fresh code;
//! an erased patient's device is told and keeps its diary.

use heeldiary_e2e::proxy::{Fault, Proxy};
use heeldiary_e2e::{binary, runtime, Backend, Device, Server};

/// The notes of a diary's live entries, sorted.
fn notes(device: &Device) -> Vec<String> {
    let mut notes: Vec<String> = device
        .entries()
        .iter()
        .map(|e| e["note"].as_str().unwrap_or_default().to_string())
        .collect();
    notes.sort();
    notes
}

fn log_note(device: &Device, day: &str, note: &str) {
    device.log(&["--date", day, "--note", note]);
}

fn copy_of(device: &Device) -> Device {
    let copy = Device::new();
    // A quiet copy, as a backup or a phone transfer makes: the file after its last write.
    std::fs::copy(&device.db, &copy.db).expect("copy the diary file");
    copy
}

#[test]
fn a_copied_diary_takes_a_new_identity_and_both_copies_converge() {
    for backend in Backend::all("a_copied_diary_takes_a_new_identity_and_both_copies_converge") {
        let server = Server::start(&backend);
        let (_, code) = server.add_patient();
        let original = Device::new();
        original.enrol(&server, &code);
        log_note(&original, "2026-11-01", "e1");
        original.sync();
        let copy = copy_of(&original);
        log_note(&original, "2026-11-02", "e2");
        original.sync();
        log_note(&copy, "2026-11-03", "e3");
        let first = copy.sync();
        assert!(
            first["new_device_id"].is_string(),
            "{}: the copy finds its sequence taken and takes a new identity: {first}",
            backend.name()
        );
        assert_eq!(first["reissued"], 1, "{first}");
        log_note(&copy, "2026-11-04", "e4");
        for device in [&copy, &original, &copy] {
            device.sync();
        }
        let all = ["e1", "e2", "e3", "e4"].map(String::from).to_vec();
        assert_eq!(notes(&original), all, "{}: the original", backend.name());
        assert_eq!(notes(&copy), all, "{}: the copy", backend.name());
        assert_ne!(
            original.store().device_id(),
            copy.store().device_id(),
            "{}",
            backend.name()
        );
    }
}

#[test]
fn a_diary_restored_from_an_older_backup_converges_with_what_it_wrote_since() {
    let backend = Backend::sqlite();
    let server = Server::start(&backend);
    let (_, code) = server.add_patient();
    let phone = Device::new();
    phone.enrol(&server, &code);
    log_note(&phone, "2026-11-01", "before-backup");
    phone.sync();
    let backup = copy_of(&phone);
    // The phone goes on and syncs; then it is lost, and the backup is restored on a new one,
    // which logs before its first sync.
    log_note(&phone, "2026-11-02", "lost-phone");
    phone.sync();
    log_note(&backup, "2026-11-03", "restored-phone");
    let summary = backup.sync();
    assert!(summary["new_device_id"].is_string(), "{summary}");
    assert_eq!(
        notes(&backup),
        ["before-backup", "lost-phone", "restored-phone"].map(String::from),
        "the restored phone holds what the lost one synced and what it wrote itself"
    );
}

#[test]
fn a_server_restored_from_a_backup_gets_back_everything_from_its_devices() {
    let backend = Backend::sqlite();
    let Backend::Sqlite(dir) = &backend else {
        unreachable!()
    };
    let mut server = Server::start(&backend);
    let (patient, code) = server.add_patient();
    let (writer, reader) = (Device::new(), Device::new());
    writer.enrol(&server, &code);
    reader.enrol(&server, &server.new_code(&patient));
    log_note(&writer, "2026-11-01", "r1");
    writer.sync();
    assert!(server.stop());
    let backup = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), backup.path());
    server = Server::start_on(
        server.backend_args.clone(),
        &format!("127.0.0.1:{}", server.port()),
    );
    log_note(&writer, "2026-11-02", "r2");
    writer.sync();
    reader.sync();
    assert!(server.stop());
    std::fs::remove_dir_all(dir.path()).unwrap();
    copy_dir(backup.path(), dir.path());
    let declared = server.admin_json(&["mark-restored"]);
    assert!(declared["epoch"].is_string(), "{declared}");
    server = Server::start_on(
        server.backend_args.clone(),
        &format!("127.0.0.1:{}", server.port()),
    );
    log_note(&writer, "2026-11-03", "r3");
    let summary = writer.sync();
    assert_eq!(summary["server_restored"], true, "{summary}");
    reader.sync();
    let all = ["r1", "r2", "r3"].map(String::from).to_vec();
    assert_eq!(notes(&writer), all);
    assert_eq!(notes(&reader), all, "the second device does not skip r3");
    // And the server holds r2 again: a third device enrolled now sees all three.
    let third = Device::new();
    third.enrol(&server, &server.new_code(&patient));
    third.sync();
    assert_eq!(notes(&third), all);
    drop(server);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn after_a_lost_enrolment_answer_a_fresh_code_enrols_and_the_diary_syncs() {
    let rt = runtime();
    for backend in
        Backend::all("after_a_lost_enrolment_answer_a_fresh_code_enrols_and_the_diary_syncs")
    {
        let server = Server::start(&backend);
        let (patient, code) = server.add_patient();
        let proxy = rt.block_on(Proxy::start(server.port()));
        proxy.set_rule(|_| Fault::DropResponse);
        let device = Device::new();
        let lost = device.run(&["enroll", "--server", &proxy.url, "--code", &code]);
        assert!(
            !lost.status.success(),
            "{}: the answer never arrives",
            backend.name()
        );
        drop(proxy);
        // Long after the repeat window of the first code, a fresh one: the device proves it
        // holds the secret it enrolled with, and keeps its id.
        let asked_as = device.store().device_id();
        device.ok(&[
            "enroll",
            "--server",
            &server.url,
            "--code",
            &server.new_code(&patient),
        ]);
        assert_eq!(device.store().device_id(), asked_as, "{}", backend.name());
        log_note(&device, "2026-11-01", "after-lost-answer");
        assert_eq!(device.sync()["pushed"], 1, "{}", backend.name());

        // A revoked id cannot be proved: the diary takes a new id, and says so.
        let revoked = Device::new();
        revoked.enrol(&server, &server.new_code(&patient));
        let old_id = revoked.store().device_id().to_string();
        server.admin(&["revoke-device", "--patient", &patient, "--device", &old_id]);
        // Its diary as if the answer had been lost: enrolled on the server, not in the file.
        rusqlite::Connection::open(&revoked.db)
            .unwrap()
            .execute(
                "UPDATE sync_state SET server_url = NULL, patient_id = NULL, token = NULL",
                [],
            )
            .unwrap();
        let out = revoked.ok(&[
            "enroll",
            "--server",
            &server.url,
            "--code",
            &server.new_code(&patient),
        ]);
        assert!(
            out.contains("took the new device id"),
            "{}: {out}",
            backend.name()
        );
        assert_ne!(revoked.store().device_id().to_string(), old_id);
        log_note(&revoked, "2026-11-02", "new-id");
        revoked.sync();
        device.sync();
        assert_eq!(
            notes(&device),
            ["after-lost-answer", "new-id"].map(String::from),
            "{}",
            backend.name()
        );
    }
}

#[test]
fn an_erased_patients_device_is_told_and_keeps_its_diary() {
    for backend in Backend::all("an_erased_patients_device_is_told_and_keeps_its_diary") {
        let server = Server::start(&backend);
        let (patient, code) = server.add_patient();
        let (_, other_code) = server.add_patient();
        let (device, other) = (Device::new(), Device::new());
        device.enrol(&server, &code);
        other.enrol(&server, &other_code);
        log_note(&device, "2026-11-01", "mine");
        log_note(&other, "2026-11-01", "theirs");
        device.sync();
        other.sync();
        let refused = std::process::Command::new(binary("heeldiary-server"))
            .args(["admin", "erase-patient", "--patient", &patient])
            .args(&server.backend_args)
            .output()
            .unwrap();
        assert!(
            !refused.status.success(),
            "{}: erasure needs --yes",
            backend.name()
        );
        let record = server.admin_json(&[
            "erase-patient",
            "--patient",
            &patient,
            "--yes",
            "--by",
            "dpo",
        ]);
        assert_eq!(record["erased_by"], "dpo");
        assert_eq!(record["rows_removed"]["ops"], 1, "{record}");
        assert_eq!(record["rows_removed"]["patients"], 1, "{record}");
        let told = device.run(&["sync"]);
        let stderr = String::from_utf8_lossy(&told.stderr);
        assert!(!told.status.success());
        assert!(stderr.contains("erased"), "{}: {stderr}", backend.name());
        assert_eq!(notes(&device), ["mine"], "the local diary stays");
        // The other patient is untouched.
        assert_eq!(other.sync()["pushed"], 0);
        assert_eq!(notes(&other), ["theirs"]);
    }
}
