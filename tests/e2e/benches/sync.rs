//! Sync against the real release server, in one run:
//!
//! - the baseline: the store's local import of 100,000 entries into a diary file (entries/s);
//! - the first sync of that diary from its device (a push of 100,000 entries), and the first
//!   sync of a fresh second device of the same patient (a pull of them), each in entries/s and as
//!   a ratio to the import;
//! - a daily sync: 200 devices (100 patients with two devices each) hold a week of entries
//!   already synced, each logs one more, then all sync, at most 32 at a time: median and 99th
//!   percentile of one device's whole sync.
//!
//! Devices run the library client with its default options, on the same machine as the server,
//! so the figures include the devices' own work. Every backend of this run is measured: SQLite
//! always, PostgreSQL when `HEELDIARY_TEST_DATABASE_URL` names a server.
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p heeldiary-e2e --bench sync`
//! (`-- --entries N` changes the size of the first sync).

use std::path::Path;
use std::time::{Duration, Instant};

use heeldiary_client::{enrol, sync, SyncOptions};
use heeldiary_e2e::{
    enrol_fleet, quantile, runtime, sample_entry, sync_all, Backend, Fleet, Server,
};
use heeldiary_store::Store;
use tokio::runtime::Runtime;

/// The devices of the daily sync.
const FLEET: Fleet = Fleet {
    patients: 100,
    devices_per_patient: 2,
};
/// Entries each device logged and synced before the measured day.
const PRIOR_ENTRIES: usize = 7;
/// Devices syncing at the same moment.
const CONCURRENT_SYNCS: usize = 32;

/// What one backend measured.
struct Figures {
    import: Duration,
    push: Duration,
    pull: Duration,
    daily_p50: Duration,
    daily_p99: Duration,
    daily_syncs: usize,
}

fn main() {
    // `cargo bench` passes `--bench`; only `--entries N` is read.
    let entries = std::env::args()
        .skip_while(|a| a != "--entries")
        .nth(1)
        .map_or(100_000, |n| n.parse().expect("--entries takes a number"));
    let rt = runtime();
    for backend in Backend::all("benchmark sync") {
        let server = Server::start(&backend);
        let figures = measure(&rt, &server, backend.name(), entries);
        print(backend.name(), entries, &figures);
    }
}

fn measure(rt: &Runtime, server: &Server, backend: &str, entries: usize) -> Figures {
    let dir = tempfile::tempdir().expect("temp dir");
    eprintln!("{backend}: import, push and pull of {entries} entries…");
    let (_, code) = server.add_patient();
    let mut first = diary_file(rt, &dir.path().join("first.sqlite3"), server, &code);
    let started = Instant::now();
    first
        .import((0..entries).map(sample_entry), |_| {})
        .expect("import");
    let import = started.elapsed();

    let (pushed, push) = timed_sync(rt, &mut first);
    assert_eq!(pushed.pushed, entries, "every entry pushed once");

    let patient = first.enrolment().expect("enrolment").patient_id.to_string();
    let code = server.new_code(&patient);
    let mut second = diary_file(rt, &dir.path().join("second.sqlite3"), server, &code);
    let (pulled, pull) = timed_sync(rt, &mut second);
    assert_eq!(pulled.pulled, entries, "every entry pulled once");

    eprintln!("{backend}: daily sync of {} devices…", FLEET.devices());
    let mut daily = daily_syncs(rt, server);
    Figures {
        import,
        push,
        pull,
        daily_p50: quantile(&mut daily, 0.50),
        daily_p99: quantile(&mut daily, 0.99),
        daily_syncs: daily.len(),
    }
}

/// A diary file at `path`, enrolled with `code`.
fn diary_file(rt: &Runtime, path: &Path, server: &Server, code: &str) -> Store {
    let mut store = Store::open(path).expect("diary file");
    rt.block_on(enrol(&mut store, &server.url, code, None))
        .expect("device enrols");
    store
}

fn timed_sync(rt: &Runtime, store: &mut Store) -> (heeldiary_client::SyncSummary, Duration) {
    let started = Instant::now();
    let summary = rt
        .block_on(sync(store, &SyncOptions::default()))
        .expect("sync");
    (summary, started.elapsed())
}

/// Every device's sync on the measured day, after a week of entries synced beforehand.
fn daily_syncs(rt: &Runtime, server: &Server) -> Vec<Duration> {
    let mut stores: Vec<Store> = enrol_fleet(rt, server, &server.url, FLEET)
        .into_iter()
        .flatten()
        .collect();
    let mut next_entry = 0;
    let mut log_on_each = |stores: &mut [Store], count: usize| {
        for store in stores {
            for _ in 0..count {
                store.log(sample_entry(next_entry)).expect("log");
                next_entry += 1;
            }
        }
    };
    log_on_each(&mut stores, PRIOR_ENTRIES);
    // Twice, so that every device also holds its sibling's week before the measured day.
    for _ in 0..2 {
        stores = rt.block_on(sync_all(stores, CONCURRENT_SYNCS)).0;
    }
    log_on_each(&mut stores, 1);
    rt.block_on(sync_all(stores, CONCURRENT_SYNCS)).1
}

fn print(backend: &str, entries: usize, f: &Figures) {
    let rate = |d: Duration| entries as f64 / d.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!();
    println!("sync benchmark, {backend} server (release), {entries} entries");
    println!(
        "{:<40} {:>10} {:>12} {:>10}",
        "", "seconds", "entries/s", "vs import"
    );
    for (what, took) in [
        ("local import into the diary (baseline)", f.import),
        ("first sync of device A (push)", f.push),
        ("first sync of fresh device B (pull)", f.pull),
    ] {
        println!(
            "{what:<40} {:>10.2} {:>12.0} {:>10.3}",
            took.as_secs_f64(),
            rate(took),
            rate(took) / rate(f.import)
        );
    }
    println!(
        "daily sync of {} devices ({} patients x {}), \
         {CONCURRENT_SYNCS} at a time: median {:.1} ms, p99 {:.1} ms",
        f.daily_syncs,
        FLEET.patients,
        FLEET.devices_per_patient,
        ms(f.daily_p50),
        ms(f.daily_p99)
    );
}
