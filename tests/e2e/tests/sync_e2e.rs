//! Devices of one patient converge through the real `heeldiary-server` binary, on every backend
//! this run can reach: enrolment, logging, sync, concurrent edits of the same and of different
//! fields, deletes, patient isolation, revoked tokens and a device clock that runs ahead.

use std::sync::Arc;

use heeldiary_e2e::{Backend, Device, Server};
use serde_json::{json, Value};

fn entry<'a>(entries: &'a [Value], id: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("entry {id} missing"))
}

#[test]
fn devices_of_one_patient_converge_and_other_patients_see_nothing() {
    for backend in Backend::all("devices_of_one_patient_converge_and_other_patients_see_nothing") {
        let server = Server::start(&backend);
        let (patient, code_a) = server.add_patient();
        let (_, code_c) = server.add_patient();
        let (phone, tablet, stranger) = (Device::new(), Device::new(), Device::new());
        phone.enrol(&server, &code_a);
        tablet.enrol(&server, &server.new_code(&patient));
        stranger.enrol(&server, &code_c);
        let reused = Device::new().run(&["enroll", "--server", &server.url, "--code", &code_a]);
        assert!(
            !reused.status.success(),
            "{}: a used code is refused",
            backend.name()
        );
        let again = phone.run(&[
            "enroll",
            "--server",
            &server.url,
            "--code",
            &server.new_code(&patient),
        ]);
        let stderr = String::from_utf8_lossy(&again.stderr);
        assert!(
            stderr.contains("a diary syncs with one server as one patient"),
            "{}: one server per diary",
            backend.name()
        );
        // The advice is the command line's own, after the client's message.
        assert!(
            stderr.contains("one patient: start a new diary file (--db) to enrol elsewhere"),
            "{stderr}"
        );

        let e1 = phone.log(&[
            "--date",
            "2026-11-01",
            "--first-step-pain",
            "7",
            "--heel-tender",
        ]);
        let e2 = phone.log(&["--date", "2026-11-02", "--first-step-pain", "6"]);
        phone.log(&["--date", "2026-11-03", "--first-step-pain", "5"]);
        assert_eq!(phone.sync()["pushed"], 3);
        assert_eq!(tablet.sync()["pulled"], 3);
        assert_eq!(phone.entries(), tablet.entries());

        // Concurrent edits: different fields both survive; on the same field the later wins.
        phone.ok(&["edit", &e1, "--first-step-pain", "2", "--rest-pain", "3"]);
        tablet.ok(&["edit", &e1, "--sitting-pain", "5", "--rest-pain", "8"]);
        for device in [&phone, &tablet, &phone, &tablet] {
            device.sync();
        }
        for device in [&phone, &tablet] {
            let entries = device.entries();
            let merged = entry(&entries, &e1);
            assert_eq!(
                (
                    merged["first_step_pain"].clone(),
                    merged["sitting_pain"].clone(),
                    merged["rest_pain"].clone()
                ),
                (json!(2), json!(5), json!(8)),
                "{}",
                backend.name()
            );
        }
        // The losing value stays in the history on every device.
        let history: Value = serde_json::from_str(&phone.ok(&["show", &e1, "--json"])).unwrap();
        let rest_values: Vec<(Value, Value)> = history["history"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|h| h["changes"].as_array().unwrap().clone())
            .filter(|c| c["field"] == "rest_pain")
            .map(|c| (c["value"].clone(), c["current"].clone()))
            .collect();
        assert_eq!(
            rest_values,
            vec![(json!(3), json!(false)), (json!(8), json!(true))]
        );

        phone.ok(&["delete", &e2]);
        phone.sync();
        tablet.sync();
        assert!(
            tablet.entries().iter().all(|e| e["id"] != e2.as_str()),
            "delete propagates"
        );
        assert_eq!(phone.entries(), tablet.entries());

        assert_eq!(stranger.sync()["pulled"], 0);
        assert!(stranger.entries().is_empty());

        // Repeated syncs change nothing; a fresh device sees exactly the current diary.
        assert_eq!(phone.sync()["pushed"], 0);
        let fresh = Device::new();
        fresh.enrol(&server, &server.new_code(&patient));
        fresh.sync();
        assert_eq!(fresh.entries(), phone.entries());
        assert_eq!(fresh.entries().len(), 2);
    }
}

