//! OpenAiProvider end to end against the fake OpenAI Realtime server on 127.0.0.1, over
//! ws:// and wss:// (a test CA passed as `extra_ca_file`): the GA handshake, audio both
//! ways in the call's law, the greeting, barge-in and its truncate, late deltas of a
//! cancelled reply, the shared tools (an HTTP webhook, transfer, hang-up), errors and
//! closes mid-call with their codes, renewal, `check_key`; and the fake's own strictness.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use voice_ua_agent::openai::check_key;
use voice_ua_agent::{
    AgentEvent, AgentProvider, AgentSession, AudioFormat, Builtin, CallFacts, FunctionSpec, OpenAiConfig,
    OpenAiProvider, Role, SessionEnd, ToolKind, TransferOutcome,
};
use voice_ua_fake_openai::{tone, FakeConfig, FakeOpenAi, Record, Step, BAD_KEY_MESSAGE};

mod common;
use common::http::{counting_server, http_once};
use common::session::{audio_bytes, drive, drive_heard, failure, finish, LIMIT};

const KEY: &str = "test-openai-key-0123456789";

fn facts(format: AudioFormat) -> CallFacts {
    common::session::facts("oa-test@pbx", format)
}

fn config_for(fake: &FakeOpenAi) -> OpenAiConfig {
    let mut config = OpenAiConfig::new(KEY);
    config.url = fake.url();
    config.extra_ca_file = fake.ca_file().map(Into::into);
    config
}

async fn open(config: OpenAiConfig, format: AudioFormat) -> AgentSession {
    OpenAiProvider::new(config).expect("provider").open(facts(format)).await.expect("open")
}

fn clean(r: &Record) {
    assert!(r.errors_sent.is_empty() && r.violations.is_empty(), "{r:?}");
}

