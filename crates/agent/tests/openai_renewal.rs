//! Renewing an OpenAI session before its 60-minute cap, in virtual time: when (after
//! `renew_after`, at a quiet moment, forced by the hard limit), the conversation re-seeded
//! as message items in the new session (GA content types, no second greeting), the lines
//! said meanwhile carried over, the call's count of agent audio kept, and what a close
//! or a failure during the renewal does.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use voice_ua_agent::openai::session::{Closed, OpenAiSession, Output, State, RENEW_QUIET, RENEW_RETRY};
use voice_ua_agent::openai::{DEFAULT_RENEW_AFTER, RENEW_HARD_LIMIT};
use voice_ua_agent::{AgentEvent, AudioFormat, OpenAiConfig, Role, SessionEnd};

fn config() -> OpenAiConfig {
    let mut c = OpenAiConfig::new("k");
    c.greeting = Some("Hello, gate".into());
    c
}

fn text(s: &mut OpenAiSession, t: Instant, event: Value) {
    s.handle_text(t, &event.to_string());
}

/// Server VAD hears the caller start.
fn speech_started(s: &mut OpenAiSession, t: Instant) {
    text(s, t, json!({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": "u1"}));
}

fn start(t0: Instant, c: &OpenAiConfig, seed: Option<Vec<(Role, String)>>) -> (OpenAiSession, Vec<Value>) {
    let mut s = OpenAiSession::new(t0, AudioFormat::Ulaw8k, c, seed).expect("G.711");
    text(&mut s, t0, json!({"type": "session.created", "session": {"type": "realtime", "id": "sess"}}));
    text(&mut s, t0, json!({"type": "session.updated", "session": {"type": "realtime"}}));
    let sent = sent(&mut s);
    (s, sent)
}

fn sent(s: &mut OpenAiSession) -> Vec<Value> {
    std::iter::from_fn(|| s.poll_output())
        .filter_map(|o| {
            if let Output::SendText(t) = o {
                Some(serde_json::from_str(&t).expect("json"))
            } else {
                None
            }
        })
        .collect()
}

fn delta(t: Instant, s: &mut OpenAiSession, item: &str, ms: usize) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(vec![0x55u8; ms * 8]);
    text(
        s,
        t,
        json!({"type": "response.output_audio.delta", "response_id": "r", "item_id": item, "delta": b64}),
    );
}

/// Run the session's timers from `from` to `to`; the instant of the first `Renew`.
fn run(s: &mut OpenAiSession, from: Instant, to: Instant) -> Option<Instant> {
    let mut now = from;
    loop {
        while let Some(o) = s.poll_output() {
            if o == Output::Renew {
                return Some(now);
            }
        }
        let next = s.poll_timeout()?;
        if next > to {
            return None;
        }
        now = next.max(now);
        s.handle_timeout(now);
    }
}

#[test]
fn renewal_comes_at_the_first_quiet_moment_after_55_minutes() {
    let t0 = Instant::now();
    let (mut s, _) = start(t0, &config(), None);
    let due = t0 + DEFAULT_RENEW_AFTER;
    // The agent speaks 10 s of audio just before it is due: it plays until due + 8 s.
    delta(due - Duration::from_secs(2), &mut s, "a", 10_000);
    sent(&mut s);
    let renew = run(&mut s, t0, t0 + Duration::from_secs(3600));
    assert_eq!(
        renew,
        Some(due + Duration::from_secs(8) + RENEW_QUIET),
        "once the reply has played, and a pause"
    );
}

#[test]
fn a_response_in_progress_or_a_caller_speaking_delays_it_until_the_hard_limit() {
    let t0 = Instant::now();
    let (mut s, _) = start(t0, &config(), None);
    text(&mut s, t0, json!({"type": "response.created", "response": {"id": "r1"}}));
    speech_started(&mut s, t0);
    let renew = run(&mut s, t0, t0 + Duration::from_secs(3600)).expect("forced");
    assert!(
        renew >= t0 + RENEW_HARD_LIMIT && renew <= t0 + RENEW_HARD_LIMIT + RENEW_QUIET,
        "{:?}",
        renew - t0
    );
    assert!(renew < t0 + Duration::from_secs(60 * 60), "before OpenAI's cap");
}

#[test]
fn renew_after_is_configurable() {
    let t0 = Instant::now();
    let mut c = config();
    c.renew_after = Duration::from_secs(10 * 60);
    let (mut s, _) = start(t0, &c, None);
    assert_eq!(run(&mut s, t0, t0 + Duration::from_secs(3600)), Some(t0 + Duration::from_secs(600)));
}

#[test]
fn the_new_session_is_seeded_with_the_conversation_and_no_greeting() {
    let t0 = Instant::now();
    let (mut old, first) = start(t0, &config(), None);
    assert_eq!(
        first.last().map(|e| e["type"].clone()),
        Some(json!("response.create")),
        "the first one greets"
    );
    text(&mut old, t0, json!({"type": "response.output_audio_transcript.done", "transcript": "Hello, gate"}));
    text(
        &mut old,
        t0,
        json!({"type": "conversation.item.input_audio_transcription.completed", "item_id": "u", "transcript": "Delivery for 4B"}),
    );
    let seed = old.renewal_seed();
    let mut new = OpenAiSession::new(t0, AudioFormat::Ulaw8k, &config(), Some(seed)).expect("G.711");
    let before = sent(&mut new);
    assert_eq!(before.len(), 1, "only the session.update before session.updated");
    assert_eq!(before[0]["type"], "session.update");
    text(&mut new, t0, json!({"type": "session.updated", "session": {"type": "realtime"}}));
    assert_eq!(
        sent(&mut new),
        [
            json!({"type": "conversation.item.create", "item": {"type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": "Hello, gate"}]}}),
            json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "Delivery for 4B"}]}}),
        ],
        "history as GA message items, and no second greeting"
    );
    // What was said while the new one opened goes over too, as items and history.
    text(
        &mut old,
        t0,
        json!({"type": "response.output_audio_transcript.done", "transcript": "Who is it for?"}),
    );
    new.continue_from(&old);
    assert_eq!(
        sent(&mut new),
        [json!({"type": "conversation.item.create", "item": {"type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": "Who is it for?"}]}})]
    );
    let lines: Vec<(Role, &str)> = new.history().collect();
    assert_eq!(
        lines,
        [(Role::Agent, "Hello, gate"), (Role::User, "Delivery for 4B"), (Role::Agent, "Who is it for?")]
    );
    // A second renewal carries all of it.
    assert_eq!(new.renewal_seed().len(), 3);
}

