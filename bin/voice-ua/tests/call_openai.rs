//! The binary bridged to the fake OpenAI Realtime server, end to end over real sockets:
//! `provider = "openai"` with the shared `[agent]` keys; the caller hears the greeting
//! byte for byte (PCMU both ways, untranscoded) over wss:// with a CA made at test time;
//! an HTTP function is called and its answer goes back before the model goes on; a
//! barge-in truncates the reply at what the fake PBX actually received; the record holds
//! the transcript; and an agent failure mid-call plays the fallback prompt and REFERs
//! the caller to the human.
//!
//! What the session decides (the truncate arithmetic, stale deltas, renewal) is proven
//! in virtual time by voice-ua-agent's tests; these check the wiring.

mod common;

use common::agent::{fallback_and_refer, http_tool, talk_and_keep_the_record};
use common::exact_matches;
use std::time::Duration;
use voice_ua_agent::AudioFormat;
use voice_ua_fake_openai::{tone, tone_hz, FakeConfig, FakeOpenAi, Record, Step};
use voice_ua_records::CallOutcome;

const KEY: &str = "sk-test-openai-key-0123456789";
const ENV: &[(&str, &str)] = &[("OPENAI_API_KEY", KEY)];

/// `[agent]` for the fake, greeting "Hello", `extra` appended.
fn agent_config(fake: &FakeOpenAi, extra: &str) -> String {
    let ca = fake.ca_file().map(|p| format!("ca_file = \"{}\"\n", p.display())).unwrap_or_default();
    format!("[agent]\nprovider = \"openai\"\nurl = \"{}\"\n{ca}greeting = \"Hello\"\n{extra}", fake.url())
}

