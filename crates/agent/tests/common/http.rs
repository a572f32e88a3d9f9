//! HTTP servers on 127.0.0.1 for the tool tests: one that answers a single POST and
//! hands back the request, one that answers every POST and counts them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A one-shot HTTP server: answers one POST with `reply`, hands back the request.
pub async fn http_once(reply: &'static str) -> (String, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/tools/lookup?src=test", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.expect("accept");
        let mut request = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            let n = tcp.read(&mut buf).await.expect("read");
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).to_string();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let len: usize = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                    })
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if request.len() >= head_end + 4 + len {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
        tcp.write_all(response.as_bytes()).await.expect("write");
        String::from_utf8_lossy(&request).to_string()
    });
    (url, task)
}

/// An HTTP server on 127.0.0.1 answering every POST with `status` and `reply`; it counts
/// the requests and hands their bodies back through the channel.
pub async fn counting_server(
    status: &'static str,
    reply: String,
) -> (String, Arc<AtomicUsize>, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/weather", listener.local_addr().expect("addr"));
    let count = Arc::new(AtomicUsize::new(0));
    let (bodies, rx) = mpsc::unbounded_channel();
    let counter = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut request = Vec::new();
            let mut buf = [0u8; 2048];
            let body = loop {
                let n = tcp.read(&mut buf).await.unwrap_or(0);
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                let Some(end) = text.find("\r\n\r\n") else {
                    if n == 0 {
                        break String::new();
                    }
                    continue;
                };
                let len = text
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if text.len() >= end + 4 + len || n == 0 {
                    break text[end + 4..].to_owned();
                }
            };
            let _ = bodies.send(body);
            let response = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{reply}", reply.len());
            let _ = tcp.write_all(response.as_bytes()).await;
        }
    });
    (url, count, rx)
}

/// An HTTP server on 127.0.0.1 answering every POST with `reply` after `delay` (a slow
/// tool). The handle stops it when dropped... or with the test.
pub async fn slow_server(
    delay: std::time::Duration,
    reply: &'static str,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/slow", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 2048];
                loop {
                    let n = tcp.read(&mut buf).await.unwrap_or(0);
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    let done = text.find("\r\n\r\n").is_some_and(|end| {
                        let len = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned)
                            })
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        request.len() >= end + 4 + len
                    });
                    if done || n == 0 {
                        break;
                    }
                }
                tokio::time::sleep(delay).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = tcp.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, task)
}