#[test]
fn the_calls_count_of_agent_audio_carries_over_for_barge_in() {
    let t0 = Instant::now();
    let (mut old, _) = start(t0, &config(), None);
    delta(t0, &mut old, "a", 2000);
    sent(&mut old);
    let seed = old.renewal_seed();
    let (mut new, _) = start(t0, &config(), Some(seed));
    new.continue_from(&old);
    // 2 s of the old session's audio were sent; the new reply starts there.
    let t = t0 + Duration::from_secs(3);
    delta(t, &mut new, "b", 1000);
    speech_started(&mut new, t);
    let flushed: Vec<Output> = std::iter::from_fn(|| new.poll_output()).collect();
    assert!(flushed.contains(&Output::Event(AgentEvent::FlushPlayback)), "{flushed:?}");
    new.handle_playback_flushed(t, (2000 + 250) * 8);
    assert_eq!(
        sent(&mut new),
        [
            json!({"type": "conversation.item.truncate", "item_id": "b", "content_index": 0, "audio_end_ms": 250})
        ]
    );
}

#[test]
fn a_close_while_the_renewal_opens_waits_for_it_and_fails_with_it() {
    let t0 = Instant::now();
    let mut c = config();
    c.renew_after = Duration::from_secs(60);
    let (mut s, _) = start(t0, &c, None);
    let at = run(&mut s, t0, t0 + Duration::from_secs(600)).expect("renew");
    // OpenAI closes the old session meanwhile: not a failure yet, audio is dropped.
    s.handle_closed(at, Closed::Frame { code: 1001, reason: "going away".into() });
    assert_eq!(s.state(), State::Streaming);
    let frame = voice_ua_agent::AudioFrame::silence(AudioFormat::Ulaw8k);
    s.handle_call_audio(at, &frame);
    s.handle_call_audio(at, &frame);
    assert!(s.poll_output().is_none());
    // The renewal fails too: now the call falls back.
    s.renew_failed(at + Duration::from_secs(1), "connection refused");
    let ended = std::iter::from_fn(|| s.poll_output()).find_map(|o| match o {
        Output::Event(AgentEvent::Ended(SessionEnd::Failed(e))) => Some(e),
        _ => None,
    });
    let e = ended.expect("failed");
    assert_eq!(e.code(), Some("RENEWAL_FAILED"));
    assert!(e.to_string().contains("its renewal failed (connection refused)"), "{e}");
}

#[test]
fn a_failed_renewal_is_retried_while_the_old_session_goes_on() {
    let t0 = Instant::now();
    let mut c = config();
    c.renew_after = Duration::from_secs(60);
    let (mut s, _) = start(t0, &c, None);
    let at = run(&mut s, t0, t0 + Duration::from_secs(600)).expect("renew");
    assert_eq!(run(&mut s, at, at + Duration::from_secs(600)), None, "one renewal at a time");
    s.renew_failed(at, "HTTP 503");
    assert_eq!(s.state(), State::Streaming);
    assert_eq!(run(&mut s, at, at + Duration::from_secs(600)), Some(at + RENEW_RETRY));
}
