//! A minimal HTTP/1.1 endpoint serving `GET /metrics` (the OpenMetrics text that
//! `prometheus-client` encodes), `/ready` (200 `ready` while serving; 503 `starting` or
//! `draining`: what a load balancer checks), `/healthz` (200 while the process answers:
//! what a liveness probe checks), and `HEAD` of each. One request per connection
//! (`Connection: close`), which is all a Prometheus scrape needs; lines may end in CRLF or a
//! bare LF; anything else gets a 404 or 400.
//!
//! Why not an HTTP server crate: measured on this project's 2-core build machine, pulling
//! hyper with its TLS stack in (as a metrics exporter with default features does) doubled
//! the cold build of the light crates, from 1 min 56 s to 3 min 53 s, for one GET route.
//! A scrape is small and rare (1,000 concurrent scrapes were served in tests), so this
//! stays a page of code.

use super::Shared;
use runner::net::Stream;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest request head read; a scrape request is a few hundred bytes.
const MAX_HEAD: usize = 8192;

/// One scrape connection; a slow or silent client gets 5 s, then it is dropped.
pub(super) async fn connection(shared: Arc<Shared>, stream: Stream) {
    let _ = tokio::time::timeout(Duration::from_secs(5), respond(&shared, stream)).await;
}

async fn respond(shared: &Shared, stream: Stream) -> std::io::Result<()> {
    let (mut rd, mut wr) = stream.split();
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // The head ends at an empty line; clients that end lines with a bare LF are served too.
    let ended =
        |h: &[u8]| h.windows(4).any(|w| w == b"\r\n\r\n") || h.windows(2).any(|w| w == b"\n\n");
    while !ended(&head) {
        let n = rd.read(&mut chunk).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = head
        .split(|b| *b == b'\n')
        .next()
        .unwrap_or_default()
        .strip_suffix(b"\r")
        .unwrap_or_else(|| head.split(|b| *b == b'\n').next().unwrap_or_default());
    let mut parts = line.split(|b| *b == b' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let (status, ctype, body) = match (method, path) {
        (b"GET" | b"HEAD", b"/metrics") => (
            "200 OK",
            super::metrics::CONTENT_TYPE,
            super::metrics::render(shared.snapshot(), super::process::ProcessStats::read()),
        ),
        (b"GET" | b"HEAD", b"/ready") => match shared.not_ready() {
            None => ("200 OK", "text/plain", "ready\n".to_owned()),
            Some(why) => ("503 Service Unavailable", "text/plain", format!("{why}\n")),
        },
        (b"GET" | b"HEAD", b"/healthz") => ("200 OK", "text/plain", "ok\n".to_owned()),
        (b"GET" | b"HEAD", _) => (
            "404 Not Found",
            "text/plain",
            "served: /metrics, /ready, /healthz\n".to_owned(),
        ),
        _ => (
            "400 Bad Request",
            "text/plain",
            "expected GET /metrics, /ready or /healthz\n".to_owned(),
        ),
    };
    // HEAD: the same headers, no body.
    let shown = if method == b"HEAD" { "" } else { body.as_str() };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{shown}",
        body.len()
    );
    wr.write_all(response.as_bytes()).await?;
    wr.shutdown().await
}
