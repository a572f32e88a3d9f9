//! Secrets never reach the log, whatever the log filter says: voice-ua bridged to the
//! fake Deepgram agent over wss:// with RUST_LOG=trace (and the WebSocket library named
//! at trace on top), one call, and the key's text is nowhere in stdout or stderr.

mod common;

use common::Call;
use std::time::Duration;
use voice_ua_fake_deepgram::{FakeConfig, FakeDeepgram, Step};

/// Distinctive, so any line holding it (in a header, a debug dump, a URL) is found.
const KEY: &str = "dg-secret-7f3a9c2e51b84d06-canary";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deepgram_key_is_not_logged_even_at_trace() {
    let fake =
        FakeDeepgram::start(FakeConfig::new(KEY).tls(true).script(vec![Step::speak("Hello", 400, true)]))
            .await
            .expect("fake agent");
    let ca = fake.ca_file().map(|p| format!("ca_file = \"{}\"\n", p.display())).unwrap_or_default();
    let config = format!("[agent]\nurl = \"{}\"\n{ca}greeting = \"Hello\"\n", fake.url());
    let (status, logs) = tokio::task::spawn_blocking(move || {
        // An explicit directive for the WebSocket and TLS libraries must not lift the cap;
        // rsipstack (warn unless named) is named to show that trace is in effect.
        let filter =
            "trace,tungstenite=trace,tokio_tungstenite::handshake=trace,rustls=trace,rsipstack=trace";
        let call = Call::start("secret-trace", &config, &[("DEEPGRAM_API_KEY", KEY), ("RUST_LOG", filter)]);
        let mut got = Vec::new();
        call.talk_silence(0, 60, &mut got);
        call.send(&call.in_dialog("BYE", 2, "", ""));
        let _ = call.recv(Duration::from_secs(3));
        // The reader threads forward the last lines after the exit: give them a moment.
        std::thread::sleep(Duration::from_millis(200));
        call.stop()
    })
    .await
    .expect("join");
    assert!(status.success(), "{status:?}");
    let records = fake.wait_records(1, Duration::from_secs(3)).await;
    assert_eq!(
        records[0].authorization.as_deref(),
        Some(&*format!("Token {KEY}")),
        "the key did go over the WebSocket"
    );
    assert!(
        logs.iter().any(|l| l.contains("\"level\":\"TRACE\"") && l.contains("\"target\":\"rsipstack")),
        "RUST_LOG=trace is in effect: {} lines",
        logs.len()
    );
    let leaks: Vec<&String> = logs.iter().filter(|l| l.contains(KEY)).collect();
    assert!(leaks.is_empty(), "the key reached the log in {} lines, e.g. {:?}", leaks.len(), leaks.first());
    assert!(logs.iter().any(|l| l.contains("call ended: ")), "the call ran to its end");
}
