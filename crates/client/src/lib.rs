//! The sync client of a patient's device: enrols the device with a heeldiary server, pushes the
//! device's unacknowledged operations in bounded batches, and pulls the patient's feed page by
//! page through the store's merge, retrying network faults with exponential backoff and jitter.
//!
//! It depends on `heeldiary-core` (wire types) and `heeldiary-store` (the local diary); it must
//! never depend on the server crate: the two meet only through the `/v1` protocol. A phone app
//! embeds it as it embeds the store, so its errors never tell a user to run a command: the CLI
//! adds its own advice when it prints them.

mod http;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use heeldiary_core::wire::{
    AccessLogResponse, AccessRead, EnrolRequest, EnrolResponse, ErrorBody, ErrorCode,
    NewDeviceRequest, PullResponse, PushAck, PushRequest, PushResponse, ResearchConsentRequest,
    Share, ShareRequest, SharesResponse, MAX_PULL_LIMIT, MAX_PUSH_OPS, PULL_HELD_OWN_THROUGH,
    PUSH_ACK_QUERY, PUSH_AFTER_HLC, PUSH_AFTER_SEQ, PUSH_ORDERED_QUERY,
};
use heeldiary_core::Hlc;
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
            // The server's limits: a first sync of a large diary takes as few transactions (each
            // flushed to disk at both ends) as it can. An older server with a lower push limit
            // answers 413, which halves the batch.
            push_batch: MAX_PUSH_OPS,
            pull_limit: MAX_PULL_LIMIT,
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
    /// Operations the feed sent that this diary held already: its own coming back, or a page
    /// delivered again.
    pub already_held: usize,
    /// Fields where concurrent writes disagreed (the later one won everywhere).
    pub conflicts: usize,
    /// Requests retried after network faults or server overload.
    pub retries: u32,
    /// Operations re-stamped because this device's clock ran ahead of the server's.
    pub restamped: usize,
    /// Whether the patient's research-consent answer reached the server in this run.
    pub research_consent_sent: bool,
    /// The new device id this diary took in this run, having found that it is a copy of
    /// another diary (a copied file, or one restored from a backup).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_device_id: Option<uuid::Uuid>,
    /// Own operations issued again under the new device id.
    pub reissued: usize,
    /// Whether the server said it was restored from a backup (a new feed epoch): everything
    /// was pushed again and the feed read again from its start.
    pub server_restored: bool,
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
    let options = SyncOptions::default();
    let client = http::Client::new(&http::Pool::new()?, &base, None, &options);
    let mut took_new_id = false;
    let answer = loop {
        let request = EnrolRequest {
            code: code.trim().to_string(),
            device_id: store.device_id(),
            label: label.map(str::to_string),
            secret: Some(store.enrolment_secret()?),
        };
        match client.post::<_, EnrolResponse>("/v1/enrol", &request).await {
            Ok((answer, _)) => break answer,
            // The id is registered to a device that cannot prove to be this one (revoked, or an
            // enrolment this diary never heard the answer of and whose secret it lost): the
            // code is still unused, so this diary takes a new device id and enrols with it.
            Err(ClientError::Refused {
                body:
                    ErrorBody {
                        error: ErrorCode::DeviceIdTaken,
                        ..
                    },
                ..
            }) if !took_new_id => {
                let (device_id, _) = store.next_identity()?;
                store.adopt_identity(device_id, None)?;
                took_new_id = true;
            }
            Err(other) => return Err(other),
        }
    };
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
    store.observe_epoch(answer.epoch)?;
    Ok(enrolment)
}

/// Pushes every unacknowledged operation, then pulls until the server has nothing more.
///
/// Each pushed batch is acknowledged only after the server answered for it, and each pulled page
/// is applied together with the cursor move, so an interruption at any point loses nothing and
/// the next run continues where this one stopped.
pub async fn sync(store: &mut Store, options: &SyncOptions) -> Result<SyncSummary> {
    sync_with(store, options, &Connections::new()?).await
}

/// Connections to servers kept open between sync runs. An app that syncs a diary again and
/// again, or a process that syncs many diaries, passes the same one to [`sync_with`], so a run
/// reuses a connection (on HTTPS, with its TLS session) an earlier run left open instead of
/// opening one. Cloning shares the connections.
#[derive(Debug, Clone)]
pub struct Connections(http::Pool);