#[test]
fn a_revoked_or_forged_token_is_refused() {
    for backend in Backend::all("a_revoked_or_forged_token_is_refused") {
        let server = Server::start(&backend);
        let (patient, code) = server.add_patient();
        let device = Device::new();
        device.enrol(&server, &code);
        device.log(&["--date", "2026-11-01", "--rest-pain", "2"]);
        device.sync();

        let mut store = device.store();
        let mut enrolment = store.enrolment().unwrap();
        let genuine = enrolment.token.clone();
        enrolment.token = format!("{}0", &genuine[..genuine.len() - 1]);
        if enrolment.token == genuine {
            enrolment.token = format!("{}1", &genuine[..genuine.len() - 1]);
        }
        store.set_enrolment(&enrolment).unwrap();
        let out = device.run(&["sync"]);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("401"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        enrolment.token = genuine;
        store.set_enrolment(&enrolment).unwrap();
        device.sync();
        server.admin(&[
            "revoke-device",
            "--patient",
            &patient,
            "--device",
            &store.device_id().to_string(),
        ]);
        let out = device.run(&["sync"]);
        assert!(
            !out.status.success(),
            "{}: a revoked device cannot sync",
            backend.name()
        );
    }
}

#[test]
fn a_clock_far_ahead_is_corrected_and_does_not_win_forever() {
    for backend in Backend::all("a_clock_far_ahead_is_corrected_and_does_not_win_forever") {
        let server = Server::start(&backend);
        let (patient, code) = server.add_patient();
        let (fast, honest) = (Device::new(), Device::new());
        fast.enrol(&server, &code);
        honest.enrol(&server, &server.new_code(&patient));

        let id = honest.log(&["--first-step-pain", "4"]);
        honest.sync();
        fast.sync();

        // The fast device's clock runs two hours ahead when it edits.
        let mut store = fast.store();
        store.set_time_source(Arc::new(|| {
            chrono::Local::now().fixed_offset() + chrono::Duration::hours(2)
        }));
        store
            .edit(
                id.parse().unwrap(),
                serde_json::from_value(json!({"first_step_pain": 9})).unwrap(),
            )
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let summary = runtime
            .block_on(heeldiary_client::sync(&mut store, &Default::default()))
            .unwrap();
        assert_eq!(
            (summary.restamped, summary.pushed),
            (1, 1),
            "{}",
            backend.name()
        );
        assert!(store.sync_state().unwrap().clock_offset_ms < -3_500_000);

        // A later edit on the honest device now wins, as it should.
        honest.sync();
        honest.ok(&["edit", &id, "--first-step-pain", "3"]);
        honest.sync();
        runtime
            .block_on(heeldiary_client::sync(&mut store, &Default::default()))
            .unwrap();
        assert_eq!(
            store.get(id.parse().unwrap()).unwrap().first_step_pain,
            Some(3)
        );
        assert_eq!(entry(&honest.entries(), &id)["first_step_pain"], 3);
    }
}

#[test]
fn a_push_the_server_refuses_does_not_stop_the_pull() {
    for backend in Backend::all("a_push_the_server_refuses_does_not_stop_the_pull") {
        let server = Server::start(&backend);
        let (patient, code) = server.add_patient();
        let (broken, other) = (Device::new(), Device::new());
        broken.enrol(&server, &code);
        other.enrol(&server, &server.new_code(&patient));
        other.log(&["--date", "2026-11-01", "--rest-pain", "2"]);
        let before = chrono::Utc::now();
        other.sync();
        let synced = other.store().sync_state().unwrap().last_sync_at;
        assert!(
            synced.is_some_and(|at| at >= before && at <= chrono::Utc::now()),
            "{}: a sync that went through is recorded as the last one: {synced:?}",
            backend.name()
        );

        // An operation written by an older, laxer build: its note holds a NUL.
        let device = broken.store().device_id();
        // In the file's binary patch form: field code 20 (note), a string (tag 5) of 3 bytes.
        let conn = rusqlite::Connection::open(&broken.db).unwrap();
        let entry = uuid::Uuid::now_v7();
        conn.execute_batch("BEGIN").unwrap();
        conn.execute(
            "INSERT INTO devices (device_id) VALUES (?1) ON CONFLICT DO NOTHING",
            [device.as_bytes().as_slice()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO ops (entry_id, device_no, device_seq, hlc_ms, hlc_counter, patch)
             SELECT ?1, device_no, 1, 1000, 0, ?2 FROM devices WHERE device_id = ?3",
            rusqlite::params![
                entry.as_bytes().as_slice(),
                [20u8, 5, 3, b'a', 0, b'b'].as_slice(),
                device.as_bytes().as_slice(),
            ],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO outbox (device_seq, entry_id) VALUES (1, ?1)",
            [entry.as_bytes().as_slice()],
        )
        .unwrap();
        conn.execute_batch("UPDATE device SET last_seq = 1; COMMIT")
            .unwrap();
        let out = broken.run(&["sync"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("422") && err.contains("ops[0].patch.note"),
            "{}: {err}",
            backend.name()
        );
        assert_eq!(
            broken.entries().len(),
            1,
            "{}: the pull ran all the same",
            backend.name()
        );
        assert_eq!(
            broken.store().sync_state().unwrap().last_sync_at,
            None,
            "{}: a sync whose push was refused is not recorded as one",
            backend.name()
        );
    }
}
