//! The HTTP endpoints: health, enrolment, push, pull and one entry. Handlers are generic over
//! [`Storage`] and hold no SQL; every refusal is an [`ApiError`].

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::{FromRequest, Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use heeldiary_core::wire::{
    from_json, EnrolRequest, EnrolResponse, EntryResponse, NewDeviceRequest, PullResponse, PushAck,
    PushRequest, PushResponse, ResearchConsentRequest, DEFAULT_ENTRY_OPS_LIMIT, DEFAULT_PULL_LIMIT,
    MAX_BODY_BYTES, MAX_DEVICE_BODY_BYTES, MAX_ENROL_BODY_BYTES, MAX_ENTRY_OPS_LIMIT,
    MAX_OPS_PER_ENTRY_PER_PUSH, MAX_PULL_LIMIT, MAX_PUSH_OPS, PULL_HELD_OWN_THROUGH,
    PUSH_ACK_QUERY, PUSH_AFTER_HLC, PUSH_AFTER_SEQ, PUSH_ORDERED_QUERY,
};
use heeldiary_core::{check_label, Hlc, Op, ValidationError, MAX_CLOCK_AHEAD_MS};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::secrets::{hash_code, TokenSecret};
use crate::storage::{
    HeldOwnOps, NewDevice, PushAfter, ResearchConsent, Role, Storage, StorageError,
};
use crate::AppState;

/// The routes, before state and middleware are attached (see [`crate::app`]).
pub fn routes<S: Storage>() -> Router<AppState<S>> {
    Router::new()
        .route("/healthz", get(health::<S>))
        // Anyone may send an enrolment, so its body is held to what an enrolment needs.
        .route(
            "/v1/enrol",
            post(enrol::<S>).layer(DefaultBodyLimit::max(MAX_ENROL_BODY_BYTES)),
        )
        .route(
            "/v1/devices",
            post(new_device::<S>).layer(DefaultBodyLimit::max(MAX_DEVICE_BODY_BYTES)),
        )
        .route("/v1/push", post(push::<S>))
        .route("/v1/pull", get(pull::<S>))
        .route("/v1/entries/{entry_id}", get(entry::<S>))
        .route("/v1/research-consent", post(research_consent::<S>))
        .fallback(|| async { ApiError::NotFound })
}

/// A JSON request body read as bytes and parsed with [`from_json`], so that unknown fields and
/// bad values are reported with their path. The content type is not checked.
#[derive(Debug, Clone)]
pub struct WireJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for WireJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let limit = request
            .uri()
            .path()
            .strip_prefix("/v1/")
            .map_or(MAX_BODY_BYTES, body_limit_of);
        // A body that trickles in holds its buffer and its connection: it gets a deadline of
        // its own, much shorter than the whole request's.
        let read = tokio::time::timeout(BODY_READ_TIMEOUT, Bytes::from_request(request, state));
        let bytes = read
            .await
            .map_err(|_| ApiError::BodyTimeout {
                seconds: BODY_READ_TIMEOUT.as_secs(),
            })?
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge {
                        field: None,
                        message: format!("the body exceeds {limit} bytes (after decompression)"),
                    }
                } else {
                    ApiError::Malformed {
                        field: None,
                        message: rejection.body_text(),
                    }
                }
            })?;
        Ok(WireJson(from_json(&bytes)?))
    }
}

/// How long a request body may take to arrive in full.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The body limit of a route under `/v1/`, for messages (the limits themselves are layers on
/// the routes).
fn body_limit_of(route: &str) -> usize {
    match route {
        "enrol" => MAX_ENROL_BODY_BYTES,
        "devices" => MAX_DEVICE_BODY_BYTES,
        _ => MAX_BODY_BYTES,
    }
}

/// Unix milliseconds of `t`.
fn millis(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp_millis()).unwrap_or(0)
}

async fn health<S: Storage>(
    State(state): State<AppState<S>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state
        .storage
        .health()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(serde_json::json!({ "status": "ok" })))
}