impl Connections {
    /// An empty set of connections; each is opened when a run first needs it.
    pub fn new() -> Result<Self> {
        Ok(Self(http::Pool::new()?))
    }
}

/// [`sync`] on `connections`, which may be shared with other runs, also of other diaries (each
/// request carries its own diary's token).
pub async fn sync_with(
    store: &mut Store,
    options: &SyncOptions,
    connections: &Connections,
) -> Result<SyncSummary> {
    let started = Instant::now();
    let mut session = Session::open(store, options, connections)?;
    let mut summary = SyncSummary::default();
    // A new feed epoch (the server was restored) starts the run over once: everything is
    // pushed again and the feed read from the start. A third epoch within one run is a server
    // being restored over and over, which a person must look at.
    for _round in 0..3 {
        let pushed = push(store, &mut session, options, &mut summary).await;
        // A push the server refused for good must not also cut the device off from the other
        // devices' changes: pull anyway, then report the refusal. A network fault stops both.
        let flow = match pushed {
            Ok(flow) => flow,
            Err(error) => {
                if matches!(error, ClientError::Refused { .. }) {
                    // The refusal is what the person must see; a pull that fails too adds
                    // nothing.
                    if let Err(pull_error) =
                        pull(store, &mut session, options, &mut summary, Finish::Open).await
                    {
                        tracing::warn!("pull after a refused push failed: {pull_error}");
                    }
                }
                return Err(error);
            }
        };
        if flow == Flow::Done {
            send_research_consent(store, &session.client, &mut summary).await?;
        }
        // The pull's last page records the run as finished, in the transaction that applies it.
        if flow == Flow::Done
            && pull(store, &mut session, options, &mut summary, Finish::Run).await? == Flow::Done
        {
            summary.elapsed_ms = started.elapsed().as_millis() as u64;
            return Ok(summary);
        }
        summary.server_restored = true;
    }
    Err(ClientError::Protocol(
        "the server's feed epoch changed again and again during one sync".into(),
    ))
}

/// Whether a step of a sync run finished, or found a new feed epoch and the run starts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Done,
    NewEpoch,
}

/// What the last page of a pull records besides its operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finish {
    /// That the sync run finished: the pull is its last step.
    Run,
    /// Nothing more: the run fails whatever the pull does (it follows a refused push).
    Open,
}

/// The connection of one sync run, which changes when the diary takes a new device identity.
struct Session {
    client: http::Client,
    pool: http::Pool,
    server_url: String,
    /// Whether this run took a new identity already (once is enough; twice is a loop).
    renewed: bool,
    /// Whether pulls name the own operations this diary holds, for the feed to leave out;
    /// cleared for a server that does not know the parameter.
    feed_leaves_out_held: bool,
    /// Whether the server keeps this device's pushes in order (see [`push`]); `None` until its
    /// first answer to a push says.
    ordered_pushes: Option<bool>,
}

impl Session {
    fn open(store: &Store, options: &SyncOptions, connections: &Connections) -> Result<Self> {
        let enrolment = store.enrolment()?;
        let pool = connections.0.clone();
        Ok(Self {
            client: http::Client::new(
                &pool,
                &enrolment.server_url,
                Some(&enrolment.token),
                options,
            ),
            pool,
            server_url: enrolment.server_url,
            renewed: false,
            feed_leaves_out_held: true,
            ordered_pushes: None,
        })
    }

    /// This diary found that another diary writes under its device id (it is a copy, or was
    /// restored from a backup): it registers a new device identity with its still-valid token,
    /// issues its unacknowledged operations again under it, and continues with the new token.
    async fn take_new_identity(
        &mut self,
        store: &mut Store,
        options: &SyncOptions,
        summary: &mut SyncSummary,
    ) -> Result<()> {
        let (device_id, secret) = store.next_identity()?;
        let (answer, retries): (EnrolResponse, u32) = self
            .client
            .post(
                "/v1/devices",
                &NewDeviceRequest {
                    device_id,
                    secret,
                    label: None,
                },
            )
            .await?;
        summary.retries += retries;
        if answer.device_id != device_id {
            return Err(ClientError::Protocol(
                "the server registered another device id".into(),
            ));
        }
        summary.reissued += store.adopt_identity(device_id, Some(&answer.token))?;
        summary.new_device_id = Some(device_id);
        self.client = http::Client::new(&self.pool, &self.server_url, Some(&answer.token), options);
        self.renewed = true;
        tracing::info!(%device_id, "this diary is a copy of another: it took a new device identity");
        Ok(())
    }
}

