//! DeepgramProvider end to end against the fake Deepgram server on 127.0.0.1, over ws://
//! and wss:// (a test CA passed as `extra_ca_file`), and the fake's own strictness.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use voice_ua_agent::{
    check_key, AgentEvent, AgentProvider, AudioFormat, AudioFrame, Builtin, CallFacts, DeepgramConfig,
    DeepgramProvider, FunctionSpec, Role, SessionEnd, ToolKind, TransferOutcome,
};
use voice_ua_fake_deepgram::{tone, FakeConfig, FakeDeepgram, Step, BAD_KEY_TEXT};

mod common;
use common::http::{counting_server, http_once};
use common::session::{audio_bytes, drive, finish, LIMIT};

fn failure(events: &[AgentEvent]) -> String {
    common::session::failure(events).to_string()
}

const KEY: &str = "test-key-0123456789";

fn facts(format: AudioFormat) -> CallFacts {
    common::session::facts("dg-test@pbx", format)
}

fn config_for(fake: &FakeDeepgram) -> DeepgramConfig {
    let mut config = DeepgramConfig::new(KEY);
    config.url = fake.url();
    config.extra_ca_file = fake.ca_file().map(Into::into);
    config.settings.greeting = Some("Hello".into());
    config
}

async fn conversation(tls: bool, format: AudioFormat) {
    let script = vec![
        Step::speak("Hello", 400, true),
        Step::WaitAudio { frames: 10, min_dbfs: Some(-30.0) },
        Step::user_says("I need help"),
        Step::SendRaw(r#"{"type":"SomethingNew","x":1}"#.into()),
        Step::speak("Sure", 200, true),
    ];
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).tls(tls).script(script)).await.expect("fake");
    assert_eq!(fake.url().starts_with("wss://"), tls);
    let provider = DeepgramProvider::new(config_for(&fake)).expect("provider");
    let mut session = provider.open(facts(format)).await.expect("open");
    let bytes_per_ms = format.bytes_per_second() / 1000;
    let want = 600 * bytes_per_ms;
    let events = drive(&mut session, format, |ev| audio_bytes(ev) >= want).await;
    assert_eq!(audio_bytes(&events), want, "greeting + reply, nothing lost: {events:?}");
    assert!(events.iter().any(
        |e| matches!(e, AgentEvent::Transcript { role: Role::User, text, .. } if text == "I need help")
    ));
    assert!(events
        .iter()
        .any(|e| matches!(e, AgentEvent::Transcript { role: Role::Agent, text, .. } if text == "Hello")));
    // The greeting's audio reaches the call as it was sent.
    let first: Vec<u8> = events
        .iter()
        .filter_map(|e| if let AgentEvent::Audio(f) = e { Some(f.as_bytes().to_vec()) } else { None })
        .flatten()
        .take(400 * bytes_per_ms)
        .collect();
    assert_eq!(first, tone(format, 400));
    assert_eq!(finish(&mut session).await.last(), Some(&AgentEvent::Ended(SessionEnd::CallEnded)));

    let records = fake.wait_records(1, LIMIT).await;
    let r = &records[0];
    assert_eq!(r.authorization.as_deref(), Some(format!("Token {KEY}").as_str()));
    assert!(r.errors_sent.is_empty() && r.violations.is_empty(), "{r:?}");
    assert!(r.script_done, "{r:?}");
    assert!(r.audio_frames >= 10 && r.audio_bytes == r.audio_frames * format.frame_bytes(), "{r:?}");
    let settings = r.settings.as_ref().expect("settings");
    assert_eq!(settings.agent.greeting.as_deref(), Some("Hello"));
    let texts: Vec<Value> = r.texts.iter().map(|t| serde_json::from_str(t).expect("json")).collect();
    assert_eq!(texts[0]["type"], "Settings", "Settings first");
    assert_eq!(texts.iter().filter(|t| t["type"] == "Settings").count(), 1, "exactly once");
    assert_eq!(r.keepalives, 0, "no KeepAlive while audio flows");
    assert_eq!(r.end, "client closed");
}

#[tokio::test]
async fn greeting_and_a_turn_over_ws() {
    conversation(false, AudioFormat::Ulaw8k).await;
}

#[tokio::test]
async fn greeting_and_a_turn_over_wss_with_the_test_ca() {
    conversation(true, AudioFormat::Alaw8k).await;
}

