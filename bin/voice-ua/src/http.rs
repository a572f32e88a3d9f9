//! A tiny HTTP/1.1 server for monitoring (`[http] listen`, 127.0.0.1:9100 by default):
//!
//! - `GET /metrics`: the Prometheus text exposition (format 0.0.4);
//! - `GET /healthz`: `200 registered` while the extension is registered, else `503`
//!   with the reason. Either way the body goes on to name what is degraded while calls
//!   still work (`200 registered; degraded: 3 call records could not be written (disk
//!   full?; last error: ...)`): the status stays 200, since a restart would not mend a
//!   full disk and calls are still answered; alert on `voice_ua_records_failed_total`.
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
            let (code, text) = health(&status.borrow(), &metrics.degradations());
            (code, "text/plain; charset=utf-8", format!("{text}\n"), head_only)
        }
        _ => ("404 Not Found", "text/plain", "try /metrics or /healthz\n".into(), head_only),
    }
}

/// The health answer for a registration state and what is degraded (one line).
fn health(s: &RegStatus, degraded: &[String]) -> (&'static str, String) {
    let (code, mut text) = match s {
        RegStatus::Registered { .. } => ("200 OK", "registered".to_string()),
        RegStatus::Starting => ("503 Service Unavailable", "not registered: registration in progress".into()),
        RegStatus::NotRegistered { why, .. } => ("503 Service Unavailable", format!("not registered: {why}")),
        RegStatus::Stopped => ("503 Service Unavailable", "not registered: stopping".into()),
    };
    if !degraded.is_empty() {
        text.push_str("; degraded: ");
        text.push_str(&degraded.join("; "));
    }
    // One line whatever an error text holds.
    (code, text.replace(['\r', '\n'], " "))
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

    #[test]
    fn healthz_and_metrics_name_call_records_that_could_not_be_written() {
        use voice_ua_records::{CallRecord, RecordStore, Retention};
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("calls.db");
        let writer =
            RecordStore::open(&db, Retention::default()).expect("open").into_writer().expect("writer");
        let m = Metrics::new();
        m.watch_records(writer.clone());
        let (tx, rx) = watch::channel(RegStatus::Registered { expires: 300 });
        assert_eq!(route("GET /healthz HTTP/1.1", &m, &rx).2, "registered\n");
        assert!(m.render().contains("\nvoice_ua_records_failed_total 0\n"));
        // The database fails under the writer (as a full disk would).
        rusqlite::Connection::open(&db)
            .and_then(|c| c.execute_batch("ALTER TABLE calls RENAME TO gone"))
            .expect("break the table");
        let record = CallRecord::new("r1", "c1", "1001", "9000", std::time::SystemTime::now());
        writer.started(&record);
        assert!(writer.flush());
        let (code, _, body, _) = route("GET /healthz HTTP/1.1", &m, &rx);
        assert_eq!(code, "200 OK", "calls are still answered: healthy, degraded");
        assert!(
            body.starts_with("registered; degraded: 1 call record could not be written (disk full?; last error: call records database "),
            "{body}"
        );
        assert!(
            body.contains("no such table: calls") && body.ends_with(")\n") && body.lines().count() == 1,
            "{body}"
        );
        writer.finished(record);
        assert!(writer.flush());
        assert!(m.render().contains("\nvoice_ua_records_failed_total 2\n"), "{}", m.render());
        assert!(route("GET /healthz HTTP/1.1", &m, &rx)
            .2
            .contains("degraded: 2 call records could not be written"));
        tx.send_replace(RegStatus::NotRegistered {
            kind: voice_ua_sip::RegFailure::NoAnswer,
            why: "PBX unreachable".into(),
        });
        let (code, _, body, _) = route("GET /healthz HTTP/1.1", &m, &rx);
        assert_eq!(code, "503 Service Unavailable");
        assert!(body.starts_with("not registered: PBX unreachable; degraded: 2 call records"), "{body}");
        writer.close();
    }

    #[test]
    fn healthz_says_when_call_records_could_not_be_opened() {
        let m = Metrics::new();
        let (_tx, rx) = watch::channel(RegStatus::Registered { expires: 300 });
        assert_eq!(route("GET /healthz HTTP/1.1", &m, &rx).2, "registered\n");
        m.records_not_opened();
        let (code, _, body, _) = route("GET /healthz HTTP/1.1", &m, &rx);
        assert_eq!(
            (code, body.as_str()),
            (
                "200 OK",
                "registered; degraded: call records are not kept: the records database could not be opened (the log at start says why)\n"
            )
        );
    }
}
