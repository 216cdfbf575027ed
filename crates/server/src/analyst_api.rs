//! The analyst's HTTP endpoints: `GET /v1/export` streams the de-identified entries of every
//! consenting patient as NDJSON or CSV, or answers a FHIR Bulk-Data-style manifest whose
//! files (`GET /v1/export/fhir/{Type}.ndjson`) stream the resources. Never identified: ids,
//! dates and notes stay on the server. Every export goes to the export log before it streams.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{NaiveDate, Utc};
use heeldiary_core::ValidationError;
use heeldiary_export::{ExportError, ExportKey, OutputFiles, Summary};
use tokio::sync::mpsc;

use crate::auth::Analyst;
use crate::error::ApiError;
use crate::export::{
    export_into, load_or_create_key, record, ExportActor, ExportFailure, Format, Options,
};
use crate::storage::Storage;
use crate::AppState;

/// The analyst routes, before state and middleware are attached.
pub fn routes<S: Storage>() -> Router<AppState<S>> {
    Router::new()
        .route("/v1/export", get(export::<S>))
        .route("/v1/export/fhir/{file}", get(fhir_file::<S>))
}

/// Reads `format` (default `ndjson`), `since` and `until` from the query string.
pub fn export_params(query: &str) -> Result<Options, ApiError> {
    let mut options = Options::new(Format::Ndjson, Utc::now());
    let mut seen = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let malformed = |message: String| ApiError::Malformed {
            field: Some(key.to_string()),
            message,
        };
        if seen.contains(&key) {
            return Err(malformed(format!("`{key}` is given twice")));
        }
        seen.push(key);
        let day = |value: &str| {
            NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .map_err(|_| malformed(format!("`{key}` must be a date YYYY-MM-DD")))
        };
        match key {
            "format" => {
                options.format = value.parse().map_err(|e: heeldiary_export::ExportError| {
                    ValidationError::new("format", e.to_string())
                })?;
            }
            "since" => options.since = Some(day(value)?),
            "until" => options.until = Some(day(value)?),
            _ => {
                return Err(malformed(format!(
                    "unknown query parameter `{key}`; expected `format`, `since` and `until`"
                )))
            }
        }
    }
    if matches!(options.format, Format::Parquet | Format::Meds) {
        return Err(ValidationError::new(
            "format",
            format!(
                "{} is written to files by `heeldiary-server export`; over HTTP choose ndjson, \
                 csv or fhir",
                options.format
            ),
        )
        .into());
    }
    options
        .check()
        .map_err(|e| ValidationError::new("since", e.to_string()))?;
    Ok(options)
}