#[tokio::test]
async fn linear16_calls_stream_linear16() {
    conversation(false, AudioFormat::Linear16 { rate_hz: 16000 }).await;
}

#[tokio::test]
async fn wss_without_the_test_ca_is_a_tls_failure() {
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).tls(true)).await.expect("fake");
    let mut config = config_for(&fake);
    config.extra_ca_file = None;
    let provider = DeepgramProvider::new(config).expect("provider");
    let mut session = provider.open(facts(AudioFormat::Ulaw8k)).await.expect("open");
    let events = drive(&mut session, AudioFormat::Ulaw8k, |_| false).await;
    let line = failure(&events);
    assert!(line.contains("TLS with Deepgram at 127.0.0.1 failed"), "{line}");
    assert!(!line.contains('\n'));
}

#[tokio::test]
async fn barge_in_flushes_before_any_later_audio() {
    let script = vec![
        Step::speak("A long story", 2000, false), // interrupted: no AgentAudioDone
        Step::user_says("stop"),
        Step::speak("OK", 200, true),
    ];
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).script(script)).await.expect("fake");
    let provider = DeepgramProvider::new(config_for(&fake)).expect("provider");
    let mut session = provider.open(facts(AudioFormat::Ulaw8k)).await.expect("open");
    let events = drive(&mut session, AudioFormat::Ulaw8k, |ev| audio_bytes(ev) >= 2200 * 8).await;
    let flush = events.iter().position(|e| *e == AgentEvent::FlushPlayback).expect("a flush");
    assert_eq!(events.iter().filter(|e| **e == AgentEvent::FlushPlayback).count(), 1);
    assert_eq!(audio_bytes(&events[..flush]), 2000 * 8, "the long reply is all before the flush");
    assert_eq!(audio_bytes(&events[flush..]), 200 * 8, "the new reply is all after it");
    finish(&mut session).await;
}

#[tokio::test]
async fn http_tool_result_goes_back_with_the_same_id_and_name() {
    let (url, server) = http_once(r#"{"open":true,"hours":"9-17"}"#).await;
    let script = vec![
        Step::call("fc_1", "opening_hours", r#"{"day":"monday"}"#),
        Step::speak("We are open", 100, true),
    ];
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).script(script)).await.expect("fake");
    let mut config = config_for(&fake);
    config.settings.greeting = None;
    config.settings.functions.push(FunctionSpec {
        name: "opening_hours".into(),
        description: "Opening hours for a day".into(),
        parameters: json!({"type":"object","properties":{"day":{"type":"string"}},"required":["day"]}),
        kind: ToolKind::Http {
            url,
            headers: vec![("X-Secret".into(), "s3".into())],
            timeout: Duration::from_secs(2),
        },
        filler: Default::default(),
    });
    let provider = DeepgramProvider::new(config).expect("provider");
    let mut session = provider.open(facts(AudioFormat::Ulaw8k)).await.expect("open");
    let events = drive(&mut session, AudioFormat::Ulaw8k, |ev| audio_bytes(ev) >= 800).await;
    assert_eq!(audio_bytes(&events), 800);
    assert!(
        events.contains(&AgentEvent::ToolFinished { name: "opening_hours".into(), ok: true }),
        "the call learns the tool ran (metrics, records): {events:?}"
    );
    finish(&mut session).await;
    let request = server.await.expect("server");
    assert!(request.starts_with("POST /tools/lookup?src=test HTTP/1.1\r\n"), "{request}");
    // Header names are case-insensitive (RFC 9110 §5.1); hyper sends them in lower case.
    assert!(request.to_ascii_lowercase().contains("x-secret: s3\r\n"), "{request}");
    assert!(request.ends_with(r#"{"day":"monday"}"#), "{request}");
    let r = &fake.wait_records(1, LIMIT).await[0];
    assert!(r.violations.is_empty() && r.errors_sent.is_empty(), "{r:?}");
    assert_eq!(r.function_responses.len(), 1);
    let resp = &r.function_responses[0];
    assert_eq!((resp.id.as_deref(), resp.name.as_str()), (Some("fc_1"), "opening_hours"));
    assert_eq!(resp.content, r#"{"open":true,"hours":"9-17"}"#);
    // The function was declared in Settings.
    let settings = r.settings.as_ref().expect("settings");
    assert_eq!(settings.agent.think.functions[0].name, "opening_hours");
}

#[tokio::test]
async fn failing_http_tool_tells_the_llm_what_went_wrong() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr").port();
    let script = vec![Step::call("fc_9", "crm", "{}"), Step::speak("Sorry", 100, true)];
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).script(script)).await.expect("fake");
    let mut config = config_for(&fake);
    config.settings.functions.push(FunctionSpec {
        name: "crm".into(),
        description: "CRM lookup".into(),
        parameters: json!({"type":"object","properties":{}}),
        kind: ToolKind::Http {
            url: format!("http://127.0.0.1:{port}/x"),
            headers: vec![],
            timeout: Duration::from_secs(2),
        },
        filler: Default::default(),
    });
    let provider = DeepgramProvider::new(config).expect("provider");
    let mut session = provider.open(facts(AudioFormat::Ulaw8k)).await.expect("open");
    let events = drive(&mut session, AudioFormat::Ulaw8k, |ev| audio_bytes(ev) >= 800).await;
    assert!(events.contains(&AgentEvent::ToolFinished { name: "crm".into(), ok: false }), "{events:?}");
    finish(&mut session).await;
    let r = &fake.wait_records(1, LIMIT).await[0];
    let resp = &r.function_responses[0];
    assert_eq!(resp.id.as_deref(), Some("fc_9"));
    assert!(resp.content.starts_with("error: the crm function failed"), "{}", resp.content);
}

