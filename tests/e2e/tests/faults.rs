//! Sync through a faulty network: a proxy between the devices and the real server drops
//! requests before the server sees them, drops answers after the server committed, delays
//! answers and cuts them short.
//!
//! - Each kind of fault on a push or a pull is survived by a retry; the server stores every
//!   operation exactly once (an answer lost after the commit comes back as "already on the
//!   server") and a puller gets each once.
//! - A property test: random writes on three devices of one patient with random faults on their
//!   syncs, device clocks set ahead of the server's tolerance, diaries copied to new phones
//!   (which must find out and take a new identity) and the server killed and restarted; once the
//!   faults stop, two sync rounds leave every device with the same operations and entry states
//!   as the server, no operation lost, none duplicated, nothing left to push. It tries 100
//!   schedules per backend (10,000 in the ignored long test), or `HEELDIARY_FAULT_SCHEDULES`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use heeldiary_client::{enrol, sync, ClientError, SyncOptions};
use heeldiary_core::EntryInput;
use heeldiary_e2e::proxy::{Fault, Proxy};
use heeldiary_e2e::{
    another_device, enrol_fleet, entry_states, impatient_sync, imported_diary, op_keys, runtime,
    sample_entry, server_entry_states, Backend, Fleet, Server,
};
use heeldiary_store::Store;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;
use tokio::runtime::Runtime;

/// Devices of the one patient in each property case.
const DEVICES: usize = 3;

/// Entries pushed through each single fault.
const ENTRIES: usize = 25;

fn entry(json: serde_json::Value) -> EntryInput {
    serde_json::from_value(json).expect("valid entry input")
}

/// A fault on the first request of a push, then on the first request of another device's
/// pull, is repaired by the retry: the server's count of new and repeated operations says
/// exactly what reached it before the fault, and the other device gets every operation once.
#[test]
fn every_fault_on_a_push_or_a_pull_is_survived_without_loss_or_duplicate() {
    let rt = runtime();
    for backend in
        Backend::all("every_fault_on_a_push_or_a_pull_is_survived_without_loss_or_duplicate")
    {
        let server = Server::start(&backend);
        let proxy = rt.block_on(Proxy::start(server.port()));
        // What the server's answers to the push count: (new, already stored, retries).
        let faults = [
            // Never reached the server: the retry stores everything.
            (Fault::DropRequest, (ENTRIES, 0, 1)),
            // Committed, then the answer was lost: the retry finds everything stored.
            (Fault::DropResponse, (0, ENTRIES, 1)),
            (Fault::CutResponse(0), (0, ENTRIES, 1)),
            (Fault::CutResponse(20), (0, ENTRIES, 1)),
            // Slow but whole: no retry.
            (Fault::Delay(Duration::from_millis(100)), (ENTRIES, 0, 0)),
        ];
        for (fault, expected) in faults {
            let at = format!("{}, {fault:?}", backend.name());
            let mut writer =
                imported_diary(&rt, &server, &proxy.url, (0..ENTRIES).map(sample_entry));
            proxy.script([fault]);
            let pushed = rt
                .block_on(sync(&mut writer, &impatient_sync(3)))
                .unwrap_or_else(|e| panic!("{at}: push: {e}"));
            assert_eq!(
                (pushed.pushed, pushed.already_on_server, pushed.retries),
                expected,
                "{at}"
            );
            assert_eq!(writer.unpushed(1).unwrap(), vec![], "{at}");

            // The reader has nothing to push: its first request is a pull.
            let mut reader = another_device(&rt, &server, &writer, &proxy.url);
            proxy.script([fault]);
            let pulled = rt
                .block_on(sync(&mut reader, &impatient_sync(3)))
                .unwrap_or_else(|e| panic!("{at}: pull: {e}"));
            assert_eq!(
                (pulled.pulled, pulled.retries),
                (ENTRIES, expected.2),
                "{at}"
            );
            assert_eq!(op_keys(&reader), op_keys(&writer), "{at}");
        }
    }
}

/// The server registers the device and uses up the code, then the answer is lost: the client's
/// retry presents the same code for the same device, and must still come away with a token.
/// Otherwise the code is spent, the device id is taken, and the diary can never enrol.
#[test]
fn an_enrolment_whose_answer_is_lost_still_enrols_the_device() {
    let rt = runtime();
    for backend in Backend::all("an_enrolment_whose_answer_is_lost_still_enrols_the_device") {
        let server = Server::start(&backend);
        let proxy = rt.block_on(Proxy::start(server.port()));
        let (_, code) = server.add_patient();
        let mut store = Store::open_in_memory().unwrap();
        store.log(sample_entry(0)).unwrap();
        proxy.script([Fault::DropResponse]);
        let enrolled = rt.block_on(enrol(&mut store, &proxy.url, &code, None));
        assert!(enrolled.is_ok(), "{}: {enrolled:?}", backend.name());
        let synced = rt.block_on(sync(&mut store, &impatient_sync(3)));
        assert_eq!(synced.map(|s| s.pushed).ok(), Some(1), "{}", backend.name());
    }
}

