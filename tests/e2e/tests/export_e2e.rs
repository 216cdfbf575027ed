//! The analyst export end to end, on every backend: real devices give or withdraw research
//! consent and sync; `heeldiary-server export` writes every format; the files hold no note,
//! calendar date or id; the tools analysts use read them (when `HEELDIARY_TEST_PYTHON` names a
//! Python with pyarrow, duckdb and fhir.resources, as `.ci/run` sets up); `GET /v1/export`
//! streams the same entries to an analyst token and to nothing else.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use heeldiary_e2e::{binary, Backend, Device, Server};
use serde_json::Value;

const ENTRIES: usize = 6;

struct Cohort {
    server: Server,
    args: Vec<String>,
    _key_dir: tempfile::TempDir,
    out: tempfile::TempDir,
    devices: Vec<(String, String, Device)>,
}

impl Cohort {
    fn export(&self, extra: &[&str]) -> Output {
        Command::new(binary("heeldiary-server"))
            .arg("export")
            .args(extra)
            .args(&self.args)
            .output()
            .expect("export runs")
    }

    fn export_ok(&self, format: &str) -> PathBuf {
        let dir = self.out.path().join(format);
        let out = self.export(&["--format", format, "--out", dir.to_str().unwrap(), "--json"]);
        assert!(
            out.status.success(),
            "export {format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
        assert_eq!(
            summary["patients"], 1,
            "{format}: only the consenting patient"
        );
        dir
    }
}

/// Three patients: one consents, one never answers, one consents and withdraws.
fn cohort(backend: &Backend) -> Cohort {
    let key_dir = tempfile::tempdir().unwrap();
    let mut args = backend.args();
    if matches!(backend, Backend::Postgres(_)) {
        // The export key lives in a data folder whatever the backend.
        args.extend(["--data".into(), key_dir.path().display().to_string()]);
    }
    let server = Server::start_on(args.clone(), "127.0.0.1:0");
    let mut devices = Vec::new();
    for who in ["yes", "never", "withdrew"] {
        let issued = server.admin_json(&["add-patient", "--label", &format!("Label-{who}")]);
        let device = Device::new();
        device.enrol(&server, issued["code"].as_str().unwrap());
        for day in 1..=ENTRIES {
            device.log(&[
                "--date",
                &format!("2026-10-{day:02}"),
                "--first-step-pain",
                &(day % 11).to_string(),
                "--sitting-pain",
                "2",
                "--numbness",
                "mild",
                "--where",
                "heel-bottom",
                "--note",
                &format!("zebra-{who}-{day}"),
            ]);
        }
        if who != "never" {
            device.ok(&["research-consent", "on"]);
        }
        device.sync();
        devices.push((
            who.to_string(),
            issued["patient_id"].as_str().unwrap().to_string(),
            device,
        ));
    }
    let withdrew = &devices[2].2;
    withdrew.ok(&["research-consent", "off"]);
    let status: Value = serde_json::from_str(&withdrew.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["research_consent"], false);
    assert_eq!(
        status["research_consent_pending"], true,
        "queued until the next sync"
    );
    assert_eq!(withdrew.sync()["research_consent_sent"], true);
    Cohort {
        server,
        args,
        _key_dir: key_dir,
        out: tempfile::tempdir().unwrap(),
        devices,
    }
}

/// GETs `path` with an optional bearer token: status and body.
fn get(base: &str, path: &str, token: Option<&str>) -> (u16, String) {
    heeldiary_e2e::runtime().block_on(async {
        let mut request = reqwest::Client::new().get(format!("{base}{path}"));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.expect("server answers");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    })
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn python_readers(format: &str, dir: &Path, entries: usize, subjects: usize) {
    let Ok(python) = std::env::var("HEELDIARY_TEST_PYTHON") else {
        eprintln!("SKIPPED python readers ({format}): set HEELDIARY_TEST_PYTHON to a Python with pyarrow, duckdb and fhir.resources");
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/read_export.py");
    let out = Command::new(python)
        .arg(script)
        .args([
            format,
            dir.to_str().unwrap(),
            &entries.to_string(),
            &subjects.to_string(),
        ])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python readers on {format}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn consenting_patients_only_de_identified_in_every_format_and_read_by_analyst_tools() {
    for backend in Backend::all("export_e2e_formats") {
        let cohort = cohort(&backend);
        let mut secrets = vec!["zebra-".to_string(), "2026-10-".into(), "Label-".into()];
        for (_, patient, device) in &cohort.devices {
            secrets.push(patient.clone());
            secrets.push(device.store().device_id().to_string());
            for entry in device.entries() {
                secrets.push(entry["id"].as_str().unwrap().to_string());
            }
        }
        for format in ["csv", "ndjson", "parquet", "meds", "fhir"] {
            let dir = cohort.export_ok(format);
            for file in files_under(&dir) {
                let bytes = std::fs::read(&file).unwrap();
                let text = String::from_utf8_lossy(&bytes);
                for secret in &secrets {
                    assert!(
                        !text.contains(secret.as_str()),
                        "{}: {} holds `{secret}`",
                        backend.name(),
                        file.display()
                    );
                }
            }
            python_readers(format, &dir, ENTRIES, 1);
        }
        let ndjson =
            std::fs::read_to_string(cohort.out.path().join("ndjson/entries.ndjson")).unwrap();
        assert_eq!(ndjson.lines().count(), ENTRIES, "{}", backend.name());

        // Identified: notes and dates of the consenting patient only, and logged as such.
        let identified = cohort.out.path().join("identified");
        let out = cohort.export(&[
            "--format",
            "csv",
            "--identified",
            "--out",
            identified.to_str().unwrap(),
        ]);
        assert!(out.status.success());
        let csv = std::fs::read_to_string(identified.join("entries.csv")).unwrap();
        assert!(csv.contains("zebra-yes-1") && csv.contains("2026-10-01"));
        assert!(!csv.contains("zebra-never") && !csv.contains("zebra-withdrew"));
        let log = cohort.server.admin_json(&["export-log"]);
        let newest = &log[0];
        assert_eq!(newest["identified"], true);
        assert_eq!(newest["via"], "cli");
        assert!(newest["actor"].as_str().unwrap().starts_with("admin:"));
        assert_eq!(log.as_array().unwrap().len(), 6);

        // Each export is in the access log of the patient it holds, and of no other.
        let exports = exports_read(&cohort.devices[0].2);
        assert_eq!(exports.len(), 6, "{}", backend.name());
        assert_eq!(
            exports[0]["what"],
            "research export (csv, de-identified) by the clinic administrator"
        );
        assert_eq!(
            exports[5]["what"],
            "research export (csv, identified: with your id, dates and notes) by the clinic \
             administrator"
        );
        assert_eq!(exports[5]["provider_name"], "clinic administrator");
        for (who, _, device) in &cohort.devices[1..] {
            assert!(exports_read(device).is_empty(), "{who}: {}", backend.name());
        }
    }
}

/// The research exports in a device's access log (`heeldiary access-log --json`), oldest first.
fn exports_read(device: &Device) -> Vec<Value> {
    let reads: Value = serde_json::from_str(&device.ok(&["access-log", "--json"])).unwrap();
    reads
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["what"]
                .as_str()
                .is_some_and(|w| w.starts_with("research export"))
        })
        .cloned()
        .collect()
}

#[test]
fn refused_exports_leave_nothing_behind() {
    let backend = Backend::sqlite();
    let cohort = cohort(&backend);
    let target = cohort.out.path().join("refused");
    let target_arg = target.to_str().unwrap();
    let out = cohort.export(&["--format", "xml", "--out", target_arg]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("xml"));
    let out = cohort.export(&[
        "--format",
        "csv",
        "--out",
        target_arg,
        "--since",
        "2026-10-05",
        "--until",
        "2026-10-01",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("--since 2026-10-05 is after --until 2026-10-01"));
    assert!(!target.exists());
    // A folder with something in it is not touched.
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep.txt"), "mine").unwrap();
    let out = cohort.export(&["--format", "csv", "--out", target_arg]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"));
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 1);
    // No temporary folder is left beside it either.
    assert_eq!(
        std::fs::read_dir(cohort.out.path()).unwrap().count(),
        1,
        "only the folder given remains"
    );
}

#[test]
fn the_http_export_streams_to_analyst_tokens_only() {
    for backend in Backend::all("export_e2e_http") {
        let cohort = cohort(&backend);
        let analyst = cohort
            .server
            .admin_json(&["add-analyst", "--name", "Study 1"]);
        let token = analyst["token"].as_str().unwrap().to_string();
        let get = |path: &str, token: Option<&str>| get(&cohort.server.url, path, token);
        let (status, body) = get("/v1/export?format=ndjson", Some(&token));
        assert_eq!(status, 200, "{}", backend.name());
        assert_eq!(body.lines().count(), ENTRIES);
        assert!(!body.contains("zebra") && !body.contains("2026-10-"));
        let (_, csv) = get("/v1/export?format=csv", Some(&token));
        assert_eq!(csv.lines().count(), ENTRIES + 1, "a header and the rows");
        assert_eq!(get("/v1/export?format=ndjson", None).0, 401);
        let device_token: String = rusqlite::Connection::open(&cohort.devices[0].2.db)
            .unwrap()
            .query_row("SELECT token FROM sync_state", [], |r| r.get(0))
            .unwrap();
        assert_eq!(get("/v1/export", Some(&device_token)).0, 401);
        assert_eq!(get("/v1/export?format=parquet", Some(&token)).0, 422);
        assert_eq!(
            get("/v1/export?format=ndjson&identified=1", Some(&token)).0,
            400
        );

        let manifest: Value =
            serde_json::from_str(&get("/v1/export?format=fhir", Some(&token)).1).unwrap();
        assert_eq!(manifest["requiresAccessToken"], true);
        let observations = manifest["output"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["type"] == "Observation")
            .unwrap()["url"]
            .as_str()
            .unwrap()
            .to_string();
        let path = observations
            .split_once("/v1/")
            .map(|(_, p)| format!("/v1/{p}"))
            .unwrap();
        let (_, lines) = get(&path, Some(&token));
        assert!(lines.lines().count() >= 2 * ENTRIES);
        assert!(lines.contains("72514-3"));
        let patients = get("/v1/export/fhir/Patient.ndjson", Some(&token)).1;

        cohort.server.admin(&[
            "revoke-analyst",
            "--analyst",
            analyst["analyst_id"].as_str().unwrap(),
        ]);
        assert_eq!(get("/v1/export", Some(&token)).0, 401);
        let exports = exports_read(&cohort.devices[0].2);
        assert!(!exports.is_empty(), "{}", backend.name());
        assert!(exports.iter().all(|r| r["provider_name"] == "Study 1"
            && r["provider_id"] == analyst["analyst_id"]
            && r["what"]
                .as_str()
                .unwrap()
                .ends_with("de-identified) by a research analyst")));
        assert!(exports_read(&cohort.devices[1].2).is_empty());
        let log = cohort.server.admin_json(&["export-log"]);
        assert!(log.as_array().unwrap().iter().any(|r| r["via"] == "http"
            && r["actor"]
                .as_str()
                .unwrap()
                .contains(analyst["analyst_id"].as_str().unwrap())));

        // What streams over HTTP is what the command line writes, byte for byte.
        let (csv_out, ndjson_out, fhir_out) = (
            cohort.export_ok("csv"),
            cohort.export_ok("ndjson"),
            cohort.export_ok("fhir"),
        );
        let streamed = [
            (csv_out.join("entries.csv"), &csv),
            (ndjson_out.join("entries.ndjson"), &body),
            (fhir_out.join("Observation.ndjson"), &lines),
            (fhir_out.join("Patient.ndjson"), &patients),
        ];
        for (file, streamed) in streamed {
            let written = std::fs::read_to_string(&file).unwrap();
            assert_eq!(&written, streamed, "{} {}", file.display(), backend.name());
        }
    }
}
