//! Reconnecting an OpenAI Realtime session that drops mid-call: in virtual time (which
//! errors and closes reconnect, the switch-over, a function result of the dead session)
//! and end to end against the fake OpenAI server (the fake drops mid-reply; the call
//! hears the hold, the new session gets the conversation as items and no greeting
//! response, the next reply plays; refused attempts and a 401 end it).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use voice_ua_agent::openai::session::{Closed, OpenAiSession, Output};
use voice_ua_agent::{
    AgentEvent, AgentProvider, AudioFormat, HoldReason, OpenAiConfig, OpenAiProvider, SessionEnd,
};
use voice_ua_fake_openai::{tone, FakeConfig, FakeOpenAi, Step};

mod common;
use common::session::{audio_bytes, drive, facts, finish, LIMIT};

const KEY: &str = "test-openai-key-0123456789";
const MS: Duration = Duration::from_millis(1);
const HOLD_ON: AgentEvent = AgentEvent::Hold { reason: HoldReason::Reconnect, on: true };
const HOLD_OFF: AgentEvent = AgentEvent::Hold { reason: HoldReason::Reconnect, on: false };

fn text(s: &mut OpenAiSession, t: Instant, event: Value) {
    s.handle_text(t, &event.to_string());
}

fn streaming(
    t0: Instant,
    config: &OpenAiConfig,
    seed: Option<Vec<(voice_ua_agent::Role, String)>>,
) -> OpenAiSession {
    let mut s = OpenAiSession::new(t0, AudioFormat::Ulaw8k, config, seed).expect("G.711");
    text(&mut s, t0, json!({"type": "session.created", "session": {"type": "realtime", "id": "sess_1"}}));
    text(&mut s, t0, json!({"type": "session.updated", "session": {"type": "realtime"}}));
    s
}

fn drain(s: &mut OpenAiSession) -> Vec<Output> {
    std::iter::from_fn(|| s.poll_output()).collect()
}

fn events(outputs: &[Output]) -> Vec<AgentEvent> {
    outputs.iter().filter_map(|o| if let Output::Event(e) = o { Some(e.clone()) } else { None }).collect()
}

