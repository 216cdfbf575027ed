//! Sync protocol, version 1: the JSON bodies exchanged under `/v1`. Shared by the server and the
//! client so that both sides agree by construction; `schema/openapi.yaml` describes the same shapes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::entry::Entry;
use crate::op::{EntryState, Op};

/// Largest request body the server reads, after decompression.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Largest body of a request that needs no token (`/v1/enrol`), after decompression: an
/// enrolment is a few hundred bytes, and anyone may send one.
pub const MAX_ENROL_BODY_BYTES: usize = 4 * 1024;
/// Largest body of a device registering a new identity (`/v1/devices`), after decompression.
pub const MAX_DEVICE_BODY_BYTES: usize = 4 * 1024;
/// Most operations on one entry in one push: a history of many thousand edits of one entry
/// arrives in several pushes, so no single one makes an unbounded write or answer.
pub const MAX_OPS_PER_ENTRY_PER_PUSH: usize = 200;
/// Most operations of one entry's history in one answer of `GET /v1/entries/{id}`.
pub const MAX_ENTRY_OPS_LIMIT: u32 = 1_000;
/// History page size of `GET /v1/entries/{id}` when the client does not ask for one.
pub const DEFAULT_ENTRY_OPS_LIMIT: u32 = 100;
/// Most operations in one push. Each push is a transaction with a flush to disk at both ends, so
/// large batches make a first sync run at the speed of the disk rather than of round trips.
pub const MAX_PUSH_OPS: usize = 5_000;
/// Most operations in one pull page.
pub const MAX_PULL_LIMIT: u32 = 2_000;
/// Pull page size when the client does not ask for one.
pub const DEFAULT_PULL_LIMIT: u32 = 1_000;
pub use crate::text::MAX_LABEL_CHARS;

mod sharing;
pub use sharing::{AccessLogResponse, AccessRead, Share, ShareRequest, SharesResponse};

/// `POST /v1/enrol`: trade a single-use enrolment code for a device token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// The code the clinic handed out.
    pub code: String,
    /// The id the device made for itself; it stamps every operation the device writes.
    pub device_id: Uuid,
    /// Optional name for the device ("phone").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Secret part of the token, 64 lowercase hex characters, chosen and kept by the device
    /// before it asks. With it a repeated request (its first answer was lost) gets the same
    /// token, and nobody else can make one; without it the server chooses the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Answer to a successful enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolResponse {
    /// The patient this device now writes for.
    pub patient_id: Uuid,
    /// The device, as registered.
    pub device_id: Uuid,
    /// Bearer token for every later request. Shown once; the server keeps only its hash.
    pub token: String,
    /// The server feed's epoch (see [`PullResponse::epoch`]).
    pub epoch: Uuid,
}

/// `POST /v1/devices`: an enrolled device registers a new device identity for its patient, with
/// its still-valid token. A diary does this when it finds that its device id writes from two
/// files (it was copied, or restored from a backup) and continues under the new identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDeviceRequest {
    /// The new id the diary made for itself.
    pub device_id: Uuid,
    /// Secret part of the new token, 64 lowercase hex characters, chosen and kept by the diary
    /// before it asks, so that asking again after a lost answer gets the same token.
    pub secret: String,
    /// Optional name for the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// `POST /v1/push`: a batch of the device's own operations, in device-sequence order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// Operations written by the authenticated device.
    pub ops: Vec<Op>,
}

/// What happened to one pushed operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushStatus {
    /// Stored now.
    Applied,
    /// Stored by an earlier delivery of the same `(device_id, device_seq)`.
    Duplicate,
}

/// Per-operation result of a push, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushResult {
    /// The operation's device sequence.
    pub device_seq: u64,
    /// Applied or duplicate.
    pub status: PushStatus,
}

/// Answer to a push. Every operation of the batch is stored once it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushResponse {
    /// One result per pushed operation.
    pub results: Vec<PushResult>,
    /// The server's clock, in Unix milliseconds.
    pub server_time_ms: u64,
    /// The server feed's epoch (see [`PullResponse::epoch`]).
    pub epoch: Uuid,
}

/// The query of `POST /v1/push` that asks for the short answer, [`PushAck`].
pub const PUSH_ACK_QUERY: &str = "ack=count";