async fn enrol<S: Storage>(
    State(state): State<AppState<S>>,
    WireJson(request): WireJson<EnrolRequest>,
) -> Result<Json<EnrolResponse>, ApiError> {
    check_label(request.label.as_deref(), "label")?;
    let code_hash = hash_code(&request.code).ok_or(ApiError::InvalidCode)?;
    let secret = match request.secret.as_deref() {
        Some(chosen) => TokenSecret::from_device(chosen).ok_or_else(|| {
            ValidationError::new("secret", "must be 64 lowercase hexadecimal characters")
        })?,
        None => TokenSecret::generate(),
    };
    let device = NewDevice {
        device_id: request.device_id,
        token_hash: secret.hash,
        role: Role::Device,
        label: request.label,
    };
    let patient_id = state
        .storage
        .enrol(code_hash, device, Utc::now())
        .await
        .map_err(|e| match e {
            StorageError::Conflict(reason) => ApiError::DeviceIdTaken(reason),
            other => other.into(),
        })?;
    tracing::info!(%patient_id, device_id = %request.device_id, "device enrolled");
    Ok(Json(EnrolResponse {
        patient_id,
        device_id: request.device_id,
        token: secret.into_token(patient_id, request.device_id),
        epoch: state.storage.epoch().await?,
    }))
}

/// A device of a patient registers a new device identity with its valid token: a diary that
/// found it is a copy of another continues under the new one. Repeating the request with the
/// same id and secret (a lost answer) answers the same again.
async fn new_device<S: Storage>(
    State(state): State<AppState<S>>,
    caller: Authenticated,
    WireJson(request): WireJson<NewDeviceRequest>,
) -> Result<Json<EnrolResponse>, ApiError> {
    check_label(request.label.as_deref(), "label")?;
    let secret = TokenSecret::from_device(&request.secret).ok_or_else(|| {
        ValidationError::new("secret", "must be 64 lowercase hexadecimal characters")
    })?;
    let device = NewDevice {
        device_id: request.device_id,
        token_hash: secret.hash,
        role: caller.role,
        label: request.label,
    };
    state
        .storage
        .add_device(caller.patient_id, device, Utc::now())
        .await
        .map_err(|e| match e {
            StorageError::Conflict(reason) => ApiError::DeviceIdTaken(reason),
            other => other.into(),
        })?;
    tracing::info!(
        patient_id = %caller.patient_id,
        from = %caller.device_id,
        device_id = %request.device_id,
        "device took a new identity"
    );
    Ok(Json(EnrolResponse {
        patient_id: caller.patient_id,
        device_id: request.device_id,
        token: secret.into_token(caller.patient_id, request.device_id),
        epoch: state.storage.epoch().await?,
    }))
}

async fn push<S: Storage>(
    State(state): State<AppState<S>>,
    device: Authenticated,
    RawQuery(query): RawQuery,
    body: Request,
) -> Result<axum::response::Response, ApiError> {
    let query = PushQuery::parse(query.as_deref())?;
    // The place in the device's order is taken before the body is read, so that a batch that
    // arrived first but follows a later one still finds it there when its body is in.
    let mut turn = state
        .pushes
        .arrive(device.device_id, query.after.map(|(seq, _)| seq));
    let WireJson(request) = WireJson::<PushRequest>::from_request(body, &state).await?;
    validate_batch(&request.ops, device.device_id, Utc::now())?;
    let after = query
        .after
        .map(|(device_seq, hlc)| {
            if let Some(i) = request.ops.iter().position(|op| op.device_seq <= device_seq) {
                return Err(ValidationError::new(
                    format!("ops[{i}].device_seq"),
                    format!("must be above {PUSH_AFTER_SEQ} ({device_seq}), the operation this batch follows"),
                ));
            }
            Ok(PushAfter {
                device_id: device.device_id,
                device_seq,
                hlc,
            })
        })
        .transpose()?;
    if after.is_some() {
        turn.wait().await;
    }
    // Stamped once its turn came, so that a push stored after another is not stamped as
    // received before it.
    let now = Utc::now();
    let mut pushing =
        std::pin::pin!(state
            .storage
            .push_after(device.patient_id, after, request.ops, now));
    // Polled once, a push on a backend that queues pushes in order is queued: the device's
    // next push may be queued behind it while it is being stored.
    let results = match pushing.as_mut().now_or_never() {
        Some(results) => results,
        None => {
            if state.storage.queues_pushes_when_polled() {
                turn.queued();
            }
            pushing.await
        }
    }?;
    drop(turn);
    let answer = PushResponse {
        results,
        server_time_ms: millis(now),
        epoch: device.epoch,
    };
    // A client that asks for the short answer gets a few bytes per batch; one that does not (an
    // older build) gets a result per operation, as before.
    Ok(if query.short {
        Json(PushAck::of(&answer)).into_response()
    } else {
        Json(answer).into_response()
    })
}

/// The query of a push.
#[derive(Debug, Default, PartialEq)]
struct PushQuery {
    /// The short answer ([`PUSH_ACK_QUERY`] or [`PUSH_ORDERED_QUERY`]).
    short: bool,
    /// The device's operation the batch must follow: its sequence number and stamp.
    after: Option<(u64, Hlc)>,
}