/// Whether `error` says that this diary's device id writes from another diary too.
fn is_sequence_taken(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Refused {
            body: ErrorBody {
                error: ErrorCode::SequenceTaken,
                ..
            },
            ..
        }
    )
}

/// Whether `error` is a server's refusal of [`PULL_HELD_OWN_THROUGH`] as a parameter it does not
/// know.
fn is_unknown_held_parameter(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Refused {
            status: 400,
            body: ErrorBody { field: Some(field), .. },
        } if field == PULL_HELD_OWN_THROUGH
    )
}

/// Sends the patient's research-consent answer if the server does not have it yet.
async fn send_research_consent(
    store: &mut Store,
    client: &http::Client,
    summary: &mut SyncSummary,
) -> Result<()> {
    let consent = store.research_consent()?;
    let (true, Some(changed_at)) = (consent.pending, consent.changed_at) else {
        return Ok(());
    };
    let request = ResearchConsentRequest {
        research_consent: consent.consent,
        changed_at,
    };
    let (_, retries): (serde_json::Value, u32) =
        client.post("/v1/research-consent", &request).await?;
    summary.retries += retries;
    store.mark_research_consent_sent(&changed_at)?;
    summary.research_consent_sent = true;
    Ok(())
}

/// Push batches on their way at once to a server that keeps a device's pushes in order: one
/// being stored while the next is read and checked.
const PUSHES_IN_FLIGHT: usize = 2;

/// How long a batch is on its way before the next one is sent beside it: time for its request
/// to reach the server first.
const ARRIVAL_LEAD: Duration = Duration::from_millis(20);

/// A batch of own operations read from the diary and encoded for the wire.
struct Batch {
    /// Sequence and stamp of its last operation; `None` when there was nothing left to push.
    last: Option<(u64, Hlc)>,
    /// Operations in it.
    len: usize,
    /// The request body.
    body: http::EncodedBody,
}

impl Batch {
    /// Up to `limit` unacknowledged operations after sequence `after`.
    fn read(store: &Store, after: u64, limit: usize) -> Result<Self> {
        let ops = store.unpushed_after(after, limit)?;
        Ok(Self {
            last: ops.last().map(|op| (op.device_seq, op.hlc)),
            len: ops.len(),
            body: if ops.is_empty() {
                http::EncodedBody::default()
            } else {
                http::encode_body(&PushRequest { ops })?
            },
        })
    }
}

/// A batch on its way to the server.
struct Sent {
    request: http::InFlight<PushAnswer>,
    /// Sequence and stamp of its last operation.
    last: (u64, Hlc),
    /// How many operations it holds.
    len: usize,
}

impl Sent {
    /// Sends `batch`, to be stored only after the operation `after` when given; `None` when the
    /// batch is empty.
    fn start(batch: Batch, session: &Session, after: Option<(u64, Hlc)>) -> Option<Self> {
        let last = batch.last?;
        // Until a server shows it keeps pushes in order, it is asked whether it does.
        let ack = if session.ordered_pushes == Some(false) {
            PUSH_ACK_QUERY
        } else {
            PUSH_ORDERED_QUERY
        };
        let mut path = format!("/v1/push?{ack}");
        if let Some((seq, hlc)) = after {
            path.push_str(&format!("&{PUSH_AFTER_SEQ}={seq}&{PUSH_AFTER_HLC}={hlc}"));
        }
        Some(Sent {
            request: http::InFlight::post(&session.client, path, batch.body),
            last,
            len: batch.len,
        })
    }
}

/// Waits for the answers of the batches still on their way, whatever they are: the next
/// batches go out once the server is done with these. A batch stored meanwhile is sent again
/// and answered as duplicates.
async fn settle(in_flight: &mut VecDeque<Sent>) {
    while let Some(sent) = in_flight.pop_front() {
        let _ = sent.request.answer().await;
    }
}

