//! The HTTP API through the router, without a socket: every endpoint, every error status, gzip
//! in both directions.

use std::io::{Read, Write};

use axum::body::{to_bytes, Body};
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Utc};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use heeldiary_core::wire::{
    EnrolResponse, EntryResponse, ErrorBody, ErrorCode, PullResponse, PushAck, PushResponse,
    PushResult, PushStatus, DEFAULT_ENTRY_OPS_LIMIT, MAX_BODY_BYTES, MAX_ENTRY_OPS_LIMIT,
    MAX_OPS_PER_ENTRY_PER_PUSH, MAX_PULL_LIMIT, MAX_PUSH_OPS, PUSH_ACK_QUERY, PUSH_ORDERED_QUERY,
};
use heeldiary_core::EntryState;
use heeldiary_core::{Hlc, Op, MAX_CLOCK_AHEAD_MS};
use heeldiary_server::admin;
use heeldiary_server::secrets::SecretHash;
use heeldiary_server::storage::{
    Access, AccessRecord, AnalystCredentials, BreakGlass, DeviceCredentials, DeviceInfo,
    ErasureRecord, ExportRecord, HeldOwnOps, NewAnalyst, NewCode, NewDevice, NewPatient,
    NewProvider, ProviderInfo, ProviderLogin, ProviderPatient, ProviderStorage, PullPage,
    PushAfter, ResearchConsent, ShareInfo, SqliteStorage, Storage, StorageError, StoredEntry,
};
use serde_json::{json, Value};
use tower::ServiceExt;
use uuid::Uuid;

struct Server {
    app: Router,
    storage: SqliteStorage,
}

/// An answer: status, headers and the body (decompressed if it came gzipped).
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&self.body));
        })
    }

    /// Asserts the status and that the body is an [`ErrorBody`] with `code`; returns it.
    fn error(&self, status: StatusCode, code: ErrorCode) -> ErrorBody {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.headers.get(header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
        let body: ErrorBody = self.json();
        assert_eq!(body.error, code, "{body:?}");
        body
    }
}

/// A device enrolled through the API.
struct Device {
    patient_id: Uuid,
    device_id: Uuid,
    token: String,
    seq: u64,
}

