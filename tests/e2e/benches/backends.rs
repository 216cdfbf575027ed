//! The server on SQLite and on PostgreSQL, side by side, through the real release binary:
//!
//! - push throughput: one device pushes 20,000 new entries in batches of 500 (operations the
//!   server stores per second, HTTP and JSON included);
//! - daily sync: 200 devices of 100 patients each log one or two entries, then sync, at most 32
//!   at a time, for two days; median and 99th percentile of one device's whole sync.
//!
//! Run with `cargo build --release --workspace --bins && cargo bench -p heeldiary-e2e --bench
//! backends`. PostgreSQL is measured when `HEELDIARY_TEST_DATABASE_URL` names a server (a fresh
//! database is made and dropped); otherwise its row says skipped.

use std::time::{Duration, Instant};

use heeldiary_core::wire::{PushRequest, PushResponse, PushStatus};
use heeldiary_e2e::{
    enrol_fleet, enrolled_store, quantile, runtime, sample_entry, sync_all, Backend, Fleet, Server,
};
use heeldiary_store::Store;
use tokio::runtime::Runtime;

/// Entries pushed by the one device of the throughput run.
const PUSH_ENTRIES: usize = 20_000;
/// Operations per push request (the client's default batch).
const PUSH_BATCH: usize = 500;
/// The devices of the daily-sync run.
const FLEET: Fleet = Fleet {
    patients: 100,
    devices_per_patient: 2,
};
/// Devices syncing at the same moment.
const CONCURRENT_SYNCS: usize = 32;
/// Days of the daily-sync run; each day every device logs and syncs once.
const DAYS: usize = 2;

/// What one backend measured.
struct Measured {
    ops_per_sec: f64,
    sync_p50: Duration,
    sync_p99: Duration,
    samples: usize,
}

fn main() {
    // The binaries are looked up next to this executable, in target/release.
    println!(
        "heeldiary server backends (needs release binaries: cargo build --release --workspace --bins)"
    );
    let rt = runtime();
    let mut rows = vec![("sqlite", Some(measure(&rt, &Backend::sqlite())))];
    let postgres = Backend::postgres("benchmark backends");
    rows.push(("postgres", postgres.as_ref().map(|b| measure(&rt, b))));

    println!();
    println!(
        "{:<9} {:>14} {:>16} {:>16} {:>9}",
        "backend", "push ops/s", "daily sync p50", "daily sync p99", "syncs"
    );
    for (name, measured) in rows {
        match measured {
            Some(m) => println!(
                "{name:<9} {:>14.0} {:>13.1} ms {:>13.1} ms {:>9}",
                m.ops_per_sec,
                millis(m.sync_p50),
                millis(m.sync_p99),
                m.samples
            ),
            None => println!("{name:<9} skipped: set HEELDIARY_TEST_DATABASE_URL to measure it"),
        }
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn measure(rt: &Runtime, backend: &Backend) -> Measured {
    let server = Server::start(backend);
    eprintln!("{}: push throughput…", backend.name());
    let ops_per_sec = rt.block_on(push_throughput(&server));
    eprintln!("{}: daily sync…", backend.name());
    let mut latencies = daily_syncs(rt, &server);
    Measured {
        ops_per_sec,
        sync_p50: quantile(&mut latencies, 0.50),
        sync_p99: quantile(&mut latencies, 0.99),
        samples: latencies.len(),
    }
}

/// Operations per second the server stores from one device pushing batches back to back. Only
/// the push requests are timed, not reading the batches from the diary.
async fn push_throughput(server: &Server) -> f64 {
    let (_, code) = server.add_patient();
    let mut store = enrolled_store(&server.url, &code).await;
    store
        .import((0..PUSH_ENTRIES).map(sample_entry), |_| {})
        .expect("import");
    let token = store.enrolment().expect("enrolment").token;
    let http = reqwest::Client::new();
    let mut pushing = Duration::ZERO;
    let mut stored = 0;
    loop {
        let ops = store.unpushed(PUSH_BATCH).expect("unpushed");
        let Some(last) = ops.last().map(|op| op.device_seq) else {
            break;
        };
        let started = Instant::now();
        let answer: PushResponse = http
            .post(format!("{}/v1/push", server.url))
            .bearer_auth(&token)
            .json(&PushRequest { ops })
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("push")
            .json()
            .await
            .expect("push answer");
        pushing += started.elapsed();
        stored += answer
            .results
            .iter()
            .filter(|r| r.status == PushStatus::Applied)
            .count();
        store.mark_pushed(last).expect("mark pushed");
    }
    assert_eq!(stored, PUSH_ENTRIES, "every entry stored once");
    stored as f64 / pushing.as_secs_f64()
}

/// Latency of every device's sync over [`DAYS`] days, after a first sync that is not counted.
fn daily_syncs(rt: &Runtime, server: &Server) -> Vec<Duration> {
    let mut stores: Vec<Store> = enrol_fleet(rt, server, &server.url, FLEET)
        .into_iter()
        .flatten()
        .collect();
    let mut latencies = Vec::new();
    for day in 0..=DAYS {
        for (d, store) in stores.iter_mut().enumerate() {
            for i in 0..1 + (d + day) % 2 {
                store
                    .log(sample_entry(day * 10_000 + d * 10 + i))
                    .expect("log");
            }
        }
        let (synced, took) = rt.block_on(sync_all(stores, CONCURRENT_SYNCS));
        stores = synced;
        // Day 0 fills the diaries; only the days after it count.
        if day > 0 {
            latencies.extend(took);
        }
    }
    latencies
}