fn weather_function(url: String) -> FunctionSpec {
    FunctionSpec {
        name: "weather".into(),
        description: "The weather in a city".into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "days": {"type": "integer"}
            },
            "required": ["city", "unit"]
        }),
        kind: ToolKind::Http { url, headers: vec![], timeout: Duration::from_secs(2) },
        filler: Default::default(),
    }
}

/// A call whose agent runs `script` with the weather function at `url`, driven until
/// 100 ms of agent audio arrived, then hung up.
async fn call_with_weather(script: Vec<Step>, url: String) -> (FakeDeepgram, Vec<AgentEvent>) {
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).script(script)).await.expect("fake");
    let mut config = config_for(&fake);
    config.settings.greeting = None;
    config.settings.functions.push(weather_function(url));
    let provider = DeepgramProvider::new(config).expect("provider");
    let mut session = provider.open(facts(AudioFormat::Ulaw8k)).await.expect("open");
    let events = drive(&mut session, AudioFormat::Ulaw8k, |ev| audio_bytes(ev) >= 800).await;
    finish(&mut session).await;
    (fake, events)
}

#[tokio::test]
async fn tool_arguments_that_do_not_fit_never_reach_the_webhook() {
    let (url, count, mut bodies) = counting_server("200 OK", r#"{"temp":21}"#.into()).await;
    let script = vec![
        Step::call("fc_1", "weather", r#"{"city":"Lyon"}"#),
        Step::call("fc_2", "weather", r#"{"city":"Lyon","unit":"c","days":1.5}"#),
        Step::call("fc_3", "weather", "Lyon, in celsius"),
        Step::call("fc_4", "weather", r#"{"city":"Lyon","unit":"c","days":2}"#),
        Step::speak("Sunny", 100, true),
    ];
    let (fake, events) = call_with_weather(script, url).await;
    let finished: Vec<bool> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolFinished { name, ok } if name == "weather" => Some(*ok),
            _ => None,
        })
        .collect();
    assert_eq!(finished, [false, false, false, true], "{events:?}");
    assert_eq!(count.load(Ordering::SeqCst), 1, "only the call whose arguments fit reached the webhook");
    assert_eq!(bodies.recv().await.as_deref(), Some(r#"{"city":"Lyon","unit":"c","days":2}"#));

    let r = &fake.wait_records(1, LIMIT).await[0];
    assert!(r.violations.is_empty() && r.errors_sent.is_empty(), "{r:?}");
    let answers: Vec<(&str, &str)> =
        r.function_responses.iter().map(|f| (f.id.as_deref().unwrap_or(""), f.content.as_str())).collect();
    assert_eq!(answers.len(), 4, "{answers:?}");
    assert_eq!(answers[0].0, "fc_1");
    assert!(
        answers[0].1.starts_with("error: argument 'unit' is required; the weather function was not called"),
        "{}",
        answers[0].1
    );
    assert!(
        answers[1].1.starts_with("error: argument 'days' must be an integer, not a number"),
        "{}",
        answers[1].1
    );
    assert!(answers[2].1.starts_with("error: the arguments are not valid JSON"), "{}", answers[2].1);
    assert_eq!(answers[3], ("fc_4", r#"{"temp":21}"#));
}

#[tokio::test]
async fn a_tool_error_page_cut_inside_a_character_is_an_answer_not_a_crash() {
    // 'é' straddles byte 200, where the error body is cut.
    let page = format!("{}é{}", "x".repeat(199), "y".repeat(50));
    let (url, count, _bodies) = counting_server("503 Service Unavailable", page).await;
    let script =
        vec![Step::call("fc_1", "weather", r#"{"city":"Lyon","unit":"c"}"#), Step::speak("Sorry", 100, true)];
    let (fake, events) = call_with_weather(script, url).await;
    assert!(events.contains(&AgentEvent::ToolFinished { name: "weather".into(), ok: false }), "{events:?}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let r = &fake.wait_records(1, LIMIT).await[0];
    let content = &r.function_responses[0].content;
    let want = format!("error: the weather function failed (HTTP 503: {});", "x".repeat(199));
    assert!(content.starts_with(&want), "{content}");
}

#[tokio::test]
async fn builtin_arguments_from_the_llm_are_bounded() {
    let forged = format!("done\r\n2026-01-01T00:00:00Z  INFO forged line\u{1b}[2J{}", "!".repeat(300));
    let script = vec![
        Step::call("fc_d", "press", &json!({"digits": "1".repeat(33)}).to_string()),
        Step::call("fc_e", "press", r#"{"digits":"12#"}"#),
        Step::call("fc_x", &format!("no\r\nsuch{}", "_".repeat(100)), "{}"),
        Step::call("fc_h", "hang_up", &json!({ "reason": forged }).to_string()),
        Step::Pause(Duration::from_millis(50)),
    ];
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).script(script)).await.expect("fake");
    let mut config = config_for(&fake);
    config.settings.greeting = None;
    for (name, builtin) in [("press", Builtin::SendDtmf), ("hang_up", Builtin::Hangup)] {
        config.settings.functions.push(FunctionSpec {
            name: name.into(),
            description: name.into(),
            parameters: json!({"type": "object", "properties": {}}),
            kind: ToolKind::Builtin(builtin),
            filler: Default::default(),
        });
    }
    let provider = DeepgramProvider::new(config).expect("provider");
    let mut session = provider.open(facts(AudioFormat::Ulaw8k)).await.expect("open");
    let events = drive(&mut session, AudioFormat::Ulaw8k, |ev| {
        ev.iter().any(|e| matches!(e, AgentEvent::HangUp { .. }))
    })
    .await;
    finish(&mut session).await;
    let digits: Vec<&AgentEvent> = events.iter().filter(|e| matches!(e, AgentEvent::SendDigits(_))).collect();
    assert_eq!(digits, [&AgentEvent::SendDigits("12#".into())], "33 keys are refused, 3 are pressed");
    let reason = events
        .iter()
        .find_map(|e| match e {
            AgentEvent::HangUp { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .expect("a hang-up");
    assert!(reason.starts_with("done 2026-01-01T00:00:00Z INFO forged line [2J!!!"), "{reason}");
    assert!(reason.len() <= voice_ua_agent::deepgram::MAX_HANGUP_REASON, "{}", reason.len());
    let r = &fake.wait_records(1, LIMIT).await[0];
    assert_eq!(r.function_responses[0].content, "error: send at most 32 keys at a time");
    assert_eq!(r.function_responses[1].content, "ok: sent DTMF 12#");
    let unknown = &r.function_responses[2].content;
    assert_eq!(unknown, &format!("error: there is no function named no such{}", "_".repeat(57)));
}

/// The agent calls the transfer builtin; the call reports `outcome`; returns the content
/// of the FunctionCallResponse the fake received.
async fn transfer_answer(outcome: TransferOutcome) -> String {
    let script = vec![Step::call("fc_2", "transfer_to_sales", "{}"), Step::Pause(Duration::from_millis(50))];
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).script(script)).await.expect("fake");
    let mut config = config_for(&fake);
    config.settings.functions.push(FunctionSpec {
        name: "transfer_to_sales".into(),
        description: "Transfer the caller to sales".into(),
        parameters: json!({"type":"object","properties":{}}),
        kind: ToolKind::Builtin(Builtin::Transfer { target: "201".into() }),
        filler: Default::default(),
    });
    let provider = DeepgramProvider::new(config).expect("provider");
    let mut session = provider.open(facts(AudioFormat::Ulaw8k)).await.expect("open");
    let events = drive(&mut session, AudioFormat::Ulaw8k, |ev| {
        ev.iter().any(|e| matches!(e, AgentEvent::Transfer { .. }))
    })
    .await;
    assert!(events.contains(&AgentEvent::Transfer { target: "201".into() }));
    // The function call stays open while the call carries out the transfer.
    tokio::time::sleep(Duration::from_millis(150)).await;
    session.send_transfer_result(outcome).expect("result");
    // Let the response reach the fake, then hang up.
    tokio::time::sleep(Duration::from_millis(150)).await;
    finish(&mut session).await;
    let r = &fake.wait_records(1, LIMIT).await[0];
    assert!(r.violations.is_empty(), "{r:?}");
    assert_eq!(r.function_responses.len(), 1, "one answer per function call: {r:?}");
    let resp = &r.function_responses[0];
    assert_eq!((resp.id.as_deref(), resp.name.as_str()), (Some("fc_2"), "transfer_to_sales"));
    resp.content.clone()
}

#[tokio::test]
async fn builtin_transfer_answers_the_agent_with_the_pbx_outcome() {
    let ok = transfer_answer(TransferOutcome::Completed).await;
    assert!(ok.starts_with("ok: the transfer to 201 was completed"), "{ok}");
    let busy = transfer_answer(TransferOutcome::Failed { status: 486 }).await;
    assert!(busy.starts_with("error: the transfer to 201 failed: the line is busy (SIP 486)"), "{busy}");
    assert!(busy.contains("the caller is still with you"), "{busy}");
    let refused = transfer_answer(TransferOutcome::Refused { status: 403 }).await;
    assert!(refused.contains("refused by the PBX (SIP 403)"), "{refused}");
}

#[tokio::test]
async fn error_message_ends_the_session_with_code_and_description() {
    let script = vec![Step::speak("Hi", 100, true), Step::error("INTERNAL_SERVER_ERROR", "Something broke")];
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).script(script)).await.expect("fake");
    // Without reconnecting (deepgram_reconnect.rs reconnects).
    let mut config = config_for(&fake);
    config.reconnect = voice_ua_agent::ReconnectPolicy::off();
    let provider = DeepgramProvider::new(config).expect("provider");
    let mut session = provider.open(facts(AudioFormat::Ulaw8k)).await.expect("open");
    let events = drive(&mut session, AudioFormat::Ulaw8k, |_| false).await;
    assert_eq!(audio_bytes(&events), 800);
    assert_eq!(
        failure(&events),
        "agent deepgram failed: Deepgram error INTERNAL_SERVER_ERROR: Something broke"
    );
}

#[tokio::test]
async fn abrupt_close_mid_call_is_a_clear_failure() {
    let script = vec![Step::speak("Hi", 100, true), Step::CloseAbruptly];
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).tls(true).script(script)).await.expect("fake");
    let provider = DeepgramProvider::new(config_for(&fake)).expect("provider");
    let mut session = provider.open(facts(AudioFormat::Ulaw8k)).await.expect("open");
    let events = drive(&mut session, AudioFormat::Ulaw8k, |_| false).await;
    let line = failure(&events);
    assert!(line.starts_with("agent deepgram failed: Deepgram closed the session mid-call ("), "{line}");
}

#[tokio::test]
async fn bad_key_fails_with_the_401_reason() {
    let fake = FakeDeepgram::start(FakeConfig::new("the-right-key")).await.expect("fake");
    let mut config = config_for(&fake);
    config.api_key = "a-wrong-key".into();
    let provider = DeepgramProvider::new(config.clone()).expect("provider");
    let mut session = provider.open(facts(AudioFormat::Ulaw8k)).await.expect("open");
    let events = drive(&mut session, AudioFormat::Ulaw8k, |_| false).await;
    assert_eq!(events.len(), 1, "the failure is the first event");
    let line = failure(&events);
    assert_eq!(
        line,
        format!(
            "agent deepgram failed: Deepgram rejected the API key (HTTP 401: {BAD_KEY_TEXT}): check the key"
        )
    );
    assert!(!line.contains("a-wrong-key"));
    let err = check_key(&config).await.expect_err("bad key");
    assert!(err.to_string().contains("HTTP 401"), "{err}");
    let records = fake.wait_records(2, LIMIT).await;
    assert!(records.iter().all(|r| r.refused == Some(401)));
}

#[tokio::test]
async fn check_key_does_the_handshake_and_closes() {
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).tls(true)).await.expect("fake");
    let id = check_key(&config_for(&fake)).await.expect("good key");
    assert_eq!(id, "fake-request-1");
    let r = &fake.wait_records(1, LIMIT).await[0];
    assert!(r.settings.is_some() && r.errors_sent.is_empty() && r.audio_frames == 0, "{r:?}");
}

#[tokio::test]
async fn connection_refused_is_one_clear_line() {
    let port = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr").port();
    let mut config = DeepgramConfig::new(KEY);
    config.url = format!("ws://127.0.0.1:{port}/v1/agent/converse");
    let err = check_key(&config).await.expect_err("refused");
    assert_eq!(
        err.to_string(),
        "agent deepgram failed: cannot connect to Deepgram at 127.0.0.1: connection refused"
    );
}

#[tokio::test]
async fn a_refused_upgrade_with_a_long_page_is_still_one_short_line() {
    let page = format!("<html>\r\n<h1>Bad gateway</h1>\r\n{}\r\nforged: line\r\n</html>", "é".repeat(400));
    let (url, count, _) = counting_server("502 Bad Gateway", page).await;
    let mut config = DeepgramConfig::new(KEY);
    config.url = url.replace("http://", "ws://");
    let err = check_key(&config).await.expect_err("refused").to_string();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(
        err.starts_with("agent deepgram failed: Deepgram refused the WebSocket (HTTP 502: <html> <h1>"),
        "{err}"
    );
    assert!(!err.contains(['\r', '\n']), "{err:?}");
    assert!(err.len() < 400, "{}", err.len());
}

#[test]
fn plain_ws_is_refused_unless_loopback() {
    let mut config = DeepgramConfig::new(KEY);
    config.url = "ws://agent.deepgram.com/v1/agent/converse".into();
    let err = DeepgramProvider::new(config.clone()).expect_err("plain ws");
    assert!(err.to_string().contains("use wss://"), "{err}");
    for ok in [
        "ws://127.0.0.1:9/x",
        "ws://localhost:9/x",
        "ws://[::1]:9/x",
        "wss://agent.deepgram.com/v1/agent/converse",
    ] {
        config.url = ok.into();
        assert!(DeepgramProvider::new(config.clone()).is_ok(), "{ok}");
    }
    config.url = "http://127.0.0.1/".into();
    assert!(DeepgramProvider::new(config.clone()).is_err());
    config.url = DeepgramConfig::new(KEY).url;
    config.api_key = " ".into();
    assert!(DeepgramProvider::new(config).is_err(), "empty key");
}

#[tokio::test]
async fn provider_waits_for_settings_applied_before_audio() {
    // The fake holds SettingsApplied back for 300 ms and fails any audio before it.
    let fake = FakeDeepgram::start(
        FakeConfig::new(KEY)
            .settings_applied_delay(Duration::from_millis(300))
            .script(vec![Step::WaitAudio { frames: 5, min_dbfs: None }, Step::speak("Hi", 100, true)]),
    )
    .await
    .expect("fake");
    let provider = DeepgramProvider::new(config_for(&fake)).expect("provider");
    let mut session = provider.open(facts(AudioFormat::Ulaw8k)).await.expect("open");
    let events = drive(&mut session, AudioFormat::Ulaw8k, |ev| audio_bytes(ev) >= 800).await;
    assert_eq!(audio_bytes(&events), 800);
    finish(&mut session).await;
    let r = &fake.wait_records(1, LIMIT).await[0];
    assert!(r.errors_sent.is_empty(), "{r:?}");
}

// ---- the fake itself can fail a client ----

type RawWs = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw_client(fake: &FakeDeepgram) -> RawWs {
    let mut request = fake.url().into_client_request().expect("request");
    request.headers_mut().insert("Authorization", format!("Token {KEY}").parse().expect("header"));
    let (ws, _) = tokio_tungstenite::connect_async(request).await.expect("connect");
    ws
}

/// Text frames until the server closes.
async fn read_all(ws: &mut RawWs) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(Some(Ok(message))) = tokio::time::timeout(LIMIT, ws.next()).await {
        if let Message::Text(t) = message {
            out.push(serde_json::from_str(t.as_str()).expect("json"));
        }
    }
    out
}

fn settings_json() -> String {
    let config = DeepgramConfig::new(KEY);
    voice_ua_agent::deepgram::messages::ClientMessage::Settings(Box::new(
        config.settings_message(AudioFormat::Ulaw8k),
    ))
    .to_json()
}

fn error_code(messages: &[Value]) -> &str {
    messages.iter().find(|m| m["type"] == "Error").and_then(|m| m["code"].as_str()).unwrap_or("(no Error)")
}

#[tokio::test]
async fn fake_rejects_audio_before_settings() {
    let fake = FakeDeepgram::start(FakeConfig::new(KEY)).await.expect("fake");
    let mut ws = raw_client(&fake).await;
    ws.send(Message::binary(vec![0xFF; 160])).await.expect("send");
    let got = read_all(&mut ws).await;
    assert_eq!(got[0]["type"], "Welcome");
    assert_eq!(error_code(&got), "NON_SETTINGS_MESSAGE_BEFORE_SETTINGS");
}

#[tokio::test]
async fn fake_rejects_audio_before_settings_applied() {
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).settings_applied_delay(Duration::from_millis(300)))
        .await
        .expect("fake");
    let mut ws = raw_client(&fake).await;
    ws.send(Message::text(settings_json())).await.expect("send");
    ws.send(Message::binary(vec![0xFF; 160])).await.expect("send");
    let got = read_all(&mut ws).await;
    assert_eq!(error_code(&got), "AUDIO_BEFORE_SETTINGS_APPLIED");
    assert!(!got.iter().any(|m| m["type"] == "SettingsApplied"));
}

