//! Sync against the real release server, in one run:
//!
//! - the baseline: bare rusqlite inserts of the same values into a plain SQLite table (one
//!   transaction, WAL, `synchronous = FULL`), in entries/s;
//! - the store's import of those entries into a diary file, and the CLI's `import` of them as
//!   NDJSON, each in entries/s and as a ratio to the bare insert;
//! - the first sync of that diary from its device (a push of every entry), and the first sync of
//!   a fresh second device of the same patient (a pull of them), each in entries/s, as a ratio
//!   to the bare insert, and in bytes on the wire per entry each way (counted by a relay in front
//!   of the server: HTTP heads and gzip bodies as sent);
//! - the size of both diary files (after a WAL checkpoint) against the plain table (vacuumed);
//! - the peak resident memory of the device (this process) and of the server during the push
//!   and during the pull (`VmHWM`, reset before each through `/proc/PID/clear_refs`), and how
//!   far each rose above its resident size at the reset;
//! - a daily sync: 1,000 devices (500 patients with two devices each) hold a week of entries
//!   already synced, each logs one more, then all sync, at most 100 at a time: median, 99th
//!   percentile and slowest of one device's whole sync.
//!
//! Devices run the library client with its default options, on the same machine as the server,
//! so the figures include the devices' own work. Every backend of this run is measured: SQLite
//! always, PostgreSQL when `HEELDIARY_TEST_DATABASE_URL` names a server.
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p heeldiary-e2e --bench sync`
//! (`-- --entries N` changes the size of the first sync, `-- --patients N` the daily fleet).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use heeldiary_client::{enrol, sync, SyncOptions};
use heeldiary_core::Field;
use heeldiary_e2e::{
    binary, enrol_fleet, quantile, runtime, sample_entry, sync_all, Backend, Fleet, Server,
};
use heeldiary_store::Store;
use tokio::runtime::Runtime;

/// Devices of each patient in the daily sync.
const DEVICES_PER_PATIENT: usize = 2;
/// Entries each device logged and synced before the measured day.
const PRIOR_ENTRIES: usize = 7;
/// Devices syncing at the same moment.
const CONCURRENT_SYNCS: usize = 100;

/// What one backend measured.
struct Figures {
    bare: Duration,
    import: Duration,
    cli_import: Duration,
    push: Duration,
    pull: Duration,
    push_bytes: (u64, u64),
    pull_bytes: (u64, u64),
    push_peak_kib: PeakRss,
    pull_peak_kib: PeakRss,
    plain_file: u64,
    pushed_file: u64,
    pulled_file: u64,
    daily: Vec<Duration>,
    fleet: Fleet,
}

fn arg(name: &str, default: usize) -> usize {
    // `cargo bench` passes `--bench`; only the named options are read.
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .map_or(default, |n| n.parse().expect("a number"))
}

fn main() {
    let entries = arg("--entries", 100_000);
    let fleet = Fleet {
        patients: arg("--patients", 500),
        devices_per_patient: DEVICES_PER_PATIENT,
    };
    let rt = runtime();
    for backend in Backend::all("benchmark sync") {
        let server = Server::start(&backend);
        let figures = measure(&rt, &server, backend.name(), entries, fleet);
        print(backend.name(), entries, &figures);
    }
}

fn measure(rt: &Runtime, server: &Server, backend: &str, entries: usize, fleet: Fleet) -> Figures {
    let dir = tempfile::tempdir().expect("temp dir");
    eprintln!("{backend}: bare insert, import, push and pull of {entries} entries…");
    let plain = dir.path().join("plain.sqlite3");
    let bare = bare_insert(&plain, entries);

    let relay = rt.block_on(Relay::start(server.port()));
    let (_, code) = server.add_patient();
    let mut first = diary_file(rt, &dir.path().join("first.sqlite3"), &relay.url, &code);
    let started = Instant::now();
    first
        .import((0..entries).map(sample_entry), |_| {})
        .expect("import");
    let import = started.elapsed();
    let cli_import = cli_import(dir.path(), entries);

    relay.reset();
    let rss = PeakRss::reset(server.pid());
    let (pushed, push) = timed_sync(rt, &mut first);
    let push_peak_kib = rss.read();
    assert_eq!(pushed.pushed, entries, "every entry pushed once");
    let push_bytes = relay.reset();

    let patient = first.enrolment().expect("enrolment").patient_id.to_string();
    let code = server.new_code(&patient);
    let mut second = diary_file(rt, &dir.path().join("second.sqlite3"), &relay.url, &code);
    relay.reset();
    let rss = PeakRss::reset(server.pid());
    let (pulled, pull) = timed_sync(rt, &mut second);
    let pull_peak_kib = rss.read();
    assert_eq!(pulled.pulled, entries, "every entry pulled once");
    let pull_bytes = relay.reset();
    drop((first, second));
    let size = |name: &str| file_size(&dir.path().join(name));

    eprintln!("{backend}: daily sync of {} devices…", fleet.devices());
    let daily = daily_syncs(rt, server, fleet);
    Figures {
        bare,
        import,
        cli_import,
        push,
        pull,
        push_bytes,
        pull_bytes,
        push_peak_kib,
        pull_peak_kib,
        plain_file: size("plain.sqlite3"),
        pushed_file: size("first.sqlite3"),
        pulled_file: size("second.sqlite3"),
        daily,
        fleet,
    }
}

/// The same values as the sample entries, inserted with prepared statements into a plain
/// table (a 16-byte id and one column per field) in one transaction; then vacuumed, so its size
/// is what the values take.
fn bare_insert(path: &Path, entries: usize) -> Duration {
    let conn = rusqlite::Connection::open(path).expect("plain file");
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    let columns: Vec<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
    conn.execute_batch(&format!(
        "CREATE TABLE entries (id BLOB PRIMARY KEY, {}) WITHOUT ROWID",
        columns.join(", ")
    ))
    .unwrap();
    let started = Instant::now();
    conn.execute_batch("BEGIN").unwrap();
    {
        let mut insert = conn
            .prepare(&format!(
                "INSERT INTO entries VALUES (?{})",
                ", ?".repeat(columns.len())
            ))
            .unwrap();
        for i in 0..entries {
            let input = sample_json(i);
            let id = uuid::Uuid::now_v7();
            let mut values: Vec<rusqlite::types::Value> = vec![id.as_bytes().to_vec().into()];
            for column in &columns {
                values.push(match &input[column] {
                    serde_json::Value::Null => rusqlite::types::Value::Null,
                    serde_json::Value::Bool(b) => i64::from(*b).into(),
                    serde_json::Value::Number(n) => n.as_i64().unwrap_or_default().into(),
                    serde_json::Value::String(text) => text.clone().into(),
                    other => other.to_string().into(),
                });
            }
            insert.execute(rusqlite::params_from_iter(values)).unwrap();
        }
    }
    conn.execute_batch("COMMIT").unwrap();
    let took = started.elapsed();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM")
        .unwrap();
    took
}

/// Sample entry `i` as the JSON object a person would import.
fn sample_json(i: usize) -> serde_json::Value {
    serde_json::Value::Object(
        sample_entry(i)
            .fields
            .into_iter()
            .map(|(field, value)| (field.as_str().to_string(), value))
            .collect(),
    )
}

/// `heeldiary import` of the sample entries as NDJSON into a new diary file.
fn cli_import(dir: &Path, entries: usize) -> Duration {
    let file = dir.join("entries.ndjson");
    let mut text = String::new();
    for i in 0..entries {
        text.push_str(&sample_json(i).to_string());
        text.push('\n');
    }
    std::fs::write(&file, text).unwrap();
    let started = Instant::now();
    let status = std::process::Command::new(binary("heeldiary"))
        .env("HEELDIARY_DB", dir.join("cli.sqlite3"))
        .arg("import")
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("heeldiary import runs");
    assert!(status.success(), "heeldiary import");
    started.elapsed()
}

/// Peak resident memory, in KiB, of the device (this process: the bench runs the library
/// client) and of the server process, since [`PeakRss::reset`], with how far each rose above
/// its resident size at the reset. The rise is what the sync itself took: this process keeps
/// memory the allocator did not hand back from earlier phases (the other backend's daily
/// fleet), which the peak alone would count. `None` where `/proc` does not tell (not Linux).
#[derive(Debug, Clone, Copy)]
struct PeakRss {
    server_pid: u32,
    /// Resident size of the device and the server at the reset.
    at_reset: (Option<u64>, Option<u64>),
    device: Option<u64>,
    server: Option<u64>,
}

/// The value in KiB of `field` (`VmRSS`, `VmHWM`) in `/proc/PID/status`.
fn proc_status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl PeakRss {
    /// Sets both peaks back to the present resident size (writing 5 to `clear_refs`).
    fn reset(server_pid: u32) -> PeakRss {
        let server = server_pid.to_string();
        for pid in ["self", server.as_str()] {
            let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        }
        PeakRss {
            server_pid,
            at_reset: (
                proc_status_kib("self", "VmRSS:"),
                proc_status_kib(&server, "VmRSS:"),
            ),
            device: None,
            server: None,
        }
    }

    /// The peaks reached since the reset.
    fn read(self) -> PeakRss {
        PeakRss {
            device: proc_status_kib("self", "VmHWM:"),
            server: proc_status_kib(&self.server_pid.to_string(), "VmHWM:"),
            ..self
        }
    }

    fn describe(&self) -> String {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let one = |peak: Option<u64>, at_reset: Option<u64>| match (peak, at_reset) {
            (Some(peak), Some(at_reset)) => format!(
                "{:.0} MiB (+{:.0})",
                mib(peak),
                mib(peak.saturating_sub(at_reset))
            ),
            (Some(peak), None) => format!("{:.0} MiB", mib(peak)),
            _ => "?".into(),
        };
        format!(
            "device {}, server {}",
            one(self.device, self.at_reset.0),
            one(self.server, self.at_reset.1)
        )
    }
}

/// The size of a diary file once its WAL is checkpointed into it.
fn file_size(path: &Path) -> u64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// A TCP relay in front of the server that counts the bytes each way.
struct Relay {
    url: String,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
}

impl Relay {
    async fn start(upstream: u16) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let counters = (Arc::clone(&up), Arc::clone(&down));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (up, down) = (Arc::clone(&counters.0), Arc::clone(&counters.1));
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let sent = async {
                        let n = tokio::io::copy(&mut client_read, &mut server_write).await;
                        up.fetch_add(n.unwrap_or(0), Ordering::Relaxed);
                        let _ = tokio::io::AsyncWriteExt::shutdown(&mut server_write).await;
                    };
                    let received = async {
                        let n = tokio::io::copy(&mut server_read, &mut client_write).await;
                        down.fetch_add(n.unwrap_or(0), Ordering::Relaxed);
                        let _ = tokio::io::AsyncWriteExt::shutdown(&mut client_write).await;
                    };
                    tokio::join!(sent, received);
                });
            }
        });
        Relay { url, up, down }
    }

    /// Bytes sent up and down since the last reset. Counted when a connection closes: the
    /// client closes its connections when its sync ends and its HTTP client is dropped.
    fn reset(&self) -> (u64, u64) {
        std::thread::sleep(Duration::from_millis(200));
        (
            self.up.swap(0, Ordering::Relaxed),
            self.down.swap(0, Ordering::Relaxed),
        )
    }
}

/// A diary file at `path`, enrolled with `code` at `url`.
fn diary_file(rt: &Runtime, path: &Path, url: &str, code: &str) -> Store {
    let mut store = Store::open(path).expect("diary file");
    rt.block_on(enrol(&mut store, url, code, None))
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
fn daily_syncs(rt: &Runtime, server: &Server, fleet: Fleet) -> Vec<Duration> {
    let mut stores: Vec<Store> = enrol_fleet(rt, server, &server.url, fleet)
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
    let per_entry = |bytes: u64| bytes as f64 / entries as f64;
    println!();
    println!("sync benchmark, {backend} server (release), {entries} entries");
    println!(
        "{:<44} {:>9} {:>11} {:>9}",
        "", "seconds", "entries/s", "vs bare"
    );
    for (what, took) in [
        ("bare rusqlite insert of the same values", f.bare),
        ("store import into a diary file", f.import),
        ("CLI `import` of an NDJSON file", f.cli_import),
        ("first sync of device A (push)", f.push),
        ("first sync of fresh device B (pull)", f.pull),
    ] {
        println!(
            "{what:<44} {:>9.2} {:>11.0} {:>9.3}",
            took.as_secs_f64(),
            rate(took),
            rate(took) / rate(f.bare)
        );
    }
    println!(
        "bytes on the wire per entry: push {:.1} up, {:.2} down; pull {:.2} up, {:.1} down",
        per_entry(f.push_bytes.0),
        per_entry(f.push_bytes.1),
        per_entry(f.pull_bytes.0),
        per_entry(f.pull_bytes.1),
    );
    println!(
        "peak RSS (+ rise during the sync): push {}; pull {}",
        f.push_peak_kib.describe(),
        f.pull_peak_kib.describe()
    );
    println!(
        "diary files: pushing device {:.2}x, pulled device {:.2}x a plain table ({} bytes, {:.1} per entry)",
        f.pushed_file as f64 / f.plain_file as f64,
        f.pulled_file as f64 / f.plain_file as f64,
        f.plain_file,
        per_entry(f.plain_file),
    );
    let mut daily = f.daily.clone();
    println!(
        "daily sync of {} devices ({} patients x {}), {CONCURRENT_SYNCS} at a time: \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        daily.len(),
        f.fleet.patients,
        f.fleet.devices_per_patient,
        ms(quantile(&mut daily, 0.50)),
        ms(quantile(&mut daily, 0.99)),
        ms(quantile(&mut daily, 1.0)),
    );
}