/// The query of `POST /v1/push` of a client that may send its next batch before the last is
/// answered: the short answer, [`PushAck`], from a server that also honours
/// [`PUSH_AFTER_SEQ`] and [`PUSH_AFTER_HLC`]. A server that does not know it answers with a
/// result per operation, which tells the client to send one batch at a time.
pub const PUSH_ORDERED_QUERY: &str = "ack=ordered";

/// Query parameter of `POST /v1/push`: the sequence number of the pushing device's operation
/// that must be stored before this batch is. Sent with [`PUSH_AFTER_HLC`], the operation's
/// stamp, so that a batch sent before its device re-stamped what it had not yet pushed is never
/// stored after the re-stamped one.
pub const PUSH_AFTER_SEQ: &str = "after_seq";

/// Query parameter of `POST /v1/push`: the stamp of the operation [`PUSH_AFTER_SEQ`] names.
pub const PUSH_AFTER_HLC: &str = "after_hlc";

/// Short answer to a push (asked for with [`PUSH_ACK_QUERY`]): a few bytes per batch instead of
/// a result per operation. Every operation of the batch, up to `through_seq`, is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushAck {
    /// The device sequence of the batch's last operation.
    pub through_seq: u64,
    /// Operations stored now.
    pub applied: u64,
    /// Operations stored by an earlier delivery of the same `(device_id, device_seq)`.
    pub duplicate: u64,
    /// The server's clock, in Unix milliseconds.
    pub server_time_ms: u64,
    /// The server feed's epoch (see [`PullResponse::epoch`]).
    pub epoch: Uuid,
}

impl PushAck {
    /// The short form of a per-operation answer.
    pub fn of(response: &PushResponse) -> Self {
        let applied = response
            .results
            .iter()
            .filter(|r| r.status == PushStatus::Applied)
            .count() as u64;
        Self {
            through_seq: response.results.last().map_or(0, |r| r.device_seq),
            applied,
            duplicate: response.results.len() as u64 - applied,
            server_time_ms: response.server_time_ms,
            epoch: response.epoch,
        }
    }
}

/// `PUT /v1/research-consent`: the patient's answer to research use of the diary, as the
/// device recorded it. The latest answer (by `changed_at`) counts; a "no" removes the patient
/// from every later export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResearchConsentRequest {
    /// Whether the patient agrees that de-identified diary data is used for research.
    pub research_consent: bool,
    /// When the patient answered (device clock with its UTC offset).
    pub changed_at: DateTime<chrono::FixedOffset>,
}

/// An operation as the server hands it out: with its position in the patient's feed and the
/// time the server received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PulledOp {
    /// Position in the patient's feed; strictly increasing in commit order.
    pub cursor: u64,
    /// When the server stored it.
    pub received_at: DateTime<Utc>,
    /// The operation itself.
    pub op: Op,
}

/// Query parameter of `GET /v1/pull`: the pulling device holds its own operations up to this
/// sequence number exactly as the server does (the server acknowledged them), so the feed leaves
/// them out and its `next_cursor` moves past them.
pub const PULL_HELD_OWN_THROUGH: &str = "held_own_through";

/// `GET /v1/pull?after=CURSOR&limit=N`: the next page of the patient's operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullResponse {
    /// Operations after the requested cursor, in cursor order.
    pub ops: Vec<PulledOp>,
    /// The cursor to ask after next time: the last op's, or a later one past operations left
    /// out by [`PULL_HELD_OWN_THROUGH`], or the request's when nothing followed it.
    pub next_cursor: u64,
    /// Whether more operations wait after this page.
    pub has_more: bool,
    /// The server's clock, in Unix milliseconds.
    pub server_time_ms: u64,
    /// The feed's epoch: a random id the server mints when its data is created and again
    /// whenever it is declared restored from a backup. Cursors and acknowledgements are only
    /// meaningful within one epoch: a device that sees a new one pushes again everything the
    /// server may have lost and reads the feed again from cursor 0.
    pub epoch: Uuid,
}

