//! Reconnecting a Deepgram session that drops mid-call: the schedule of attempts in
//! virtual time (the sans-IO session), which errors reconnect, the switch-over to the
//! new session; and end to end against the fake Deepgram server: the fake drops the
//! socket mid-reply, the call hears the hold, the new session gets the conversation
//! without a greeting, the next reply plays; all attempts refused, and a 401, end it.

use std::time::{Duration, Instant};

use voice_ua_agent::deepgram::messages::Settings;
use voice_ua_agent::deepgram::session::{DeepgramSession, Output};
use voice_ua_agent::{
    AgentError, AgentEvent, AgentProvider, AudioFormat, DeepgramConfig, DeepgramProvider, HoldReason,
    ProviderCode, ReconnectPolicy, SessionEnd,
};
use voice_ua_fake_deepgram::{tone, FakeConfig, FakeDeepgram, Step};

mod common;
use common::session::{audio_bytes, drive, facts, finish, LIMIT};

const KEY: &str = "test-key-0123456789";
const MS: Duration = Duration::from_millis(1);

fn config() -> DeepgramConfig {
    let mut c = DeepgramConfig::new(KEY);
    c.settings.greeting = Some("Hello".into());
    c
}

fn base() -> Settings {
    config().settings_message(AudioFormat::Ulaw8k)
}

fn streaming(t0: Instant) -> DeepgramSession {
    let mut s = DeepgramSession::new(t0, AudioFormat::Ulaw8k, base());
    s.set_reconnect(ReconnectPolicy::default());
    s.handle_text(t0, r#"{"type":"Welcome","request_id":"r1"}"#);
    s.handle_text(t0, r#"{"type":"SettingsApplied"}"#);
    while s.poll_output().is_some() {}
    s
}

fn said(role: &str, text: &str) -> String {
    serde_json::json!({"type": "ConversationText", "role": role, "content": text}).to_string()
}

fn drain(s: &mut DeepgramSession) -> Vec<Output> {
    std::iter::from_fn(|| s.poll_output()).collect()
}

fn events(outputs: &[Output]) -> Vec<AgentEvent> {
    outputs.iter().filter_map(|o| if let Output::Event(e) = o { Some(e.clone()) } else { None }).collect()
}

fn refused(status: u16) -> AgentError {
    AgentError::Provider {
        provider: "deepgram".into(),
        detail: format!("Deepgram refused the WebSocket (HTTP {status}: try again)"),
        code: ProviderCode::new(&format!("HTTP_{status}")),
    }
}

const HOLD_ON: AgentEvent = AgentEvent::Hold { reason: HoldReason::Reconnect, on: true };
const HOLD_OFF: AgentEvent = AgentEvent::Hold { reason: HoldReason::Reconnect, on: false };

#[test]
fn attempts_at_once_then_after_250_and_500_ms_and_the_last_ends_at_the_window() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    s.handle_closed(t0, "connection dropped");
    let out = drain(&mut s);
    assert_eq!(out, [Output::Event(HOLD_ON), Output::Reconnect], "hold on, then attempt 1 at once");
    // Attempt 1 may take half the 2 s window.
    assert_eq!(s.poll_timeout(), Some(t0 + 1000 * MS));
    s.reconnect_failed(t0 + 10 * MS, &refused(503));
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.poll_timeout(), Some(t0 + 260 * MS), "attempt 2 250 ms after attempt 1 failed");
    s.handle_timeout(t0 + 259 * MS);
    assert!(drain(&mut s).is_empty(), "not a millisecond early");
    s.handle_timeout(t0 + 260 * MS);
    assert_eq!(drain(&mut s), [Output::Reconnect]);
    s.reconnect_failed(t0 + 300 * MS, &refused(503));
    assert_eq!(s.poll_timeout(), Some(t0 + 800 * MS), "attempt 3 500 ms after attempt 2 failed");
    s.handle_timeout(t0 + 800 * MS);
    assert_eq!(drain(&mut s), [Output::Reconnect]);
    // Attempt 3 hangs: it is given up at 1.8 s (its half window), and no attempt 4 is made.
    assert_eq!(s.poll_timeout(), Some(t0 + 1800 * MS));
    s.handle_timeout(t0 + 1800 * MS);
    let out = events(&drain(&mut s));
    assert_eq!(
        out[..2],
        [HOLD_OFF, AgentEvent::Reconnected { ok: false, attempts: 3, after: 1800 * MS }],
        "{out:?}"
    );
    let Some(AgentEvent::Ended(SessionEnd::Failed(e))) = out.last() else { panic!("{out:?}") };
    let line = e.to_string();
    assert!(
        line.starts_with("agent deepgram failed: Deepgram closed the session mid-call (connection dropped); reconnecting failed after 3 attempts in 1.80 s: attempt 3 not streaming 1800 ms after the drop"),
        "{line}"
    );
    assert!(!line.contains('\n'));
}

