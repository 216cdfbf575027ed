//! The provider's patient page for a patient with three years of daily entries: p50 and p99
//! render time through the whole router (session check, access check, access log, loading,
//! trend report, chart, HTML), beside the plain JSON entries endpoint for the same patient in
//! the same run. SQLite on disk. Prints figures; asserts nothing.
//!
//! `cargo bench -p heeldiary-server --bench provider_page`

use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use chrono::{Days, NaiveDate, Utc};
use heeldiary_core::{Field, Hlc, Op, Patch};
use heeldiary_server::admin;
use heeldiary_server::secrets::{hash_code, Opaque, TokenSecret};
use heeldiary_server::storage::{NewDevice, ProviderStorage, Role, SqliteStorage, Storage};
use serde_json::json;
use tower::ServiceExt;
use uuid::Uuid;

const DAYS: u64 = 3 * 365;
const RUNS: usize = 200;

fn ops(device: Uuid, start: NaiveDate) -> Vec<Op> {
    (0..DAYS)
        .map(|i| {
            let day = start + Days::new(i);
            let mut patch = Patch::new();
            patch.insert(Field::Day, json!(day.to_string()));
            patch.insert(
                Field::RecordedAt,
                json!(format!("{day}T08:00:00.000+01:00")),
            );
            patch.insert(Field::FirstStepPain, json!((i % 9) as u8 + 1));
            patch.insert(Field::SittingPain, json!(((i / 7) % 8) as u8));
            if i % 5 == 0 {
                patch.insert(Field::Radiating, json!(true));
            }
            if i % 30 < 10 {
                patch.insert(Field::Treatments, json!(["stretching"]));
            }
            Op {
                entry_id: Uuid::now_v7(),
                device_id: device,
                device_seq: i + 1,
                hlc: Hlc {
                    wall_ms: 1_700_000_000_000 + i,
                    counter: 0,
                    node: device,
                },
                patch,
            }
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn time(app: &axum::Router, path: &str, cookie: &str) -> Vec<Duration> {
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let request = Request::builder()
            .uri(path)
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap();
        let started = Instant::now();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        to_bytes(response.into_body(), usize::MAX).await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    times
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open_dir(dir.path()).await.unwrap();
    let now = Utc::now();
    let issued = admin::add_patient(&storage, Some("Three Years".into()), 24, now)
        .await
        .unwrap();
    let patient = issued.patient_id;
    let device = Uuid::now_v7();
    storage
        .enrol(
            hash_code(&issued.code).unwrap(),
            NewDevice {
                device_id: device,
                token_hash: TokenSecret::generate().hash,
                role: Role::Device,
                label: None,
            },
            now,
        )
        .await
        .unwrap();
    let start = now.date_naive() - Days::new(DAYS - 1);
    let all = ops(device, start);
    for chunk in all.chunks(1000) {
        storage.push(patient, chunk.to_vec(), now).await.unwrap();
    }
    let added = admin::add_provider(&storage, "Dr Bench", "bench@clinic.test", None, now)
        .await
        .unwrap();
    storage
        .share(patient, hash_code(&added.share_code).unwrap(), now)
        .await
        .unwrap();
    let session = Opaque::generate();
    storage
        .create_session(session.hash, added.provider_id, now)
        .await
        .unwrap();
    let cookie = format!("hd_session={}", session.text);
    let app = heeldiary_server::app(storage);

    println!("patient with {DAYS} daily entries, {RUNS} requests each, SQLite on disk");
    let mut rows = Vec::new();
    for (name, path) in [
        (
            "JSON entries",
            format!("/v1/provider/patients/{patient}/entries"),
        ),
        (
            "page, 4 weeks",
            format!("/provider/patients/{patient}?range=4w"),
        ),
        (
            "page, all",
            format!("/provider/patients/{patient}?range=all"),
        ),
        ("report", format!("/provider/patients/{patient}/report")),
    ] {
        let times = time(&app, &path, &cookie).await;
        let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
        rows.push((name, p50, p99));
    }
    let baseline = rows[0].1.as_secs_f64();
    for (name, p50, p99) in rows {
        println!(
            "{name:<14} p50 {:>7.2} ms  p99 {:>7.2} ms  ({:.2}x the JSON entries p50)",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            p50.as_secs_f64() / baseline
        );
    }
}