#[tokio::test]
async fn fake_rejects_a_second_settings_and_keepalive_first() {
    let fake = FakeDeepgram::start(FakeConfig::new(KEY)).await.expect("fake");
    let mut ws = raw_client(&fake).await;
    ws.send(Message::text(settings_json())).await.expect("send");
    ws.send(Message::text(settings_json())).await.expect("send");
    let got = read_all(&mut ws).await;
    assert_eq!(got[1]["type"], "SettingsApplied");
    assert_eq!(error_code(&got), "SETTINGS_ALREADY_APPLIED");

    let mut ws = raw_client(&fake).await;
    ws.send(Message::text(r#"{"type":"KeepAlive"}"#)).await.expect("send");
    assert_eq!(error_code(&read_all(&mut ws).await), "NON_SETTINGS_MESSAGE_BEFORE_SETTINGS");

    let mut ws = raw_client(&fake).await;
    ws.send(Message::text("{garbage")).await.expect("send");
    assert_eq!(error_code(&read_all(&mut ws).await), "UNPARSABLE_CLIENT_MESSAGE");
}

#[tokio::test]
async fn fake_times_out_a_silent_client() {
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).idle_timeout(Duration::from_millis(200)))
        .await
        .expect("fake");
    let mut ws = raw_client(&fake).await;
    ws.send(Message::text(settings_json())).await.expect("send");
    let got = read_all(&mut ws).await;
    assert_eq!(error_code(&got), "CLIENT_MESSAGE_TIMEOUT");
    let r = &fake.wait_records(1, LIMIT).await[0];
    assert_eq!(r.errors_sent, ["CLIENT_MESSAGE_TIMEOUT"]);
}