/// One step of a property case.
#[derive(Debug, Clone)]
enum Step {
    /// A new entry on `device`.
    Log { device: usize, day: u32, pain: u8 },
    /// A change to one field of one of the device's live entries (`pick` modulo their number).
    Edit {
        device: usize,
        pick: usize,
        field: &'static str,
        value: u8,
    },
    /// Deleting one of the device's live entries.
    Delete { device: usize, pick: usize },
    /// A sync of `device` whose requests get `faults` in order (then pass).
    Sync { device: usize, faults: Vec<Fault> },
    /// The device's clock is set this many minutes ahead of the true time (0 puts it right):
    /// beyond the server's tolerance, the device is told to correct itself.
    Clock { device: usize, ahead_minutes: i64 },
    /// The device's diary is copied to a new phone, which joins the devices (a restored
    /// backup, a phone transfer): both go on writing under the same device id until one finds
    /// out.
    Copy { device: usize },
    /// The server is killed (SIGKILL) and started again on the same data and port.
    Restart,
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        2 => Just(Fault::Pass),
        2 => Just(Fault::DropRequest),
        2 => Just(Fault::DropResponse),
        1 => (0u64..100).prop_map(|ms| Fault::Delay(Duration::from_millis(ms))),
        2 => (0usize..800).prop_map(Fault::CutResponse),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let device = 0..DEVICES;
    prop_oneof![
        3 => (device.clone(), 1u32..=28, 0u8..=10)
            .prop_map(|(device, day, pain)| Step::Log { device, day, pain }),
        3 => (
            device.clone(),
            any::<usize>(),
            prop::sample::select(vec!["first_step_pain", "sitting_pain", "note"]),
            0u8..=10,
        )
            .prop_map(|(device, pick, field, value)| Step::Edit { device, pick, field, value }),
        1 => (device.clone(), any::<usize>())
            .prop_map(|(device, pick)| Step::Delete { device, pick }),
        3 => (device.clone(), prop::collection::vec(fault(), 0..8))
            .prop_map(|(device, faults)| Step::Sync { device, faults }),
        1 => (device.clone(), prop::sample::select(vec![0i64, 1, 10, 30]))
            .prop_map(|(device, ahead_minutes)| Step::Clock { device, ahead_minutes }),
        1 => device.prop_map(|device| Step::Copy { device }),
        1 => Just(Step::Restart),
    ]
}

/// Applies a step that stays on the device; a step naming an entry the device does not have is
/// skipped.
fn write(store: &mut Store, step: &Step) {
    let live = |store: &Store, pick: usize| {
        let entries = store.list(None, None).unwrap();
        (!entries.is_empty()).then(|| entries[pick % entries.len()].id)
    };
    match *step {
        Step::Log { day, pain, .. } => {
            store
                .log(entry(
                    json!({ "day": format!("2026-02-{day:02}"), "first_step_pain": pain }),
                ))
                .unwrap();
        }
        Step::Edit {
            pick, field, value, ..
        } => {
            if let Some(id) = live(store, pick) {
                let value = match field {
                    "note" => json!(format!("note {value}")),
                    _ => json!(value),
                };
                store.edit(id, entry(json!({ field: value }))).unwrap();
            }
        }
        Step::Delete { pick, .. } => {
            if let Some(id) = live(store, pick) {
                store.delete(id).unwrap();
            }
        }
        Step::Clock { ahead_minutes, .. } => {
            let ahead = chrono::Duration::minutes(ahead_minutes);
            store.set_time_source(Arc::new(move || {
                chrono::Local::now().fixed_offset() + ahead
            }));
        }
        Step::Sync { .. } | Step::Copy { .. } | Step::Restart => {
            unreachable!("not a local write")
        }
    }
}

/// The patient's whole feed as the server hands it to a new device of the patient.
fn pulled_from_server(rt: &Runtime, server: &Server, device: &Store) -> Store {
    let mut fresh = another_device(rt, server, device, &server.url);
    rt.block_on(sync(&mut fresh, &SyncOptions::default()))
        .expect("a fresh device pulls without faults");
    fresh
}