impl Server {
    async fn new() -> Self {
        let storage = SqliteStorage::open_in_memory().await.unwrap();
        Server {
            app: heeldiary_server::app(storage.clone()),
            storage,
        }
    }

    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let raw = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body = if headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| v == "gzip")
        {
            let mut out = Vec::new();
            GzDecoder::new(&raw[..]).read_to_end(&mut out).unwrap();
            out
        } else {
            raw.to_vec()
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn post(&self, path: &str, token: Option<&str>, body: impl Into<Body>) -> Answer {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request.body(body.into()).unwrap()).await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut request = Request::builder().uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn code_for(&self, patient: Option<Uuid>) -> (Uuid, String) {
        let issued = match patient {
            None => admin::add_patient(&self.storage, None, 24, Utc::now()).await,
            Some(p) => admin::new_code_for(&self.storage, p, 24, Utc::now()).await,
        }
        .unwrap();
        (issued.patient_id, issued.code)
    }

    async fn enrol(&self, patient: Option<Uuid>) -> Device {
        let (patient_id, code) = self.code_for(patient).await;
        let device_id = Uuid::now_v7();
        let answer = self
            .post(
                "/v1/enrol",
                None,
                json!({"code": code, "device_id": device_id, "label": "phone"}).to_string(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        let enrolled: EnrolResponse = answer.json();
        assert_eq!(
            (enrolled.patient_id, enrolled.device_id),
            (patient_id, device_id)
        );
        Device {
            patient_id,
            device_id,
            token: enrolled.token,
            seq: 0,
        }
    }

    async fn push(&self, device: &Device, ops: Vec<Value>) -> Answer {
        self.post(
            "/v1/push",
            Some(&device.token),
            json!({ "ops": ops }).to_string(),
        )
        .await
    }

    async fn pull_all(&self, device: &Device) -> PullResponse {
        let answer = self
            .get(
                &format!("/v1/pull?limit={MAX_PULL_LIMIT}"),
                Some(&device.token),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        answer.json()
    }
}

impl Device {
    /// The next operation of this device on `entry`, stamped now, setting `patch`.
    fn op(&mut self, entry: Uuid, patch: Value) -> Value {
        self.seq += 1;
        let hlc = Hlc {
            wall_ms: Utc::now().timestamp_millis() as u64,
            counter: self.seq as u32,
            node: self.device_id,
        };
        json!({
            "entry_id": entry,
            "device_id": self.device_id,
            "device_seq": self.seq,
            "hlc": hlc.to_string(),
            "patch": patch,
        })
    }

    /// An operation creating `entry` today.
    fn create(&mut self, entry: Uuid, first_step_pain: i64) -> Value {
        let now = Utc::now();
        self.op(
            entry,
            json!({
                "day": now.date_naive().to_string(),
                "recorded_at": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
                "first_step_pain": first_step_pain,
            }),
        )
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn health_reports_ok() {
    let server = Server::new().await;
    let answer = server.get("/healthz", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json::<Value>(), json!({"status": "ok"}));
}

#[tokio::test]
async fn a_push_that_names_the_operation_it_follows_is_stored_only_after_it() {
    let server = Server::new().await;
    let mut phone = server.enrol(None).await;
    let first: Vec<Value> = (0..3).map(|i| phone.create(Uuid::now_v7(), i)).collect();
    let second: Vec<Value> = (0..2).map(|i| phone.create(Uuid::now_v7(), i)).collect();
    let body = |ops: &[Value]| json!({ "ops": ops }).to_string();
    let follow = |seq: u64, hlc: &str| {
        format!("/v1/push?{PUSH_ORDERED_QUERY}&after_seq={seq}&after_hlc={hlc}")
    };
    let last_hlc = first[2]["hlc"].as_str().unwrap().to_string();
    let after_first = follow(3, &last_hlc);
    let token = Some(phone.token.as_str());

    // The second batch before the first: refused, and nothing of it kept.
    let early = server.post(&after_first, token, body(&second)).await;
    let refusal = early.error(StatusCode::CONFLICT, ErrorCode::OutOfOrder);
    assert_eq!(refusal.field.as_deref(), Some("after_seq"));
    assert!(
        refusal.message.contains("sequence 3"),
        "{}",
        refusal.message
    );
    assert!(server.pull_all(&phone).await.ops.is_empty());

    let ordered = format!("/v1/push?{PUSH_ORDERED_QUERY}");
    let answer = server.post(&ordered, token, body(&first)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json::<PushAck>().through_seq, 3);

    // The query is checked before the body is stored.
    for (path, status, field) in [
        (
            format!("/v1/push?{PUSH_ORDERED_QUERY}&after_seq=three&after_hlc={last_hlc}"),
            StatusCode::BAD_REQUEST,
            "after_seq",
        ),
        (
            format!("/v1/push?{PUSH_ORDERED_QUERY}&after_seq=3"),
            StatusCode::BAD_REQUEST,
            "after_hlc",
        ),
        (
            format!("/v1/push?{PUSH_ORDERED_QUERY}&after_hlc={last_hlc}"),
            StatusCode::BAD_REQUEST,
            "after_seq",
        ),
        (
            follow(3, "not-a-stamp"),
            StatusCode::BAD_REQUEST,
            "after_hlc",
        ),
        // Sequence numbers run from 1 and fit a signed 64-bit integer.
        (follow(0, &last_hlc), StatusCode::BAD_REQUEST, "after_seq"),
        (
            follow(1 << 63, &last_hlc),
            StatusCode::BAD_REQUEST,
            "after_seq",
        ),
        // The batch must come after the operation it names.
        (
            follow(4, &last_hlc),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ops[0].device_seq",
        ),
    ] {
        let answer = server.post(&path, token, body(&second)).await;
        let code = if status == StatusCode::BAD_REQUEST {
            ErrorCode::MalformedRequest
        } else {
            ErrorCode::InvalidValue
        };
        let refusal = answer.error(status, code);
        assert_eq!(refusal.field.as_deref(), Some(field), "{path}");
    }
    // The right number with a stamp the device no longer has is not the operation stored.
    let mut stamp: Hlc = last_hlc.parse().unwrap();
    stamp.wall_ms += 1;
    let stale = server
        .post(&follow(3, &stamp.to_string()), token, body(&second))
        .await;
    stale.error(StatusCode::CONFLICT, ErrorCode::OutOfOrder);
    assert_eq!(server.pull_all(&phone).await.ops.len(), 3);

    let answer = server.post(&after_first, token, body(&second)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let ack: PushAck = answer.json();
    assert_eq!((ack.through_seq, ack.applied, ack.duplicate), (5, 2, 0));
    let seqs: Vec<u64> = server
        .pull_all(&phone)
        .await
        .ops
        .iter()
        .map(|o| o.op.device_seq)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn a_push_asking_for_the_short_answer_gets_counts_in_a_few_bytes() {
    let server = Server::new().await;
    let mut phone = server.enrol(None).await;
    let ops: Vec<Value> = (0..100)
        .map(|i| phone.create(Uuid::now_v7(), i % 11))
        .collect();
    let short = |answer: Answer| {
        assert_eq!(answer.status, StatusCode::OK);
        let bytes = answer.body.len();
        (answer.json::<PushAck>(), bytes)
    };
    let path = format!("/v1/push?{PUSH_ACK_QUERY}");
    let body = json!({ "ops": ops[..60] }).to_string();
    let (first, bytes) = short(server.post(&path, Some(&phone.token), body).await);
    assert_eq!(
        (first.through_seq, first.applied, first.duplicate),
        (60, 60, 0)
    );
    assert!(bytes < 160, "{bytes} bytes acknowledge 60 operations");
    // A retry that overlaps the first batch counts what was there already.
    let body = json!({ "ops": ops }).to_string();
    let (second, _) = short(server.post(&path, Some(&phone.token), body).await);
    assert_eq!(
        (second.through_seq, second.applied, second.duplicate),
        (100, 40, 60)
    );
    // Without the query, the answer has a result per operation, as older clients expect.
    let full: PushResponse = server.push(&phone, ops).await.json();
    assert_eq!(full.results.len(), 100);
    assert_eq!(PushAck::of(&full).duplicate, 100);
}

#[tokio::test]
async fn an_enrolled_device_pushes_pulls_and_reads_its_entries() {
    let server = Server::new().await;
    let mut phone = server.enrol(None).await;
    let entry = Uuid::now_v7();
    let ops = vec![
        phone.create(entry, 7),
        phone.op(entry, json!({"sitting_pain": 2})),
    ];
    let answer = server.push(&phone, ops.clone()).await;
    assert_eq!(answer.status, StatusCode::OK);
    let pushed: PushResponse = answer.json();
    assert_eq!(
        pushed.results.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![PushStatus::Applied; 2]
    );
    assert!(pushed.server_time_ms > 0);

    // A retried batch is a duplicate.
    let again: PushResponse = server.push(&phone, ops).await.json();
    assert!(again
        .results
        .iter()
        .all(|r| r.status == PushStatus::Duplicate));

    // The patient's second device sees both operations.
    let tablet = server.enrol(Some(phone.patient_id)).await;
    let pulled = server.pull_all(&tablet).await;
    assert_eq!(pulled.ops.len(), 2);
    assert_eq!(pulled.next_cursor, 2);
    assert!(!pulled.has_more);
    let page: PullResponse = server
        .get("/v1/pull?after=1&limit=1", Some(&tablet.token))
        .await
        .json();
    assert_eq!(
        (page.ops.len(), page.next_cursor, page.has_more),
        (1, 2, false)
    );
    let empty: PullResponse = server
        .get("/v1/pull?after=2", Some(&tablet.token))
        .await
        .json();
    assert_eq!((empty.ops.len(), empty.next_cursor), (0, 2));

    let answer = server
        .get(&format!("/v1/entries/{entry}"), Some(&tablet.token))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let shown: EntryResponse = answer.json();
    assert_eq!(shown.entry_id, entry);
    let merged = shown.entry.unwrap();
    assert_eq!(
        (merged.first_step_pain, merged.sitting_pain),
        (Some(7), Some(2))
    );
    assert_eq!(shown.ops.len(), 2);
}

#[tokio::test]
async fn enrolment_codes_work_once_and_only_when_known() {
    let server = Server::new().await;
    let (_, code) = server.code_for(None).await;
    let enrol = |code: String, device: Uuid| {
        let server = &server;
        async move {
            server
                .post(
                    "/v1/enrol",
                    None,
                    json!({"code": code, "device_id": device}).to_string(),
                )
                .await
        }
    };
    let device = Uuid::now_v7();
    // Typed sloppily: lower case, spaces.
    let sloppy = code.to_lowercase().replace('-', " ");
    assert_eq!(enrol(sloppy, device).await.status, StatusCode::OK);
    enrol(code.clone(), Uuid::now_v7())
        .await
        .error(StatusCode::UNAUTHORIZED, ErrorCode::InvalidCode);
    enrol("0000-0000-0000".into(), Uuid::now_v7())
        .await
        .error(StatusCode::UNAUTHORIZED, ErrorCode::InvalidCode);
    enrol("not a code".into(), Uuid::now_v7())
        .await
        .error(StatusCode::UNAUTHORIZED, ErrorCode::InvalidCode);

    // The same device id cannot enrol twice; the fresh code stays usable.
    let (_, fresh) = server.code_for(None).await;
    let clash = enrol(fresh.clone(), device)
        .await
        .error(StatusCode::CONFLICT, ErrorCode::DeviceIdTaken);
    assert_eq!(clash.field.as_deref(), Some("device_id"));
    assert_eq!(enrol(fresh, Uuid::now_v7()).await.status, StatusCode::OK);
}

#[tokio::test]
async fn enrolment_checks_its_body() {
    let server = Server::new().await;
    let (_, code) = server.code_for(None).await;
    let unknown = server
        .post(
            "/v1/enrol",
            None,
            json!({"code": code, "device_id": Uuid::now_v7(), "colour": "red"}).to_string(),
        )
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::MalformedRequest);
    assert_eq!(unknown.field.as_deref(), Some("colour"));
    let bad_id = server
        .post(
            "/v1/enrol",
            None,
            json!({"code": code, "device_id": "nope"}).to_string(),
        )
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::MalformedRequest);
    assert_eq!(bad_id.field.as_deref(), Some("device_id"));
    let long = server
        .post(
            "/v1/enrol",
            None,
            json!({"code": code, "device_id": Uuid::now_v7(), "label": "x".repeat(201)})
                .to_string(),
        )
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidValue);
    assert_eq!(long.field.as_deref(), Some("label"));
}

#[tokio::test]
async fn requests_without_a_valid_token_are_unauthorized() {
    let server = Server::new().await;
    let phone = server.enrol(None).await;
    let answer = server.post("/v1/push", None, "{}").await;
    answer.error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized);
    assert_eq!(
        answer.headers.get(header::WWW_AUTHENTICATE).unwrap(),
        "Bearer"
    );
    server
        .get("/v1/pull", None)
        .await
        .error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized);
    server
        .get("/v1/pull", Some("garbage"))
        .await
        .error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized);
    // Right ids, wrong secret.
    let (ids, secret) = phone.token.rsplit_once('.').unwrap();
    let flipped: String = secret
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    server
        .get("/v1/pull", Some(&format!("{ids}.{flipped}")))
        .await
        .error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized);
    // A token never opens another patient's feed: the patient id is part of what is checked.
    let other = server.enrol(None).await;
    let swapped = phone.token.replacen(
        &phone.patient_id.to_string(),
        &other.patient_id.to_string(),
        1,
    );
    server
        .get("/v1/pull", Some(&swapped))
        .await
        .error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized);

    // Revoked: refused from then on, even with an empty body.
    assert_eq!(
        server.get("/v1/pull", Some(&phone.token)).await.status,
        StatusCode::OK
    );
    admin::revoke_device(
        &server.storage,
        phone.patient_id,
        phone.device_id,
        Utc::now(),
    )
    .await
    .unwrap();
    server
        .post("/v1/push", Some(&phone.token), "{}")
        .await
        .error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized);
}

