//! The heeldiary server: enrols patients' devices, takes their field-level operations, keeps a
//! merged current state of every entry, and hands each device the operations of its patient's
//! other devices, so that all of one patient's devices converge.
//!
//! The HTTP API (`/v1`, described in `schema/openapi.yaml`) speaks the wire types of
//! `heeldiary-core`; storage sits behind the [`storage::Storage`] trait (embedded SQLite, or
//! PostgreSQL to scale out) and handlers never see a backend.
//!
//! Provider review: clinicians sign in to [`web`] pages (and its JSON twin under
//! `/v1/provider/`) to read the diaries of patients who share with them ([`sharing`], with the
//! device token); every read lands in the patient's access log. The dashboard runs the trend
//! report of `heeldiary-trends`, the same engine as the device, so this crate depends on
//! `heeldiary-core` and `heeldiary-trends` only, never on the client or the device store.
//!
//! Layers, each using only those below it: [`api`] (routes and handlers), [`sharing`] and
//! [`web`] (provider review), [`auth`] (the bearer token extractor) and [`error`] (HTTP answers)
//! are the HTTP side; [`admin`] is the clinic's
//! commands; [`storage`] is the trait and its backends; [`secrets`] (tokens, codes, hashes) is
//! pure and used by both HTTP and storage. Storage never depends on anything HTTP.
//!
//! The `test-support` feature adds the harnesses other crates' tests use (the storage
//! conformance suite, PostgreSQL scratch schemas); the server binary is never built with it.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use heeldiary_server::storage::SqliteStorage;
//!
//! let storage = SqliteStorage::open_dir("./heeldiary-data".as_ref()).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, heeldiary_server::app(storage)).await?;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod analyst_api;
pub mod api;
pub mod auth;
pub mod error;
pub mod export;
pub mod limits;
pub mod push_order;
pub mod secrets;
pub mod sharing;
pub mod storage;
pub mod web;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::Router;
use heeldiary_core::wire::MAX_BODY_BYTES;
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tower_http::LatencyUnit;
use tracing::Level;

use crate::storage::Storage;

/// What every handler shares: the storage handle, the provider pages' state and the export
/// settings.
#[derive(Debug, Clone)]
pub struct AppState<S> {
    /// The backend.
    pub storage: S,
    /// Options and sign-in throttle of the provider pages.
    pub web: std::sync::Arc<web::WebState>,
    /// Where the analyst export finds its key.
    pub export: export::ExportSettings,
    /// The order of each device's pushes in flight.
    pub pushes: std::sync::Arc<push_order::PushOrder>,
}

/// Answers shorter than this many bytes are sent uncompressed.
pub const MIN_COMPRESSED_ANSWER: u16 = 1024;

/// Longest a request may take, reading its body included.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The whole HTTP application over `storage`: routes, body limits per route (applied after gzip
/// decompression), caps on requests in flight ([`limits`]), response compression, uniform error bodies and request logs (method, path,
/// status, latency; never headers or bodies).
pub fn app<S: Storage>(storage: S) -> Router {
    app_with(storage, AppOptions::default())
}

/// The settings of [`app_with`]: the provider pages' options and the analyst export's.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    /// Provider pages: cookies `Secure` under TLS, session lifetime, sign-in throttle.
    pub web: web::WebOptions,
    /// The analyst export: where its key is, whether it is served over HTTPS.
    pub export: export::ExportSettings,
}

/// [`app`] with the provider pages and the analyst export set up by `options`.
pub fn app_with<S: Storage>(storage: S, options: AppOptions) -> Router {
    api::routes()
        .merge(sharing::routes())
        .merge(web::routes())
        .merge(analyst_api::routes())
        .with_state(AppState {
            storage,
            web: std::sync::Arc::new(web::WebState::new(options.web)),
            export: options.export,
            pushes: Default::default(),
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // A client that stalls (or sends its body slowly) must not hold a connection for ever.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(RequestDecompressionLayer::new())
        // Outside decompression: a request refused for want of a place inflates nothing.
        .layer(axum::middleware::from_fn_with_state(
            limits::InFlight::default(),
            limits::limit_in_flight,
        ))
        .layer(axum::middleware::from_fn(error::ensure_error_body))
        // The fastest level: most of the saving for a fraction of the time; large pull pages
        // at the default level spent more time compressing than reading the database. Short
        // answers (a day's pull, an acknowledgement) go as they are: setting up gzip costs more
        // than the bytes it saves them.
        .layer(
            CompressionLayer::new()
                .quality(tower_http::CompressionLevel::Fastest)
                .compress_when(DefaultPredicate::new().and(SizeAbove::new(MIN_COMPRESSED_ANSWER))),
        )
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(
                    DefaultOnResponse::new()
                        .level(Level::INFO)
                        .latency_unit(LatencyUnit::Millis),
                ),
        )
}