/// `GET /v1/entries/{entry_id}`: one entry of the token's patient, merged, with its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryResponse {
    /// The entry.
    pub entry_id: Uuid,
    /// The entry as people see it; `null` while its day or first recording is still unknown.
    pub entry: Option<Entry>,
    /// Every field's current value with the stamp of the operation that wrote it.
    pub state: EntryState,
    /// One page of the operations on this entry, in cursor order, including those that lost
    /// a field: those after the `after` cursor of the request, at most `limit` of them.
    pub ops: Vec<PulledOp>,
    /// The cursor to ask after for the next page.
    pub next_cursor: u64,
    /// Whether more operations of this entry follow this page.
    pub has_more: bool,
}

/// Machine-readable reason of an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not valid JSON or has unknown fields (400).
    MalformedRequest,
    /// A value broke a rule (422).
    InvalidValue,
    /// The device clock runs too far ahead of the server (422): correct it and push again.
    ClockAhead,
    /// Missing, invalid or revoked token (401).
    Unauthorized,
    /// Unknown, used or expired enrolment code (401).
    InvalidCode,
    /// Nothing here for this token (404).
    NotFound,
    /// The body is too large (413).
    PayloadTooLarge,
    /// A pushed operation reuses a sequence number of this device that holds a different
    /// operation (409): this diary is a copy of another. Register a new device identity
    /// (`POST /v1/devices`) and push the unacknowledged operations again under it.
    SequenceTaken,
    /// The batch must follow an operation of this device the server does not hold (409): the
    /// batch sent before it was refused or has not arrived. Push the batches one at a time,
    /// from the first not acknowledged.
    OutOfOrder,
    /// The device id is enrolled already and the secret does not prove it is this device (409):
    /// enrol again with a new device id; the code stays unused.
    DeviceIdTaken,
    /// The clinic erased this patient's data from the server (410). The device keeps its diary.
    PatientErased,
    /// Slow down (429).
    TooManyRequests,
    /// Storage is unavailable for now; retry (503).
    Unavailable,
    /// A fault on the server (500).
    Internal,
}

/// Body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// What kind of error.
    pub error: ErrorCode,
    /// A precise, safe description.
    pub message: String,
    /// Path of the offending field, when one is to blame (`ops[2].patch.first_step_pain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The server's clock, sent with `clock_ahead` so the device can correct itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_time_ms: Option<u64>,
}

/// A JSON body that could not be read, with the path of the value that broke it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JsonError {
    /// Path to the offending value (`ops[0].patch`), or `.` for the document itself.
    pub path: String,
    /// What was wrong.
    pub message: String,
}

/// Parses a JSON body, reporting the path of the first value that does not fit `T`.
pub fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    // Tracking the path costs on every value; a body that parses needs no path, so only a
    // failed one is read again with it.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| JsonError {
        path: e.path().to_string(),
        message: format!("{} at `{}`", e.inner(), e.path()),
    })?;
    de.end().map_err(|e| JsonError {
        path: ".".into(),
        message: e.to_string(),
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_reported_with_their_path() {
        let body = br#"{"ops":[{"entry_id":"0190c3a4-0000-7000-8000-000000000001","device_id":"0190c3a4-0000-7000-8000-000000000002","device_seq":1,"hlc":"000000000001-000000-0190c3a4000070008000000000000002","patch":{},"extra":1}]}"#;
        let err = from_json::<PushRequest>(body).unwrap_err();
        assert_eq!(err.path, "ops[0].extra");
        assert!(
            err.message.contains("unknown field `extra`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn wrong_types_and_bad_field_names_are_located() {
        let err = from_json::<PushRequest>(br#"{"ops":[{"entry_id":"0190c3a4-0000-7000-8000-000000000001","device_id":"0190c3a4-0000-7000-8000-000000000002","device_seq":"one"}]}"#).unwrap_err();
        assert_eq!(err.path, "ops[0].device_seq");
        let err = from_json::<PushRequest>(br#"{"ops":[{"entry_id":"0190c3a4-0000-7000-8000-000000000001","device_id":"0190c3a4-0000-7000-8000-000000000002","device_seq":1,"hlc":"000000000001-000000-0190c3a4000070008000000000000002","patch":{"pain":3}}]}"#).unwrap_err();
        assert!(err.path.starts_with("ops[0].patch"), "{}", err.path);
        assert!(err.message.contains("unknown field `pain`"));
    }

    #[test]
    fn trailing_garbage_is_refused() {
        assert!(from_json::<PushRequest>(br#"{"ops":[]} x"#).is_err());
        assert!(from_json::<PushRequest>(b"not json").is_err());
    }
}
