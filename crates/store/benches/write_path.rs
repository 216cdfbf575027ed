//! Write path of the diary against bare rusqlite, in one run:
//! - one durable `log` (its own transaction, fsync on commit) against one bare insert of an
//!   equivalent row in its own transaction, median latency;
//! - importing 100,000 entries against prepared bare inserts of equivalent rows in one
//!   transaction, entries per second.
//!
//! Both sides use the same file system, WAL and `synchronous = FULL`.
//! Run: `cargo bench -p heeldiary-store --bench write_path` (`-- --entries N --samples N` to change sizes).

use std::time::{Duration, Instant};

use heeldiary_core::EntryInput;
use heeldiary_store::Store;
use rusqlite::{params, Connection};
use serde_json::json;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sample(i: usize) -> serde_json::Value {
    json!({
        "day": format!("20{:02}-{:02}-{:02}", 10 + (i / 336) % 16, 1 + (i / 28) % 12, 1 + i % 28),
        "first_step_pain": i % 11,
        "sitting_pain": (i + 3) % 11,
        "heel_tender": i % 2 == 0,
        "treatments": ["stretching"],
        "note": "first steps hurt",
    })
}

fn input(i: usize) -> EntryInput {
    serde_json::from_value(sample(i)).expect("valid sample")
}

fn bare_connection(path: &std::path::Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(
        "CREATE TABLE entries (id TEXT PRIMARY KEY, day TEXT NOT NULL, recorded_at TEXT NOT NULL,
            first_step_pain INTEGER, sitting_pain INTEGER, heel_tender INTEGER, treatments TEXT, note TEXT)",
    )
    .unwrap();
    conn
}

fn bare_insert(conn: &Connection, i: usize) {
    let v = sample(i);
    conn.prepare_cached("INSERT INTO entries VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
        .unwrap()
        .execute(params![
            uuid::Uuid::now_v7().to_string(),
            v["day"].as_str(),
            chrono::Utc::now().to_rfc3339(),
            v["first_step_pain"].as_i64(),
            v["sitting_pain"].as_i64(),
            v["heel_tender"].as_bool(),
            v["treatments"].to_string(),
            v["note"].as_str(),
        ])
        .unwrap();
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing else to parse from it.
    let samples = arg("--samples", 300);
    let entries = arg("--entries", 100_000);
    let dir = tempfile::tempdir().unwrap();

    let bare = bare_connection(&dir.path().join("bare-single.sqlite3"));
    let bare_single = median(
        (0..samples)
            .map(|i| {
                let t = Instant::now();
                let tx = bare.unchecked_transaction().unwrap();
                bare_insert(&tx, i);
                tx.commit().unwrap();
                t.elapsed()
            })
            .collect(),
    );
    let mut store = Store::open(dir.path().join("store-single.sqlite3")).unwrap();
    let ours_single = median(
        (0..samples)
            .map(|i| {
                let entry = input(i);
                let t = Instant::now();
                store.log(entry).unwrap();
                t.elapsed()
            })
            .collect(),
    );

    let bare = bare_connection(&dir.path().join("bare-bulk.sqlite3"));
    let t = Instant::now();
    let tx = bare.unchecked_transaction().unwrap();
    for i in 0..entries {
        bare_insert(&tx, i);
    }
    tx.commit().unwrap();
    let bare_rate = entries as f64 / t.elapsed().as_secs_f64();

    let mut store = Store::open(dir.path().join("store-bulk.sqlite3")).unwrap();
    let inputs: Vec<EntryInput> = (0..entries).map(input).collect();
    let t = Instant::now();
    store.import(inputs, |_| {}).unwrap();
    let ours_rate = entries as f64 / t.elapsed().as_secs_f64();

    println!("engine: {}", heeldiary_store::sqlite_engine());
    println!("durable log, median of {samples}:");
    println!(
        "  bare rusqlite insert, own transaction   {:>10.3} ms",
        bare_single.as_secs_f64() * 1e3
    );
    println!(
        "  heeldiary Store::log                    {:>10.3} ms",
        ours_single.as_secs_f64() * 1e3
    );
    println!(
        "  ratio (log / bare)                      {:>10.2}x  (target: within 2x)",
        ours_single.as_secs_f64() / bare_single.as_secs_f64()
    );
    println!("import of {entries} entries:");
    println!("  bare prepared inserts, one transaction  {bare_rate:>10.0} entries/s");
    println!("  heeldiary Store::import                 {ours_rate:>10.0} entries/s");
    println!(
        "  ratio (import / bare)                   {:>10.0}%  (target: at least 40%)",
        100.0 * ours_rate / bare_rate
    );
}