async fn push(
    store: &mut Store,
    session: &mut Session,
    options: &SyncOptions,
    summary: &mut SyncSummary,
) -> Result<Flow> {
    let mut corrected = false;
    let mut batch = options.push_batch.max(1);
    // Batches are stored in order. To a server that keeps a device's pushes in order (it says
    // so by its answer to the first), the next batch goes out while the last is being stored,
    // naming the last's final operation: the server stores it only after that one, and never
    // after a refusal that made this diary re-stamp that operation. Otherwise batches go one at
    // a time, each once the one before is acknowledged.
    //
    // Either way the next batch is read and encoded while the last is on its way, and goes out
    // as soon as the one before it is acknowledged, before this diary records that
    // acknowledgement (a commit of its own, which waits for the disk). Should the diary stop
    // before recording it, the next run sends the acknowledged batch again and the server
    // answers it as duplicates. Any refusal, network fault or unexpected answer waits for every
    // batch still on its way, drops the one read ahead and reads again; a fault of the diary
    // itself ends the run at once, and the batches on their way are answered as duplicates
    // next time.
    let mut in_flight: VecDeque<Sent> = VecDeque::new();
    loop {
        if in_flight.is_empty() {
            match Sent::start(Batch::read(store, 0, batch)?, session, None) {
                Some(sent) => in_flight.push_back(sent),
                None => return Ok(Flow::Done),
            }
        }
        let Some(Sent {
            mut request,
            last,
            len: sent,
        }) = in_flight.pop_front()
        else {
            continue;
        };
        // What the next batch follows: the last one on its way.
        let mut tail = in_flight.back().map_or(last, |sent| sent.last);
        let mut next = Batch::read(store, tail.0, batch)?;
        let answer = match next.last {
            // One batch on its way to a server that keeps pushes in order: the next goes out
            // too, once this one has had a moment to reach the server ahead of it (one that
            // came first would be refused and sent again), unless this one is answered first.
            Some(next_last)
                if session.ordered_pushes == Some(true)
                    && in_flight.len() + 1 < PUSHES_IN_FLIGHT =>
            {
                tokio::select! {
                    biased;
                    answer = request.answer_mut() => answer,
                    () = tokio::time::sleep(ARRIVAL_LEAD) => {
                        in_flight.extend(Sent::start(next, session, Some(tail)));
                        tail = next_last;
                        next = Batch::read(store, tail.0, batch)?;
                        request.answer_mut().await
                    }
                }
            }
            _ => request.answer_mut().await,
        };
        match answer {
            Ok((answer, retries)) => {
                summary.retries += retries;
                let (answer, ordered) = match answer {
                    PushAnswer::Short(ack) => (ack, true),
                    PushAnswer::PerOperation(full) if full.results.len() == sent => {
                        (PushAck::of(&full), false)
                    }
                    PushAnswer::PerOperation(full) => {
                        settle(&mut in_flight).await;
                        return Err(ClientError::Protocol(format!(
                            "pushed {sent} operations, got {} results",
                            full.results.len()
                        )));
                    }
                };
                if answer.through_seq != last.0 || answer.applied + answer.duplicate != sent as u64
                {
                    settle(&mut in_flight).await;
                    return Err(ClientError::Protocol(format!(
                        "pushed {sent} operations through sequence {}, the server acknowledged {} through {}",
                        last.0,
                        answer.applied + answer.duplicate,
                        answer.through_seq
                    )));
                }
                // The short answer to the ordered query is what only a server that keeps pushes
                // in order gives. One answer without it (an older server behind the same address,
                // during an upgrade) ends pipelining for the rest of the run.
                session.ordered_pushes = Some(session.ordered_pushes.unwrap_or(true) && ordered);
                if store.observe_epoch(answer.epoch)? {
                    settle(&mut in_flight).await;
                    return Ok(Flow::NewEpoch);
                }
                let after = (session.ordered_pushes == Some(true)).then_some(tail);
                if let Some(sent) = Sent::start(next, session, after) {
                    in_flight.push_back(sent);
                }
                summary.pushed += answer.applied as usize;
                summary.already_on_server += answer.duplicate as usize;
                store.mark_pushed(last.0)?;
                store.learn_server_time(answer.server_time_ms)?;
            }
            Err(error) => {
                settle(&mut in_flight).await;
                match error {
                    // Long notes can make a batch larger than the server takes: halve it and
                    // go on.
                    ClientError::Refused { status: 413, .. } if batch > 1 => batch /= 2,
                    ClientError::Refused {
                        body:
                            ErrorBody {
                                error: ErrorCode::ClockAhead,
                                server_time_ms: Some(server_ms),
                                ..
                            },
                        ..
                    } if !corrected => {
                        // Once per run: a second refusal means the clock keeps jumping, which a
                        // person must look at rather than a loop.
                        summary.restamped += store.correct_clock(server_ms)?;
                        corrected = true;
                    }
                    // A batch that came before the one it follows (they took different ways to
                    // the server): the next round starts from the first not acknowledged.
                    ClientError::Refused {
                        body:
                            ErrorBody {
                                error: ErrorCode::OutOfOrder,
                                ..
                            },
                        ..
                    } => {}
                    error if is_sequence_taken(&error) && !session.renewed => {
                        session.take_new_identity(store, options, summary).await?;
                    }
                    other => return Err(other),
                }
            }
        }
    }
}

