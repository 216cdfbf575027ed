//! Shared helpers of the end-to-end tests and benchmarks: start the real `heeldiary-server`
//! binary on a free port over a chosen storage backend, run the real `heeldiary` binary against
//! device diaries, enrol many device diaries at once, and reach PostgreSQL when a test database
//! URL is given (through the server's own test support: one scratch schema per test).
//!
//! Test support only: nothing in the product depends on it. It exists only with the `support`
//! feature, which this package's own tests and benchmarks turn on, so that building the
//! workspace never builds the server with its test support.
#![cfg(feature = "support")]

pub mod proxy;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use heeldiary_server::storage::ScratchSchema;
use heeldiary_store::Store;
use serde_json::Value;
use tempfile::TempDir;
use tokio::runtime::Runtime;

/// Path of a binary built from this workspace (`cargo build --workspace --bins` builds them; so
/// does `cargo test --workspace`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> or target/<profile>/<bench>: look up from there.
    let mut dir = exe.parent().expect("test executable folder").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first with `cargo build --workspace --bins` (the same profile as the tests)",
        path.display()
    );
    path
}

/// Where a server keeps its data.
pub enum Backend {
    /// SQLite files in a temporary folder.
    Sqlite(TempDir),
    /// A fresh schema on the PostgreSQL database of [`TEST_DATABASE_URL`], dropped when this
    /// value is dropped.
    ///
    /// [`TEST_DATABASE_URL`]: heeldiary_server::storage::TEST_DATABASE_URL
    Postgres(Box<ScratchSchema>),
}

impl Backend {
    /// The embedded default.
    pub fn sqlite() -> Self {
        Backend::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    /// A fresh PostgreSQL schema, or `None` (with a loud note on stderr) when
    /// [`TEST_DATABASE_URL`] is not set.
    ///
    /// [`TEST_DATABASE_URL`]: heeldiary_server::storage::TEST_DATABASE_URL
    pub fn postgres(test: &str) -> Option<Self> {
        ScratchSchema::create_blocking(test).map(|schema| Backend::Postgres(Box::new(schema)))
    }

    /// Every backend this run can test: SQLite always, PostgreSQL when configured.
    pub fn all(test: &str) -> Vec<Self> {
        let mut backends = vec![Backend::sqlite()];
        backends.extend(Backend::postgres(test));
        backends
    }

    /// Short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The `heeldiary-server` arguments that select this backend.
    pub fn args(&self) -> Vec<String> {
        match self {
            Backend::Sqlite(dir) => vec!["--data".into(), dir.path().display().to_string()],
            Backend::Postgres(schema) => vec!["--database-url".into(), schema.url()],
        }
    }
}

/// A running `heeldiary-server serve` process.
pub struct Server {
    child: Child,
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    /// Its backend arguments, for admin commands and restarts.
    pub backend_args: Vec<String>,
}

impl Server {
    /// Starts the server on a free port and waits until it listens.
    pub fn start(backend: &Backend) -> Server {
        Self::start_on(backend.args(), "127.0.0.1:0")
    }