fn types(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| if let Output::SendText(t) = o { Some(t.clone()) } else { None })
        .map(|t| serde_json::from_str::<Value>(&t).expect("json")["type"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[test]
fn closes_and_errors_worth_a_new_session_reconnect_the_others_end_it() {
    let t0 = Instant::now();
    let config = OpenAiConfig::new("k");
    for closed in [
        Closed::Dropped,
        Closed::Broken("reset".into()),
        Closed::Frame { code: 1011, reason: "internal error".into() },
        Closed::Frame { code: 1001, reason: "Your session hit the maximum duration of 60 minutes.".into() },
    ] {
        let mut s = streaming(t0, &config, None);
        drain(&mut s);
        s.handle_closed(t0, closed.clone());
        assert_eq!(drain(&mut s), [Output::Event(HOLD_ON), Output::Reconnect], "{closed:?}");
    }
    for error in [
        json!({"type": "server_error", "message": "The server had an error"}),
        json!({"type": "invalid_request_error", "code": "session_expired", "message": "expired"}),
    ] {
        let mut s = streaming(t0, &config, None);
        drain(&mut s);
        text(&mut s, t0, json!({"type": "error", "error": error}));
        assert_eq!(drain(&mut s), [Output::Event(HOLD_ON), Output::Reconnect], "{error}");
    }
    for (closed, code) in [
        (Closed::Frame { code: 4000, reason: "beta_api_shape_disabled".into() }, "BETA_API_SHAPE_DISABLED"),
        (Closed::TooLarge(2 << 20), "EVENT_TOO_LARGE"),
    ] {
        let mut s = streaming(t0, &config, None);
        drain(&mut s);
        s.handle_closed(t0, closed);
        let out = events(&drain(&mut s));
        assert!(!out.contains(&HOLD_ON));
        let Some(AgentEvent::Ended(SessionEnd::Failed(e))) = out.last() else { panic!("{out:?}") };
        assert_eq!(e.code(), Some(code));
    }
    let mut s = streaming(t0, &config, None);
    drain(&mut s);
    text(
        &mut s,
        t0,
        json!({"type": "error", "error": {"type": "insufficient_quota", "code": "insufficient_quota", "message": "quota"}}),
    );
    assert!(matches!(events(&drain(&mut s)).last(), Some(AgentEvent::Ended(SessionEnd::Failed(_)))));
}

#[test]
fn the_new_session_gets_the_conversation_and_a_dead_sessions_result_is_dropped() {
    let t0 = Instant::now();
    let mut config = OpenAiConfig::new("k");
    config.greeting = Some("Hello".into());
    let mut s = streaming(t0, &config, None);
    text(
        &mut s,
        t0,
        json!({"type": "response.output_audio_transcript.done", "response_id": "r1", "item_id": "i1", "output_index": 0, "content_index": 0, "transcript": "Hello"}),
    );
    text(
        &mut s,
        t0,
        json!({"type": "conversation.item.input_audio_transcription.completed", "item_id": "u1", "content_index": 0, "transcript": "Open the gate"}),
    );
    text(&mut s, t0, json!({"type": "response.created", "response": {"id": "r2", "status": "in_progress"}}));
    text(
        &mut s,
        t0,
        json!({"type": "response.function_call_arguments.done", "response_id": "r2", "item_id": "i2", "output_index": 0, "call_id": "c1", "name": "open_gate", "arguments": "{}"}),
    );
    drain(&mut s);
    s.handle_closed(t0 + 5 * MS, Closed::Dropped);
    drain(&mut s);
    // Caller audio while reconnecting is dropped.
    let frames_dropped = s.counts().frames_dropped;
    for _ in 0..5 {
        s.handle_call_audio(t0 + 6 * MS, &voice_ua_agent::AudioFrame::new(&[0x11; 160]).expect("frame"));
    }
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.counts().frames_dropped, frames_dropped + 5);
    let seed = s.reconnect_seed().expect("something was said: no greeting");
    let mut next = streaming(t0 + 300 * MS, &config, Some(seed));
    let sent = drain(&mut next);
    assert_eq!(types(&sent), ["session.update", "conversation.item.create", "conversation.item.create"]);
    next.continue_from(&s);
    next.take_over(t0 + 305 * MS, &s);
    assert_eq!(
        events(&drain(&mut next)),
        [HOLD_OFF, AgentEvent::Reconnected { ok: true, attempts: 1, after: 300 * MS }]
    );
    next.handle_tool_result(t0 + 400 * MS, "c1".into(), "open_gate".into(), "{\"ok\":true}".into());
    assert!(drain(&mut next).is_empty(), "no function_call_output for a call the new conversation lacks");
    // Nothing said yet: the reconnect greets.
    let mut fresh = streaming(t0, &config, None);
    drain(&mut fresh);
    fresh.handle_closed(t0, Closed::Dropped);
    assert_eq!(fresh.reconnect_seed(), None);
}

// ---- end to end, against the fake OpenAI server

fn config_for(fake: &FakeOpenAi) -> OpenAiConfig {
    let mut config = OpenAiConfig::new(KEY);
    config.url = fake.url();
    config.extra_ca_file = fake.ca_file().map(Into::into);
    config.greeting = Some("Hello".into());
    config
}

#[tokio::test]
async fn the_fake_drops_mid_reply_and_the_call_goes_on_with_its_conversation() {
    let first = vec![
        Step::AwaitResponseCreate,
        Step::speak("Hello", 200),
        Step::WaitAudio { frames: 10, min_dbfs: None },
        Step::user_says("my name is Ana"),
        Step::speak_then_drop("Hi Ana, let me see", 1000, 300),
    ];
    let fake = FakeOpenAi::start(
        FakeConfig::new(KEY).tls(true).script_for(1, first).script(vec![Step::speak("Go on, Ana", 400)]),
    )
    .await
    .expect("fake");
    let provider = OpenAiProvider::new(config_for(&fake)).expect("provider");
    let mut session = provider.open(facts("oa-reconnect@pbx", AudioFormat::Ulaw8k)).await.expect("open");
    let want = (200 + 300 + 400) * 8;
    let mut events = drive(&mut session, AudioFormat::Ulaw8k, |ev| audio_bytes(ev) >= want).await;
    let mut ticks = 0;
    events.extend(
        drive(&mut session, AudioFormat::Ulaw8k, |_| {
            ticks += 1;
            ticks > 20
        })
        .await,
    );
    assert!(!events.iter().any(|e| matches!(e, AgentEvent::Ended(_))), "{events:?}");
    let on = events.iter().position(|e| *e == HOLD_ON).expect("hold on");
    let off = events.iter().position(|e| *e == HOLD_OFF).expect("hold off");
    assert!(on < off);
    assert!(
        matches!(events.get(off + 1), Some(AgentEvent::Reconnected { ok: true, attempts: 1, .. })),
        "{events:?}"
    );
    assert_eq!(audio_bytes(&events[..on]), 500 * 8, "the greeting and the cut reply");
    let after_hold: Vec<u8> = events[off..]
        .iter()
        .flat_map(|e| if let AgentEvent::Audio(f) = e { f.as_bytes().to_vec() } else { Vec::new() })
        .collect();
    assert_eq!(after_hold, tone(AudioFormat::Ulaw8k, 400), "the next reply, whole");
    finish(&mut session).await;
    let mut records = fake.wait_records(2, LIMIT).await;
    records.sort_by_key(|r| r.connection);
    assert_eq!(records[0].end, "dropped mid-reply by the script");
    let new = &records[1];
    assert!(new.errors_sent.is_empty() && new.violations.is_empty(), "{new:?}");
    assert!(new.response_creates.is_empty(), "no greeting response: {new:?}");
    assert!(new.appends > 0, "the caller's audio flows to the new session");
    let items: Vec<Value> = new.items.iter().map(|i| serde_json::to_value(i).expect("json")).collect();
    // The cut reply never got its transcript from OpenAI: the conversation is what was
    // finished.
    assert_eq!(
        items,
        [
            json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello"}]}),
            json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "my name is Ana"}]}),
        ]
    );
}

