//! What encryption at rest costs, in one run, on the same engine (SQLCipher, which a plain
//! diary uses without a key):
//! - one durable `log`, median latency, plain diary against encrypted diary;
//! - importing 100,000 entries, entries per second, plain against encrypted;
//! - opening a diary (a raw key: no password stretching on open).
//!
//! Run: `cargo bench -p heeldiary-store --features sqlcipher --bench encryption`
//! (`-- --entries N --samples N` to change sizes).

use std::time::{Duration, Instant};

use heeldiary_core::EntryInput;
use heeldiary_store::{DiaryKey, Store};
use serde_json::json;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn input(i: usize) -> EntryInput {
    serde_json::from_value(json!({
        "day": format!("20{:02}-{:02}-{:02}", 10 + (i / 336) % 16, 1 + (i / 28) % 12, 1 + i % 28),
        "first_step_pain": i % 11,
        "sitting_pain": (i + 3) % 11,
        "heel_tender": i % 2 == 0,
        "treatments": ["stretching"],
        "note": "first steps hurt",
    }))
    .expect("valid sample")
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

struct Figures {
    log_p50: Duration,
    import_rate: f64,
    open_p50: Duration,
}

fn measure(
    dir: &std::path::Path,
    name: &str,
    key: Option<&DiaryKey>,
    samples: usize,
    entries: usize,
) -> Figures {
    let single = dir.join(format!("{name}-single.sqlite3"));
    let mut store = Store::open_with_key(&single, key).unwrap();
    let log_p50 = median(
        (0..samples)
            .map(|i| {
                let entry = input(i);
                let t = Instant::now();
                store.log(entry).unwrap();
                t.elapsed()
            })
            .collect(),
    );
    drop(store);
    let open_p50 = median(
        (0..samples.min(50))
            .map(|_| {
                let t = Instant::now();
                let store = Store::open_with_key(&single, key).unwrap();
                let elapsed = t.elapsed();
                drop(store);
                elapsed
            })
            .collect(),
    );
    let mut store = Store::open_with_key(dir.join(format!("{name}-bulk.sqlite3")), key).unwrap();
    let inputs: Vec<EntryInput> = (0..entries).map(input).collect();
    let t = Instant::now();
    store.import(inputs, |_| {}).unwrap();
    let import_rate = entries as f64 / t.elapsed().as_secs_f64();
    Figures {
        log_p50,
        import_rate,
        open_p50,
    }
}

fn main() {
    assert!(
        heeldiary_store::encryption_available(),
        "this build links plain SQLite: run with --features sqlcipher"
    );
    let samples = arg("--samples", 300);
    let entries = arg("--entries", 100_000);
    let dir = tempfile::tempdir().unwrap();
    let key = DiaryKey::from_secret(b"a benchmark key of thirty-two by").unwrap();
    let plain = measure(dir.path(), "plain", None, samples, entries);
    let encrypted = measure(dir.path(), "encrypted", Some(&key), samples, entries);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("engine: {}", heeldiary_store::sqlite_engine());
    println!("durable log, median of {samples}:");
    println!(
        "  plain diary                {:>10.3} ms",
        ms(plain.log_p50)
    );
    println!(
        "  encrypted diary            {:>10.3} ms",
        ms(encrypted.log_p50)
    );
    println!(
        "  ratio (encrypted / plain)  {:>10.2}x",
        encrypted.log_p50.as_secs_f64() / plain.log_p50.as_secs_f64()
    );
    println!("import of {entries} entries:");
    println!(
        "  plain diary                {:>10.0} entries/s",
        plain.import_rate
    );
    println!(
        "  encrypted diary            {:>10.0} entries/s",
        encrypted.import_rate
    );
    println!(
        "  ratio (encrypted / plain)  {:>10.0}%  of the plain rate",
        100.0 * encrypted.import_rate / plain.import_rate
    );
    println!("open, median:");
    println!(
        "  plain diary                {:>10.3} ms",
        ms(plain.open_p50)
    );
    println!(
        "  encrypted diary            {:>10.3} ms",
        ms(encrypted.open_p50)
    );
}