impl PushQuery {
    /// Reads the pairs this server knows; others are left for later versions.
    fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut parsed = PushQuery::default();
        let (mut seq, mut hlc) = (None, None);
        let malformed = |name: &str, why: String| ApiError::Malformed {
            field: Some(name.into()),
            message: format!("{name}: {why}"),
        };
        for pair in query.unwrap_or_default().split('&') {
            if pair == PUSH_ACK_QUERY || pair == PUSH_ORDERED_QUERY {
                parsed.short = true;
            }
            match pair.split_once('=') {
                Some((PUSH_AFTER_SEQ, value)) => {
                    // Sequence numbers run from 1 and are stored as signed 64-bit integers.
                    let number = value
                        .parse::<u64>()
                        .ok()
                        .filter(|seq| (1..=i64::MAX as u64).contains(seq));
                    seq = Some(number.ok_or_else(|| {
                        malformed(
                            PUSH_AFTER_SEQ,
                            format!("`{value}` is not a sequence number (1 to {})", i64::MAX),
                        )
                    })?);
                }
                Some((PUSH_AFTER_HLC, value)) => {
                    hlc = Some(
                        value
                            .parse::<Hlc>()
                            .map_err(|why| malformed(PUSH_AFTER_HLC, why))?,
                    );
                }
                _ => {}
            }
        }
        parsed.after = match (seq, hlc) {
            (Some(seq), Some(hlc)) => Some((seq, hlc)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ApiError::Malformed {
                    field: Some(PUSH_AFTER_HLC.into()),
                    message: format!(
                        "{PUSH_AFTER_SEQ} needs {PUSH_AFTER_HLC}, the operation's stamp"
                    ),
                })
            }
            (None, Some(_)) => {
                return Err(ApiError::Malformed {
                    field: Some(PUSH_AFTER_SEQ.into()),
                    message: format!(
                        "{PUSH_AFTER_HLC} needs {PUSH_AFTER_SEQ}, the operation's sequence number"
                    ),
                })
            }
        };
        Ok(parsed)
    }
}

/// Checks a whole batch before anything is written: size, that every operation is the pushing
/// device's own, that no entry takes more than [`MAX_OPS_PER_ENTRY_PER_PUSH`] of them, that no
/// stamp runs more than [`MAX_CLOCK_AHEAD_MS`] ahead of `now`, and each operation's values
/// ([`Op::validate`]), days from [`EARLIEST_DAY`](heeldiary_core::EARLIEST_DAY) on included.
/// Future days are not judged against the server's calendar: the device judged them against
/// its own when they were written, and an operation refused here for good would stop the
/// device's sync for good. The first failure is reported with its path
/// (`ops[3].patch.first_step_pain`).
pub fn validate_batch(ops: &[Op], device_id: Uuid, now: DateTime<Utc>) -> Result<(), ApiError> {
    if ops.len() > MAX_PUSH_OPS {
        return Err(ApiError::PayloadTooLarge {
            field: Some("ops".into()),
            message: format!(
                "{} operations in one push; at most {MAX_PUSH_OPS} are allowed: split the batch",
                ops.len()
            ),
        });
    }
    let mut per_entry: std::collections::HashMap<Uuid, usize> = std::collections::HashMap::new();
    for op in ops {
        let count = per_entry.entry(op.entry_id).or_default();
        *count += 1;
        if *count > MAX_OPS_PER_ENTRY_PER_PUSH {
            return Err(ApiError::PayloadTooLarge {
                field: Some("ops".into()),
                message: format!(
                    "more than {MAX_OPS_PER_ENTRY_PER_PUSH} operations on entry {} in one push: \
                     split the batch",
                    op.entry_id
                ),
            });
        }
    }
    let now_ms = millis(now);
    // The clock first, for the whole batch: a device whose clock runs ahead can correct itself
    // and push again, while a value error would stop it for good.
    if let Some((i, op)) = ops
        .iter()
        .enumerate()
        .find(|(_, op)| op.hlc.wall_ms > now_ms.saturating_add(MAX_CLOCK_AHEAD_MS))
    {
        return Err(ApiError::ClockAhead {
            field: format!("ops[{i}].hlc"),
            ahead_ms: op.hlc.wall_ms - now_ms,
            server_time_ms: now_ms,
        });
    }
    for (i, op) in ops.iter().enumerate() {
        let at = |field: &str| format!("ops[{i}].{field}");
        if op.device_id != device_id {
            return Err(ValidationError::new(
                at("device_id"),
                "must be the id of the device whose token sent the push",
            )
            .into());
        }
        if i64::try_from(op.device_seq).is_err() {
            return Err(ValidationError::new(
                at("device_seq"),
                format!("must be at most {}", i64::MAX),
            )
            .into());
        }
        op.validate(None)
            .map_err(|e| e.within(&format!("ops[{i}]")))?;
    }
    Ok(())
}

