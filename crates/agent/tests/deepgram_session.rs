//! The sans-IO Deepgram session in virtual time: handshake order, audio gating, caller
//! audio in order with the JSON messages, KeepAlive only when audio stops, barge-in,
//! errors, tools, turn latency.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use voice_ua_agent::deepgram::messages::ClientMessage;
use voice_ua_agent::deepgram::session::{DeepgramSession, Output, State, HANDSHAKE_TIMEOUT, KEEPALIVE_AFTER};
use voice_ua_agent::{
    AgentError, AgentEvent, AudioFormat, AudioFrame, DeepgramConfig, ReplyFigures, Role, SessionEnd,
};

fn session(t0: Instant) -> DeepgramSession {
    let config = DeepgramConfig::new("k");
    DeepgramSession::new(t0, AudioFormat::Ulaw8k, config.settings_message(AudioFormat::Ulaw8k))
}

fn drain(s: &mut DeepgramSession) -> Vec<Output> {
    std::iter::from_fn(|| s.poll_output()).collect()
}

fn streaming(t0: Instant) -> DeepgramSession {
    let mut s = session(t0);
    s.handle_text(t0, r#"{"type":"Welcome","request_id":"r1"}"#);
    s.handle_text(t0, r#"{"type":"SettingsApplied"}"#);
    drain(&mut s);
    s
}

/// What left the session, in order: `"audio"` for a caller frame, the `type` of a JSON
/// message; events and the rest are left out.
fn sent(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::SendAudio(_) => Some("audio".to_owned()),
            Output::SendText(t) => {
                let v: serde_json::Value = serde_json::from_str(t).expect("json");
                Some(v["type"].as_str().unwrap_or_default().to_owned())
            }
            _ => None,
        })
        .collect()
}

/// A 20 ms µ-law frame whose first byte says which one it is.
fn numbered(n: u8) -> AudioFrame {
    let mut bytes = [0xff; 160];
    bytes[0] = n;
    AudioFrame::new(&bytes).expect("160 bytes fit")
}