fn key_of<S>(state: &AppState<S>) -> Result<ExportKey, ApiError> {
    let path =
        state.export.key_file.as_deref().ok_or_else(|| {
            ApiError::Unavailable("this server has no export key configured".into())
        })?;
    load_or_create_key(path).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Logs the export before it streams: the log says who asked for what, whatever the client
/// then reads.
async fn log_start<S: Storage>(
    state: &AppState<S>,
    analyst: &Analyst,
    options: &Options,
    patients: &[uuid::Uuid],
) -> Result<(), ApiError> {
    let summary = Summary {
        format: options.format,
        patients: patients.len() as u64,
        rows: Default::default(),
        suppressed_cells: 0,
        unreadable_entries: 0,
        identified: false,
        files: Vec::new(),
    };
    let actor = ExportActor::Analyst {
        analyst_id: analyst.analyst_id,
    };
    // Every consenting patient's diary may be read by the stream that follows.
    record(
        &state.storage,
        options,
        &actor,
        "http",
        &summary,
        patients.to_vec(),
    )
    .await?;
    Ok(())
}

async fn export<S: Storage>(
    State(state): State<AppState<S>>,
    analyst: Analyst,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let options = export_params(query.as_deref().unwrap_or(""))?;
    let key = key_of(&state)?;
    let patients = state.storage.consenting_patients().await?;
    log_start(&state, &analyst, &options, &patients).await?;
    match options.format {
        Format::Fhir => {
            Ok(Json(fhir_manifest(&state, &headers, query.as_deref(), &options)).into_response())
        }
        format => {
            let content_type = if format == Format::Csv {
                "text/csv; charset=utf-8"
            } else {
                "application/x-ndjson"
            };
            let body = stream(
                state.storage.clone(),
                options,
                key,
                patients,
                format!("entries.{}", format.as_str()),
            );
            Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
        }
    }
}

fn fhir_manifest<S>(
    state: &AppState<S>,
    headers: &HeaderMap,
    query: Option<&str>,
    options: &Options,
) -> serde_json::Value {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if state.export.https { "https" } else { "http" };
    // The files take the same range as the manifest (format is theirs already).
    let range: Vec<String> = [
        options.since.map(|d| format!("since={d}")),
        options.until.map(|d| format!("until={d}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let suffix = if range.is_empty() {
        String::new()
    } else {
        format!("?{}", range.join("&"))
    };
    let output: Vec<serde_json::Value> = ["Patient", "Observation"]
        .iter()
        .map(|kind| {
            serde_json::json!({
                "type": kind,
                "url": format!("{scheme}://{host}/v1/export/fhir/{kind}.ndjson{suffix}"),
            })
        })
        .collect();
    serde_json::json!({
        "transactionTime": options.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "request": format!("{scheme}://{host}/v1/export?{}", query.unwrap_or("format=fhir")),
        "requiresAccessToken": true,
        "output": output,
        "error": [],
    })
}

async fn fhir_file<S: Storage>(
    State(state): State<AppState<S>>,
    analyst: Analyst,
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    if !matches!(file.as_str(), "Patient.ndjson" | "Observation.ndjson") {
        return Err(ApiError::NotFound);
    }
    let mut options = export_params(query.as_deref().unwrap_or(""))?;
    options.format = Format::Fhir;
    let key = key_of(&state)?;
    let patients = state.storage.consenting_patients().await?;
    log_start(&state, &analyst, &options, &patients).await?;
    let body = stream(state.storage.clone(), options, key, patients, file);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/fhir+ndjson")],
        body,
    )
        .into_response())
}

/// Bytes gathered before they go to the response body: large enough to make few chunks,
/// small enough that a slow client holds little memory.
const CHUNK_BYTES: usize = 64 * 1024;

/// How long a chunk may wait for the client to take it. A client that stops reading would
/// otherwise hold the export's database snapshot (and, on PostgreSQL, a pooled connection)
/// for as long as it keeps the connection open.
const CLIENT_STALL: std::time::Duration = std::time::Duration::from_secs(60);

/// The file `wanted` of an export of `patients` (the ones the export log names), as a
/// response body. The export runs in a task that reads one page of one patient at a time (the
/// same run as the command line's), keeps the wanted file and drops the others (and skips the
/// monthly findings, which only the findings files carry); a slow client
/// slows the reading (the channel holds a few chunks), a stalled one ends the export.
fn stream<S: Storage>(
    storage: S,
    options: Options,
    key: ExportKey,
    patients: Vec<uuid::Uuid>,
    wanted: String,
) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let buffer = SharedBuffer::default();
        let mut files = OneFile {
            wanted,
            buffer: buffer.clone(),
        };
        let sent = |at_least: usize| {
            let chunk = buffer.take(at_least);
            let tx = tx.clone();
            async move {
                match chunk {
                    Some(chunk) => tx
                        .send_timeout(Ok(Bytes::from(chunk)), CLIENT_STALL)
                        .await
                        .map_err(|_| {
                            ExportFailure::Refused("the client went away or stopped reading".into())
                        }),
                    None => Ok(()),
                }
            }
        };
        let result = export_into(
            &storage,
            &options,
            key,
            patients,
            &mut files,
            &mut (),
            || sent(CHUNK_BYTES),
        )
        .await;
        let last = match result {
            Ok(_) => sent(1).await,
            Err(e) => Err(e),
        };
        if let Err(e) = last {
            tracing::error!(error = %e, "export stream failed");
            let _ = tx
                .send(Err(std::io::Error::other(
                    "the export failed on the server",
                )))
                .await;
        }
    });
    // A receiver answers `None` again after the end, so the body may poll past it.
    let mut rx = rx;
    Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// What an export writes to the one file a response carries; the task takes it out in chunks.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    /// What was written since the last take, when it is at least `at_least` bytes.
    fn take(&self, at_least: usize) -> Option<Vec<u8>> {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (held.len() >= at_least.max(1)).then(|| std::mem::take(&mut *held))
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        held.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Export files of which one, `wanted`, is kept; the others are dropped as written.
struct OneFile {
    wanted: String,
    buffer: SharedBuffer,
}

impl OutputFiles for OneFile {
    fn create(&mut self, path: &str) -> Result<Box<dyn Write + Send>, ExportError> {
        Ok(if self.keeps(path) {
            Box::new(self.buffer.clone())
        } else {
            Box::new(std::io::sink())
        })
    }

    fn keeps(&self, path: &str) -> bool {
        path == self.wanted
    }
}
