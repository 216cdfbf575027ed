//! The sync client of a patient's device: enrols the device with a heeldiary server, pushes the
//! device's unacknowledged operations in bounded batches, and pulls the patient's feed page by
//! page through the store's merge, retrying network faults with exponential backoff and jitter.
//!
//! It depends on `heeldiary-core` (wire types) and `heeldiary-store` (the local diary); it must
//! never depend on the server crate: the two meet only through the `/v1` protocol. A phone app
//! embeds it as it embeds the store, so its errors never tell a user to run a command: the CLI
//! adds its own advice when it prints them.

mod http;

use std::time::{Duration, Instant};

use heeldiary_core::wire::{
    AccessLogResponse, AccessRead, EnrolRequest, EnrolResponse, ErrorBody, ErrorCode, PullResponse,
    PushRequest, PushResponse, PushStatus, Share, ShareRequest, SharesResponse, DEFAULT_PULL_LIMIT,
};
use heeldiary_store::{Enrolment, Store, StoreError};
use serde::Serialize;

pub use http::RetryPolicy;

/// Why a sync or enrolment failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server could not be reached, even after retries.
    #[error("cannot reach the server after {attempts} attempts")]
    Network {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        #[source]
        source: reqwest::Error,
    },
    /// The server refused the request.
    #[error("the server answered {status}: {}{}", body.message, body.field.as_ref().map(|f| format!(" (field {f})")).unwrap_or_default())]
    Refused {
        /// HTTP status.
        status: u16,
        /// Its error body.
        body: ErrorBody,
    },
    /// The server answered something that does not follow the protocol.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// The server URL is not usable.
    #[error("invalid server URL `{0}`: use http://HOST:PORT or https://HOST")]
    InvalidUrl(String),
    /// The diary is enrolled already.
    #[error("this diary is enrolled already with {server_url} (patient {patient_id}); a diary syncs with one server as one patient")]
    AlreadyEnrolled {
        /// Where it syncs.
        server_url: String,
        /// As whom.
        patient_id: uuid::Uuid,
    },
    /// The local diary failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Result of client calls.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Tuning of a sync run. The defaults suit a phone on a patchy network.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Operations per push request (at most the server's limit).
    pub push_batch: usize,
    /// Operations per pull page.
    pub pull_limit: u32,
    /// How network faults are retried.
    pub retry: RetryPolicy,
    /// Time limit of one request.
    pub request_timeout: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            push_batch: 500,
            pull_limit: DEFAULT_PULL_LIMIT,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// What a sync run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncSummary {
    /// Own operations the server stored now.
    pub pushed: usize,
    /// Own operations the server had from an earlier, interrupted delivery.
    pub already_on_server: usize,
    /// Operations from other devices merged here.
    pub pulled: usize,
    /// Fields where concurrent writes disagreed (the later one won everywhere).
    pub conflicts: usize,
    /// Requests retried after network faults or server overload.
    pub retries: u32,
    /// Operations re-stamped because this device's clock ran ahead of the server's.
    pub restamped: usize,
    /// Wall time of the run, in milliseconds.
    pub elapsed_ms: u64,
}

/// Exchanges a single-use enrolment code for a device token and stores it with the diary.
pub async fn enrol(
    store: &mut Store,
    server_url: &str,
    code: &str,
    label: Option<&str>,
) -> Result<Enrolment> {
    // A diary syncs with one server as one patient: its acknowledgements and feed cursor mean
    // nothing elsewhere, and its entries must not flow into another patient's diary.
    match store.enrolment() {
        Ok(existing) => {
            return Err(ClientError::AlreadyEnrolled {
                server_url: existing.server_url,
                patient_id: existing.patient_id,
            })
        }
        Err(StoreError::NotEnrolled) => {}
        Err(other) => return Err(other.into()),
    }
    let base = http::base_url(server_url)?;
    let client = http::Client::new(&base, None, &SyncOptions::default())?;
    let request = EnrolRequest {
        code: code.trim().to_string(),
        device_id: store.device_id(),
        label: label.map(str::to_string),
        secret: Some(store.enrolment_secret()?),
    };
    let (answer, _): (EnrolResponse, u32) = client.post("/v1/enrol", &request).await?;
    if answer.device_id != store.device_id() {
        return Err(ClientError::Protocol(
            "the server registered another device id".into(),
        ));
    }
    let enrolment = Enrolment {
        server_url: base,
        patient_id: answer.patient_id,
        token: answer.token,
    };
    store.set_enrolment(&enrolment)?;
    Ok(enrolment)
}

