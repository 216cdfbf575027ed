//! The analyst's HTTP endpoints: `GET /v1/export` streams the de-identified entries of every
//! consenting patient as NDJSON or CSV, or answers a FHIR Bulk-Data-style manifest whose
//! files (`GET /v1/export/fhir/{Type}.ndjson`) stream the resources. Never identified: ids,
//! dates and notes stay on the server. Every export goes to the export log before it streams.

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{NaiveDate, Utc};
use heeldiary_core::ValidationError;
use heeldiary_export::{
    entry_columns, CsvTable, ExportKey, NdjsonTable, PreparedPatient, Summary, TableWriter,
};
use tokio::sync::mpsc;

use crate::auth::Analyst;
use crate::error::ApiError;
use crate::export::{load_or_create_key, prepare_patient, record, ExportActor, Format, Options};
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
            let preamble = if format == Format::Csv {
                CsvTable::new(Vec::new(), &entry_columns(false))
                    .and_then(CsvTable::into_inner)
                    .map_err(|e| ApiError::Internal(e.to_string()))?
            } else {
                Vec::new()
            };
            let body = stream(
                state.storage.clone(),
                options,
                preamble,
                patients,
                move |patient| entry_chunk(patient, &key, format),
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
    let observations = match file.as_str() {
        "Patient.ndjson" => false,
        "Observation.ndjson" => true,
        _ => return Err(ApiError::NotFound),
    };
    let mut options = export_params(query.as_deref().unwrap_or(""))?;
    options.format = Format::Fhir;
    let key = key_of(&state)?;
    let patients = state.storage.consenting_patients().await?;
    log_start(&state, &analyst, &options, &patients).await?;
    let body = stream(
        state.storage.clone(),
        options,
        Vec::new(),
        patients,
        move |patient| {
            let mut out = Vec::new();
            let written = if observations {
                patient.write_fhir_observations(&key, false, &mut out)
            } else if patient.entries.is_empty() {
                Ok(())
            } else {
                patient.write_fhir_patient(&key, false, &mut out)
            };
            written.map(|()| out).map_err(|e| e.to_string())
        },
    );
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/fhir+ndjson")],
        body,
    )
        .into_response())
}

/// The entry rows of one patient in `format` (CSV without its header, which the stream's
/// preamble carries).
fn entry_chunk(
    patient: &PreparedPatient,
    key: &ExportKey,
    format: Format,
) -> Result<Vec<u8>, String> {
    let rows = patient.entry_rows(key, false);
    let text = |e: heeldiary_export::ExportError| e.to_string();
    if format == Format::Csv {
        let mut table = CsvTable::continuing(Vec::new());
        for row in &rows {
            table.write_row(row).map_err(text)?;
        }
        table.into_inner().map_err(text)
    } else {
        let mut table = NdjsonTable::new(Vec::new(), &entry_columns(false));
        for row in &rows {
            table.write_row(row).map_err(text)?;
        }
        Ok(table.into_inner())
    }
}

/// A body fed by a task that reads one patient at a time: memory holds one patient's chunk,
/// and a slow client slows the reading (the channel holds a few chunks).
fn stream<S, F>(
    storage: S,
    options: Options,
    preamble: Vec<u8>,
    patients: Vec<uuid::Uuid>,
    render: F,
) -> Body
where
    S: Storage,
    F: Fn(&PreparedPatient) -> Result<Vec<u8>, String> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        if !preamble.is_empty() && tx.send(Ok(Bytes::from(preamble))).await.is_err() {
            return;
        }
        for patient_id in patients {
            let chunk = match prepare_patient(&storage, patient_id, &options).await {
                Ok(patient) => render(&patient),
                Err(e) => Err(e.to_string()),
            };
            let item = chunk.map(Bytes::from).map_err(|e| {
                tracing::error!(error = %e, "export stream failed");
                std::io::Error::other("the export failed on the server")
            });
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    // A receiver answers `None` again after the end, so the body may poll past it.
    let mut rx = rx;
    Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}