#[tokio::test]
async fn fake_refuses_a_wrong_key_with_dg_error() {
    let fake = FakeDeepgram::start(FakeConfig::new(KEY)).await.expect("fake");
    let mut request = fake.url().into_client_request().expect("request");
    request.headers_mut().insert("Authorization", "Token nope".parse().expect("header"));
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401);
            assert_eq!(response.headers().get("dg-error").and_then(|v| v.to_str().ok()), Some(BAD_KEY_TEXT));
        }
        other => panic!("expected HTTP 401, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_turn_after_agent_audio_done_reaches_the_call_with_silent_input() {
    let script = vec![
        Step::speak("Hello", 1000, true),
        Step::Pause(Duration::from_millis(600)),
        Step::user_says("who is there"),
        Step::speak("The concierge", 400, true),
    ];
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).script(script)).await.expect("fake");
    let mut cfg = config_for(&fake);
    cfg.settings.greeting = Some("Hello".into());
    let provider = DeepgramProvider::new(cfg).expect("provider");
    let mut session = provider.open(facts(AudioFormat::Ulaw8k)).await.expect("open");
    let mut events = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < until {
        let _ = session.send_audio(AudioFrame::silence(AudioFormat::Ulaw8k));
        tokio::time::sleep(Duration::from_millis(20)).await;
        while let Some(e) = session.try_event() {
            events.push(e);
        }
    }
    let users =
        events.iter().filter(|e| matches!(e, AgentEvent::Transcript { role: Role::User, .. })).count();
    assert_eq!(users, 1, "the caller's words after the greeting's AgentAudioDone: {events:?}");
}

