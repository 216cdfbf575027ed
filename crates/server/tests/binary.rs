//! The real `heeldiary-server` binary: serving on port 0 (plain and HTTPS), the whole device
//! flow against it, a clean exit on SIGTERM, and the admin commands.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Output, Stdio};

use heeldiary_core::wire::{EnrolResponse, PullResponse, PushResponse, PushStatus};
use heeldiary_core::Hlc;
use serde_json::{json, Value};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_heeldiary-server");

fn command(data: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("HEELDIARY_DATABASE_URL")
        .env_remove("HEELDIARY_DATA")
        .env("RUST_LOG", "debug")
        .arg("--data")
        .arg(data);
    cmd
}

fn admin(data: &Path, args: &[&str]) -> Output {
    command(data).arg("admin").args(args).output().unwrap()
}

fn admin_json(data: &Path, args: &[&str]) -> Value {
    let out = admin(data, args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A running server, the URL it printed and its log stream.
struct Running {
    child: Child,
    url: String,
    stdout: String,
    logs: BufReader<ChildStderr>,
    seen: String,
}

impl Running {
    /// Reads log lines until one contains `needle`.
    fn wait_for_log(&mut self, needle: &str) {
        loop {
            let mut line = String::new();
            assert!(
                self.logs.read_line(&mut line).unwrap() > 0,
                "log ended before `{needle}`: {}",
                self.seen
            );
            self.seen.push_str(&line);
            if line.contains(needle) {
                return;
            }
        }
    }
}

fn start(data: &Path, extra: &[&str]) -> Running {
    let mut child = command(data)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let mut stdout = String::new();
    let url = loop {
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap() == 0 {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("server exited before printing its URL: {stdout}{err}");
        }
        stdout.push_str(&line);
        if let Some(url) = line.trim().strip_prefix("heeldiary-server listening on ") {
            break url.to_string();
        }
    };
    // The next-step lines follow the URL.
    for _ in 0..3 {
        lines.read_line(&mut stdout).unwrap();
    }
    let logs = BufReader::new(child.stderr.take().unwrap());
    Running {
        child,
        url,
        stdout,
        logs,
        seen: String::new(),
    }
}

fn send_sigterm(running: &Running) {
    let killed = Command::new("kill")
        .args(["-TERM", &running.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
}

/// Sends SIGTERM and returns the exit status and everything logged.
fn terminate(running: Running) -> (std::process::ExitStatus, String) {
    send_sigterm(&running);
    wait(running)
}

/// Waits for the server to exit; returns its status and everything logged.
fn wait(mut running: Running) -> (std::process::ExitStatus, String) {
    let mut logs = running.seen;
    running.logs.read_to_string(&mut logs).unwrap();
    (running.child.wait().unwrap(), logs)
}

/// Enrols a new device with `code` over HTTP, pushes one new entry that also sets `field` to
/// `value`, checks that it was applied and comes back from a pull, and returns the enrolment.
async fn enrol_push_pull(url: &str, code: &str, field: &str, value: Value) -> EnrolResponse {
    let http = reqwest::Client::new();
    let device_id = Uuid::now_v7();
    let enrolled: EnrolResponse = http
        .post(format!("{url}/v1/enrol"))
        .json(&json!({"code": code, "device_id": device_id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let op = json!({
        "entry_id": Uuid::now_v7(),
        "device_id": device_id,
        "device_seq": 1,
        "hlc": Hlc { wall_ms: now.timestamp_millis() as u64, counter: 0, node: device_id }.to_string(),
        "patch": {
            "day": now.date_naive().to_string(),
            "recorded_at": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
            field: value,
        },
    });
    let pushed: PushResponse = http
        .post(format!("{url}/v1/push"))
        .bearer_auth(&enrolled.token)
        .json(&json!({ "ops": [op] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pushed.results[0].status, PushStatus::Applied);
    let pulled: PullResponse = http
        .get(format!("{url}/v1/pull"))
        .bearer_auth(&enrolled.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pulled.ops.len(), 1);
    enrolled
}

#[tokio::test]
async fn serves_a_device_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&data, &[]);
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    assert!(!server.url.ends_with(":0"));
    assert!(server
        .stdout
        .contains("heeldiary-server admin add-patient --data"));
    assert!(server
        .stdout
        .contains(&format!("heeldiary enroll --server {} --code", server.url)));

    let http = reqwest::Client::new();
    let health: Value = http
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));

    // The clinic creates a patient while the server runs; the device enrols and pushes.
    let issued = admin_json(&data, &["add-patient", "--json"]);
    let code = issued["code"].as_str().unwrap().to_string();
    let note = "private words that must never reach a log";
    let enrolled = enrol_push_pull(&server.url, &code, "note", json!(note)).await;
    assert_eq!(enrolled.patient_id.to_string(), issued["patient_id"]);
    let device_id = enrolled.device_id;

    let listed = admin_json(
        &data,
        &[
            "list-devices",
            "--patient",
            issued["patient_id"].as_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(listed[0]["device_id"], json!(device_id));

    let (status, logs) = terminate(server);
    assert!(status.success(), "{status:?}\n{logs}");
    // Structured logs: one JSON object a line, with each request's status; no secrets.
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines
        .iter()
        .any(|l| l["fields"]["status"] == json!(200) && l["span"]["uri"] == "/v1/push"));
    let secret = enrolled.token.rsplit('.').next().unwrap();
    for hidden in [secret, code.as_str(), note] {
        assert!(!logs.contains(hidden), "a secret reached the log");
    }
}

#[tokio::test]
async fn serves_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.key_pair.serialize_pem());
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, key_pem).unwrap();
    let server = start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let port = server.url.rsplit(':').next().unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    let health = http
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let (status, logs) = terminate(server);
    assert!(status.success(), "{status:?}\n{logs}");
}

#[test]
fn admin_commands_print_json_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let issued = admin_json(data, &["add-patient", "--label", "clinic ref 12", "--json"]);
    let patient = issued["patient_id"].as_str().unwrap().to_string();
    Uuid::parse_str(&patient).unwrap();
    let code = issued["code"].as_str().unwrap();
    assert_eq!(code.len(), 14);
    assert!(chrono::DateTime::parse_from_rfc3339(issued["expires_at"].as_str().unwrap()).is_ok());

    let next = admin_json(
        data,
        &[
            "new-code",
            "--patient",
            &patient,
            "--expires-hours",
            "2",
            "--json",
        ],
    );
    assert_eq!(next["patient_id"], json!(patient));
    assert_ne!(next["code"], issued["code"]);

    let text = admin(data, &["add-patient"]);
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("code: ") && text.contains("expires: "),
        "{text}"
    );

    assert_eq!(
        admin_json(data, &["list-devices", "--patient", &patient, "--json"]),
        json!([])
    );

    let unknown = Uuid::now_v7().to_string();
    let refused = admin(data, &["new-code", "--patient", &unknown]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no patient"));
    let refused = admin(
        data,
        &["revoke-device", "--patient", &patient, "--device", &unknown],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("has no device"));
    let refused = admin(data, &["add-patient", "--expires-hours", "0"]);
    assert!(!refused.status.success());
}

#[test]
fn an_unreachable_database_is_named_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1: nothing listens, the connection is refused at once.
    let out = command(dir.path())
        .args([
            "admin",
            "add-patient",
            "--database-url",
            "postgres://clinic:hunter2secret@127.0.0.1:1/heeldiary",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open the PostgreSQL database `heeldiary`"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2secret"), "{stderr}");
    assert!(
        !dir.path().join("heeldiary-server.sqlite3").exists(),
        "fell back to SQLite"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_url_runs_the_server_and_admin_on_postgres() {
    use heeldiary_server::storage::ScratchSchema;
    let Some(schema) =
        ScratchSchema::create("a_database_url_runs_the_server_and_admin_on_postgres").await
    else {
        return;
    };
    let url = schema.url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let on_pg = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--database-url", &url]);
        admin_json(&data, &all)
    };
    let issued = on_pg(&["add-patient", "--json"]);
    let server = start(&data, &["--database-url", &url, "--db-pool-size", "4"]);
    assert!(
        server
            .stdout
            .contains("heeldiary-server admin add-patient --database-url"),
        "{}",
        server.stdout
    );

    let code = issued["code"].as_str().unwrap();
    let device_id = enrol_push_pull(&server.url, code, "first_step_pain", json!(6))
        .await
        .device_id;
    let patient = issued["patient_id"].as_str().unwrap();
    let listed = on_pg(&["list-devices", "--patient", patient, "--json"]);
    assert_eq!(listed[0]["device_id"], json!(device_id));

    let (status, logs) = terminate(server);
    assert!(status.success(), "{status:?}\n{logs}");
    // Everything went to PostgreSQL: no SQLite file appeared, the rows are in the schema.
    assert!(!data.join("heeldiary-server.sqlite3").exists());
    assert_eq!(schema.query("SELECT count(*) FROM ops").await, ["1"]);
    assert_eq!(
        schema
            .query("SELECT max(version)::text FROM schema_migrations")
            .await,
        [heeldiary_server::storage::POSTGRES_SCHEMA_VERSION.to_string()]
    );
}

#[test]
fn sigterm_lets_a_request_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = start(&data, &[]);
    let issued = admin_json(&data, &["add-patient", "--json"]);
    let body = json!({"code": issued["code"], "device_id": Uuid::now_v7()}).to_string();
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);

    // Headers and half the body: the request is in the server's hands, waiting for the rest.
    let address = server.url.strip_prefix("http://").unwrap().to_string();
    let mut stream = TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "POST /v1/enrol HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(first).unwrap();
    stream.flush().unwrap();
    server.wait_for_log("started processing request");

    send_sigterm(&server);
    server.wait_for_log("shutting down");

    stream.write_all(rest).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"token\""));

    let (status, logs) = wait(server);
    assert!(status.success(), "{status:?}\n{logs}");
}