#[test]
fn settings_once_after_welcome_and_audio_only_after_settings_applied() {
    let t0 = Instant::now();
    let mut s = session(t0);
    let frame = AudioFrame::silence(AudioFormat::Ulaw8k);
    assert_eq!(s.state(), State::AwaitingWelcome);
    s.handle_call_audio(t0, &frame);
    assert!(drain(&mut s).is_empty(), "nothing is sent before Welcome");

    s.handle_text(t0, r#"{"type":"Welcome","request_id":"r1"}"#);
    assert_eq!(sent(&drain(&mut s)), ["Settings"]);
    assert_eq!(s.state(), State::AwaitingSettingsApplied);
    assert_eq!(s.request_id(), Some("r1"));
    s.handle_call_audio(t0, &frame);
    assert!(!s.send_message(t0, &ClientMessage::KeepAlive), "no message before SettingsApplied");
    s.handle_text(t0, r#"{"type":"Welcome","request_id":"r2"}"#);
    assert!(drain(&mut s).is_empty(), "no audio, and no second Settings, before SettingsApplied");

    s.handle_text(t0, r#"{"type":"SettingsApplied"}"#);
    assert_eq!(s.state(), State::Streaming);
    s.handle_call_audio(t0, &frame);
    s.handle_call_audio(t0, &AudioFrame::new(&[]).expect("empty"));
    assert_eq!(drain(&mut s), [Output::SendAudio(frame)], "the empty frame is never sent");
    assert_eq!(s.audio_counts(), (1, 3));
}

#[test]
fn audio_leaves_in_order_with_the_json_messages() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    s.handle_text(
        t0,
        r#"{"type":"FunctionCallRequest","functions":[{"id":"a","name":"lookup","arguments":"{}","client_side":true}]}"#,
    );
    drain(&mut s);
    let t = |ms| t0 + Duration::from_millis(ms);
    s.handle_call_audio(t(20), &numbered(1));
    assert!(s.send_message(
        t(25),
        &ClientMessage::InjectAgentMessage { message: "one moment".into(), behavior: None }
    ));
    s.handle_call_audio(t(40), &numbered(2));
    s.handle_tool_result(t(45), "a".into(), "lookup".into(), "42".into());
    s.handle_call_audio(t(60), &numbered(3));
    // Decided while the previous outputs are still queued: it still leaves last.
    s.handle_call_audio(t(80), &numbered(4));
    let out = drain(&mut s);
    assert_eq!(
        sent(&out),
        ["audio", "InjectAgentMessage", "audio", "FunctionCallResponse", "audio", "audio"],
        "{out:?}"
    );
    let frames: Vec<u8> = out
        .iter()
        .filter_map(|o| if let Output::SendAudio(f) = o { Some(f.as_bytes()[0]) } else { None })
        .collect();
    assert_eq!(frames, [1, 2, 3, 4]);
    assert!(out.iter().all(|o| !matches!(o, Output::SendAudio(f) if f.len() != 160)));
}

#[test]
fn keepalive_only_when_audio_stops() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    let frame = AudioFrame::silence(AudioFormat::Ulaw8k);
    // 20 s of continuous audio: every frame goes out, never a KeepAlive.
    let mut t = t0;
    let mut out = Vec::new();
    for _ in 0..1000 {
        t += Duration::from_millis(20);
        s.handle_call_audio(t, &frame);
        if let Some(due) = s.poll_timeout() {
            assert!(due > t, "a timer due while audio flows: {due:?}");
        }
        s.handle_timeout(t);
        out.extend(drain(&mut s));
    }
    assert_eq!(out.len(), 1000);
    assert!(out.iter().all(|o| *o == Output::SendAudio(frame)), "only audio while it flows");
    // Audio stops: the first KeepAlive KEEPALIVE_AFTER after the last frame, not before.
    let due = s.poll_timeout().expect("timer");
    assert_eq!(due, t + KEEPALIVE_AFTER);
    s.handle_timeout(due - Duration::from_millis(1));
    assert!(drain(&mut s).is_empty(), "no KeepAlive before the silence is long enough");
    s.handle_timeout(due);
    assert_eq!(sent(&drain(&mut s)), ["KeepAlive"]);
    s.handle_timeout(due + Duration::from_secs(1));
    assert!(drain(&mut s).is_empty());
    // Then one every KEEPALIVE_AFTER while the silence lasts.
    let next = s.poll_timeout().expect("timer");
    assert_eq!(next, due + KEEPALIVE_AFTER);
    s.handle_timeout(next);
    assert_eq!(sent(&drain(&mut s)), ["KeepAlive"]);
    // Audio comes back: the timer starts again from the frame.
    let back = next + Duration::from_secs(2);
    s.handle_call_audio(back, &frame);
    assert_eq!(s.poll_timeout(), Some(back + KEEPALIVE_AFTER));
    s.handle_timeout(next + KEEPALIVE_AFTER);
    assert_eq!(sent(&drain(&mut s)), ["audio"], "the frame, and no KeepAlive 2 s after it");
}

#[test]
fn any_message_sent_counts_as_traffic_for_the_keepalive() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    let t1 = t0 + Duration::from_secs(3);
    assert!(
        s.send_message(t1, &ClientMessage::InjectAgentMessage { message: "hello?".into(), behavior: None })
    );
    drain(&mut s);
    assert_eq!(s.poll_timeout(), Some(t1 + KEEPALIVE_AFTER));
    s.handle_timeout(t0 + KEEPALIVE_AFTER);
    assert!(drain(&mut s).is_empty(), "the injected message was 2 s ago");
    s.handle_timeout(t1 + KEEPALIVE_AFTER);
    assert_eq!(sent(&drain(&mut s)), ["KeepAlive"]);
}