#[tokio::test]
async fn malformed_bodies_are_400_with_the_path() {
    let server = Server::new().await;
    let mut phone = server.enrol(None).await;
    let not_json = server
        .post("/v1/push", Some(&phone.token), "{ops: [")
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::MalformedRequest);
    assert!(!not_json.message.is_empty());
    server
        .post("/v1/push", Some(&phone.token), "")
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::MalformedRequest);

    let mut op = phone.create(Uuid::now_v7(), 3);
    op["extra"] = json!(1);
    let good = phone.create(Uuid::now_v7(), 3);
    let unknown = server
        .push(&phone, vec![good, op])
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::MalformedRequest);
    assert_eq!(unknown.field.as_deref(), Some("ops[1].extra"));

    let mut op = phone.create(Uuid::now_v7(), 3);
    op["patch"]["pain"] = json!(3);
    let field = server
        .push(&phone, vec![op])
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::MalformedRequest);
    assert!(field.field.unwrap().starts_with("ops[0].patch"));
    assert!(
        field.message.contains("unknown field `pain`"),
        "{}",
        field.message
    );
    assert!(server.pull_all(&phone).await.ops.is_empty());
}

#[tokio::test]
async fn out_of_range_values_are_422_and_the_batch_writes_nothing() {
    let server = Server::new().await;
    let mut phone = server.enrol(None).await;
    let entry = Uuid::now_v7();
    let ops = vec![
        phone.create(entry, 3),
        phone.create(Uuid::now_v7(), 4),
        phone.op(Uuid::now_v7(), json!({"rest_pain": 1})),
        phone.op(entry, json!({"first_step_pain": 11})),
    ];
    let refused = server
        .push(&phone, ops)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidValue);
    assert_eq!(
        refused.field.as_deref(),
        Some("ops[3].patch.first_step_pain")
    );
    assert!(
        refused.message.contains("between 0 and 10"),
        "{}",
        refused.message
    );
    assert!(server.pull_all(&phone).await.ops.is_empty());
    server
        .get(&format!("/v1/entries/{entry}"), Some(&phone.token))
        .await
        .error(StatusCode::NOT_FOUND, ErrorCode::NotFound);
}

