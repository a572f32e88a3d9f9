//! A tiny HTTP/1.1 server for monitoring (`[http] listen`, 127.0.0.1:9100 by default):
//!
//! - `GET /metrics`: the Prometheus text exposition (format 0.0.4);
//! - `GET /healthz`: `200 registered` while the extension is registered, else `503`
//!   with the reason.
//!
//! One request per connection (`Connection: close`), GET (and HEAD) only, a request
//! head of at most 8 KiB read within 5 s, and at most 16 connections at a time.

use crate::metrics::{Metrics, CONTENT_TYPE};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use voice_ua_sip::RegStatus;

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: usize = 16;

/// Serve until the task is dropped or aborted.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, status: watch::Receiver<RegStatus>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else { continue };
        let (metrics, status) = (metrics.clone(), status.clone());
        tokio::spawn(async move {
            let _ = tokio::time::timeout(READ_TIMEOUT * 2, handle(stream, &metrics, &status)).await;
            drop(permit);
        });
    }
}

async fn handle(
    mut stream: TcpStream,
    metrics: &Metrics,
    status: &watch::Receiver<RegStatus>,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return respond(&mut stream, "431 Request Header Fields Too Large", "text/plain", "", false)
                .await;
        }
        let n = tokio::time::timeout(READ_TIMEOUT, stream.read(&mut buf)).await.map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "request head not read in time")
        })??;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let (status_line, ctype, body, head_only) = route(head.lines().next().unwrap_or(""), metrics, status);
    respond(&mut stream, status_line, ctype, &body, head_only).await
}

/// The response to one request line: (status, content type, body, HEAD).
fn route(
    request_line: &str,
    metrics: &Metrics,
    status: &watch::Receiver<RegStatus>,
) -> (&'static str, &'static str, String, bool) {
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return ("405 Method Not Allowed", "text/plain", "use GET\n".into(), false);
    }
    let head_only = method == "HEAD";
    match path {
        "/metrics" => ("200 OK", CONTENT_TYPE, metrics.render(), head_only),
        "/healthz" => {
            let (code, text) = health(&status.borrow());
            (code, "text/plain; charset=utf-8", format!("{text}\n"), head_only)
        }
        _ => ("404 Not Found", "text/plain", "try /metrics or /healthz\n".into(), head_only),
    }
}

/// The health answer for a registration state.
fn health(s: &RegStatus) -> (&'static str, String) {
    match s {
        RegStatus::Registered { .. } => ("200 OK", "registered".into()),
        RegStatus::Starting => ("503 Service Unavailable", "not registered: registration in progress".into()),
        RegStatus::NotRegistered { why } => ("503 Service Unavailable", format!("not registered: {why}")),
        RegStatus::Stopped => ("503 Service Unavailable", "not registered: stopping".into()),
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    ctype: &str,
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed() {
        let m = Metrics::new();
        let (tx, rx) = watch::channel(RegStatus::Starting);
        let (code, _, body, _) = route("GET /healthz HTTP/1.1", &m, &rx);
        assert_eq!(
            (code, body.as_str()),
            ("503 Service Unavailable", "not registered: registration in progress\n")
        );
        tx.send_replace(RegStatus::Registered { expires: 300 });
        let (code, _, body, _) = route("GET /healthz HTTP/1.1", &m, &rx);
        assert_eq!((code, body.as_str()), ("200 OK", "registered\n"));
        let (code, ctype, body, _) = route("GET /metrics HTTP/1.1", &m, &rx);
        assert_eq!((code, ctype), ("200 OK", "text/plain; version=0.0.4"));
        assert!(body.contains("voice_ua_active_calls 0"), "{body}");
        assert_eq!(route("POST /metrics HTTP/1.1", &m, &rx).0, "405 Method Not Allowed");
        assert_eq!(route("GET / HTTP/1.1", &m, &rx).0, "404 Not Found");
        assert!(route("HEAD /metrics HTTP/1.1", &m, &rx).3);
    }
}