/// Pushes every unacknowledged operation, then pulls until the server has nothing more.
///
/// Each pushed batch is acknowledged only after the server answered for it, and each pulled page
/// is applied together with the cursor move, so an interruption at any point loses nothing and
/// the next run continues where this one stopped.
pub async fn sync(store: &mut Store, options: &SyncOptions) -> Result<SyncSummary> {
    let started = Instant::now();
    let enrolment = store.enrolment()?;
    let client = http::Client::new(&enrolment.server_url, Some(&enrolment.token), options)?;
    let mut summary = SyncSummary::default();
    let pushed = push(store, &client, options, &mut summary).await;
    // A push the server refused for good must not also cut the device off from the other
    // devices' changes: pull anyway, then report the refusal. A network fault stops both.
    if let Err(error) = pushed {
        if matches!(error, ClientError::Refused { .. }) {
            // The refusal is what the person must see; a pull that fails too adds nothing.
            if let Err(pull_error) = pull(store, &client, options, &mut summary).await {
                tracing::warn!("pull after a refused push failed: {pull_error}");
            }
        }
        return Err(error);
    }
    pull(store, &client, options, &mut summary).await?;
    store.mark_synced()?;
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

async fn push(
    store: &mut Store,
    client: &http::Client,
    options: &SyncOptions,
    summary: &mut SyncSummary,
) -> Result<()> {
    let mut corrected = false;
    let mut batch = options.push_batch.max(1);
    loop {
        let ops = store.unpushed(batch)?;
        let Some(last) = ops.last().map(|op| op.device_seq) else {
            return Ok(());
        };
        let sent = ops.len();
        match client
            .post::<_, PushResponse>("/v1/push", &PushRequest { ops })
            .await
        {
            Ok((answer, retries)) => {
                summary.retries += retries;
                if answer.results.len() != sent
                    || answer.results.last().map(|r| r.device_seq) != Some(last)
                {
                    return Err(ClientError::Protocol(format!(
                        "pushed {sent} operations, got {} results",
                        answer.results.len()
                    )));
                }
                for result in &answer.results {
                    match result.status {
                        PushStatus::Applied => summary.pushed += 1,
                        PushStatus::Duplicate => summary.already_on_server += 1,
                    }
                }
                store.mark_pushed(last)?;
                store.learn_server_time(answer.server_time_ms)?;
            }
            // Long notes can make a batch larger than the server takes: halve it and go on.
            Err(ClientError::Refused { status: 413, .. }) if batch > 1 => batch /= 2,
            Err(ClientError::Refused {
                body:
                    ErrorBody {
                        error: ErrorCode::ClockAhead,
                        server_time_ms: Some(server_ms),
                        ..
                    },
                ..
            }) if !corrected => {
                // Once per run: a second refusal means the clock keeps jumping, which a person
                // must look at rather than a loop.
                summary.restamped += store.correct_clock(server_ms)?;
                corrected = true;
            }
            Err(other) => return Err(other),
        }
    }
}

async fn pull(
    store: &mut Store,
    client: &http::Client,
    options: &SyncOptions,
    summary: &mut SyncSummary,
) -> Result<()> {
    loop {
        let after = store.sync_state()?.pull_cursor;
        let path = format!("/v1/pull?after={after}&limit={}", options.pull_limit);
        let (page, retries): (PullResponse, u32) = client.get(&path).await?;
        summary.retries += retries;
        if page.next_cursor < after || page.ops.iter().any(|op| op.cursor <= after) {
            return Err(ClientError::Protocol(format!(
                "the server feed went back before cursor {after}"
            )));
        }
        let applied = store.apply_pulled(&page.ops, page.next_cursor)?;
        store.learn_server_time(page.server_time_ms)?;
        summary.pulled += applied.applied;
        summary.conflicts += applied.conflicts;
        if !page.has_more {
            return Ok(());
        }
    }
}

/// A client for the enrolled diary's server, with its token.
fn enrolled_client(store: &Store) -> Result<http::Client> {
    let enrolment = store.enrolment()?;
    http::Client::new(
        &enrolment.server_url,
        Some(&enrolment.token),
        &SyncOptions::default(),
    )
}

/// Shares the patient's diary with the provider whose share code this is. A code that opens no
/// share is refused by the server without saying whether the provider exists.
pub async fn share(store: &Store, share_code: &str) -> Result<Share> {
    let client = enrolled_client(store)?;
    let request = ShareRequest {
        share_code: share_code.trim().to_string(),
    };
    Ok(client.post("/v1/shares", &request).await?.0)
}

/// The providers the diary is shared with.
pub async fn shares(store: &Store) -> Result<Vec<Share>> {
    let client = enrolled_client(store)?;
    let (answer, _): (SharesResponse, u32) = client.get("/v1/shares").await?;
    Ok(answer.shares)
}

/// Ends the share with a provider: the provider's next request is refused.
pub async fn unshare(store: &Store, provider_id: uuid::Uuid) -> Result<()> {
    let client = enrolled_client(store)?;
    client
        .delete::<()>(&format!("/v1/shares/{provider_id}"))
        .await?;
    Ok(())
}

/// Every provider read of the patient's diary, oldest first.
pub async fn access_log(store: &Store) -> Result<Vec<AccessRead>> {
    let client = enrolled_client(store)?;
    let (answer, _): (AccessLogResponse, u32) = client.get("/v1/access-log").await?;
    Ok(answer.reads)
}