#[tokio::test]
async fn operations_of_another_device_are_refused() {
    let server = Server::new().await;
    let mut phone = server.enrol(None).await;
    let mut tablet = server.enrol(Some(phone.patient_id)).await;
    let mine = phone.create(Uuid::now_v7(), 1);
    let theirs = tablet.create(Uuid::now_v7(), 1);
    let refused = server
        .push(&phone, vec![mine, theirs])
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidValue);
    assert_eq!(refused.field.as_deref(), Some("ops[1].device_id"));
    assert!(server.pull_all(&phone).await.ops.is_empty());
}

#[tokio::test]
async fn a_clock_far_ahead_gets_clock_ahead_with_the_server_time() {
    let server = Server::new().await;
    let mut phone = server.enrol(None).await;
    let ok = phone.create(Uuid::now_v7(), 1);
    let mut ahead = phone.create(Uuid::now_v7(), 1);
    let future = Hlc {
        wall_ms: Utc::now().timestamp_millis() as u64 + MAX_CLOCK_AHEAD_MS + 60_000,
        counter: 0,
        node: phone.device_id,
    };
    ahead["hlc"] = json!(future.to_string());
    let before = Utc::now().timestamp_millis() as u64;
    let refused = server
        .push(&phone, vec![ok, ahead])
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::ClockAhead);
    assert_eq!(refused.field.as_deref(), Some("ops[1].hlc"));
    let server_time = refused.server_time_ms.unwrap();
    assert!(server_time >= before && server_time < future.wall_ms);
    assert!(server.pull_all(&phone).await.ops.is_empty());
}

#[tokio::test]
async fn oversized_batches_and_bodies_are_413() {
    let server = Server::new().await;
    let mut phone = server.enrol(None).await;
    let ops: Vec<Value> = (0..=MAX_PUSH_OPS)
        .map(|_| phone.create(Uuid::now_v7(), 1))
        .collect();
    let refused = server
        .push(&phone, ops)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge);
    assert_eq!(refused.field.as_deref(), Some("ops"));

    let mut padded = br#"{"ops":[]}"#.to_vec();
    padded.resize(MAX_BODY_BYTES + 1, b' ');
    server
        .post("/v1/push", Some(&phone.token), padded.clone())
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge);

    // The limit holds after decompression: a small gzip body that inflates past it.
    let bomb = gzip(&padded);
    assert!(bomb.len() < MAX_BODY_BYTES / 100);
    let request = Request::post("/v1/push")
        .header(header::AUTHORIZATION, format!("Bearer {}", phone.token))
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(bomb))
        .unwrap();
    server
        .send(request)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge);
    assert!(server.pull_all(&phone).await.ops.is_empty());
}