async fn pull<S: Storage>(
    State(state): State<AppState<S>>,
    device: Authenticated,
    RawQuery(query): RawQuery,
) -> Result<Json<PullResponse>, ApiError> {
    let params = pull_params(query.as_deref().unwrap_or(""))?;
    let held = params.held_own_through.map(|through_seq| HeldOwnOps {
        device_id: device.device_id,
        through_seq,
    });
    let page = state
        .storage
        .pull_leaving_out(device.patient_id, params.after, params.limit, held)
        .await?;
    Ok(Json(PullResponse {
        next_cursor: page.next_cursor,
        ops: page.ops,
        has_more: page.has_more,
        server_time_ms: millis(Utc::now()),
        epoch: device.epoch,
    }))
}

/// What a pull asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullParams {
    /// The cursor to read after.
    pub after: u64,
    /// Page size.
    pub limit: u32,
    /// The device's own operations it holds already, up to this sequence number.
    pub held_own_through: Option<u64>,
}

/// Reads `after` (default 0), `limit` (1..=[`MAX_PULL_LIMIT`], default [`DEFAULT_PULL_LIMIT`])
/// and [`PULL_HELD_OWN_THROUGH`] (optional) from a pull query string.
pub fn pull_params(query: &str) -> Result<PullParams, ApiError> {
    let [after, limit, held_own_through] =
        query_numbers(query, ["after", "limit", PULL_HELD_OWN_THROUGH])?;
    let (after, limit) = page_bounds(after, limit, DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT)?;
    Ok(PullParams {
        after,
        limit,
        held_own_through: held_own_through
            .map(|seq| at_most_i64(seq, PULL_HELD_OWN_THROUGH))
            .transpose()?,
    })
}

/// Reads `after` (default 0) and `limit` (1..=`max_limit`, default `default_limit`) from a
/// query string.
fn page_params(query: &str, default_limit: u32, max_limit: u32) -> Result<(u64, u32), ApiError> {
    let [after, limit] = query_numbers(query, ["after", "limit"])?;
    page_bounds(after, limit, default_limit, max_limit)
}

/// The whole numbers given for `keys` in a query string, each at most once; any other key is
/// refused.
fn query_numbers<const N: usize>(
    query: &str,
    keys: [&str; N],
) -> Result<[Option<u64>; N], ApiError> {
    let mut values = [None; N];
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let malformed = |message: String| ApiError::Malformed {
            field: Some(key.to_string()),
            message,
        };
        let Some(slot) = keys.iter().position(|k| *k == key).map(|i| &mut values[i]) else {
            let expected = keys.map(|k| format!("`{k}`")).join(", ");
            return Err(malformed(format!(
                "unknown query parameter `{key}`; expected {expected}"
            )));
        };
        if slot.is_some() {
            return Err(malformed(format!("`{key}` is given twice")));
        }
        let number = value
            .parse::<u64>()
            .map_err(|_| malformed(format!("`{key}` must be a whole number ≥ 0")))?;
        *slot = Some(number);
    }
    Ok(values)
}

/// `after` (default 0) and `limit` (1..=`max_limit`, default `default_limit`) checked.
fn page_bounds(
    after: Option<u64>,
    limit: Option<u64>,
    default_limit: u32,
    max_limit: u32,
) -> Result<(u64, u32), ApiError> {
    let limit = limit.unwrap_or(u64::from(default_limit));
    if !(1..=u64::from(max_limit)).contains(&limit) {
        return Err(ValidationError::new(
            "limit",
            format!("must be between 1 and {max_limit}, got {limit}"),
        )
        .into());
    }
    Ok((at_most_i64(after.unwrap_or(0), "after")?, limit as u32))
}

/// `number` if storage can hold it.
fn at_most_i64(number: u64, field: &str) -> Result<u64, ApiError> {
    if i64::try_from(number).is_err() {
        return Err(ValidationError::new(field, format!("must be at most {}", i64::MAX)).into());
    }
    Ok(number)
}

