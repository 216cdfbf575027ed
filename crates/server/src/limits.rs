//! What one client, or many, may hold of the server at once: open connections (a listener that
//! stops accepting at a cap) and requests in flight per kind of route (a middleware that answers
//! an enrolment beyond its cap with 503 at once, and queues other requests before their bodies
//! are read). With the per-route body
//! limits of [`crate::api`] and the body read deadline, these bound the memory any number of
//! slow or hostile clients can make the server hold.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Most connections open at once unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 2_048;
/// Most requests without a token (enrolments) in flight at once.
pub const MAX_OPEN_REQUESTS: usize = 64;
/// Most pushes (bodies up to [`MAX_BODY_BYTES`](heeldiary_core::wire::MAX_BODY_BYTES)) in flight.
pub const MAX_PUSHES_IN_FLIGHT: usize = 16;
/// Most other requests (pulls, entries, health) in flight.
pub const MAX_READS_IN_FLIGHT: usize = 256;

/// The in-flight caps of one server, shared by every request.
#[derive(Debug, Clone)]
pub struct InFlight {
    open: Arc<Semaphore>,
    pushes: Arc<Semaphore>,
    reads: Arc<Semaphore>,
}

impl Default for InFlight {
    fn default() -> Self {
        Self {
            open: Arc::new(Semaphore::new(MAX_OPEN_REQUESTS)),
            pushes: Arc::new(Semaphore::new(MAX_PUSHES_IN_FLIGHT)),
            reads: Arc::new(Semaphore::new(MAX_READS_IN_FLIGHT)),
        }
    }
}

/// How long a request with a token waits for a place before it is refused with 503.
pub const PLACE_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Middleware: takes a place of the request's kind for as long as it runs (its body read
/// included). A request that needs no token (an enrolment) gets one at once or a 503 at once;
/// others wait in line for up to [`PLACE_WAIT`] without reading their bodies, so a burst of
/// devices is served in turn while the memory held stays bounded.
pub async fn limit_in_flight(
    State(caps): State<InFlight>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let open = path == "/v1/enrol";
    let places = if open || path == "/v1/devices" {
        &caps.open
    } else if path == "/v1/push" {
        &caps.pushes
    } else {
        &caps.reads
    };
    let place = if open {
        Arc::clone(places).try_acquire_owned().ok()
    } else {
        tokio::time::timeout(PLACE_WAIT, Arc::clone(places).acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
    };
    let Some(_place) = place else {
        return ApiError::Unavailable(format!("too many requests to {path} in flight"))
            .into_response();
    };
    next.run(request).await
}

/// A TCP listener that holds at most `max` connections open: beyond it, it stops accepting and
/// new connections wait in the kernel's backlog until one closes.
#[derive(Debug)]
pub struct CappedListener {
    inner: TcpListener,
    places: Arc<Semaphore>,
}

impl CappedListener {
    /// Caps `inner` at `max` open connections (at least one).
    pub fn new(inner: TcpListener, max: usize) -> Self {
        Self {
            inner,
            places: Arc::new(Semaphore::new(max.max(1))),
        }
    }
}

impl axum::serve::Listener for CappedListener {
    type Io = CappedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let place = Arc::clone(&self.places)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    // Answers are written whole; waiting to coalesce them with more only delays
                    // the device.
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                    return (
                        CappedStream {
                            stream,
                            _place: place,
                        },
                        addr,
                    );
                }
                // Out of descriptors and the like: wait a moment rather than spin.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection that gives its place back when it closes.
#[derive(Debug)]
pub struct CappedStream {
    stream: TcpStream,
    _place: OwnedSemaphorePermit,
}

impl AsyncRead for CappedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