#[tokio::test]
async fn gzip_works_both_ways() {
    let server = Server::new().await;
    let mut phone = server.enrol(None).await;
    let ops: Vec<Value> = (0..50).map(|_| phone.create(Uuid::now_v7(), 5)).collect();
    let body = json!({ "ops": ops }).to_string();
    let request = Request::post("/v1/push")
        .header(header::AUTHORIZATION, format!("Bearer {}", phone.token))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(gzip(body.as_bytes())))
        .unwrap();
    let answer = server.send(request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json::<PushResponse>().results.len(), 50);

    let pull_accepting_gzip = |path: &str| {
        Request::get(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", phone.token))
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(Body::empty())
            .unwrap()
    };
    let answer = server.send(pull_accepting_gzip("/v1/pull")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.headers.get(header::CONTENT_ENCODING).unwrap(),
        "gzip"
    );
    assert_eq!(answer.json::<PullResponse>().ops.len(), 50);

    // A short answer goes as it is, below the size where gzip pays.
    let answer = server.send(pull_accepting_gzip("/v1/pull?after=49")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers.get(header::CONTENT_ENCODING), None);
    assert_eq!(answer.json::<PullResponse>().ops.len(), 1);

    // An encoding the server does not speak.
    let request = Request::post("/v1/push")
        .header(header::AUTHORIZATION, format!("Bearer {}", phone.token))
        .header(header::CONTENT_ENCODING, "br")
        .body(Body::from("{\"ops\":[]}"))
        .unwrap();
    server.send(request).await.error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::MalformedRequest,
    );

    // A body that claims gzip but is not.
    let request = Request::post("/v1/push")
        .header(header::AUTHORIZATION, format!("Bearer {}", phone.token))
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from("{\"ops\":[]}"))
        .unwrap();
    server
        .send(request)
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::MalformedRequest);
}

#[tokio::test]
async fn pull_parameters_are_checked() {
    let server = Server::new().await;
    let phone = server.enrol(None).await;
    let limit = server
        .get("/v1/pull?limit=0", Some(&phone.token))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidValue);
    assert_eq!(limit.field.as_deref(), Some("limit"));
    let after = server
        .get("/v1/pull?after=soon", Some(&phone.token))
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::MalformedRequest);
    assert_eq!(after.field.as_deref(), Some("after"));
    let held = server
        .get("/v1/pull?held_own_through=some", Some(&phone.token))
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::MalformedRequest);
    assert_eq!(held.field.as_deref(), Some("held_own_through"));
}

