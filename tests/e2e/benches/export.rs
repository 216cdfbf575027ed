//! The analyst export at cohort size, through the real release binary: 1,000,000 entries
//! (1,000 consenting patients of 1,000 entries, one a day) to CSV and to Parquet, rows per
//! second and the exporter's peak resident memory, beside the sqlite3 shell writing the same
//! entry rows as CSV (`sqlite3 -csv`) in the same run.
//!
//! `HEELDIARY_BENCH_ENTRIES` changes the total, `HEELDIARY_BENCH_PER_PATIENT` the entries of
//! each patient and `HEELDIARY_BENCH_PER_DAY` how many of them share a day: one patient with
//! 1,000,000 entries, 1,000 a day, is
//! `HEELDIARY_BENCH_PER_PATIENT=1000000 HEELDIARY_BENCH_PER_DAY=1000`. With
//! `HEELDIARY_BENCH_DATA=DIR` the server data is kept in `DIR`, and reused when it is there.
//! `HEELDIARY_BENCH_ROUNDS` (3 unless set) is how many times each export and the shell run, in
//! turn; the table shows the median of each and the spread of the ratio over the rounds.
//!
//! Run with `cargo build --release --workspace --bins && cargo bench -p heeldiary-e2e --bench
//! export`. Needs the `sqlite3` shell for the baseline (its row says skipped without it).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, Utc};
use heeldiary_core::{Field, Hlc, Op, Patch};
use heeldiary_e2e::{binary, quantile, runtime};
use heeldiary_server::storage::{NewPatient, ResearchConsent, SqliteStorage, Storage};
use serde_json::{json, Value};
use uuid::Uuid;

/// Operations per push while filling: one patient's diary goes in several pushes.
const PUSH_OPS: usize = 10_000;