#[test]
fn a_connect_that_hangs_leaves_room_for_one_more_attempt_within_the_window() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    s.handle_closed(t0, "connection dropped");
    drain(&mut s);
    s.handle_timeout(t0 + 1000 * MS);
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.poll_timeout(), Some(t0 + 1250 * MS));
    s.handle_timeout(t0 + 1250 * MS);
    assert_eq!(drain(&mut s), [Output::Reconnect]);
    assert_eq!(s.poll_timeout(), Some(t0 + 2000 * MS), "the second attempt ends with the window");
    s.handle_timeout(t0 + 2000 * MS);
    let out = events(&drain(&mut s));
    assert!(out.contains(&AgentEvent::Reconnected { ok: false, attempts: 2, after: 2000 * MS }), "{out:?}");
    assert!(matches!(out.last(), Some(AgentEvent::Ended(SessionEnd::Failed(_)))));
}

#[test]
fn a_refused_key_or_a_settings_error_is_not_retried() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    s.handle_closed(t0, "connection dropped");
    drain(&mut s);
    s.reconnect_failed(t0 + 20 * MS, &refused(401));
    let out = events(&drain(&mut s));
    assert!(out.contains(&AgentEvent::Reconnected { ok: false, attempts: 1, after: 20 * MS }), "{out:?}");
    assert!(matches!(out.last(), Some(AgentEvent::Ended(SessionEnd::Failed(_)))));

    // Errors that say our settings or messages are wrong end the session at once.
    let mut s = streaming(t0);
    s.handle_text(t0, r#"{"type":"Error","code":"INVALID_SETTINGS","description":"bad voice"}"#);
    let out = events(&drain(&mut s));
    assert!(!out.contains(&HOLD_ON), "{out:?}");
    let Some(AgentEvent::Ended(SessionEnd::Failed(e))) = out.last() else { panic!("{out:?}") };
    assert_eq!(e.code(), Some("INVALID_SETTINGS"));
    // The idle timeout (seen on long replies) is worth a new session.
    let mut s = streaming(t0);
    s.handle_text(t0, r#"{"type":"Error","code":"CLIENT_MESSAGE_TIMEOUT","description":"We waited"}"#);
    assert_eq!(drain(&mut s), [Output::Event(HOLD_ON), Output::Reconnect]);
    // Without a policy (0 attempts) a drop ends the session as before.
    let mut s = streaming(t0);
    s.set_reconnect(ReconnectPolicy::off());
    s.handle_closed(t0, "connection dropped");
    assert!(matches!(events(&drain(&mut s)).last(), Some(AgentEvent::Ended(SessionEnd::Failed(_)))));
}

#[test]
fn the_new_session_takes_over_with_the_conversation_and_drops_a_stale_result() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    s.handle_text(t0, &said("assistant", "Hello"));
    s.handle_text(t0, &said("user", "Open the gate"));
    s.handle_text(
        t0,
        r#"{"type":"FunctionCallRequest","functions":[{"id":"f1","name":"open_gate","arguments":"{}","client_side":true}]}"#,
    );
    drain(&mut s);
    let drop_at = t0 + 5 * MS;
    s.handle_closed(drop_at, "connection dropped");
    drain(&mut s);
    // Caller audio while reconnecting is dropped, not queued for the new session.
    let (_, dropped_before) = s.audio_counts();
    s.handle_call_audio(drop_at, &voice_ua_agent::AudioFrame::new(&[0x11; 160]).expect("frame"));
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.audio_counts().1, dropped_before + 1);
    // The shell opens the next session with these settings: the conversation, no greeting.
    let settings = s.reconnect_settings(base());
    assert_eq!(settings.agent.greeting, None);
    let lines: Vec<(String, String)> = settings
        .agent
        .context
        .as_ref()
        .map(|c| c.messages.iter().map(|m| (m.role.clone(), m.content.clone())).collect())
        .unwrap_or_default();
    assert_eq!(
        lines,
        [("assistant".to_owned(), "Hello".to_owned()), ("user".into(), "Open the gate".into())]
    );
    let mut next = DeepgramSession::new(drop_at, AudioFormat::Ulaw8k, settings);
    next.handle_text(drop_at + 100 * MS, r#"{"type":"Welcome","request_id":"r2"}"#);
    next.handle_text(drop_at + 640 * MS, r#"{"type":"SettingsApplied"}"#);
    drain(&mut next);
    next.continue_from(&s);
    next.take_over(drop_at + 640 * MS, &s);
    assert_eq!(
        events(&drain(&mut next)),
        [HOLD_OFF, AgentEvent::Reconnected { ok: true, attempts: 1, after: 640 * MS }]
    );
    // The function the dead session ran answers: its id means nothing to the new one.
    next.handle_tool_result(drop_at + 700 * MS, "f1".into(), "open_gate".into(), "{\"ok\":true}".into());
    assert!(drain(&mut next).is_empty(), "no FunctionCallResponse to a session that never asked");
    // A second drop right after the reconnect goes to the fallback (no loop).
    next.handle_closed(drop_at + 800 * MS, "connection dropped");
    let out = events(&drain(&mut next));
    assert!(!out.contains(&HOLD_ON), "{out:?}");
    let Some(AgentEvent::Ended(SessionEnd::Failed(e))) = out.last() else { panic!("{out:?}") };
    assert!(e.to_string().contains("not reconnecting again"), "{e}");
}

// ---- end to end, against the fake Deepgram server

fn config_for(fake: &FakeDeepgram) -> DeepgramConfig {
    let mut c = config();
    c.url = fake.url();
    c.extra_ca_file = fake.ca_file().map(Into::into);
    c
}

fn position(events: &[AgentEvent], want: &AgentEvent) -> usize {
    events.iter().position(|e| e == want).unwrap_or_else(|| panic!("no {want:?} in {events:?}"))
}

#[tokio::test]
async fn the_fake_drops_mid_reply_and_the_call_goes_on_with_its_conversation() {
    let first = vec![
        Step::speak("Hello", 200, true),
        Step::WaitAudio { frames: 10, min_dbfs: None },
        Step::user_says("my name is Ana"),
        Step::speak_then_drop("Hi Ana, let me see", 1000, 300),
    ];
    let fake =
        FakeDeepgram::start(FakeConfig::new(KEY).tls(true).script_for(1, first).script(vec![Step::speak(
            "Go on, Ana",
            400,
            true,
        )]))
        .await
        .expect("fake");
    let provider = DeepgramProvider::new(config_for(&fake)).expect("provider");
    let mut session = provider.open(facts("dg-reconnect@pbx", AudioFormat::Ulaw8k)).await.expect("open");
    let want = (200 + 300 + 400) * 8;
    let events = drive(&mut session, AudioFormat::Ulaw8k, |ev| audio_bytes(ev) >= want).await;
    assert!(!events.iter().any(|e| matches!(e, AgentEvent::Ended(_))), "{events:?}");
    let flushes = events.iter().filter(|e| **e == AgentEvent::FlushPlayback).count();
    assert_eq!(flushes, 1, "the caller's barge-in only: the reconnect flushes nothing (not a barge-in)");
    let (on, off) = (position(&events, &HOLD_ON), position(&events, &HOLD_OFF));
    let Some(AgentEvent::Reconnected { ok: true, attempts: 1, after }) = events.get(off + 1) else {
        panic!("Reconnected right after the hold ends: {events:?}")
    };
    assert!(*after < Duration::from_secs(2), "{after:?}");
    assert!(on < off);
    // Before the hold: the greeting and the cut reply; after it: the next reply, whole.
    assert_eq!(audio_bytes(&events[..on]), 500 * 8);
    let after_hold: Vec<u8> = events[off..]
        .iter()
        .flat_map(|e| if let AgentEvent::Audio(f) = e { f.as_bytes().to_vec() } else { Vec::new() })
        .collect();
    assert_eq!(after_hold, tone(AudioFormat::Ulaw8k, 400));
    // A little more of the call: the caller's audio now reaches the new session.
    let mut ticks = 0;
    drive(&mut session, AudioFormat::Ulaw8k, |_| {
        ticks += 1;
        ticks > 20
    })
    .await;
    finish(&mut session).await;
    let mut records = fake.wait_records(2, LIMIT).await;
    records.sort_by_key(|r| r.connection);
    assert_eq!(records[0].end, "dropped mid-reply by the script");
    let new = &records[1];
    assert!(new.violations.is_empty() && new.errors_sent.is_empty(), "{new:?}");
    assert!(new.script_done && new.audio_frames > 0, "{new:?}");
    let settings = new.settings.as_ref().expect("Settings");
    assert_eq!(settings.agent.greeting, None, "no second greeting");
    let lines: Vec<(&str, &str)> = settings
        .agent
        .context
        .as_ref()
        .map(|c| c.messages.iter().map(|m| (m.role.as_str(), m.content.as_str())).collect())
        .unwrap_or_default();
    assert_eq!(
        lines,
        [("assistant", "Hello"), ("user", "my name is Ana"), ("assistant", "Hi Ana, let me see")],
        "the conversation so far"
    );
}

#[tokio::test]
async fn a_drop_right_after_the_handshake_reconnects_and_the_greeting_still_comes() {
    let fake = FakeDeepgram::start(
        FakeConfig::new(KEY).close_after_handshake(1).script(vec![Step::speak("Hello", 400, true)]),
    )
    .await
    .expect("fake");
    let provider = DeepgramProvider::new(config_for(&fake)).expect("provider");
    let mut session = provider.open(facts("dg-early@pbx", AudioFormat::Ulaw8k)).await.expect("open");
    let events = drive(&mut session, AudioFormat::Ulaw8k, |ev| audio_bytes(ev) >= 400 * 8).await;
    assert!(events.contains(&HOLD_OFF), "{events:?}");
    finish(&mut session).await;
    let mut records = fake.wait_records(2, LIMIT).await;
    records.sort_by_key(|r| r.connection);
    assert_eq!(records[0].end, "closed abruptly after the handshake");
    let settings = records[1].settings.as_ref().expect("Settings");
    assert_eq!(
        settings.agent.greeting.as_deref(),
        Some("Hello"),
        "nothing was said yet: the greeting is due"
    );
    assert!(settings.agent.context.is_none());
}

#[tokio::test]
async fn all_attempts_refused_end_the_session_after_the_hold() {
    for (status, attempts, why) in [(503, 3, "HTTP 503"), (401, 1, "rejected the API key (HTTP 401")] {
        let fake = FakeDeepgram::start(
            FakeConfig::new(KEY)
                .refuse_from(2, status)
                .script(vec![Step::speak("Hello", 200, true), Step::CloseAbruptly]),
        )
        .await
        .expect("fake");
        let provider = DeepgramProvider::new(config_for(&fake)).expect("provider");
        let mut session = provider.open(facts("dg-refused@pbx", AudioFormat::Ulaw8k)).await.expect("open");
        let events = drive(&mut session, AudioFormat::Ulaw8k, |_| false).await;
        let n = events.len();
        assert!(n >= 3, "{events:?}");
        assert_eq!(events[n - 3], HOLD_OFF, "{events:?}");
        assert!(
            matches!(events[n - 2], AgentEvent::Reconnected { ok: false, attempts: a, .. } if a == attempts),
            "{status}: {events:?}"
        );
        let Some(AgentEvent::Ended(SessionEnd::Failed(e))) = events.last() else { panic!("{events:?}") };
        let line = e.to_string();
        assert!(line.contains("reconnecting failed after") && line.contains(why), "{status}: {line}");
        assert!(!line.contains('\n'));
        // One connection and `attempts` refused upgrades: no attempt after a 401.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let records = fake.records();
        assert_eq!(records.len(), 1 + attempts as usize, "{status}: {records:?}");
        assert_eq!(records.iter().filter(|r| r.refused == Some(status)).count(), attempts as usize);
    }
}

/// The figure in docs/performance.md: from the drop (the call told `Hold on`) to the new
/// session's first reply audio, against the fake over wss:// on 127.0.0.1, 20 calls.
/// `cargo test -p voice-ua-agent --test deepgram_reconnect -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test: prints the figures"]
async fn measure_drop_to_first_reply_audio() {
    let (mut figures, mut streaming) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let fake = FakeDeepgram::start(
            FakeConfig::new(KEY)
                .tls(true)
                .script_for(1, vec![Step::speak_then_drop("Hello", 1000, 200)])
                .script(vec![Step::speak("Go on", 200, true)]),
        )
        .await
        .expect("fake");
        let provider = DeepgramProvider::new(config_for(&fake)).expect("provider");
        let mut session = provider.open(facts("dg-measure@pbx", AudioFormat::Ulaw8k)).await.expect("open");
        let frame = common::session::loud(AudioFormat::Ulaw8k);
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let (mut held, mut back) = (None, false);
        let figure = loop {
            tokio::select! {
                _ = tick.tick() => { let _ = session.send_audio(frame); }
                event = tokio::time::timeout(LIMIT, session.event()) => match event {
                    Ok(Some(e)) if e == HOLD_ON => held = Some(std::time::Instant::now()),
                    Ok(Some(AgentEvent::Reconnected { ok: true, after, .. })) => {
                        streaming.push(after);
                        back = true;
                    }
                    Ok(Some(AgentEvent::Audio(_))) if back => {
                        break held.expect("hold before the reply").elapsed();
                    }
                    Ok(Some(AgentEvent::Ended(e))) => panic!("ended: {e}"),
                    Ok(Some(_)) => {}
                    other => panic!("no reply after the reconnect: {other:?}"),
                },
            }
        };
        figures.push(figure);
        finish(&mut session).await;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (what, mut v) in [
        ("the drop seen → the new session streaming (Reconnected.after)", streaming),
        ("Hold on received → the first reply audio received (the call's view)", figures),
    ] {
        v.sort();
        println!(
            "{what}, {} calls: min {:.1} ms, p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
            v.len(),
            ms(v[0]),
            ms(v[v.len() / 2]),
            ms(v[v.len() * 95 / 100 - 1]),
            ms(v[v.len() - 1])
        );
    }
}