#[tokio::test]
async fn another_patients_entry_looks_like_no_entry() {
    let server = Server::new().await;
    let mut alice = server.enrol(None).await;
    let bob = server.enrol(None).await;
    let entry = Uuid::now_v7();
    let op = alice.create(entry, 6);
    assert_eq!(server.push(&alice, vec![op]).await.status, StatusCode::OK);
    assert_eq!(
        server
            .get(&format!("/v1/entries/{entry}"), Some(&alice.token))
            .await
            .status,
        StatusCode::OK
    );
    let theirs = server
        .get(&format!("/v1/entries/{entry}"), Some(&bob.token))
        .await;
    let unknown = server
        .get(&format!("/v1/entries/{}", Uuid::now_v7()), Some(&bob.token))
        .await;
    let malformed = server.get("/v1/entries/not-an-id", Some(&bob.token)).await;
    for answer in [&theirs, &unknown, &malformed] {
        answer.error(StatusCode::NOT_FOUND, ErrorCode::NotFound);
    }
    assert_eq!(theirs.body, unknown.body);
    assert_eq!(theirs.body, malformed.body);
    assert!(server.pull_all(&bob).await.ops.is_empty());
    // Without a token the question is not even answered.
    server
        .get(&format!("/v1/entries/{entry}"), None)
        .await
        .error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_error_bodies() {
    let server = Server::new().await;
    server
        .get("/v2/pull", None)
        .await
        .error(StatusCode::NOT_FOUND, ErrorCode::NotFound);
    let answer = server.get("/v1/push", None).await;
    answer.error(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MalformedRequest);
    assert!(answer.headers.get(header::ALLOW).is_some());
}

/// A backend that is down: every call fails as `fail` says. Shows that handlers work over any
/// [`Storage`] and map its failures to 503 and 500.
#[derive(Clone)]
struct Down {
    retryable: bool,
}

impl Down {
    fn fail<T>(&self) -> Result<T, StorageError> {
        Err(if self.retryable {
            StorageError::Unavailable("database is locked".into())
        } else {
            StorageError::Internal("disk I/O error at /secret/path".into())
        })
    }
}

impl Storage for Down {
    async fn create_patient(&self, _: NewPatient) -> Result<(), StorageError> {
        self.fail()
    }
    async fn issue_code(&self, _: NewCode) -> Result<(), StorageError> {
        self.fail()
    }
    async fn enrol(
        &self,
        _: SecretHash,
        _: NewDevice,
        _: DateTime<Utc>,
    ) -> Result<Uuid, StorageError> {
        self.fail()
    }
    async fn authenticate(
        &self,
        _: Uuid,
        _: Uuid,
    ) -> Result<Option<DeviceCredentials>, StorageError> {
        self.fail()
    }
    async fn revoke_device(&self, _: Uuid, _: Uuid, _: DateTime<Utc>) -> Result<(), StorageError> {
        self.fail()
    }
    async fn list_devices(&self, _: Uuid) -> Result<Vec<DeviceInfo>, StorageError> {
        self.fail()
    }
    async fn push_after(
        &self,
        _: Uuid,
        _: Option<PushAfter>,
        _: Vec<Op>,
        _: DateTime<Utc>,
    ) -> Result<Vec<PushResult>, StorageError> {
        self.fail()
    }
    async fn pull_leaving_out(
        &self,
        _: Uuid,
        _: u64,
        _: u32,
        _: Option<HeldOwnOps>,
    ) -> Result<PullPage, StorageError> {
        self.fail()
    }
    async fn entry(
        &self,
        _: Uuid,
        _: Uuid,
        _: u64,
        _: u32,
    ) -> Result<Option<StoredEntry>, StorageError> {
        self.fail()
    }
    async fn set_research_consent(&self, _: ResearchConsent) -> Result<(), StorageError> {
        self.fail()
    }
    async fn consenting_patients(&self) -> Result<Vec<Uuid>, StorageError> {
        self.fail()
    }
    async fn add_analyst(&self, _: NewAnalyst) -> Result<(), StorageError> {
        self.fail()
    }
    async fn analyst_credentials(
        &self,
        _: Uuid,
    ) -> Result<Option<AnalystCredentials>, StorageError> {
        self.fail()
    }
    async fn revoke_analyst(&self, _: Uuid, _: DateTime<Utc>) -> Result<(), StorageError> {
        self.fail()
    }
    async fn export_entries(
        &self,
        _: Uuid,
        _: Option<Uuid>,
        _: u32,
    ) -> Result<Vec<heeldiary_server::storage::ExportEntry>, StorageError> {
        self.fail()
    }
    async fn export_entries_by_day(
        &self,
        _: Uuid,
        _: u32,
    ) -> Result<heeldiary_server::storage::ExportPages, StorageError> {
        self.fail()
    }
    async fn first_entry_day(&self, _: Uuid) -> Result<Option<chrono::NaiveDate>, StorageError> {
        self.fail()
    }
    async fn record_export_access(&self, _: Vec<AccessRecord>) -> Result<(), StorageError> {
        self.fail()
    }
    async fn record_export(&self, _: ExportRecord) -> Result<(), StorageError> {
        self.fail()
    }
    async fn export_log(&self, _: u32) -> Result<Vec<ExportRecord>, StorageError> {
        self.fail()
    }
    async fn health(&self) -> Result<(), StorageError> {
        self.fail()
    }
    async fn epoch(&self) -> Result<Uuid, StorageError> {
        self.fail()
    }
    async fn mark_restored(&self, _: DateTime<Utc>) -> Result<Uuid, StorageError> {
        self.fail()
    }
    async fn create_patient_with_code(
        &self,
        _: NewPatient,
        _: NewCode,
    ) -> Result<(), StorageError> {
        self.fail()
    }
    async fn add_device(
        &self,
        _: Uuid,
        _: NewDevice,
        _: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        self.fail()
    }
    async fn erase_patient(
        &self,
        _: Uuid,
        _: String,
        _: DateTime<Utc>,
    ) -> Result<ErasureRecord, StorageError> {
        self.fail()
    }
    async fn erased_at(&self, _: Uuid) -> Result<Option<DateTime<Utc>>, StorageError> {
        self.fail()
    }
}

impl ProviderStorage for Down {
    async fn create_provider(&self, _: NewProvider) -> Result<(), StorageError> {
        self.fail()
    }
    async fn list_providers(&self) -> Result<Vec<ProviderInfo>, StorageError> {
        self.fail()
    }
    async fn provider(&self, _: Uuid) -> Result<Option<ProviderInfo>, StorageError> {
        self.fail()
    }
    async fn provider_login(&self, _: String) -> Result<Option<ProviderLogin>, StorageError> {
        self.fail()
    }
    async fn set_password(
        &self,
        _: SecretHash,
        _: String,
        _: DateTime<Utc>,
    ) -> Result<Uuid, StorageError> {
        self.fail()
    }
    async fn set_share_code(&self, _: Uuid, _: SecretHash) -> Result<(), StorageError> {
        self.fail()
    }
    async fn disable_provider(&self, _: Uuid, _: DateTime<Utc>) -> Result<(), StorageError> {
        self.fail()
    }
    async fn create_session(
        &self,
        _: SecretHash,
        _: Uuid,
        _: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        self.fail()
    }
    async fn touch_session(
        &self,
        _: SecretHash,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> Result<Option<Uuid>, StorageError> {
        self.fail()
    }
    async fn end_session(&self, _: SecretHash) -> Result<(), StorageError> {
        self.fail()
    }
    async fn create_provider_token(
        &self,
        _: Uuid,
        _: Uuid,
        _: SecretHash,
        _: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        self.fail()
    }
    async fn provider_token(&self, _: Uuid) -> Result<Option<(Uuid, SecretHash)>, StorageError> {
        self.fail()
    }
    async fn revoke_provider_token(&self, _: Uuid, _: DateTime<Utc>) -> Result<(), StorageError> {
        self.fail()
    }
    async fn share(
        &self,
        _: Uuid,
        _: SecretHash,
        _: DateTime<Utc>,
    ) -> Result<ShareInfo, StorageError> {
        self.fail()
    }
    async fn unshare(&self, _: Uuid, _: Uuid) -> Result<(), StorageError> {
        self.fail()
    }
    async fn shares(&self, _: Uuid) -> Result<Vec<ShareInfo>, StorageError> {
        self.fail()
    }
    async fn grant_break_glass(&self, _: BreakGlass) -> Result<(), StorageError> {
        self.fail()
    }
    async fn access(
        &self,
        _: Uuid,
        _: Uuid,
        _: DateTime<Utc>,
    ) -> Result<Option<Access>, StorageError> {
        self.fail()
    }
    async fn provider_patients(
        &self,
        _: Uuid,
        _: DateTime<Utc>,
    ) -> Result<Vec<ProviderPatient>, StorageError> {
        self.fail()
    }
    async fn patient_entries(&self, _: Uuid) -> Result<Vec<(Uuid, EntryState)>, StorageError> {
        self.fail()
    }
    async fn record_access(&self, _: AccessRecord) -> Result<(), StorageError> {
        self.fail()
    }
    async fn access_log(&self, _: Uuid) -> Result<Vec<AccessRecord>, StorageError> {
        self.fail()
    }
}

#[tokio::test]
async fn storage_failures_are_503_or_a_safe_500() {
    let token = format!("{}.{}.{}", Uuid::now_v7(), Uuid::now_v7(), "ab".repeat(32));
    for (retryable, status, code) in [
        (
            true,
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
        ),
        (
            false,
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
        ),
    ] {
        let app = heeldiary_server::app(Down { retryable });
        let answer = |request: Request<Body>| {
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await.unwrap();
                let status = response.status();
                let headers = response.headers().clone();
                let body = to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap()
                    .to_vec();
                Answer {
                    status,
                    headers,
                    body,
                }
            }
        };
        let pull = answer(
            Request::get("/v1/pull")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        let body = pull.error(status, code);
        assert!(!body.message.contains("secret") && !body.message.contains("locked"));
        // Health is unavailable whatever the cause.
        answer(Request::get("/healthz").body(Body::empty()).unwrap())
            .await
            .error(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable);
    }
}

#[tokio::test]
async fn a_nul_is_refused_but_a_device_calendar_is_not_second_guessed() {
    let server = Server::new().await;
    let mut phone = server.enrol(None).await;
    let entry = Uuid::now_v7();
    let nul = phone.op(entry, json!({"note": "a\u{0}b"}));
    let refused = server
        .push(&phone, vec![nul])
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidValue);
    assert_eq!(refused.field.as_deref(), Some("ops[0].patch.note"));
    // A day the device's own calendar allowed is stored even if it lies ahead of the server's:
    // refusing it would stop that device's sync for good.
    let ahead = phone.op(entry, json!({"day": "2099-01-01"}));
    let answer = server.push(&phone, vec![ahead]).await;
    assert_eq!(answer.status, StatusCode::OK);
    let stored: PushResponse = answer.json();
    assert_eq!(stored.results[0].status, PushStatus::Applied);
}

#[tokio::test]
async fn a_reused_sequence_is_409_naming_the_operation() {
    let server = Server::new().await;
    let mut phone = server.enrol(None).await;
    let first = phone.create(Uuid::now_v7(), 3);
    server.push(&phone, vec![first]).await;
    // A copy of the diary on another phone numbers its next write 1 as well.
    phone.seq = 0;
    let copy = phone.create(Uuid::now_v7(), 8);
    let refused = server
        .push(&phone, vec![copy])
        .await
        .error(StatusCode::CONFLICT, ErrorCode::SequenceTaken);
    assert_eq!(refused.field.as_deref(), Some("ops[0].device_seq"));
    assert_eq!(server.pull_all(&phone).await.ops.len(), 1);
}

#[tokio::test]
async fn an_enrolment_body_is_held_to_what_an_enrolment_needs_even_gzipped() {
    let server = Server::new().await;
    let big = format!(r#"{{"code":"{}"}}"#, "A".repeat(64 * 1024));
    let answer = server.post("/v1/enrol", None, big.clone()).await;
    let body = answer.error(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge);
    assert!(body.message.contains("4096 bytes"), "{}", body.message);
    // A few hundred compressed bytes that inflate past the limit are refused as well.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/enrol")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(gzip(big.as_bytes())))
        .unwrap();
    server
        .send(request)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge);
    // A push may be larger.
    let device = server.enrol(None).await;
    let padded = json!({"ops": [], "padding": "x".repeat(64 * 1024)}).to_string();
    server
        .post("/v1/push", Some(&device.token), padded)
        .await
        .error(StatusCode::BAD_REQUEST, ErrorCode::MalformedRequest);
}

#[tokio::test]
async fn days_before_1900_are_refused_at_the_server_with_their_path() {
    let server = Server::new().await;
    let mut device = server.enrol(None).await;
    for day in ["0000-11-20", "1899-12-31"] {
        let op = device.op(
            Uuid::now_v7(),
            json!({"day": day, "recorded_at": "2026-11-01T08:00:00.000+00:00"}),
        );
        let body = server
            .push(&device, vec![op])
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidValue);
        assert_eq!(body.field.as_deref(), Some("ops[0].patch.day"), "{day}");
    }
}