#[tokio::test]
async fn refused_attempts_end_the_session_after_the_hold_and_a_401_is_not_retried() {
    for (status, attempts) in [(503u16, 3u32), (401, 1)] {
        let fake = FakeOpenAi::start(FakeConfig::new(KEY).refuse_from(2, status).script(vec![
            Step::AwaitResponseCreate,
            Step::speak("Hello", 200),
            Step::CloseAbruptly,
        ]))
        .await
        .expect("fake");
        let provider = OpenAiProvider::new(config_for(&fake)).expect("provider");
        let mut session = provider.open(facts("oa-refused@pbx", AudioFormat::Ulaw8k)).await.expect("open");
        let events = drive(&mut session, AudioFormat::Ulaw8k, |_| false).await;
        let n = events.len();
        assert_eq!(events[n - 3], HOLD_OFF, "{events:?}");
        assert!(
            matches!(events[n - 2], AgentEvent::Reconnected { ok: false, attempts: a, .. } if a == attempts),
            "{status}: {events:?}"
        );
        let Some(AgentEvent::Ended(SessionEnd::Failed(e))) = events.last() else { panic!("{events:?}") };
        assert_eq!(e.code(), Some("CONNECTION_LOST"), "the drop's code, for the metrics");
        let line = e.to_string();
        assert!(line.contains(&format!("HTTP {status}")) && !line.contains('\n'), "{line}");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(fake.records().len(), 1 + attempts as usize, "{status}");
    }
}