/// The shape of the cohort.
#[derive(Clone, Copy)]
struct Shape {
    patients: usize,
    per_patient: usize,
    per_day: usize,
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

fn main() {
    let total = setting("HEELDIARY_BENCH_ENTRIES", 1_000_000);
    let per_patient = setting("HEELDIARY_BENCH_PER_PATIENT", 1_000).min(total);
    let shape = Shape {
        patients: total.div_ceil(per_patient),
        per_patient,
        per_day: setting("HEELDIARY_BENCH_PER_DAY", 1),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    // A data folder to keep (and to reuse when it exists, to compare builds on the same rows).
    let kept = std::env::var_os("HEELDIARY_BENCH_DATA").map(std::path::PathBuf::from);
    let data = kept.clone().unwrap_or_else(|| dir.path().join("data"));
    println!(
        "heeldiary export: {} patients x {} entries, {} a day (needs release binaries)",
        shape.patients, shape.per_patient, shape.per_day
    );
    if kept.is_some() && data.join(SqliteStorage::FILE_NAME).exists() {
        println!("reusing the server data in {}", data.display());
    } else {
        let started = Instant::now();
        runtime().block_on(fill(&data, shape));
        println!(
            "filled the server in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let rows = (shape.patients * shape.per_patient) as f64;

    // Each round runs every export and the shell once, one after the other: a machine whose
    // speed drifts slows all of them alike, and the median of the rounds leaves out a round
    // that met a busy moment.
    let rounds = setting("HEELDIARY_BENCH_ROUNDS", 3);
    let file = data.join(SqliteStorage::FILE_NAME);
    let formats = ["csv", "parquet"];
    let mut exports: Vec<Vec<(Duration, Option<u64>)>> = vec![Vec::new(); formats.len()];
    let mut shell = Vec::new();
    for round in 0..rounds {
        for (format, runs) in formats.iter().zip(&mut exports) {
            runs.push(export(
                format,
                &dir.path().join(format!("{format}-{round}")),
                &data,
                rows,
            ));
        }
        shell.extend(sqlite3_csv(
            &file,
            &dir.path().join(format!("sqlite3-{round}.csv")),
        ));
    }
    // Without the shell on some rounds there is no baseline to compare with.
    let baseline = (shell.len() == rounds).then(|| quantile(&mut shell.clone(), 0.5).as_secs_f64());

    println!();
    println!(
        "median of {rounds} round(s), peak RSS the highest of them; ratio: the shell's median \
         time over the export's, and its spread over the rounds"
    );
    println!(
        "{:<32} {:>12} {:>10} {:>14} {:>16} {:>14}",
        "run", "rows/s", "seconds", "peak RSS MiB", "vs sqlite3 -csv", "ratio spread"
    );
    for (format, runs) in formats.iter().zip(&exports) {
        let seconds =
            quantile(&mut runs.iter().map(|(s, _)| *s).collect::<Vec<_>>(), 0.5).as_secs_f64();
        let rss = runs.iter().filter_map(|(_, rss)| *rss).max();
        let per_round: Vec<f64> = runs
            .iter()
            .zip(&shell)
            .map(|((s, _), b)| b.as_secs_f64() / s.as_secs_f64())
            .collect();
        let spread = match (
            per_round.iter().copied().reduce(f64::min),
            per_round.iter().copied().reduce(f64::max),
        ) {
            (Some(low), Some(high)) if baseline.is_some() => format!("{low:.2}-{high:.2}x"),
            _ => "-".into(),
        };
        println!(
            "{:<32} {:>12.0} {:>10.2} {:>14} {:>16} {:>14}",
            format!("heeldiary-server export {format}"),
            rows / seconds,
            seconds,
            rss.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
            baseline.map_or("skipped".into(), |b| format!("{:.2}x", b / seconds)),
            spread,
        );
    }
    match baseline {
        Some(b) => println!(
            "{:<32} {:>12.0} {:>10.2} {:>14} {:>16} {:>14}",
            "sqlite3 -csv (entries)",
            rows / b,
            b,
            "-",
            "1.00x",
            "-"
        ),
        None => println!("sqlite3 -csv: skipped (no sqlite3 shell)"),
    }
    println!("(ratio > 1: the export is faster than the sqlite3 shell dumping the same rows)");
}

/// One export of the server data in `data` to `out` through the release binary: its time
/// and the peak resident memory it reports.
fn export(format: &str, out: &Path, data: &Path, rows: f64) -> (Duration, Option<u64>) {
    let started = Instant::now();
    let output = Command::new(binary("heeldiary-server"))
        .args(["export", "--format", format, "--json", "--out"])
        .arg(out)
        .arg("--data")
        .arg(data)
        .output()
        .expect("export runs");
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).expect("JSON summary");
    assert_eq!(summary["rows"]["entries"].as_u64(), Some(rows as u64));
    // The next round writes elsewhere; the files of this one only take disk space.
    let _ = std::fs::remove_dir_all(out);
    (took, summary["peak_rss_kib"].as_u64())
}

/// The sqlite3 shell writing the entry rows of `file` as CSV to `out`: its time, or `None`
/// without the shell.
fn sqlite3_csv(file: &Path, out: &Path) -> Option<Duration> {
    let sink = std::fs::File::create(out).expect("file");
    let started = Instant::now();
    let seconds = Command::new("sqlite3")
        .arg("-csv")
        .arg("-header")
        .arg(file)
        .arg("SELECT patient_id, entry_id, day, deleted, state FROM entries")
        .stdout(sink)
        .status()
        .ok()
        .filter(|s| s.success())
        .map(|_| started.elapsed());
    let _ = std::fs::remove_file(out);
    seconds
}

/// A server data folder with the consenting patients of `shape`, written through the storage
/// API in pushes of [`PUSH_OPS`] operations.
async fn fill(data: &std::path::Path, shape: Shape) {
    let storage = SqliteStorage::open_dir(data).await.expect("storage");
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    let now = Utc::now();
    for p in 0..shape.patients {
        let patient_id = Uuid::now_v7();
        let device = Uuid::now_v7();
        storage
            .create_patient(NewPatient {
                patient_id,
                label: None,
                created_at: now,
            })
            .await
            .expect("patient");
        for first in (0..shape.per_patient).step_by(PUSH_OPS) {
            let ops: Vec<Op> = (first..(first + PUSH_OPS).min(shape.per_patient))
                .map(|i| entry_op(device, start, i, p, shape.per_day))
                .collect();
            storage.push(patient_id, ops, now).await.expect("push");
        }
        storage
            .set_research_consent(ResearchConsent {
                patient_id,
                device_id: device,
                consent: true,
                changed_at: now,
                received_at: now,
            })
            .await
            .expect("consent");
    }
}

/// The `i`th entry of patient `p`, made by one operation.
fn entry_op(device: Uuid, start: NaiveDate, i: usize, p: usize, per_day: usize) -> Op {
    let day = start + Days::new((i / per_day) as u64);
    let numbness = ["none", "mild", "moderate"][i % 3];
    let patch: Patch = serde_json::from_value(json!({
        "day": day.to_string(),
        "recorded_at": format!("{day}T07:30:00.000+01:00"),
        "first_step_pain": (i + p) % 11,
        "sitting_pain": i % 7,
        "radiating": i % 3 == 0,
        "numbness": numbness,
        "locations": ["heel_bottom"],
        "note": format!("note {i}"),
    }))
    .expect("patch");
    debug_assert!(patch.contains_key(&Field::Day));
    Op {
        entry_id: Uuid::now_v7(),
        device_id: device,
        device_seq: i as u64 + 1,
        hlc: Hlc {
            wall_ms: 1_700_000_000_000 + i as u64,
            counter: 0,
            node: device,
        },
        patch,
    }
}