#[tokio::test]
async fn one_entry_takes_a_bounded_number_of_operations_per_push_and_its_history_is_paged() {
    let server = Server::new().await;
    let mut device = server.enrol(None).await;
    let entry = Uuid::now_v7();
    let mut ops = vec![device.create(entry, 1)];
    for i in 0..MAX_OPS_PER_ENTRY_PER_PUSH {
        ops.push(device.op(entry, json!({"first_step_pain": i % 11})));
    }
    let body = server
        .push(&device, ops.clone())
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge);
    assert_eq!(body.field.as_deref(), Some("ops"));
    let (first, rest) = ops.split_at(MAX_OPS_PER_ENTRY_PER_PUSH);
    assert_eq!(
        server.push(&device, first.to_vec()).await.status,
        StatusCode::OK
    );
    assert_eq!(
        server.push(&device, rest.to_vec()).await.status,
        StatusCode::OK
    );

    let mut after = 0;
    let mut seen = 0;
    let mut pages = 0;
    loop {
        let answer = server
            .get(
                &format!("/v1/entries/{entry}?after={after}&limit=50"),
                Some(&device.token),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        let page: EntryResponse = answer.json();
        assert!(page.ops.len() <= 50);
        assert!(page.entry.is_some());
        seen += page.ops.len();
        pages += 1;
        after = page.next_cursor;
        if !page.has_more {
            break;
        }
    }
    assert_eq!((seen, pages), (MAX_OPS_PER_ENTRY_PER_PUSH + 1, 5));
    let unpaged: EntryResponse = server
        .get(&format!("/v1/entries/{entry}"), Some(&device.token))
        .await
        .json();
    assert_eq!(unpaged.ops.len(), DEFAULT_ENTRY_OPS_LIMIT as usize);
    assert!(unpaged.has_more);
    server
        .get(
            &format!("/v1/entries/{entry}?limit={}", MAX_ENTRY_OPS_LIMIT + 1),
            Some(&device.token),
        )
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidValue);
}