async fn conversation(tls: bool, format: AudioFormat, law: &str) {
    let script = vec![
        Step::AwaitResponseCreate,
        Step::speak("Hello", 400),
        Step::WaitAudio { frames: 10, min_dbfs: Some(-30.0) },
        Step::user_says("I need help"),
        Step::SendRaw(r#"{"type":"response.something_new","x":1}"#.into()),
        Step::speak("Sure", 200),
    ];
    let fake = FakeOpenAi::start(FakeConfig::new(KEY).tls(tls).script(script)).await.expect("fake");
    assert_eq!(fake.url().starts_with("wss://"), tls);
    let mut config = config_for(&fake);
    config.greeting = Some("Hello".into());
    let mut session = open(config, format).await;
    let want = 600 * 8;
    let events = drive(&mut session, format, |ev| audio_bytes(ev) >= want).await;
    assert_eq!(audio_bytes(&events), want, "greeting + reply, nothing lost: {events:?}");
    let said: Vec<(Role, &str)> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Transcript { role, text, .. } => Some((*role, text.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(said, [(Role::Agent, "Hello"), (Role::User, "I need help"), (Role::Agent, "Sure")]);
    assert!(events.contains(&AgentEvent::SessionOpened { id: "sess_fake_1".into() }), "{events:?}");
    let usage = events.iter().filter(|e| matches!(e, AgentEvent::Usage(_))).count();
    assert_eq!(usage, 2, "one per response");
    // The greeting reaches the call as it was sent: the call's law, untranscoded.
    let first: Vec<u8> = events
        .iter()
        .filter_map(|e| if let AgentEvent::Audio(f) = e { Some(f.as_bytes().to_vec()) } else { None })
        .flatten()
        .take(400 * 8)
        .collect();
    assert_eq!(first, tone(format, 400));
    assert_eq!(finish(&mut session).await.last(), Some(&AgentEvent::Ended(SessionEnd::CallEnded)));

    let r = &fake.wait_records(1, LIMIT).await[0];
    clean(r);
    assert_eq!(r.authorization.as_deref(), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(r.beta_header, None, "no OpenAI-Beta header: the GA shape");
    assert_eq!(r.request, "/v1/realtime?model=gpt-realtime");
    assert!(r.script_done, "{r:?}");
    let session = serde_json::to_value(r.session.as_ref().expect("session.update")).expect("json");
    assert_eq!(session["type"], "realtime");
    assert_eq!(session["audio"]["input"]["format"]["type"], law);
    assert_eq!(session["audio"]["output"]["format"]["type"], law);
    assert_eq!(r.event_types()[0], "session.update", "session.update first");
    let greeting = r.response_creates[0].as_ref().and_then(|p| p.instructions.clone()).unwrap_or_default();
    assert!(greeting.ends_with("Hello"), "{greeting}");
    assert!(r.appends >= 5 && r.audio_bytes == r.appends * 320, "two 20 ms frames per append: {r:?}");
    assert_eq!(r.end, "client closed");
}

#[tokio::test]
async fn greeting_and_a_turn_over_ws() {
    conversation(false, AudioFormat::Ulaw8k, "audio/pcmu").await;
}

#[tokio::test]
async fn greeting_and_a_turn_over_wss_with_the_test_ca_in_a_law() {
    conversation(true, AudioFormat::Alaw8k, "audio/pcma").await;
}

#[tokio::test]
async fn a_linear16_call_at_a_rate_openai_cannot_be_resampled_for_is_refused_at_open() {
    let provider = OpenAiProvider::new(OpenAiConfig::new(KEY)).expect("provider");
    let err = provider.open(facts(AudioFormat::Linear16 { rate_hz: 12000 })).await.expect_err("L16");
    assert_eq!(err.kind(), "unsupported_format");
}

#[tokio::test]
async fn wss_without_the_test_ca_is_a_tls_failure() {
    let fake = FakeOpenAi::start(FakeConfig::new(KEY).tls(true)).await.expect("fake");
    let mut config = config_for(&fake);
    config.extra_ca_file = None;
    let mut session = open(config, AudioFormat::Ulaw8k).await;
    let events = drive(&mut session, AudioFormat::Ulaw8k, |_| false).await;
    let line = failure(&events).to_string();
    assert!(line.starts_with("agent openai failed: TLS with OpenAI at 127.0.0.1 failed"), "{line}");
}

#[tokio::test]
async fn barge_in_truncates_the_reply_where_the_caller_stopped_hearing_it() {
    let script = vec![
        Step::speak("A long story", 2000),
        Step::user_says("stop"),
        Step::AwaitTruncate,
        Step::speak("OK", 200),
    ];
    let fake = FakeOpenAi::start(FakeConfig::new(KEY).script(script)).await.expect("fake");
    let mut session = open(config_for(&fake), AudioFormat::Ulaw8k).await;
    // The caller had heard 300 ms of the 2 s reply when the call flushed it.
    let events =
        drive_heard(&mut session, AudioFormat::Ulaw8k, |_| 300 * 8, |ev| audio_bytes(ev) >= 2200 * 8).await;
    let flush = events.iter().position(|e| *e == AgentEvent::FlushPlayback).expect("a flush");
    assert_eq!(events.iter().filter(|e| **e == AgentEvent::FlushPlayback).count(), 1);
    assert_eq!(audio_bytes(&events[..flush]), 2000 * 8, "the long reply is all before the flush");
    assert_eq!(audio_bytes(&events[flush..]), 200 * 8, "the new reply is all after it");
    finish(&mut session).await;
    let r = &fake.wait_records(1, LIMIT).await[0];
    clean(r);
    assert_eq!(r.spoken[0], ("item_2".to_owned(), 2000));
    assert_eq!(r.truncates.len(), 1, "{r:?}");
    let t = &r.truncates[0];
    assert_eq!((t.item_id.as_str(), t.audio_end_ms, t.accepted), ("item_2", 300, true));
}

#[tokio::test]
async fn late_deltas_of_a_cancelled_reply_never_play() {
    let script = vec![
        Step::speak_unfinished("Let me tell you", 1000),
        Step::user_says("wait"),
        Step::StaleDelta { ms: 500 },
        Step::speak("Yes?", 200),
    ];
    let fake = FakeOpenAi::start(FakeConfig::new(KEY).script(script)).await.expect("fake");
    let mut session = open(config_for(&fake), AudioFormat::Ulaw8k).await;
    let events =
        drive_heard(&mut session, AudioFormat::Ulaw8k, |_| 100 * 8, |ev| audio_bytes(ev) >= 1200 * 8).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut rest = events;
    while let Some(e) = session.try_event() {
        rest.push(e);
    }
    let flush = rest.iter().position(|e| *e == AgentEvent::FlushPlayback).expect("a flush");
    assert_eq!(audio_bytes(&rest[..flush]), 1000 * 8);
    assert_eq!(audio_bytes(&rest[flush..]), 200 * 8, "the stale 500 ms never reach the call: {rest:?}");
    finish(&mut session).await;
    let r = &fake.wait_records(1, LIMIT).await[0];
    clean(r);
    assert_eq!(r.truncates[0].audio_end_ms, 100);
}

#[tokio::test]
async fn http_tool_result_goes_back_and_the_model_goes_on() {
    let (url, server) = http_once(r#"{"open":true,"hours":"9-17"}"#).await;
    let script =
        vec![Step::call("call_1", "opening_hours", r#"{"day":"monday"}"#), Step::speak("We are open", 100)];
    let fake = FakeOpenAi::start(FakeConfig::new(KEY).script(script)).await.expect("fake");
    let mut config = config_for(&fake);
    config.functions.push(FunctionSpec {
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
    let mut session = open(config, AudioFormat::Ulaw8k).await;
    let events = drive(&mut session, AudioFormat::Ulaw8k, |ev| audio_bytes(ev) >= 800).await;
    assert!(
        events.contains(&AgentEvent::ToolFinished { name: "opening_hours".into(), ok: true }),
        "{events:?}"
    );
    finish(&mut session).await;
    let request = server.await.expect("server");
    assert!(request.starts_with("POST /tools/lookup?src=test HTTP/1.1\r\n"), "{request}");
    // Header names are case-insensitive (RFC 9110 §5.1); hyper sends them in lower case.
    assert!(request.to_ascii_lowercase().contains("x-secret: s3\r\n"), "{request}");
    assert!(request.ends_with(r#"{"day":"monday"}"#), "{request}");
    let r = &fake.wait_records(1, LIMIT).await[0];
    clean(r);
    assert!(r.script_done);
    assert_eq!(r.function_outputs, [("call_1".to_owned(), r#"{"open":true,"hours":"9-17"}"#.to_owned())]);
    assert_eq!(r.response_creates.len(), 1, "one response.create, after the output: {r:?}");
    let types = r.event_types();
    let output_at = types.iter().position(|t| t == "conversation.item.create");
    let create_at = types.iter().position(|t| t == "response.create");
    assert!(output_at < create_at, "{types:?}");
    let session = r.session.as_ref().expect("session");
    assert_eq!(session.tools.as_ref().map(|t| t[0].name.as_str()), Some("opening_hours"));
}

#[tokio::test]
async fn tool_arguments_that_do_not_fit_never_reach_the_webhook() {
    let (url, count, _bodies) = counting_server("200 OK", r#"{"temp":21}"#.into()).await;
    let script = vec![Step::call("call_1", "weather", r#"{"city":"Lyon"}"#), Step::speak("Sorry", 100)];
    let fake = FakeOpenAi::start(FakeConfig::new(KEY).script(script)).await.expect("fake");
    let mut config = config_for(&fake);
    config.functions.push(FunctionSpec {
        name: "weather".into(),
        description: "The weather".into(),
        parameters: json!({"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string"}},"required":["city","unit"]}),
        kind: ToolKind::Http { url, headers: vec![], timeout: Duration::from_secs(2) },
        filler: Default::default(),
    });
    let mut session = open(config, AudioFormat::Ulaw8k).await;
    let events = drive(&mut session, AudioFormat::Ulaw8k, |ev| audio_bytes(ev) >= 800).await;
    assert!(events.contains(&AgentEvent::ToolFinished { name: "weather".into(), ok: false }), "{events:?}");
    finish(&mut session).await;
    assert_eq!(count.load(Ordering::SeqCst), 0);
    let r = &fake.wait_records(1, LIMIT).await[0];
    assert!(r.function_outputs[0].1.starts_with("error: argument 'unit' is required"), "{r:?}");
}

/// The agent calls the transfer builtin; the call reports `outcome`; the function output
/// the fake received.
async fn transfer_answer(outcome: TransferOutcome) -> String {
    let script =
        vec![Step::call("call_t", "transfer_to_sales", "{}"), Step::Pause(Duration::from_millis(50))];
    let fake = FakeOpenAi::start(FakeConfig::new(KEY).script(script)).await.expect("fake");
    let mut config = config_for(&fake);
    config.functions.push(FunctionSpec {
        name: "transfer_to_sales".into(),
        description: "Transfer the caller to sales".into(),
        parameters: json!({"type":"object","properties":{}}),
        kind: ToolKind::Builtin(Builtin::Transfer { target: "201".into() }),
        filler: Default::default(),
    });
    let mut session = open(config, AudioFormat::Ulaw8k).await;
    let events = drive(&mut session, AudioFormat::Ulaw8k, |ev| {
        ev.iter().any(|e| matches!(e, AgentEvent::Transfer { .. }))
    })
    .await;
    assert!(events.contains(&AgentEvent::Transfer { target: "201".into() }));
    // The function call stays open while the call carries out the transfer.
    tokio::time::sleep(Duration::from_millis(150)).await;
    session.send_transfer_result(outcome).expect("result");
    tokio::time::sleep(Duration::from_millis(150)).await;
    finish(&mut session).await;
    let r = &fake.wait_records(1, LIMIT).await[0];
    clean(r);
    assert_eq!(r.function_outputs.len(), 1, "one answer per function call: {r:?}");
    assert_eq!(r.function_outputs[0].0, "call_t");
    assert_eq!(r.response_creates.len(), 1, "the model speaks the outcome");
    r.function_outputs[0].1.clone()
}

#[tokio::test]
async fn builtin_transfer_answers_the_agent_with_the_pbx_outcome() {
    let ok = transfer_answer(TransferOutcome::Completed).await;
    assert!(ok.starts_with("ok: the transfer to 201 was completed"), "{ok}");
    let busy = transfer_answer(TransferOutcome::Failed { status: 486 }).await;
    assert!(busy.starts_with("error: the transfer to 201 failed: the line is busy (SIP 486)"), "{busy}");
}

#[tokio::test]
async fn builtin_hangup_ends_the_call_after_the_goodbye() {
    let script = vec![
        Step::call("call_h", "hang_up", r#"{"reason":"the visitor is through"}"#),
        Step::Pause(Duration::from_millis(50)),
    ];
    let fake = FakeOpenAi::start(FakeConfig::new(KEY).script(script)).await.expect("fake");
    let mut config = config_for(&fake);
    config.functions.push(FunctionSpec {
        name: "hang_up".into(),
        description: "End the call".into(),
        parameters: json!({"type":"object","properties":{"reason":{"type":"string"}}}),
        kind: ToolKind::Builtin(Builtin::Hangup),
        filler: Default::default(),
    });
    let mut session = open(config, AudioFormat::Ulaw8k).await;
    let events = drive(&mut session, AudioFormat::Ulaw8k, |ev| {
        ev.iter().any(|e| matches!(e, AgentEvent::HangUp { .. }))
    })
    .await;
    assert!(events
        .contains(&AgentEvent::HangUp { after_playback: true, reason: "the visitor is through".into() }));
    tokio::time::sleep(Duration::from_millis(150)).await;
    finish(&mut session).await;
    let r = &fake.wait_records(1, LIMIT).await[0];
    assert_eq!(
        r.function_outputs,
        [("call_h".to_owned(), "ok: the call ends after your last words".to_owned())]
    );
}

/// A session without reconnecting, to `script`'s failure (reconnects: openai_reconnect.rs).
async fn failing(script: Vec<Step>) -> (voice_ua_agent::AgentError, Vec<AgentEvent>) {
    let fake = FakeOpenAi::start(FakeConfig::new(KEY).script(script)).await.expect("fake");
    let mut config = config_for(&fake);
    config.reconnect = voice_ua_agent::ReconnectPolicy::off();
    let mut session = open(config, AudioFormat::Ulaw8k).await;
    let events = drive(&mut session, AudioFormat::Ulaw8k, |_| false).await;
    (failure(&events), events)
}

#[tokio::test]
async fn a_fatal_error_mid_call_ends_the_session_with_its_code() {
    let (e, events) =
        failing(vec![Step::speak("Hi", 100), Step::error("server_error", "", "The server had an error")])
            .await;
    assert_eq!(audio_bytes(&events), 800);
    assert_eq!((e.kind(), e.code()), ("provider", Some("SERVER_ERROR")));
    assert_eq!(e.to_string(), "agent openai failed: OpenAI error server_error: The server had an error");
}

#[tokio::test]
async fn the_60_minute_close_and_a_dropped_connection_end_the_session_with_codes() {
    let (e, _) =
        failing(vec![Step::close(1001, "Your session hit the maximum duration of 60 minutes.")]).await;
    assert_eq!(e.code(), Some("SESSION_EXPIRED"));
    assert!(e.to_string().contains("at its 60-minute maximum (close 1001"), "{e}");
    let (e, _) = failing(vec![Step::speak("Hi", 100), Step::CloseAbruptly]).await;
    assert_eq!(e.code(), Some("CONNECTION_LOST"));
    assert!(e.to_string().starts_with("agent openai failed: OpenAI lost the session mid-call ("), "{e}");
}

#[tokio::test]
async fn an_oversized_event_ends_the_session() {
    let huge =
        format!(r#"{{"type":"response.output_audio_transcript.delta","delta":"{}"}}"#, "a".repeat(1 << 20));
    let (e, _) = failing(vec![Step::SendRaw(huge)]).await;
    assert_eq!(e.code(), Some("EVENT_TOO_LARGE"), "{e}");
}

#[tokio::test]
async fn a_recoverable_error_is_survived() {
    let script = vec![
        Step::error("invalid_request_error", "invalid_value", "Invalid value: 'x'."),
        Step::SendRaw("{garbage".into()),
        Step::speak("Still here", 200),
    ];
    let fake = FakeOpenAi::start(FakeConfig::new(KEY).script(script)).await.expect("fake");
    let mut session = open(config_for(&fake), AudioFormat::Ulaw8k).await;
    let events = drive(&mut session, AudioFormat::Ulaw8k, |ev| audio_bytes(ev) >= 1600).await;
    assert!(!events.iter().any(|e| matches!(e, AgentEvent::Ended(_))));
    finish(&mut session).await;
}

#[tokio::test]
async fn a_session_never_confirmed_fails_after_the_handshake_timeout() {
    // A WebSocket server that accepts and then says nothing.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
        while ws.next().await.is_some() {}
    });
    let mut config = OpenAiConfig::new(KEY);
    config.url = format!("ws://{addr}/v1/realtime");
    let mut session = open(config, AudioFormat::Ulaw8k).await;
    let started = tokio::time::Instant::now();
    let mut events = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(15), session.event()).await {
        let end = matches!(e, AgentEvent::Ended(_));
        events.push(e);
        if end {
            break;
        }
    }
    let e = failure(&events);
    assert_eq!(e.code(), Some("HANDSHAKE_TIMEOUT"));
    assert!(started.elapsed() >= Duration::from_secs(9), "{:?}", started.elapsed());
}

#[tokio::test]
async fn bad_key_fails_with_the_401_reason_and_never_shows_the_key() {
    let fake = FakeOpenAi::start(FakeConfig::new("the-right-key")).await.expect("fake");
    let mut config = config_for(&fake);
    config.api_key = "a-wrong-key".into();
    let mut session = open(config.clone(), AudioFormat::Ulaw8k).await;
    let events = drive(&mut session, AudioFormat::Ulaw8k, |_| false).await;
    assert_eq!(events.len(), 1, "the failure is the first event");
    let line = failure(&events).to_string();
    assert_eq!(
        line,
        format!(
            "agent openai failed: OpenAI rejected the API key (HTTP 401: {BAD_KEY_MESSAGE}): check the key"
        )
    );
    assert!(!line.contains("a-wrong-key"));
    assert!(!format!("{config:?}").contains("a-wrong-key"), "the key is masked in Debug");
    let err = check_key(&config).await.expect_err("bad key");
    assert!(err.to_string().contains("HTTP 401"), "{err}");
    let records = fake.wait_records(2, LIMIT).await;
    assert!(records.iter().all(|r| r.refused == Some(401)));
}

#[tokio::test]
async fn check_key_does_the_handshake_without_a_billed_response() {
    let fake = FakeOpenAi::start(FakeConfig::new(KEY).tls(true)).await.expect("fake");
    let mut config = config_for(&fake);
    config.greeting = Some("Hello".into());
    let id = check_key(&config).await.expect("good key");
    assert_eq!(id, "sess_fake_1");
    let r = &fake.wait_records(1, LIMIT).await[0];
    clean(r);
    assert!(r.session.is_some() && r.appends == 0 && r.response_creates.is_empty(), "{r:?}");
}

#[test]
fn plain_ws_is_refused_unless_loopback_and_a_key_and_model_are_needed() {
    let mut config = OpenAiConfig::new(KEY);
    config.url = "ws://api.openai.com/v1/realtime".into();
    let err = OpenAiProvider::new(config.clone()).expect_err("plain ws");
    assert!(err.to_string().contains("use wss://"), "{err}");
    for ok in ["ws://127.0.0.1:9/v1/realtime", "ws://[::1]:9/x", "wss://api.openai.com/v1/realtime"] {
        config.url = ok.into();
        assert!(OpenAiProvider::new(config.clone()).is_ok(), "{ok}");
    }
    assert_eq!(config.request_url(), "wss://api.openai.com/v1/realtime?model=gpt-realtime");
    config.url = "wss://example.test/v1/realtime?model=gpt-realtime-mini".into();
    assert_eq!(config.request_url(), "wss://example.test/v1/realtime?model=gpt-realtime-mini");
    config.url = "wss://example.test/v1/realtime?region=eu".into();
    assert_eq!(config.request_url(), "wss://example.test/v1/realtime?region=eu&model=gpt-realtime");
    let mut c = OpenAiConfig::new(" ");
    assert!(OpenAiProvider::new(c.clone()).is_err(), "empty key");
    c.api_key = KEY.into();
    c.model = "gpt realtime".into();
    assert!(OpenAiProvider::new(c).is_err(), "a model name with a space");
}

#[tokio::test]
async fn the_call_moves_to_a_renewed_session_with_its_history() {
    let script = vec![
        Step::speak("Hello", 200),
        Step::user_says("my name is Ana"),
        Step::speak("Hi Ana", 200),
        Step::Pause(Duration::from_secs(10)),
    ];
    let fake = FakeOpenAi::start(FakeConfig::new(KEY).tls(true).script(script)).await.expect("fake");
    let mut config = config_for(&fake);
    config.greeting = Some("Hello".into());
    config.renew_after = Duration::from_millis(500);
    let mut session = open(config, AudioFormat::Ulaw8k).await;
    // Until the first connection has been closed by the renewal, then a little more.
    let mut events = drive(&mut session, AudioFormat::Ulaw8k, |_| !fake.records().is_empty()).await;
    events.extend(drive(&mut session, AudioFormat::Ulaw8k, |ev| ev.len() > 40).await);
    events.extend(finish(&mut session).await);
    assert!(
        !events.iter().any(|e| matches!(e, AgentEvent::Ended(SessionEnd::Failed(_)))),
        "the call never sees the switch as a failure: {events:?}"
    );
    let records = fake.wait_records(2, LIMIT).await;
    assert_eq!(records[0].end, "client closed", "the old session is closed politely");
    let new = &records[1];
    clean(new);
    assert!(new.appends > 0, "the caller's audio now flows to the new session");
    assert!(new.response_creates.is_empty(), "no second greeting: {new:?}");
    let items: Vec<Value> = new.items.iter().map(|i| serde_json::to_value(i).expect("json")).collect();
    assert_eq!(
        items,
        [
            json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello"}]}),
            json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "my name is Ana"}]}),
            json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi Ana"}]}),
        ]
    );
}

// ---- the fake itself

type RawWs = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw_client(fake: &FakeOpenAi, beta: bool) -> RawWs {
    let mut request = format!("{}?model=gpt-realtime", fake.url()).into_client_request().expect("request");
    request.headers_mut().insert("Authorization", format!("Bearer {KEY}").parse().expect("header"));
    if beta {
        request.headers_mut().insert("OpenAI-Beta", "realtime=v1".parse().expect("header"));
    }
    let (ws, _) = tokio_tungstenite::connect_async(request).await.expect("connect");
    ws
}

/// Text frames (and the close code) until the server closes or goes quiet.
async fn read_for(ws: &mut RawWs, quiet: Duration) -> (Vec<Value>, Option<u16>) {
    let mut out = Vec::new();
    while let Ok(Some(Ok(message))) = tokio::time::timeout(quiet, ws.next()).await {
        match message {
            Message::Text(t) => out.push(serde_json::from_str(t.as_str()).expect("json")),
            Message::Close(frame) => return (out, frame.map(|f| u16::from(f.code))),
            _ => {}
        }
    }
    (out, None)
}

fn error_codes(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "error")
        .map(|e| e["error"]["code"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn update(session: Value) -> Message {
    Message::text(json!({"type": "session.update", "session": session}).to_string())
}

#[tokio::test]
async fn fake_closes_the_beta_shape_with_4000() {
    let fake = FakeOpenAi::start(FakeConfig::new(KEY)).await.expect("fake");
    let mut ws = raw_client(&fake, true).await;
    let (events, close) = read_for(&mut ws, LIMIT).await;
    assert_eq!(error_codes(&events), ["beta_api_shape_disabled"]);
    assert_eq!(close, Some(4000));
}

#[tokio::test]
async fn fake_wants_a_realtime_session_update_first() {
    let fake = FakeOpenAi::start(FakeConfig::new(KEY)).await.expect("fake");
    let mut ws = raw_client(&fake, false).await;
    ws.send(Message::text(r#"{"type":"response.create"}"#)).await.expect("send");
    ws.send(update(json!({"type": "transcriptionish"}))).await.expect("send");
    ws.send(update(json!({"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}, "output": {"format": {"type": "audio/pcm", "rate": 24000}}}}))).await.expect("send");
    ws.send(Message::text("{garbage")).await.expect("send");
    let (events, _) = read_for(&mut ws, Duration::from_millis(500)).await;
    assert_eq!(events[0]["type"], "session.created");
    assert_eq!(
        error_codes(&events),
        ["session_update_required", "invalid_value", "invalid_value", "invalid_json"]
    );
    assert!(!events.iter().any(|e| e["type"] == "session.updated"));
}

#[tokio::test]
async fn fake_checks_truncates_items_and_responses() {
    let script = vec![Step::speak_unfinished("Hello", 1000)];
    let fake = FakeOpenAi::start(FakeConfig::new(KEY).script(script)).await.expect("fake");
    let mut ws = raw_client(&fake, false).await;
    let pcmu = json!({"type": "audio/pcmu"});
    ws.send(update(
        json!({"type": "realtime", "audio": {"input": {"format": pcmu}, "output": {"format": pcmu}}}),
    ))
    .await
    .expect("send");
    let (events, _) = read_for(&mut ws, Duration::from_millis(300)).await;
    assert!(events.iter().any(|e| e["type"] == "session.updated"));
    let item = events.iter().find(|e| e["type"] == "response.output_item.added").expect("an item")["item"]
        ["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for event in [
        json!({"type": "conversation.item.truncate", "item_id": item, "content_index": 0, "audio_end_ms": 1001}),
        json!({"type": "conversation.item.truncate", "item_id": "item_404", "content_index": 0, "audio_end_ms": 1}),
        json!({"type": "conversation.item.create", "item": {"type": "message", "role": "assistant", "content": [{"type": "text", "text": "beta"}]}}),
        json!({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "nope", "output": "x"}}),
        json!({"type": "response.create"}),
        json!({"type": "conversation.item.truncate", "item_id": item, "content_index": 0, "audio_end_ms": 1000}),
        json!({"type": "response.cancel"}),
        json!({"type": "response.cancel"}),
    ] {
        ws.send(Message::text(event.to_string())).await.expect("send");
    }
    let (events, _) = read_for(&mut ws, Duration::from_millis(500)).await;
    assert_eq!(
        error_codes(&events),
        [
            "invalid_value",
            "invalid_value",
            "invalid_value",
            "invalid_value",
            "conversation_already_has_active_response",
            "response_cancel_not_active"
        ]
    );
    assert!(events.iter().any(|e| e["type"] == "conversation.item.truncated" && e["audio_end_ms"] == 1000));
    assert!(events.iter().any(|e| e["type"] == "response.done" && e["response"]["status"] == "cancelled"));
    drop(ws);
    let r = &fake.wait_records(1, LIMIT).await[0];
    let accepted: Vec<(u64, bool)> = r.truncates.iter().map(|t| (t.audio_end_ms, t.accepted)).collect();
    assert_eq!(accepted, [(1001, false), (1, false), (1000, true)]);
}

#[tokio::test]
async fn fake_refuses_a_wrong_key_and_a_missing_model() {
    let fake = FakeOpenAi::start(FakeConfig::new(KEY)).await.expect("fake");
    for (url, auth, status) in [
        (format!("{}?model=gpt-realtime", fake.url()), "Bearer nope".to_owned(), 401),
        (fake.url(), format!("Bearer {KEY}"), 400),
    ] {
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert("Authorization", auth.parse().expect("header"));
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), status);
                let body: Value = serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                    .expect("JSON body");
                assert!(body["error"]["message"].is_string(), "{body}");
            }
            other => panic!("expected HTTP {status}, got {:?}", other.map(|_| ())),
        }
    }
}