async fn entry<S: Storage>(
    State(state): State<AppState<S>>,
    device: Authenticated,
    Path(entry_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<EntryResponse>, ApiError> {
    // A malformed id gets the same answer as another patient's: nothing here.
    let entry_id = Uuid::parse_str(&entry_id).map_err(|_| ApiError::NotFound)?;
    let (after, limit) = page_params(
        query.as_deref().unwrap_or(""),
        DEFAULT_ENTRY_OPS_LIMIT,
        MAX_ENTRY_OPS_LIMIT,
    )?;
    let stored = state
        .storage
        .entry(device.patient_id, entry_id, after, limit)
        .await?
        .ok_or(ApiError::NotFound)?;
    // An entry still waiting for the operation that creates it is shown as its state alone.
    let entry = match stored.state.to_entry(entry_id) {
        Ok(entry) => Some(entry),
        Err(waiting) if waiting.is_incomplete() => None,
        Err(invalid) => return Err(ApiError::Internal(invalid.to_string())),
    };
    Ok(Json(EntryResponse {
        entry_id,
        entry,
        state: stored.state,
        next_cursor: stored.ops.last().map_or(after, |op| op.cursor),
        ops: stored.ops,
        has_more: stored.has_more,
    }))
}

/// Records the patient's answer to research use, as the device carried it, and echoes it. An
/// answer older than the stored one changes nothing; either way the device may forget it was
/// pending.
async fn research_consent<S: Storage>(
    State(state): State<AppState<S>>,
    device: Authenticated,
    WireJson(request): WireJson<ResearchConsentRequest>,
) -> Result<Json<ResearchConsentRequest>, ApiError> {
    let now = Utc::now();
    let changed_at = request.changed_at.with_timezone(&Utc);
    if changed_at.timestamp_millis() as i128
        > now.timestamp_millis() as i128 + MAX_CLOCK_AHEAD_MS as i128
    {
        return Err(
            ValidationError::new("changed_at", "is in the future of the server clock").into(),
        );
    }
    state
        .storage
        .set_research_consent(ResearchConsent {
            patient_id: device.patient_id,
            device_id: device.device_id,
            consent: request.research_consent,
            changed_at,
            received_at: now,
        })
        .await?;
    tracing::info!(patient_id = %device.patient_id, consent = request.research_consent, "research consent");
    Ok(Json(request))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_parameters_have_defaults_and_bounds() {
        let page = |q: &str| {
            let params = pull_params(q).unwrap();
            (params.after, params.limit)
        };
        assert_eq!(page(""), (0, DEFAULT_PULL_LIMIT));
        assert_eq!(page("after=7&limit=3"), (7, 3));
        assert_eq!(page(&format!("limit={MAX_PULL_LIMIT}")).1, MAX_PULL_LIMIT);
        let status = |q: &str| pull_params(q).unwrap_err().status();
        assert_eq!(status("limit=0"), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            status(&format!("limit={}", MAX_PULL_LIMIT + 1)),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(status("after=-1"), StatusCode::BAD_REQUEST);
        assert_eq!(status("after=x"), StatusCode::BAD_REQUEST);
        assert_eq!(status("after=1&after=2"), StatusCode::BAD_REQUEST);
        assert_eq!(status("since=1"), StatusCode::BAD_REQUEST);
        assert_eq!(
            pull_params("since=1").unwrap_err().body().field.as_deref(),
            Some("since")
        );
    }

    #[test]
    fn pull_takes_the_held_own_sequence_number_or_none() {
        assert_eq!(pull_params("").unwrap().held_own_through, None);
        let params = pull_params("after=3&held_own_through=40").unwrap();
        assert_eq!((params.after, params.held_own_through), (3, Some(40)));
        let refused = |q: &str| {
            let error = pull_params(q).unwrap_err();
            (error.status(), error.body().field)
        };
        let field = Some(PULL_HELD_OWN_THROUGH.to_string());
        for malformed in [
            "held_own_through=-1",
            "held_own_through=",
            "held_own_through=1.5",
            "held_own_through=1&held_own_through=1",
        ] {
            assert_eq!(
                refused(malformed),
                (StatusCode::BAD_REQUEST, field.clone()),
                "{malformed}"
            );
        }
        assert_eq!(
            refused(&format!("held_own_through={}", i64::MAX as u64 + 1)),
            (StatusCode::UNPROCESSABLE_ENTITY, field)
        );
        // The entry history's paging knows no such parameter.
        assert_eq!(
            page_params("held_own_through=1", 10, 10)
                .unwrap_err()
                .status(),
            StatusCode::BAD_REQUEST
        );
    }
}
