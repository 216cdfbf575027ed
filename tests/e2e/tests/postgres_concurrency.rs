//! Real parallel load on the server over PostgreSQL: 10 patients with 5 devices each, every
//! device writing and syncing at the same time as all the others, for several rounds. Afterwards
//! every device holds exactly the server's operations and entry states, the server holds each
//! operation once with gap-free cursors, and no patient sees another's operations.
//!
//! Needs `HEELDIARY_TEST_DATABASE_URL` (each run makes its own schema there) and the binaries
//! (`cargo build --workspace --bins`); without the URL it says loudly that it skipped.

use std::collections::{BTreeMap, BTreeSet};

use heeldiary_client::{sync, SyncOptions};
use heeldiary_core::wire::{PullResponse, PulledOp};
use heeldiary_core::{EntryInput, EntryState};
use heeldiary_e2e::{
    enrol_fleet, entry_states, op_keys, runtime, sample_entry, server_entry_states, Backend, Fleet,
    Server,
};
use heeldiary_store::Store;
use serde_json::json;
use uuid::Uuid;

const FLEET: Fleet = Fleet {
    patients: 10,
    devices_per_patient: 5,
};
/// Rounds in which every device writes and then syncs, all at once.
const ROUNDS: usize = 4;
/// Entries each device logs per round.
const LOGS_PER_ROUND: usize = 3;

/// One device of the test: its diary, its patient, and how many operations it wrote itself.
struct Device {
    store: Store,
    patient: usize,
    written: usize,
}

/// The writes of device `d` in round `round`: new entries, an edit of an entry it knows (often
/// one another device wrote, so edits of one entry race across devices), and now and then a
/// delete. Returns how many operations they made.
fn write(device: &mut Device, d: usize, round: usize) -> usize {
    let store = &mut device.store;
    let before = own_ops(store);
    for i in 0..LOGS_PER_ROUND {
        store
            .log(sample_entry(d * 1_000 + round * 10 + i))
            .expect("log");
    }
    let live = store.list(None, None).expect("list");
    let target = live[(d * 7 + round * 3) % live.len()].id;
    let field = ["first_step_pain", "rest_pain", "sitting_pain"][(d + round) % 3];
    let edit: EntryInput =
        serde_json::from_value(json!({ field: (d + round) % 11 })).expect("valid edit");
    store.edit(target, edit).expect("edit");
    if (d + round) % 4 == 0 {
        let victim = live[(d + round * 5) % live.len()].id;
        if victim != target {
            store.delete(victim).expect("delete");
        }
    }
    own_ops(store) - before
}

/// Operations this diary wrote itself.
fn own_ops(store: &Store) -> usize {
    let me = store.device_id();
    store
        .all_ops()
        .expect("operation log")
        .iter()
        .filter(|op| op.device_id == me)
        .count()
}

/// Syncs every device at once; each device must succeed (the client retries 503s itself).
async fn sync_all(devices: Vec<Device>) -> Vec<Device> {
    let tasks: Vec<_> = devices
        .into_iter()
        .map(|mut device| {
            tokio::spawn(async move {
                sync(&mut device.store, &SyncOptions::default())
                    .await
                    .expect("sync under load");
                device
            })
        })
        .collect();
    let mut synced = Vec::with_capacity(tasks.len());
    for task in tasks {
        synced.push(task.await.expect("device task"));
    }
    synced
}

/// The patient's whole feed on the server, page by page, read with `token`.
async fn server_feed(http: &reqwest::Client, url: &str, token: &str) -> Vec<PulledOp> {
    let mut feed = Vec::new();
    let mut after = 0;
    loop {
        let page: PullResponse = http
            .get(format!("{url}/v1/pull?after={after}&limit=500"))
            .bearer_auth(token)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("pull")
            .json()
            .await
            .expect("pull answer");
        feed.extend(page.ops);
        after = page.next_cursor;
        if !page.has_more {
            return feed;
        }
    }
}

#[test]
fn fifty_devices_of_ten_patients_push_and_pull_in_parallel_and_converge() {
    let Some(backend) =
        Backend::postgres("fifty_devices_of_ten_patients_push_and_pull_in_parallel_and_converge")
    else {
        return;
    };
    let server = Server::start(&backend);
    let rt = runtime();
    let mut devices: Vec<Device> = enrol_fleet(&rt, &server, &server.url, FLEET)
        .into_iter()
        .enumerate()
        .flat_map(|(patient, stores)| {
            stores.into_iter().map(move |store| Device {
                store,
                patient,
                written: 0,
            })
        })
        .collect();

    for round in 0..ROUNDS {
        for (d, device) in devices.iter_mut().enumerate() {
            device.written += write(device, d, round);
        }
        devices = rt.block_on(sync_all(devices));
    }
    // Two quiet rounds: the first pushes what is left, the second brings every pull up to date.
    devices = rt.block_on(sync_all(devices));
    devices = rt.block_on(sync_all(devices));

    let http = reqwest::Client::new();
    let mut all_keys = BTreeSet::new();
    for patient in 0..FLEET.patients {
        let mine: Vec<&Device> = devices.iter().filter(|d| d.patient == patient).collect();
        assert_eq!(mine.len(), FLEET.devices_per_patient);
        let token = mine[0].store.enrolment().expect("enrolment").token;
        let feed = rt.block_on(server_feed(&http, &server.url, &token));

        // Each operation once, in gap-free cursor order, exactly as many as were written.
        let cursors: Vec<u64> = feed.iter().map(|p| p.cursor).collect();
        assert_eq!(cursors, (1..=feed.len() as u64).collect::<Vec<_>>());
        let keys: BTreeSet<(Uuid, u64)> = feed
            .iter()
            .map(|p| (p.op.device_id, p.op.device_seq))
            .collect();
        assert_eq!(keys.len(), feed.len(), "an operation stored twice");
        let written: usize = mine.iter().map(|d| d.written).sum();
        assert_eq!(feed.len(), written, "patient {patient}: ops lost or added");
        // Only this patient's devices wrote into this feed.
        let own_devices: BTreeSet<Uuid> = mine.iter().map(|d| d.store.device_id()).collect();
        assert!(keys.iter().all(|(device, _)| own_devices.contains(device)));
        assert!(all_keys.is_disjoint(&keys), "a feed shared across patients");
        all_keys.extend(keys.iter().copied());

        // Every device holds exactly the server's operations and entry states.
        let ids: BTreeSet<Uuid> = feed.iter().map(|p| p.op.entry_id).collect();
        let server_states: BTreeMap<Uuid, EntryState> =
            rt.block_on(server_entry_states(&server.url, &token, ids));
        for device in &mine {
            assert_eq!(
                op_keys(&device.store),
                keys,
                "patient {patient}: ops differ"
            );
            assert_eq!(
                entry_states(&device.store),
                server_states,
                "patient {patient}: entry states differ"
            );
        }
    }
    let total: usize = devices.iter().map(|d| d.written).sum();
    assert_eq!(all_keys.len(), total);
    eprintln!(
        "{} devices of {} patients wrote {total} operations; all converged",
        devices.len(),
        FLEET.patients
    );
}