#[test]
fn handshake_timeouts_fail_with_one_line() {
    let t0 = Instant::now();
    let mut s = session(t0);
    assert_eq!(s.poll_timeout(), Some(t0 + HANDSHAKE_TIMEOUT));
    s.handle_timeout(t0 + HANDSHAKE_TIMEOUT);
    let out = drain(&mut s);
    assert!(
        matches!(&out[0], Output::Event(AgentEvent::Ended(SessionEnd::Failed(AgentError::Provider { detail, .. }))) if detail.contains("Welcome"))
    );
    assert_eq!(out[1], Output::Close);
    assert_eq!(s.state(), State::Ended);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn barge_in_flushes_at_once_without_waiting_for_audio_done() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    s.handle_binary(t0, &[0x55; 800]); // 100 ms of agent audio
    s.handle_text(t0, r#"{"type":"UserStartedSpeaking"}"#);
    s.handle_binary(t0, &[0x66; 160]);
    let out = drain(&mut s);
    let kinds: Vec<&str> = out
        .iter()
        .map(|o| match o {
            Output::Event(AgentEvent::Audio(_)) => "audio",
            Output::Event(AgentEvent::FlushPlayback) => "flush",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["audio", "audio", "audio", "audio", "audio", "flush", "audio"]);
    if let Output::Event(AgentEvent::Audio(f)) = &out[0] {
        assert_eq!(f.len(), 160, "20 ms chunks");
    }
}

#[test]
fn error_ends_failed_with_code_and_description() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    s.handle_text(t0, r#"{"type":"Warning","code":"SLOW_THINK_REQUEST","description":"slow"}"#);
    s.handle_text(t0, r#"{"type":"Mystery"}"#);
    s.handle_text(t0, "not json");
    assert!(drain(&mut s).is_empty(), "warnings, unknown types and garbage do not end the session");
    s.handle_text(t0, r#"{"type":"Error","code":"INVALID_SETTINGS","description":"bad model"}"#);
    let out = drain(&mut s);
    let Output::Event(AgentEvent::Ended(SessionEnd::Failed(error))) = &out[0] else { panic!("{out:?}") };
    assert_eq!(error.to_string(), "agent deepgram failed: Deepgram error INVALID_SETTINGS: bad model");
    assert_eq!((error.kind(), error.code()), ("provider", Some("INVALID_SETTINGS")));
    assert_eq!(out[1], Output::Close);
    s.handle_binary(t0, &[1; 160]);
    s.handle_closed(t0, "gone");
    assert!(drain(&mut s).is_empty(), "nothing after the end");
}

#[test]
fn socket_drop_mid_call_is_a_clear_failure() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    s.handle_closed(t0, "connection dropped");
    let out = drain(&mut s);
    let Output::Event(AgentEvent::Ended(SessionEnd::Failed(error))) = &out[0] else { panic!("{out:?}") };
    assert!(error.to_string().contains("mid-call (connection dropped)"), "{error}");
    assert_eq!(error.code(), None, "no code when Deepgram sent no Error");
}

#[test]
fn tool_calls_are_answered_with_the_same_id_unless_cancelled() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    s.handle_text(
        t0,
        r#"{"type":"FunctionCallRequest","functions":[
            {"id":"a","name":"lookup","arguments":"{}","client_side":true},
            {"id":"b","name":"server_fn","arguments":"{}","client_side":false},
            {"id":"c","name":"lookup","arguments":"{\"q\":1}","client_side":true}]}"#,
    );
    let out = drain(&mut s);
    let ids: Vec<&str> = out
        .iter()
        .filter_map(|o| if let Output::RunTool(t) = o { Some(t.id.as_str()) } else { None })
        .collect();
    assert_eq!(ids, ["a", "c"], "server-side calls are Deepgram's");
    s.handle_text(t0, r#"{"type":"FunctionCallCancelled","functions":[{"id":"c","name":"lookup"}]}"#);
    s.handle_tool_result(t0, "c".into(), "lookup".into(), "late".into());
    s.handle_tool_result(t0, "a".into(), "lookup".into(), "42".into());
    s.handle_tool_result(t0, "a".into(), "lookup".into(), "twice".into());
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    let Output::SendText(text) = &out[0] else { panic!() };
    let Ok(ClientMessage::FunctionCallResponse(r)) = ClientMessage::parse(text) else { panic!("{text}") };
    assert_eq!((r.id.as_deref(), r.name.as_str(), r.content.as_str()), (Some("a"), "lookup", "42"));
}

#[test]
fn turn_latency_runs_from_the_users_text_to_the_first_agent_audio() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    // Greeting audio is not a turn.
    s.handle_binary(t0, &[1; 160]);
    assert_eq!(s.last_turn_latency(), None);
    let t1 = t0 + Duration::from_secs(3);
    s.handle_text(t1, r#"{"type":"UserStartedSpeaking"}"#);
    s.handle_text(
        t1 + Duration::from_millis(900),
        r#"{"type":"ConversationText","role":"user","content":"hola"}"#,
    );
    s.handle_text(
        t1 + Duration::from_millis(1500),
        r#"{"type":"AgentStartedSpeaking","total_latency":0.7,"tts_latency":0.2,"ttt_latency":0.4}"#,
    );
    s.handle_binary(t1 + Duration::from_millis(1620), &[1; 320]);
    s.handle_binary(t1 + Duration::from_millis(1700), &[1; 320]);
    let turn = s.last_turn_latency().expect("a turn");
    assert_eq!(turn.bridge, Duration::from_millis(720));
    assert_eq!(turn.total, Some(Duration::from_millis(700)));
    let out = drain(&mut s);
    let transcripts: Vec<(Role, String)> = out
        .iter()
        .filter_map(|o| match o {
            Output::Event(AgentEvent::Transcript { role, text, .. }) => Some((*role, text.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(transcripts, [(Role::User, "hola".to_owned())]);
    // Deepgram's own figures go to the call, before the reply's audio.
    let figures = out.iter().position(|o| {
        *o == Output::Event(AgentEvent::ReplyStarted(ReplyFigures {
            total: Some(Duration::from_millis(700)),
            think: Some(Duration::from_millis(400)),
            speak: Some(Duration::from_millis(200)),
            ..ReplyFigures::default()
        }))
    });
    let figures = figures.expect("ReplyStarted with Deepgram's figures");
    let reply_frames =
        out[figures..].iter().filter(|o| matches!(o, Output::Event(AgentEvent::Audio(_)))).count();
    assert_eq!(reply_frames, 4, "all 640 bytes of the reply follow the figures: {out:?}");
}

#[test]
fn call_end_closes_with_call_ended() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    s.call_ended();
    assert_eq!(drain(&mut s), [Output::Event(AgentEvent::Ended(SessionEnd::CallEnded)), Output::Close]);
    s.handle_call_audio(t0, &AudioFrame::silence(AudioFormat::Ulaw8k));
    assert!(drain(&mut s).is_empty(), "no audio after the end");
    assert_eq!(s.audio_counts(), (0, 0), "and it is not counted as dropped");
}

#[test]
fn a_flood_of_function_calls_runs_a_bounded_number_and_answers_the_rest() {
    use voice_ua_agent::deepgram::session::MAX_PENDING_TOOLS;
    let t0 = Instant::now();
    let mut s = streaming(t0);
    let calls: Vec<Value> = (0..MAX_PENDING_TOOLS + 5)
        .map(|i| json!({"id": format!("f{i}"), "name": "lookup", "arguments": "{}", "client_side": true}))
        .chain(std::iter::once(json!({"id": "f0", "name": "lookup", "arguments": "{}", "client_side": true})))
        .collect();
    s.handle_text(t0, &json!({"type": "FunctionCallRequest", "functions": calls}).to_string());
    let out = drain(&mut s);
    let run: Vec<&str> = out
        .iter()
        .filter_map(|o| if let Output::RunTool(t) = o { Some(t.id.as_str()) } else { None })
        .collect();
    assert_eq!(run.len(), MAX_PENDING_TOOLS, "{run:?}");
    assert_eq!(run.iter().filter(|id| **id == "f0").count(), 1, "a repeated id runs once");
    let refused: Vec<ClientMessage> = out
        .iter()
        .filter_map(|o| if let Output::SendText(t) = o { ClientMessage::parse(t).ok() } else { None })
        .collect();
    assert_eq!(refused.len(), 5, "{refused:?}");
    for r in &refused {
        let ClientMessage::FunctionCallResponse(r) = r else { panic!("{r:?}") };
        assert!(r.content.starts_with("error: too many function calls at once"), "{}", r.content);
    }
    // Once one finishes, the next call runs.
    s.handle_tool_result(t0, "f0".into(), "lookup".into(), "ok".into());
    drain(&mut s);
    s.handle_text(
        t0,
        r#"{"type":"FunctionCallRequest","functions":[{"id":"g","name":"lookup","arguments":"{}"}]}"#,
    );
    assert!(drain(&mut s).iter().any(|o| matches!(o, Output::RunTool(t) if t.id == "g")));
}
