//! HTTP with the server: gzip both ways, bearer auth, and retries with exponential backoff and
//! full jitter for network faults, 5xx, 408 and 429. Other 4xx answers are final.

use std::io::Write;
use std::time::Duration;

use flate2::write::GzEncoder;
use heeldiary_core::wire::ErrorBody;
use rand::Rng;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{ClientError, Result, SyncOptions};

/// How failed requests are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each time.
    pub base_delay: Duration,
    /// Longest delay between attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Full jitter: a uniform delay up to the capped exponential bound, so many devices that
    /// failed together do not retry together.
    fn delay(&self, retry: u32) -> Duration {
        let bound = self
            .base_delay
            .saturating_mul(1u32 << retry.min(16))
            .min(self.max_delay);
        let millis = bound.as_millis().max(1) as u64;
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }
}

/// Bodies shorter than this go as they are: a few hundred bytes (a day's push) gain little from
/// gzip, whose set-up costs more than sending them.
const MIN_GZIP_BODY_BYTES: usize = 1024;

/// A request body as [`Client::post_encoded`] sends it: JSON, gzip-compressed unless short.
#[derive(Debug, Clone, Default)]
pub(crate) struct EncodedBody {
    bytes: Vec<u8>,
    gzip: bool,
}

/// Encodes `body` as [`Client::post_encoded`] sends it.
pub(crate) fn encode_body<B: Serialize>(body: &B) -> Result<EncodedBody> {
    let json = serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
    if json.len() < MIN_GZIP_BODY_BYTES {
        return Ok(EncodedBody {
            bytes: json,
            gzip: false,
        });
    }
    let mut gz = GzEncoder::new(
        Vec::with_capacity(json.len() / 4),
        flate2::Compression::fast(),
    );
    gz.write_all(&json)
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    let bytes = gz
        .finish()
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    Ok(EncodedBody { bytes, gzip: true })
}

/// A request running on its own task, so that the caller's own work (reading and encoding the
/// next batch, applying the last page) overlaps the round trip. Dropping it cancels the request.
pub(crate) struct InFlight<T>(tokio::task::JoinHandle<Result<(T, u32)>>);

impl<T: DeserializeOwned + Send + 'static> InFlight<T> {
    /// Starts `POST path` with an encoded body.
    pub(crate) fn post(client: &Client, path: String, body: EncodedBody) -> Self {
        let client = client.clone();
        Self(tokio::spawn(async move {
            client.post_encoded(&path, body).await
        }))
    }

    /// Starts `GET path`.
    pub(crate) fn get(client: &Client, path: String) -> Self {
        let client = client.clone();
        Self(tokio::spawn(async move { client.get(&path).await }))
    }

    /// The answer, and how many retries it took.
    pub(crate) async fn answer(mut self) -> Result<(T, u32)> {
        self.answer_mut().await
    }

    /// [`answer`](Self::answer) without giving the request up, so that a caller may stop
    /// waiting for it and wait again later.
    pub(crate) async fn answer_mut(&mut self) -> Result<(T, u32)> {
        (&mut self.0)
            .await
            .map_err(|e| ClientError::Protocol(format!("request task failed: {e}")))?
    }
}

impl<T> Drop for InFlight<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Normalises a server URL: scheme required, no trailing slash.
pub(crate) fn base_url(text: &str) -> Result<String> {
    let url = reqwest::Url::parse(text.trim()).map_err(|_| ClientError::InvalidUrl(text.into()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ClientError::InvalidUrl(text.into()));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Open connections to servers, shared by every [`Client`] made from it.
#[derive(Debug, Clone)]
pub(crate) struct Pool(reqwest::Client);

impl Pool {
    pub(crate) fn new() -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("heeldiary/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Network {
                attempts: 0,
                source: e,
            })?;
        Ok(Self(http))
    }
}

#[derive(Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    retry: RetryPolicy,
    /// Per request rather than per pool: a pool outlives the options of one run.
    timeout: Duration,
}

enum Attempt<T> {
    Done(T),
    Retry {
        error: ClientError,
        after: Option<Duration>,
    },
}

impl<T> Attempt<T> {
    /// A failure of the connection itself: worth another attempt after the usual backoff.
    fn network_fault(source: reqwest::Error) -> Self {
        Attempt::Retry {
            error: ClientError::Network {
                attempts: 1,
                source,
            },
            after: None,
        }
    }
}