/// Runs one property case on a new patient and checks convergence once the faults stop.
fn converges_after_faults(rt: &Runtime, server: &mut Server, proxy: &Proxy, steps: &[Step]) {
    let one_patient = Fleet {
        patients: 1,
        devices_per_patient: DEVICES,
    };
    let mut devices: Vec<Store> = enrol_fleet(rt, server, &proxy.url, one_patient)
        .into_iter()
        .flatten()
        .collect();
    // Small batches and pages, so that one sync is several requests and a fault can strike in
    // the middle of a push or a pull.
    let options = SyncOptions {
        push_batch: 3,
        pull_limit: 4,
        ..impatient_sync(3)
    };
    let copies = tempfile::tempdir().unwrap();
    for step in steps {
        match step {
            Step::Sync { device, faults } => {
                let n = devices.len();
                proxy.script(faults.iter().copied());
                // A sync may fail while faults last; it must fail as a network fault, never by
                // misreading a cut-short answer.
                if let Err(e) = rt.block_on(sync(&mut devices[*device % n], &options)) {
                    assert!(
                        matches!(e, ClientError::Network { .. }),
                        "sync through {faults:?} failed with {e:?}"
                    );
                }
            }
            Step::Log { device, .. }
            | Step::Edit { device, .. }
            | Step::Delete { device, .. }
            | Step::Clock { device, .. } => {
                let n = devices.len();
                write(&mut devices[*device % n], step)
            }
            Step::Copy { device } => {
                let path = copies
                    .path()
                    .join(format!("copy-{}.sqlite3", devices.len()));
                devices[*device % devices.len()].back_up_to(&path).unwrap();
                devices.push(Store::open(&path).unwrap());
            }
            Step::Restart => {
                let port = server.port();
                server.kill();
                *server =
                    Server::start_on(server.backend_args.clone(), &format!("127.0.0.1:{port}"));
            }
        }
    }
    proxy.pass_all();
    for round in 0..2 {
        for (i, device) in devices.iter_mut().enumerate() {
            rt.block_on(sync(device, &options))
                .unwrap_or_else(|e| panic!("round {round}, device {i}: {e}"));
        }
    }

    // A copy that never wrote keeps the original's id and its operations: count each once.
    let written = devices
        .iter()
        .flat_map(|d| {
            op_keys(d)
                .into_iter()
                .filter(|(id, _)| *id == d.device_id())
                .collect::<Vec<_>>()
        })
        .collect::<HashSet<_>>()
        .len();
    let server_feed = pulled_from_server(rt, server, &devices[0]);
    let server_ops = op_keys(&server_feed);
    assert_eq!(server_ops.len(), written, "the server lost an operation");
    let states = entry_states(&server_feed);
    let merged_on_server = rt.block_on(server_entry_states(
        &server.url,
        &devices[0].enrolment().unwrap().token,
        states.keys().copied(),
    ));
    assert_eq!(
        merged_on_server, states,
        "the server's merge differs from its feed"
    );
    for (i, device) in devices.iter().enumerate() {
        assert_eq!(op_keys(device), server_ops, "device {i}'s operations");
        assert_eq!(entry_states(device), states, "device {i}'s entries");
        assert_eq!(
            device.unpushed(1).unwrap(),
            vec![],
            "device {i} has unpushed operations"
        );
    }
}

/// Guards the property test against passing vacuously: faults struck both pushes and pulls
/// somewhere in the run. (Which kinds struck is up to chance; every kind on both is checked by
/// the test above.)
fn assert_faults_struck_pushes_and_pulls(proxy: &Proxy) {
    let struck: HashSet<String> = proxy
        .exchanges()
        .iter()
        .filter(|e| e.fault != Fault::Pass)
        .map(|e| e.request.path().to_string())
        .collect();
    for path in ["/v1/push", "/v1/pull"] {
        assert!(struck.contains(path), "no fault on {path} in the whole run");
    }
}

/// How many fault schedules a property run tries: `HEELDIARY_FAULT_SCHEDULES` when set (the
/// long campaign), else `default`.
fn schedules(default: u32) -> u32 {
    std::env::var("HEELDIARY_FAULT_SCHEDULES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

#[test]
fn devices_converge_with_the_server_after_random_faults() {
    converge_after_random_schedules(schedules(100));
}

#[test]
#[ignore = "long: ten thousand fault schedules per backend"]
fn devices_converge_with_the_server_after_random_faults_long() {
    converge_after_random_schedules(schedules(10_000));
}

/// Runs `cases` random fault schedules on every backend.
fn converge_after_random_schedules(cases: u32) {
    let rt = runtime();
    for backend in Backend::all("devices_converge_with_the_server_after_random_faults") {
        // Behind a lock: the test runner's closure may not hold it mutably, and a schedule
        // restarts it.
        let server = std::sync::Mutex::new(Server::start(&backend));
        let proxy = rt.block_on(Proxy::start(server.lock().unwrap().port()));
        let mut runner = TestRunner::new(Config {
            cases,
            // Each case runs real syncs; a failure is worth a few shrinking steps, not hundreds.
            max_shrink_iters: 64,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&prop::collection::vec(step(), 5..40), |steps| {
                let mut server = server.lock().unwrap_or_else(|p| p.into_inner());
                converges_after_faults(&rt, &mut server, &proxy, &steps);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{}: {e}", backend.name()));
        assert_faults_struck_pushes_and_pulls(&proxy);
    }
}