/// The answer to a push: the short one this client asks for, or a result per operation from a
/// server that does not know the short one yet.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum PushAnswer {
    Short(PushAck),
    PerOperation(PushResponse),
}

async fn pull(
    store: &mut Store,
    session: &mut Session,
    options: &SyncOptions,
    summary: &mut SyncSummary,
    finish: Finish,
) -> Result<Flow> {
    // Own operations the server acknowledged are held here as the server holds them: the feed
    // need not send them back (a first sync would otherwise download everything it uploaded).
    let page_path = |after: u64, held: u64, session: &Session| {
        let mut path = format!("/v1/pull?after={after}&limit={}", options.pull_limit);
        if held > 0 && session.feed_leaves_out_held {
            path.push_str(&format!("&{PULL_HELD_OWN_THROUGH}={held}"));
        }
        path
    };
    // The next page is asked for before this one is applied, so the server reads and sends it
    // while this diary writes; it is thrown away if this page changes the plan.
    let mut prefetched: Option<(String, http::InFlight<PullResponse>)> = None;
    loop {
        let after = store.sync_state()?.pull_cursor;
        let held = store.held_own_through()?;
        let path = page_path(after, held, session);
        let request = match prefetched.take() {
            Some((asked, request)) if asked == path => request,
            _ => http::InFlight::get(&session.client, path),
        };
        let (page, retries) = match request.answer().await {
            Ok(answer) => answer,
            // A server from before the parameter refuses it: ask it for the whole feed.
            Err(error) if is_unknown_held_parameter(&error) && session.feed_leaves_out_held => {
                session.feed_leaves_out_held = false;
                continue;
            }
            Err(other) => return Err(other),
        };
        summary.retries += retries;
        // Before anything of the page is applied: after a restore, cursors name other
        // operations than before.
        if store.observe_epoch(page.epoch)? {
            return Ok(Flow::NewEpoch);
        }
        if page.next_cursor < after || page.ops.iter().any(|op| op.cursor <= after) {
            return Err(ClientError::Protocol(format!(
                "the server feed went back before cursor {after}"
            )));
        }
        if page
            .ops
            .last()
            .is_some_and(|op| op.cursor > page.next_cursor)
        {
            return Err(ClientError::Protocol(format!(
                "the server's next cursor {} is before the page's last operation",
                page.next_cursor
            )));
        }
        if page.has_more {
            let next = page_path(page.next_cursor, held, session);
            prefetched = Some((next.clone(), http::InFlight::get(&session.client, next)));
        }
        let apply = if !page.has_more && finish == Finish::Run {
            Store::apply_last_pulled
        } else {
            Store::apply_pulled
        };
        let applied = match apply(store, &page.ops, page.next_cursor) {
            Ok(applied) => applied,
            // An operation of another copy of this diary, under this diary's own id and a
            // sequence number it used for something else: take a new identity (which moves
            // the clashing own operation away) and apply the page again.
            Err(StoreError::SequenceTaken { device_id, .. })
                if device_id == store.device_id() && !session.renewed =>
            {
                prefetched = None;
                session.take_new_identity(store, options, summary).await?;
                continue;
            }
            Err(other) => return Err(other.into()),
        };
        store.learn_server_time(page.server_time_ms)?;
        summary.pulled += applied.applied;
        summary.already_held += applied.already_had;
        summary.conflicts += applied.conflicts;
        if !page.has_more {
            return Ok(Flow::Done);
        }
    }
}

/// A client for the enrolled diary's server, with its token.
fn enrolled_client(store: &Store) -> Result<http::Client> {
    let enrolment = store.enrolment()?;
    Ok(http::Client::new(
        &http::Pool::new()?,
        &enrolment.server_url,
        Some(&enrolment.token),
        &SyncOptions::default(),
    ))
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
