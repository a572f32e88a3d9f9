//! Call records that cannot be written do not go unnoticed and do not stop calls: the
//! records database fails under a running voice-ua (its table goes away mid-call, as
//! good as a full disk), the call goes on to its normal end, and /metrics and /healthz
//! say how many records were lost and why.

mod common;

use common::Call;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};
use voice_ua_records::{CallOutcome, RecordStore};

/// `GET path`: the whole response, head and body.
fn fetch(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    text
}

#[test]
fn records_that_cannot_be_written_are_counted_and_named_while_the_call_goes_on() {
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let http: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut call = Call::start("rec-health", &format!("[http]\nlisten = \"{http}\"\n"), &[]);
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| during_the_call(&mut call, http)));
    if let Err(panic) = checked {
        let _ = call.ua.kill();
        let _ = call.ua.wait();
        std::panic::resume_unwind(panic);
    }
    let (status, logs) = call.stop();
    assert!(status.success(), "{status:?}");
    let ended = logs.iter().find(|l| l.contains("call ended: ")).expect("the call's summary");
    assert!(ended.contains("caller hung up"), "a normal end: {ended}");
    assert!(logs.iter().any(|l| l.contains("call record not written") && l.contains("no such table")));
}

fn during_the_call(call: &mut Call, http: SocketAddr) {
    let db = call.dir.join("calls.db");
    // The answer's record is written first; then the database fails under the writer.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !RecordStore::open_read_only(&db)
        .and_then(|s| s.last(1))
        .is_ok_and(|r| r.first().is_some_and(|c| c.outcome == CallOutcome::InProgress))
    {
        assert!(Instant::now() < deadline, "the answered call's record never appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(fetch(http, "/healthz").ends_with("\r\n\r\nregistered\n"), "healthy before the failure");
    rusqlite::Connection::open(&db)
        .and_then(|c| c.execute_batch("ALTER TABLE calls RENAME TO calls_gone"))
        .expect("break the records table");

    // The call goes on: the echo agent answers, the BYE gets its 200.
    let mut got = Vec::new();
    call.talk_silence(0, 50, &mut got);
    assert!(got.len() >= 30, "media flows after the failure: {} packets back", got.len());
    call.send(&call.in_dialog("BYE", 2, "", ""));
    let ok = call.recv(Duration::from_secs(3)).expect("an answer to the BYE");
    assert!(ok.starts_with("SIP/2.0 200") && ok.contains(" BYE"), "{ok}");

    // The final record could not be written: counted in /metrics, named in /healthz.
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let text = fetch(http, "/metrics");
        if text.contains("\nvoice_ua_records_failed_total 1\n") {
            break text;
        }
        assert!(Instant::now() < deadline, "the failed record is never counted:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(metrics.contains("\nvoice_ua_records_dropped_total 0\n"), "{metrics}");
    assert!(metrics.contains("voice_ua_calls_total{outcome=\"caller_hangup\"} 1\n"), "{metrics}");
    let health = fetch(http, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "still answering calls: {health}");
    let body = health.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    assert!(
        body.starts_with(
            "registered; degraded: 1 call record could not be written (disk full?; last error: "
        ) && body.contains("no such table: calls"),
        "{body}"
    );
}

#[test]
fn records_that_cannot_be_opened_are_named_in_healthz_and_calls_are_answered() {
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let http: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    // Nothing can create a directory under /proc, root included.
    let config = format!("[http]\nlisten = \"{http}\"\n[records]\npath = \"/proc/voice-ua-none/calls.db\"\n");
    let call = Call::start("rec-unopened", &config, &[]);
    let mut got = Vec::new();
    call.talk_silence(0, 30, &mut got);
    let health = fetch(http, "/healthz");
    call.send(&call.in_dialog("BYE", 2, "", ""));
    let ok = call.recv(Duration::from_secs(3));
    let (status, logs) = call.stop();
    assert!(status.success(), "{status:?}");
    assert!(got.len() >= 15, "the call is answered and its media flows: {} packets back", got.len());
    assert!(ok.is_some_and(|m| m.starts_with("SIP/2.0 200")), "the BYE is answered");
    assert!(logs.iter().any(|l| l.contains("calls are answered but not recorded")), "logged at start");
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    assert!(
        health.ends_with("\r\n\r\nregistered; degraded: call records are not kept: the records database could not be opened (the log at start says why)\n"),
        "{health}"
    );
}
