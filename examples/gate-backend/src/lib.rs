//! An example backend for voice-ua's gate concierge (`examples/gate-concierge`).
//!
//! voice-ua runs an `http` function by POSTing the arguments the LLM chose, as a JSON
//! object, to the function's URL; the response body goes back to the LLM as the result.
//! This server has one such endpoint per function, `POST /<function name>`, over an
//! in-memory community (see [`gate::Gate::example`]). Replace the handlers with calls to
//! the real access-control system, keeping the answers short and explicit.
//!
//! - `200` with `{"ok": true, ...}` or `{"ok": false, "reason": "..."}`: the function ran.
//! - `400` (body not a JSON object), `401` (missing or wrong `X-Api-Key`), `404`, `405`,
//!   `411`, `413`: the request itself is wrong; always with a `reason`.

pub mod gate;
pub mod http;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::gate::{Gate, TOOLS};
use crate::http::{read_request, response, Request};

/// The address it listens on unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8088";
/// How long a client may take to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How the server runs.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// When set, every function endpoint wants this value in `X-Api-Key`.
    pub api_key: Option<String>,
    /// Write one line per request to stderr.
    pub log: bool,
}

/// Serve requests on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, config: Config) {
    let config = Arc::new(config);
    let gate = Arc::new(Mutex::new(Gate::example(Instant::now())));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let (config, gate) = (Arc::clone(&config), Arc::clone(&gate));
                tokio::spawn(async move { connection(stream, peer, &config, &gate).await });
            }
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                eprintln!("{} accept failed: {e}", clock());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(mut stream: TcpStream, peer: SocketAddr, config: &Config, gate: &Mutex<Gate>) {
    let started = Instant::now();
    let request = match tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream)).await {
        Ok(Ok(request)) => request,
        Ok(Err(e)) => {
            if let Some((status, reason)) = e.status() {
                let body = json!({ "ok": false, "reason": reason }).to_string();
                let _ = stream.write_all(&response(status, &[], &body)).await;
                if config.log {
                    eprintln!("{} {peer} - - {status} {reason}", clock());
                }
            }
            return;
        }
        Err(_) => {
            if config.log {
                eprintln!("{} {peer} gave up: no whole request within {} s", clock(), READ_TIMEOUT.as_secs());
            }
            return;
        }
    };
    let (status, headers, body) = respond(&request, config, gate, Instant::now());
    let body = body.to_string();
    let _ = stream.write_all(&response(status, &headers, &body)).await;
    let _ = stream.shutdown().await;
    if config.log {
        let args = String::from_utf8_lossy(&request.body);
        let args = if args.trim().is_empty() { "-" } else { args.trim() };
        eprintln!(
            "{} {peer} {} {} {status} {:.1}ms {} -> {}",
            clock(),
            request.method,
            request.path,
            started.elapsed().as_secs_f64() * 1000.0,
            shorten(args, 200),
            shorten(&body, 300),
        );
    }
}

/// The status, extra headers and JSON body for `request`.
pub fn respond(
    request: &Request,
    config: &Config,
    gate: &Mutex<Gate>,
    now: Instant,
) -> (u16, Vec<(&'static str, &'static str)>, Value) {
    let name = request.path.trim_start_matches('/');
    if request.path == "/" || request.path == "/health" {
        return (200, vec![], json!({ "ok": true, "service": "gate-backend", "functions": TOOLS }));
    }
    if !TOOLS.contains(&name) {
        let reason = format!("no endpoint {}; POST to one of /{}", request.path, TOOLS.join(", /"));
        return (404, vec![], json!({ "ok": false, "reason": reason }));
    }
    if request.method != "POST" {
        let reason = format!("{} takes POST with the function arguments as a JSON object", request.path);
        return (405, vec![("Allow", "POST")], json!({ "ok": false, "reason": reason }));
    }
    if let Some(key) = &config.api_key {
        if !request.header("x-api-key").is_some_and(|given| same(given.as_bytes(), key.as_bytes())) {
            let reason = "missing or wrong X-Api-Key header";
            return (401, vec![], json!({ "ok": false, "reason": reason }));
        }
    }
    let args = match serde_json::from_slice::<Value>(&request.body) {
        Ok(Value::Object(args)) => args,
        Ok(_) => {
            let reason =
                "the body must be a JSON object of the function arguments, e.g. {\"gate\": \"main\"}";
            return (400, vec![], json!({ "ok": false, "reason": reason }));
        }
        Err(e) => {
            let reason =
                format!("the body is not valid JSON ({e}); send the function arguments as a JSON object");
            return (400, vec![], json!({ "ok": false, "reason": reason }));
        }
    };
    // A poisoned lock only means another request panicked; the data is still usable.
    let mut gate = gate.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match gate.call(name, &args, now) {
        Some(reply) => (200, vec![], reply),
        None => (404, vec![], json!({ "ok": false, "reason": "no such function" })),
    }
}

/// Equal bytes, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `s` cut to about `max` characters for the log.
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// The UTC time of day, `HH:MM:SSZ` (no date library needed for a log prefix).
fn clock() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) % 86_400;
    let mut out = String::with_capacity(9);
    let _ = write!(out, "{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_whole() {
        assert!(same(b"example-key", b"example-key"));
        assert!(!same(b"example-key", b"example-kez"));
        assert!(!same(b"example", b"example-key"));
        assert!(!same(b"", b"k"));
    }

    #[test]
    fn long_log_fields_are_cut() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(clock().len(), 9);
    }
}