#[tokio::test]
async fn nearing_the_two_hour_cap_the_call_moves_to_a_new_session_with_its_history() {
    let warning =
        r#"{"type":"Warning","code":"MAXIMUM_SESSION_LENGTH_APPROACHING","description":"5 minutes left"}"#;
    let script = vec![
        Step::speak("Hello", 200, true),
        Step::user_says("my name is Ana"),
        Step::speak("Hi Ana", 200, true),
        Step::SendRaw(warning.into()),
        Step::Pause(Duration::from_secs(10)),
    ];
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).tls(true).script(script)).await.expect("fake");
    let provider = DeepgramProvider::new(config_for(&fake)).expect("provider");
    let mut session = provider.open(facts(AudioFormat::Ulaw8k)).await.expect("open");
    // Until the first connection has been closed by the renewal, then a little more.
    let mut events = drive(&mut session, AudioFormat::Ulaw8k, |_| !fake.records().is_empty()).await;
    events.extend(drive(&mut session, AudioFormat::Ulaw8k, |ev| ev.len() > 30).await);
    events.extend(finish(&mut session).await);
    assert!(
        !events.iter().any(|e| matches!(e, AgentEvent::Ended(SessionEnd::Failed(_)))),
        "the call never sees the switch as a failure: {events:?}"
    );
    let records = fake.wait_records(2, LIMIT).await;
    assert_eq!(records[0].end, "client closed", "the old session is closed politely");
    let new = &records[1];
    assert!(new.violations.is_empty(), "{:?}", new.violations);
    assert!(new.audio_frames > 0, "the caller's audio now flows to the new session");
    let settings = serde_json::to_value(new.settings.as_ref().expect("Settings")).expect("json");
    assert_eq!(settings["agent"]["greeting"], Value::Null, "no second greeting: {settings}");
    assert_eq!(
        settings["agent"]["context"]["messages"],
        json!([
            {"type": "History", "role": "assistant", "content": "Hello"},
            {"type": "History", "role": "user", "content": "my name is Ana"},
            {"type": "History", "role": "assistant", "content": "Hi Ana"},
        ])
    );
}

