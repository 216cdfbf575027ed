//! A fault-injecting TCP proxy for the HTTP/1.1 between a device and the server.
//!
//! Every request gets its own upstream connection: the proxy adds `connection: close` to the
//! request head it forwards, so the server closes after answering, the client does not reuse the
//! connection, and a fault chosen for a connection is a fault of exactly one request. The fault
//! comes from a rule the test sets and may change at any time ([`Proxy::script`],
//! [`Proxy::set_rule`]); every request is logged with the fault it got ([`Proxy::exchanges`]).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxy does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward the request and relay the whole answer.
    Pass,
    /// Close the connection before forwarding anything: the server never sees the request.
    DropRequest,
    /// Forward the request, wait until the server answers (so it has committed), then close the
    /// connection without relaying a byte of the answer.
    DropResponse,
    /// Hold the server's answer this long before relaying it.
    Delay(Duration),
    /// Relay only the first this many bytes of the answer, then close.
    CutResponse(usize),
}

/// The first line of a request, as the proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query, e.g. `/v1/pull?after=0&limit=1000`.
    pub target: String,
}

impl RequestLine {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The value of query parameter `name`, parsed.
    pub fn query<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        let (_, query) = self.target.split_once('?')?;
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .and_then(|(_, value)| value.parse().ok())
    }
}

/// One request that reached the proxy and the fault it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The request.
    pub request: RequestLine,
    /// What was done to it.
    pub fault: Fault,
}

type Rule = Box<dyn FnMut(&RequestLine) -> Fault + Send>;

struct Shared {
    upstream: SocketAddr,
    rule: Mutex<Rule>,
    log: Mutex<Vec<Exchange>>,
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    /// Base URL to give devices instead of the server's, e.g. `http://127.0.0.1:40125`.
    pub url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// Locks a mutex whose data stays consistent even if a holder panicked (a failed assertion in a
/// rule must not hide behind a poisoning panic).
fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Proxy {
    /// Listens on a free local port and forwards to `127.0.0.1:upstream_port`, passing every
    /// request until told otherwise. Must be called within a multi-threaded tokio runtime, which
    /// then runs the proxy while the test blocks on other work.
    pub async fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy binds a free port");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let shared = Arc::new(Shared {
            upstream: SocketAddr::from(([127, 0, 0, 1], upstream_port)),
            rule: Mutex::new(Box::new(|_: &RequestLine| Fault::Pass)),
            log: Mutex::new(Vec::new()),
        });
        let accepting = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let shared = Arc::clone(&accepting);
                // A connection that fails only fails its own request, which is what faults are for.
                tokio::spawn(async move {
                    let _ = relay(&shared, client).await;
                });
            }
        });
        Proxy { url, shared, task }
    }

    /// Decides every later request's fault with `rule`.
    pub fn set_rule(&self, rule: impl FnMut(&RequestLine) -> Fault + Send + 'static) {
        *lock(&self.shared.rule) = Box::new(rule);
    }

    /// Gives the next requests `faults`, one each in order, and passes every request after them.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        let mut faults: std::collections::VecDeque<Fault> = faults.into_iter().collect();
        self.set_rule(move |_| faults.pop_front().unwrap_or(Fault::Pass));
    }

    /// Passes every later request.
    pub fn pass_all(&self) {
        self.set_rule(|_| Fault::Pass);
    }

    /// Every request so far, in arrival order, with its fault.
    pub fn exchanges(&self) -> Vec<Exchange> {
        lock(&self.shared.log).clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Longest request head the proxy reads.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Carries one request from `client` to the server and its answer back, applying the fault the
/// rule picks for it.
async fn relay(shared: &Shared, mut client: TcpStream) -> io::Result<()> {
    let Some((head, body_start)) = read_head(&mut client).await? else {
        return Ok(());
    };
    let request = parse_request_line(&head)?;
    let fault = (lock(&shared.rule))(&request);
    lock(&shared.log).push(Exchange { request, fault });
    if fault == Fault::DropRequest {
        return Ok(());
    }
    let upstream = TcpStream::connect(shared.upstream).await?;
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    upstream_write
        .write_all(close_after_answer(&head).as_bytes())
        .await?;
    upstream_write.write_all(&body_start).await?;
    // The rest of the body, in the background: the answer may start before it is all sent.
    let forward =
        tokio::spawn(async move { tokio::io::copy(&mut client_read, &mut upstream_write).await });
    let relayed = relay_answer(fault, &mut upstream_read, &mut client_write).await;
    forward.abort();
    relayed
}

/// Reads up to the end of the request head; returns the head and the body bytes read with it,
/// or `None` when the client closed first.
async fn read_head(client: &mut TcpStream) -> io::Result<Option<(String, Vec<u8>)>> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let body = buf.split_off(end + 4);
            let head = String::from_utf8(buf)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            return Ok(Some((head, body)));
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too long",
            ));
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn parse_request_line(head: &str) -> io::Result<RequestLine> {
    let mut words = head.lines().next().unwrap_or_default().split(' ');
    match (words.next(), words.next()) {
        (Some(method), Some(target)) if !method.is_empty() => Ok(RequestLine {
            method: method.to_string(),
            target: target.to_string(),
        }),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no request line",
        )),
    }
}

/// The request head with any connection header replaced by `connection: close`.
fn close_after_answer(head: &str) -> String {
    let mut out = String::with_capacity(head.len() + 20);
    for line in head.trim_end_matches("\r\n").split("\r\n") {
        let name = line.split(':').next().unwrap_or_default();
        if !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("keep-alive") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("connection: close\r\n\r\n");
    out
}

/// Relays the server's answer to the client as `fault` says. The server writes nothing before
/// its handler returned, so the first byte of the answer means the request's effects are
/// committed.
async fn relay_answer(
    fault: Fault,
    upstream: &mut (impl AsyncRead + Unpin),
    client: &mut (impl AsyncWrite + Unpin),
) -> io::Result<()> {
    let mut chunk = vec![0u8; 16 * 1024];
    let mut n = upstream.read(&mut chunk).await?;
    let mut budget = match fault {
        Fault::DropResponse => return Ok(()),
        Fault::Delay(pause) => {
            tokio::time::sleep(pause).await;
            usize::MAX
        }
        Fault::CutResponse(bytes) => bytes,
        Fault::Pass | Fault::DropRequest => usize::MAX,
    };
    while n > 0 && budget > 0 {
        let take = n.min(budget);
        client.write_all(&chunk[..take]).await?;
        budget -= take;
        n = upstream.read(&mut chunk).await?;
    }
    client.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_headers_are_replaced_by_close() {
        let head = "GET /v1/pull?after=3 HTTP/1.1\r\nhost: x\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n";
        assert_eq!(
            close_after_answer(head),
            "GET /v1/pull?after=3 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn request_lines_give_path_and_query() {
        let line = parse_request_line("GET /v1/pull?after=3&limit=10 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(line.path(), "/v1/pull");
        assert_eq!(line.query::<u64>("after"), Some(3));
        assert_eq!(line.query::<u32>("limit"), Some(10));
        assert_eq!(line.query::<u32>("missing"), None);
    }
}