async fn one_record(fake: &FakeOpenAi) -> Record {
    let records = fake.wait_records(1, Duration::from_secs(3)).await;
    let r = records.first().cloned().expect("the fake's record");
    assert!(r.violations.is_empty() && r.errors_sent.is_empty(), "{r:?}");
    assert!(r.script_done, "the fake ran its whole script: {r:?}");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_greeting_reaches_the_caller_and_a_tool_call_is_answered() {
    let (http_port, http_rx) = http_tool();
    let script = vec![
        Step::AwaitResponseCreate,
        Step::speak("Hello", 1000),
        Step::WaitAudio { frames: 10, min_dbfs: None },
        Step::call("call_1", "open_gate", r#"{"gate":"main"}"#),
        Step::speak("The gate is open", 400),
    ];
    let fake = FakeOpenAi::start(FakeConfig::new(KEY).tls(true).script(script)).await.expect("fake agent");
    let functions = format!(
        "[[agent.functions]]\nname = \"open_gate\"\ndescription = \"Open a gate\"\nkind = \"http\"\n\
         url = \"http://127.0.0.1:{http_port}/gates/open\"\ntimeout_ms = 2000\n\
         parameters = {{ type = \"object\", properties = {{ gate = {{ type = \"string\" }} }} }}\n"
    );
    let config = agent_config(&fake, &functions);
    let (got, (record, _), status, logs) =
        talk_and_keep_the_record("oa-greeting", config, ENV, 150, |_| false).await;
    assert!(status.success(), "{status:?}");
    let greeting = tone(AudioFormat::Ulaw8k, 1000);
    let chunks: Vec<&[u8]> = greeting.chunks(160).collect();
    let heard = exact_matches(&got, &chunks);
    assert!(heard >= 45, "the 50 greeting packets reach the caller unchanged: {heard} found");
    let (head, body) = http_rx.recv_timeout(Duration::from_secs(1)).expect("the HTTP function was called");
    assert!(head.starts_with("POST /gates/open HTTP/1.1"), "{head}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).ok(),
        Some(serde_json::json!({"gate": "main"}))
    );

    let r = one_record(&fake).await;
    assert_eq!(r.authorization.as_deref(), Some(&*format!("Bearer {KEY}")));
    assert_eq!(r.beta_header, None);
    let session = serde_json::to_value(r.session.as_ref().expect("session.update")).expect("json");
    assert_eq!(session["type"], "realtime");
    assert_eq!(session["audio"]["input"]["format"]["type"], "audio/pcmu", "{session}");
    assert_eq!(session["audio"]["output"]["format"]["type"], "audio/pcmu", "{session}");
    assert_eq!(r.function_outputs, [("call_1".to_owned(), r#"{"ok":true}"#.to_owned())]);
    assert_eq!(r.response_creates.len(), 2, "the greeting, then after the function's output");
    assert!(r.audio_bytes >= 100 * 160, "the caller's audio streamed: {} bytes", r.audio_bytes);
    assert!(logs.iter().any(|l| l.contains("calls are answered by the OpenAI Realtime API")));
    assert!(!logs.iter().any(|l| l.contains(KEY)), "the key never reaches the log");
    // The record: the agent, its session, its words and the tool.
    assert_eq!(record.agent.as_deref(), Some("openai"));
    assert_eq!(record.agent_session_id.as_deref(), Some("sess_fake_1"));
    let lines: Vec<(&str, &str)> =
        record.transcript.iter().map(|l| (l.role.as_str(), l.text.as_str())).collect();
    assert_eq!(lines, [("agent", "Hello"), ("agent", "The gate is open")]);
    let tools: Vec<(&str, &str)> =
        record.tool_calls.iter().map(|t| (t.name.as_str(), t.result.as_str())).collect();
    assert_eq!(tools, [("open_gate", "ok")]);
    assert_eq!((record.outcome, record.hung_up_by.as_str()), (CallOutcome::CallerHangup, "caller"));
}

/// The caller talks over a long reply: the truncate tells OpenAI exactly what the PBX
/// received of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barge_in_truncates_the_reply_at_what_the_caller_received() {
    let script = vec![
        Step::AwaitResponseCreate,
        Step::speak("Hello", 400),
        Step::WaitAudio { frames: 10, min_dbfs: Some(-30.0) },
        Step::user_says("Is anyone there?"),
        Step::Pause(Duration::from_millis(600)),
        Step::speak_hz("Yes, this is the concierge, and this answer goes on for a long time", 5000, 660.0),
        Step::WaitAudio { frames: 5, min_dbfs: Some(-30.0) },
        Step::user_says("Stop"),
        Step::AwaitTruncate,
    ];
    let fake = FakeOpenAi::start(FakeConfig::new(KEY).script(script)).await.expect("fake agent");
    let config = agent_config(&fake, "");
    // 0-1 s quiet, 1.0-1.6 s speech, then quiet, 3.0-3.4 s speech over the reply.
    let loud = |i: u32| (50..80).contains(&i) || (150..170).contains(&i);
    let (got, (record, _), status, _) = talk_and_keep_the_record("oa-barge-in", config, ENV, 300, loud).await;
    assert!(status.success(), "{status:?}");
    let r = one_record(&fake).await;
    let reply = tone_hz(AudioFormat::Ulaw8k, 5000, 660.0);
    let chunks: Vec<&[u8]> = reply.chunks(160).collect();
    let received_ms = exact_matches(&got, &chunks) as u64 * 20;
    assert_eq!(r.truncates.len(), 1, "{r:?}");
    let t = &r.truncates[0];
    eprintln!("barge-in: truncated at {} ms; the PBX received {received_ms} ms of the reply", t.audio_end_ms);
    assert_eq!((t.item_id.as_str(), t.item_ms, t.accepted), (r.spoken[1].0.as_str(), Some(5000), true));
    assert!(
        (500..4000).contains(&received_ms) && t.audio_end_ms.abs_diff(received_ms) <= 20,
        "truncated at {} ms; the PBX received {received_ms} ms of the reply",
        t.audio_end_ms
    );
    let lines: Vec<(&str, &str)> =
        record.transcript.iter().map(|l| (l.role.as_str(), l.text.as_str())).collect();
    assert_eq!(lines[..3], [("agent", "Hello"), ("user", "Is anyone there?"), ("agent", lines[2].1)]);
    assert_eq!(lines.last(), Some(&("user", "Stop")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_failure_plays_the_fallback_and_transfers_to_the_human() {
    let script = vec![
        Step::AwaitResponseCreate,
        Step::speak("Hello", 200),
        Step::error("server_error", "", "The server had an error while processing your request."),
    ];
    // The reconnect after the server error is refused (401): no attempt is left, so the
    // fallback plays.
    let fake =
        FakeOpenAi::start(FakeConfig::new(KEY).script(script).refuse_from(2, 401)).await.expect("fake agent");
    let config = agent_config(&fake, "fallback_transfer = \"9001\"\n");
    let call = fallback_and_refer("oa-fallback", config, ENV).await;
    call.assert_heard_and_transferred("SERVER_ERROR");
    assert_eq!(call.record.agent.as_deref(), Some("openai"));
}