impl Client {
    /// A client of the server at `base` on the connections of `pool`.
    pub(crate) fn new(pool: &Pool, base: &str, token: Option<&str>, options: &SyncOptions) -> Self {
        Self {
            http: pool.0.clone(),
            base: base.to_string(),
            token: token.map(str::to_string),
            retry: options.retry.clone(),
            timeout: options.request_timeout,
        }
    }

    /// POSTs `body` gzip-compressed; returns the answer and how many retries it took.
    pub(crate) async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(T, u32)> {
        self.post_encoded(path, encode_body(body)?).await
    }

    /// POSTs a body made by [`encode_body`]; returns the answer and how many retries it took.
    pub(crate) async fn post_encoded<T: DeserializeOwned>(
        &self,
        path: &str,
        body: EncodedBody,
    ) -> Result<(T, u32)> {
        self.send(Method::POST, path, Some(body)).await
    }

    /// DELETEs `path`; returns the answer and how many retries it took.
    pub(crate) async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<(T, u32)> {
        self.send(Method::DELETE, path, None).await
    }

    /// GETs `path`; returns the answer and how many retries it took.
    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<(T, u32)> {
        self.send(Method::GET, path, None).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<EncodedBody>,
    ) -> Result<(T, u32)> {
        let mut retry = 0;
        loop {
            match self.attempt(method.clone(), path, body.clone()).await {
                Attempt::Done(value) => return value.map(|v| (v, retry)),
                Attempt::Retry { error, after } => {
                    if retry + 1 >= self.retry.max_attempts {
                        return Err(match error {
                            ClientError::Network { source, .. } => ClientError::Network {
                                attempts: retry + 1,
                                source,
                            },
                            other => other,
                        });
                    }
                    let delay = after
                        .unwrap_or_else(|| self.retry.delay(retry))
                        .min(self.retry.max_delay);
                    tracing::debug!(path, retry, ?delay, "retrying after: {error}");
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
            }
        }
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<EncodedBody>,
    ) -> Attempt<Result<T>> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(self.timeout);
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            if body.gzip {
                request = request.header(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            request = request.body(body.bytes);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Attempt::network_fault(e),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs);
        // A body cut short is a network fault like any other: the request may be retried,
        // because every write of the protocol is idempotent.
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return Attempt::network_fault(e),
        };
        if status.is_success() {
            // An answer without a body (204) reads as JSON `null`, which `()` takes.
            let body: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return Attempt::Done(
                serde_json::from_slice(body)
                    .map_err(|e| ClientError::Protocol(format!("{path}: {e}"))),
            );
        }
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrorBody {
            error: heeldiary_core::wire::ErrorCode::Internal,
            message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
            field: None,
            server_time_ms: None,
        });
        let error = ClientError::Refused {
            status: status.as_u16(),
            body,
        };
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
        {
            Attempt::Retry {
                error,
                after: retry_after,
            }
        } else {
            Attempt::Done(Err(error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_and_stay_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for retry in 0..10 {
            let bound = Duration::from_millis(100 * (1 << retry)).min(Duration::from_secs(1));
            for _ in 0..50 {
                assert!(policy.delay(retry) <= bound);
            }
        }
        // Jitter: not every delay is the bound.
        let distinct: std::collections::HashSet<_> = (0..50).map(|_| policy.delay(5)).collect();
        assert!(distinct.len() > 1);
    }

    #[test]
    fn short_bodies_go_as_json_and_long_ones_gzipped() {
        let short = encode_body(&serde_json::json!({ "ops": [] })).unwrap();
        assert!(!short.gzip);
        assert_eq!(short.bytes, br#"{"ops":[]}"#);

        let note = "x".repeat(2 * MIN_GZIP_BODY_BYTES);
        let long = encode_body(&serde_json::json!({ "note": note })).unwrap();
        assert!(long.gzip);
        let mut json = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&long.bytes[..]),
            &mut json,
        )
        .unwrap();
        assert_eq!(json, serde_json::json!({ "note": note }).to_string());
    }

    #[test]
    fn server_urls_are_checked_and_normalised() {
        assert_eq!(
            base_url("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            base_url(" https://clinic.example ").unwrap(),
            "https://clinic.example"
        );
        assert!(matches!(
            base_url("clinic.example"),
            Err(ClientError::InvalidUrl(_))
        ));
        assert!(matches!(
            base_url("ftp://clinic.example"),
            Err(ClientError::InvalidUrl(_))
        ));
    }
}