#[tokio::test]
async fn a_copy_pushing_a_taken_sequence_is_told_and_registers_a_new_identity() {
    let server = Server::new().await;
    let mut original = server.enrol(None).await;
    let entry = Uuid::now_v7();
    let op = original.create(entry, 3);
    assert_eq!(
        server.push(&original, vec![op]).await.status,
        StatusCode::OK
    );
    original.seq = 0;
    let clash = original.create(Uuid::now_v7(), 4);
    let body = server
        .push(&original, vec![clash])
        .await
        .error(StatusCode::CONFLICT, ErrorCode::SequenceTaken);
    assert_eq!(body.field.as_deref(), Some("ops[0].device_seq"));
    let new_id = Uuid::now_v7();
    let request = json!({"device_id": new_id, "secret": "ab".repeat(32)}).to_string();
    let answer = server
        .post("/v1/devices", Some(&original.token), request.clone())
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let registered: EnrolResponse = answer.json();
    assert_eq!(
        (registered.patient_id, registered.device_id),
        (original.patient_id, new_id)
    );
    // A lost answer asked again gets the same token; another secret does not.
    let again: EnrolResponse = server
        .post("/v1/devices", Some(&original.token), request)
        .await
        .json();
    assert_eq!(again.token, registered.token);
    server
        .post(
            "/v1/devices",
            Some(&original.token),
            json!({"device_id": new_id, "secret": "cd".repeat(32)}).to_string(),
        )
        .await
        .error(StatusCode::CONFLICT, ErrorCode::DeviceIdTaken);
    server
        .post(
            "/v1/devices",
            None,
            json!({"device_id": Uuid::now_v7(), "secret": "cd".repeat(32)}).to_string(),
        )
        .await
        .error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized);
    let mut copy = Device {
        patient_id: original.patient_id,
        device_id: new_id,
        token: registered.token,
        seq: 0,
    };
    let moved = copy.create(Uuid::now_v7(), 4);
    assert_eq!(server.push(&copy, vec![moved]).await.status, StatusCode::OK);
    let feed = server.pull_all(&copy).await;
    assert_eq!(feed.ops.len(), 2);
    assert_eq!(feed.epoch, server.storage.epoch().await.unwrap());
}

#[tokio::test]
async fn an_erased_patients_token_is_told_so() {
    let server = Server::new().await;
    let mut device = server.enrol(None).await;
    let op = device.create(Uuid::now_v7(), 5);
    server.push(&device, vec![op]).await;
    admin::erase_patient(&server.storage, device.patient_id, "dpo", Utc::now())
        .await
        .unwrap();
    let body = server
        .get("/v1/pull", Some(&device.token))
        .await
        .error(StatusCode::GONE, ErrorCode::PatientErased);
    assert!(body.message.contains("erased"), "{}", body.message);
    assert!(body.message.contains("kept"), "{}", body.message);
}
