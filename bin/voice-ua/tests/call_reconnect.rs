//! The binary bridged to the fake Deepgram agent when the agent's socket drops mid-call:
//! the caller hears the cut reply, the hold tone while a new session is opened, and then
//! the agent again; nobody is transferred, and /metrics counts one reconnect.

mod common;

use common::{exact_matches, finished_record, http_get, sample, Call, Received};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use voice_ua_agent::AudioFormat;
use voice_ua_fake_deepgram::{tone, FakeConfig, FakeDeepgram, Step};
use voice_ua_records::CallOutcome;

const KEY: &str = "test-deepgram-key-0123456789";
const ENV: &[(&str, &str)] = &[("DEEPGRAM_API_KEY", KEY)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_drops_mid_reply_and_the_caller_hears_the_hold_then_the_agent_again() {
    let first = vec![
        Step::speak("Hello", 400, true),
        Step::Pause(Duration::from_millis(600)),
        Step::speak_then_drop("Let me check that for you", 1000, 200),
    ];
    // Every handshake takes 600 ms (SettingsApplied held back), so the reconnect lasts
    // longer than the 200 ms of the cut reply still queued: the hold tone is heard.
    let fake = FakeDeepgram::start(
        FakeConfig::new(KEY)
            .tls(true)
            .settings_applied_delay(Duration::from_millis(600))
            .script_for(1, first)
            .script(vec![Step::speak("Here it is", 600, true)]),
    )
    .await
    .expect("fake agent");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let http: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let ca = fake.ca_file().map(|p| format!("ca_file = \"{}\"\n", p.display())).unwrap_or_default();
    let config = format!(
        "[agent]\nurl = \"{}\"\n{ca}greeting = \"Hello\"\nfallback_transfer = \"9001\"\n[http]\nlisten = \"{http}\"\n",
        fake.url()
    );
    let (got, record, metrics, status) = tokio::task::spawn_blocking(move || {
        let call = Call::start("dg-reconnect", &config, ENV);
        let mut got: Vec<Received> = Vec::new();
        call.talk_silence(0, 250, &mut got);
        let deadline = Instant::now() + Duration::from_secs(5);
        let metrics = loop {
            let text = http_get(http, "/metrics").map(|(_, t)| t).unwrap_or_default();
            if text.contains("voice_ua_agent_reconnects_total") || Instant::now() > deadline {
                break text;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        call.send(&call.in_dialog("BYE", 2, "", ""));
        if let Some(ok) = call.recv(Duration::from_secs(3)) {
            assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
        }
        let record = finished_record(&call.dir.join("calls.db"));
        let refer = call.recv(Duration::from_millis(200)).filter(|m| m.starts_with("REFER"));
        assert!(refer.is_none(), "nobody is transferred: {refer:?}");
        let (status, _) = call.stop();
        (got, record, metrics, status)
    })
    .await
    .expect("join");
    assert!(status.success(), "{status:?}");
    // The agent's packets (its 440 Hz tone repeats every 100 ms: chunks of any reply
    // look alike) and, neither silence nor the agent, the hold tone.
    let agent = tone(AudioFormat::Ulaw8k, 600);
    let chunks: Vec<&[u8]> = agent.chunks(160).collect();
    let is_agent = |p: &Received| chunks.contains(&p.3.as_slice());
    let hold: Vec<u16> =
        got.iter().filter(|p| p.3.iter().any(|&b| b != 0xff) && !is_agent(p)).map(|p| p.0).collect();
    assert!(hold.len() >= 5, "the hold tone is heard: {} packets", hold.len());
    let (first_hold, last_hold) = (hold[0], hold[hold.len() - 1]);
    let before = got.iter().filter(|p| is_agent(p) && p.0 < first_hold).count();
    let after = got.iter().filter(|p| is_agent(p) && p.0 > last_hold).count();
    assert_eq!(before, 20 + 10, "the greeting and the cut reply's 200 ms, then the tone");
    assert_eq!(after, 30, "after the tone, the new session's whole 600 ms reply");
    assert_eq!(exact_matches(&got, &chunks), 60, "no agent audio lost or repeated");
    assert_eq!(
        sample(&metrics, "voice_ua_agent_reconnects_total{provider=\"deepgram\",result=\"ok\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "voice_ua_calls_total{outcome=\"transferred\"}"), Some(0.0), "{metrics}");
    assert_eq!(record.outcome, CallOutcome::CallerHangup, "{record:?}");
    let lines: Vec<&str> = record.transcript.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(lines, ["Hello", "Let me check that for you", "Here it is"]);
    let records = fake.wait_records(2, Duration::from_secs(3)).await;
    assert!(records
        .iter()
        .any(|r| r.connection == 2 && r.settings.as_ref().is_some_and(|s| s.agent.greeting.is_none())));
}