#[tokio::test]
async fn the_second_renewal_still_carries_the_first_sessions_words() {
    let warning =
        r#"{"type":"Warning","code":"MAXIMUM_SESSION_LENGTH_APPROACHING","description":"5 minutes left"}"#;
    // Every connection plays this: a turn, then the warning.
    let script = vec![
        Step::user_says("my name is Ana"),
        Step::speak("Hi Ana", 100, true),
        Step::SendRaw(warning.into()),
        Step::Pause(Duration::from_secs(10)),
    ];
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).script(script)).await.expect("fake");
    let mut config = config_for(&fake);
    config.settings.greeting = None;
    let provider = DeepgramProvider::new(config).expect("provider");
    let mut session = provider.open(facts(AudioFormat::Ulaw8k)).await.expect("open");
    // Until two sessions have been renewed away (closed), then hang up on the third.
    let events = drive(&mut session, AudioFormat::Ulaw8k, |_| fake.records().len() >= 2).await;
    finish(&mut session).await;
    assert!(!events.iter().any(|e| matches!(e, AgentEvent::Ended(SessionEnd::Failed(_)))), "{events:?}");
    let records = fake.wait_records(3, LIMIT).await;
    let context = |i: usize| -> Value {
        let settings = serde_json::to_value(records[i].settings.as_ref().expect("Settings")).expect("json");
        settings["agent"]["context"]["messages"].clone()
    };
    let turn = json!([
        {"type": "History", "role": "user", "content": "my name is Ana"},
        {"type": "History", "role": "assistant", "content": "Hi Ana"},
    ]);
    assert_eq!(context(1), turn, "the first renewal");
    let both: Vec<Value> =
        turn.as_array().into_iter().flatten().chain(turn.as_array().into_iter().flatten()).cloned().collect();
    assert_eq!(context(2), Value::Array(both), "the second renewal carries the first session's turn too");
}