    /// Starts the server with `backend_args` on `listen`.
    pub fn start_on(backend_args: Vec<String>, listen: &str) -> Server {
        let mut child = Command::new(binary("heeldiary-server"))
            .arg("serve")
            .args(["--listen", listen])
            .args(&backend_args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("server starts");
        let stdout = child.stdout.take().expect("server stdout");
        let mut reader = BufReader::new(stdout);
        let mut first = String::new();
        reader.read_line(&mut first).expect("server prints its URL");
        // Keep reading so the server never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let url = first
            .trim()
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("http"))
            .unwrap_or_else(|| panic!("unexpected first line from the server: {first:?}"))
            .to_string();
        Server {
            child,
            url,
            backend_args,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in URL")
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `heeldiary-server admin ARGS` on the same backend and returns its standard output.
    pub fn admin(&self, args: &[&str]) -> String {
        let out = Command::new(binary("heeldiary-server"))
            .arg("admin")
            .args(args)
            .args(&self.backend_args)
            .output()
            .expect("admin runs");
        assert!(
            out.status.success(),
            "admin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Runs `heeldiary-server admin ARGS --json` and returns its JSON.
    pub fn admin_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.admin(&all)).expect("admin prints JSON")
    }

    /// A new patient: its id and an enrolment code.
    pub fn add_patient(&self) -> (String, String) {
        let v = self.admin_json(&["add-patient"]);
        (
            v["patient_id"].as_str().unwrap().to_string(),
            v["code"].as_str().unwrap().to_string(),
        )
    }

    /// A code for the patient's next device.
    pub fn new_code(&self, patient_id: &str) -> String {
        self.admin_json(&["new-code", "--patient", patient_id])["code"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops it gracefully (SIGTERM) and waits; returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One patient device: a diary file driven through the real `heeldiary` binary.
pub struct Device {
    _dir: TempDir,
    /// The diary file.
    pub db: PathBuf,
}

impl Default for Device {
    fn default() -> Self {
        Self::new()
    }
}

impl Device {
    /// A device with an empty diary.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("diary.sqlite3");
        Device { _dir: dir, db }
    }

    /// Runs `heeldiary ARGS` on this diary.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(binary("heeldiary"))
            .args(args)
            .env("HEELDIARY_DB", &self.db)
            .output()
            .expect("heeldiary runs")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "heeldiary {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Enrols with `server` using `code`.
    pub fn enrol(&self, server: &Server, code: &str) {
        self.ok(&["enroll", "--server", &server.url, "--code", code]);
    }

    /// Syncs and returns the JSON summary.
    pub fn sync(&self) -> Value {
        serde_json::from_str(&self.ok(&["sync", "--json"])).expect("sync --json prints JSON")
    }

    /// Logs an entry and returns its id.
    pub fn log(&self, args: &[&str]) -> String {
        let mut all = vec!["log"];
        all.extend_from_slice(args);
        self.ok(&all).trim().to_string()
    }

    /// Every live entry, as `list --json` prints them.
    pub fn entries(&self) -> Vec<Value> {
        self.ok(&["list", "--json"])
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
    }

    /// Opens the diary through the library, for checks the CLI does not print.
    pub fn store(&self) -> Store {
        Store::open(&self.db).expect("diary opens")
    }
}

/// Writes `lines` as an NDJSON file in `dir` and returns its path.
pub fn ndjson(dir: &Path, name: &str, lines: impl IntoIterator<Item = Value>) -> PathBuf {
    let path = dir.join(name);
    let text: String = lines.into_iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(&path, text).expect("write NDJSON");
    path
}

/// Polls `check` until it holds or `attempts` × 50 ms pass; for waiting on another process.
pub fn eventually(attempts: u32, mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..attempts {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Entry `i` of a synthetic diary: a valid morning check-in on a past day, varied enough that
/// entries differ, for tests and benchmarks that need many of them.
pub fn sample_entry(i: usize) -> heeldiary_core::EntryInput {
    serde_json::from_value(serde_json::json!({
        "day": format!("20{:02}-{:02}-{:02}", 10 + (i / 336) % 15, 1 + (i / 28) % 12, 1 + i % 28),
        "first_step_pain": i % 11,
        "sitting_pain": (i + 3) % 11,
        "heel_tender": i % 2 == 0,
        "treatments": ["stretching"],
        "note": "first steps hurt",
    }))
    .expect("a valid sample entry")
}

/// A multi-threaded tokio runtime: tests block on device syncs on it while it runs a
/// [`proxy::Proxy`] in the background.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A new device diary in memory, enrolled with `code` at `server_url` (the URL its syncs use).
pub async fn enrolled_store(server_url: &str, code: &str) -> Store {
    let mut store = Store::open_in_memory().expect("diary in memory");
    heeldiary_client::enrol(&mut store, server_url, code, None)
        .await
        .expect("device enrols");
    store
}

/// Sync options for tests that break the network on purpose: `max_attempts` quick retries, so
/// a sync through a fault gives up fast, and a request timeout far above any injected delay.
pub fn impatient_sync(max_attempts: u32) -> heeldiary_client::SyncOptions {
    heeldiary_client::SyncOptions {
        retry: heeldiary_client::RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(20),
        },
        request_timeout: Duration::from_secs(30),
        ..Default::default()
    }
}

/// The `(device id, device sequence)` of every operation a diary holds; fails when one is held
/// twice.
pub fn op_keys(store: &Store) -> std::collections::BTreeSet<(uuid::Uuid, u64)> {
    let ops = store.all_ops().expect("operation log");
    let keys: std::collections::BTreeSet<_> =
        ops.iter().map(|op| (op.device_id, op.device_seq)).collect();
    assert_eq!(keys.len(), ops.len(), "an operation is held twice");
    keys
}

/// Every entry a diary knows of, deleted ones included, with its merged state.
pub fn entry_states(
    store: &Store,
) -> std::collections::BTreeMap<uuid::Uuid, heeldiary_core::EntryState> {
    let ids: std::collections::BTreeSet<uuid::Uuid> = store
        .all_ops()
        .expect("operation log")
        .iter()
        .map(|op| op.entry_id)
        .collect();
    ids.into_iter()
        .map(|id| {
            let state = store.entry_state(id).expect("entry state");
            (id, state.expect("a state for every entry in the log"))
        })
        .collect()
}

/// How many patients a test or benchmark enrols, and how many devices each of them has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fleet {
    /// Patients, each made with the admin command.
    pub patients: usize,
    /// Devices of each patient.
    pub devices_per_patient: usize,
}

impl Fleet {
    /// Devices in all.
    pub fn devices(&self) -> usize {
        self.patients * self.devices_per_patient
    }
}

/// A new diary in memory for every device of `fleet`, grouped by patient, each enrolled at `url`
/// (the server's own URL, or a proxy's in front of it). The patients and codes are made first,
/// with the admin command one after another, then the devices enrol one after another.
pub fn enrol_fleet(rt: &Runtime, server: &Server, url: &str, fleet: Fleet) -> Vec<Vec<Store>> {
    let codes: Vec<Vec<String>> = (0..fleet.patients)
        .map(|_| {
            let (patient, first) = server.add_patient();
            let mut codes = vec![first];
            codes.extend((1..fleet.devices_per_patient).map(|_| server.new_code(&patient)));
            codes
        })
        .collect();
    rt.block_on(async {
        let mut patients = Vec::with_capacity(codes.len());
        for codes in &codes {
            let mut devices = Vec::with_capacity(codes.len());
            for code in codes {
                devices.push(enrolled_store(url, code).await);
            }
            patients.push(devices);
        }
        patients
    })
}

/// A new patient's diary in memory, enrolled at `url` (the server, or a proxy in front of it),
/// holding `inputs` imported and not yet synced.
pub fn imported_diary(
    rt: &Runtime,
    server: &Server,
    url: &str,
    inputs: impl IntoIterator<Item = heeldiary_core::EntryInput>,
) -> Store {
    let (_, code) = server.add_patient();
    let mut store = rt.block_on(enrolled_store(url, &code));
    store.import(inputs, |_| {}).expect("import");
    store
}

/// A new diary in memory for another device of the patient of `device`, enrolled at `url`.
pub fn another_device(rt: &Runtime, server: &Server, device: &Store, url: &str) -> Store {
    let patient = device.enrolment().expect("an enrolled device");
    let code = server.new_code(&patient.patient_id.to_string());
    rt.block_on(enrolled_store(url, &code))
}

/// Syncs every store with the default options, at most `concurrency` at a time; returns them in
/// their order with each sync's duration (from its start, not from when it was queued).
pub async fn sync_all(stores: Vec<Store>, concurrency: usize) -> (Vec<Store>, Vec<Duration>) {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let tasks: Vec<_> = stores
        .into_iter()
        .map(|mut store| {
            let permits = std::sync::Arc::clone(&permits);
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.expect("semaphore");
                let started = std::time::Instant::now();
                heeldiary_client::sync(&mut store, &heeldiary_client::SyncOptions::default())
                    .await
                    .expect("sync");
                (store, started.elapsed())
            })
        })
        .collect();
    let mut stores = Vec::with_capacity(tasks.len());
    let mut took = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (store, elapsed) = task.await.expect("sync task");
        stores.push(store);
        took.push(elapsed);
    }
    (stores, took)
}

/// The `q` quantile (0 to 1, nearest rank) of `samples`, which it sorts.
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() - 1) as f64 * q).round() as usize]
}

/// The server's merged state of each entry in `ids`, read with a device `token` of the patient
/// through `GET /v1/entries/{id}`: what every device must end up equal to.
pub async fn server_entry_states(
    server_url: &str,
    token: &str,
    ids: impl IntoIterator<Item = uuid::Uuid>,
) -> std::collections::BTreeMap<uuid::Uuid, heeldiary_core::EntryState> {
    let http = reqwest::Client::new();
    let mut states = std::collections::BTreeMap::new();
    for id in ids {
        let answer: heeldiary_core::wire::EntryResponse = http
            .get(format!("{server_url}/v1/entries/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("the server has the entry")
            .json()
            .await
            .expect("an entry answer");
        states.insert(id, answer.state);
    }
    states
}
