//! Renewing a Deepgram session before its 2-hour cap, in virtual time: when (the warning,
//! or the safety net), at a quiet moment (or forced), with the conversation carried over
//! as `agent.context.messages` and no second greeting.

use std::time::{Duration, Instant};

use voice_ua_agent::deepgram::session::{
    DeepgramSession, Output, HISTORY_MAX_CHARS, HISTORY_MAX_LINES, RENEW_AFTER, RENEW_FORCE_AFTER,
    RENEW_QUIET, RENEW_RETRY,
};
use voice_ua_agent::{AudioFormat, DeepgramConfig, Role};

const WARNING: &str =
    r#"{"type":"Warning","code":"MAXIMUM_SESSION_LENGTH_APPROACHING","description":"5 minutes left"}"#;

fn config() -> DeepgramConfig {
    let mut c = DeepgramConfig::new("k");
    c.settings.greeting = Some("Hello, gate".into());
    c
}

fn streaming(t0: Instant) -> DeepgramSession {
    let c = config();
    let mut s = DeepgramSession::new(t0, AudioFormat::Ulaw8k, c.settings_message(AudioFormat::Ulaw8k));
    s.handle_text(t0, r#"{"type":"Welcome","request_id":"r1"}"#);
    s.handle_text(t0, r#"{"type":"SettingsApplied"}"#);
    while s.poll_output().is_some() {}
    s
}

/// Run the session's timers from `from` to `to` (as the shell would), feeding agent audio
/// every `audio_every` when given; the instant of the first `Renew`, if any.
fn run(
    s: &mut DeepgramSession,
    from: Instant,
    to: Instant,
    audio_every: Option<Duration>,
) -> Option<Instant> {
    let mut now = from;
    let mut next_audio = audio_every.map(|d| from + d);
    while now <= to {
        while let Some(o) = s.poll_output() {
            if o == Output::Renew {
                return Some(now);
            }
        }
        let timer = s.poll_timeout().unwrap_or(to + Duration::from_secs(1));
        let next = match next_audio {
            Some(a) if a < timer => a,
            _ => timer,
        };
        if next > to {
            break;
        }
        now = next.max(now);
        if next_audio == Some(now) {
            s.handle_binary(now, &[0x55; 160]);
            next_audio = audio_every.map(|d| now + d);
        } else {
            s.handle_timeout(now);
        }
    }
    None
}

#[test]
fn the_warning_renews_at_the_first_quiet_moment() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    s.handle_text(t0, r#"{"type":"ConversationText","role":"assistant","content":"Hello, gate"}"#);
    s.handle_text(t0, r#"{"type":"ConversationText","role":"user","content":"Delivery for 4B"}"#);
    let talk = t0 + Duration::from_secs(60);
    s.handle_binary(talk, &[0x55; 160]);
    s.handle_text(talk + Duration::from_millis(500), WARNING);
    let renew = run(&mut s, talk + Duration::from_millis(500), talk + Duration::from_secs(10), None);
    assert_eq!(renew, Some(talk + RENEW_QUIET), "1.5 s after the agent's last audio, not at once");

    let settings = s.renewal_settings(config().settings_message(AudioFormat::Ulaw8k));
    assert_eq!(settings.agent.greeting, None, "no second greeting");
    let json = serde_json::to_value(&settings).expect("json");
    assert_eq!(
        json["agent"]["context"]["messages"],
        serde_json::json!([
            {"type": "History", "role": "assistant", "content": "Hello, gate"},
            {"type": "History", "role": "user", "content": "Delivery for 4B"},
        ])
    );
}

#[test]
fn a_talking_agent_or_caller_delays_the_renewal_until_it_is_forced() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    s.handle_binary(t0, &[0x55; 160]);
    s.handle_text(t0, WARNING);
    // The agent never stops for 1.5 s: forced 4 minutes after the warning.
    let renew = run(&mut s, t0, t0 + Duration::from_secs(600), Some(Duration::from_millis(500)));
    let at = renew.expect("a renewal");
    assert!(at >= t0 + RENEW_FORCE_AFTER && at <= t0 + RENEW_FORCE_AFTER + RENEW_QUIET, "{:?}", at - t0);

    // The caller mid-utterance also waits.
    let mut s = streaming(t0);
    s.handle_text(t0, r#"{"type":"UserStartedSpeaking"}"#);
    s.handle_text(t0, WARNING);
    assert_eq!(run(&mut s, t0, t0 + Duration::from_secs(30), None), None);
    let t1 = t0 + Duration::from_secs(30);
    s.handle_text(t1, r#"{"type":"ConversationText","role":"user","content":"ok"}"#);
    let renew = run(&mut s, t1, t1 + Duration::from_secs(10), None).expect("renewal after the utterance");
    assert!(renew <= t1 + RENEW_QUIET, "{:?}", renew - t1);
}

#[test]
fn without_the_warning_the_session_is_renewed_before_two_hours() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    assert_eq!(run(&mut s, t0, t0 + RENEW_AFTER - Duration::from_secs(1), None), None);
    let renew = run(
        &mut s,
        t0 + RENEW_AFTER - Duration::from_secs(1),
        t0 + RENEW_AFTER + Duration::from_secs(5),
        None,
    );
    assert_eq!(renew, Some(t0 + RENEW_AFTER));
    assert!(RENEW_AFTER + RENEW_FORCE_AFTER < Duration::from_secs(2 * 3600));
}

#[test]
fn a_failed_renewal_is_retried_and_only_one_is_asked_for_at_a_time() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    s.handle_text(t0, WARNING);
    assert_eq!(s.poll_output(), Some(Output::Renew));
    // While it is being opened, no second one.
    assert_eq!(run(&mut s, t0, t0 + Duration::from_secs(60), None), None);
    let t1 = t0 + Duration::from_secs(60);
    s.renew_failed(t1);
    assert_eq!(run(&mut s, t1, t1 + Duration::from_secs(60), None), Some(t1 + RENEW_RETRY));
}

#[test]
fn the_history_is_bounded_oldest_first() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    for i in 0..(HISTORY_MAX_LINES + 50) {
        let msg = format!(r#"{{"type":"ConversationText","role":"user","content":"line {i}"}}"#);
        s.handle_text(t0, &msg);
    }
    let lines: Vec<(Role, String)> = s.history().map(|(r, t)| (r, t.to_owned())).collect();
    assert_eq!(lines.len(), HISTORY_MAX_LINES);
    assert_eq!(lines[0].1, "line 50");
    let long = "x".repeat(HISTORY_MAX_CHARS / 3 + 1);
    for _ in 0..3 {
        let msg = format!(r#"{{"type":"ConversationText","role":"assistant","content":"{long}"}}"#);
        s.handle_text(t0, &msg);
    }
    let chars: usize = s.history().map(|(_, t)| t.len()).sum();
    assert!(chars <= HISTORY_MAX_CHARS, "{chars}");
    assert_eq!(s.history().count(), 2, "the two newest long lines fit, nothing older");
}

fn said(role: &str, text: &str) -> String {
    serde_json::json!({"type": "ConversationText", "role": role, "content": text}).to_string()
}

/// The `agent.context.messages` of `settings` as `(role, content)` pairs.
fn context_of(settings: &voice_ua_agent::deepgram::messages::Settings) -> Vec<(String, String)> {
    let messages = settings.agent.context.as_ref().map(|c| c.messages.clone()).unwrap_or_default();
    messages.into_iter().map(|m| (m.role, m.content)).collect()
}

/// The session a renewal opens, through its handshake at `at`: the `Settings` it sent
/// must be the renewal settings (context and all).
fn open_renewed(at: Instant, settings: voice_ua_agent::deepgram::messages::Settings) -> DeepgramSession {
    let want = serde_json::to_value(&settings).expect("json");
    let mut s = DeepgramSession::new(at, AudioFormat::Ulaw8k, settings);
    s.handle_text(at + Duration::from_millis(200), r#"{"type":"Welcome","request_id":"rn"}"#);
    let mut sent = Vec::new();
    while let Some(o) = s.poll_output() {
        if let Output::SendText(t) = o {
            sent.push(serde_json::from_str::<serde_json::Value>(&t).expect("json"));
        }
    }
    assert_eq!(sent.len(), 1, "Settings once: {sent:?}");
    assert_eq!(sent[0]["agent"]["context"], want["agent"]["context"]);
    s.handle_text(at + Duration::from_millis(400), r#"{"type":"SettingsApplied"}"#);
    while s.poll_output().is_some() {}
    s
}

/// Drain the outputs: was a renewal asked for?
fn asks_to_renew(s: &mut DeepgramSession) -> bool {
    std::iter::from_fn(|| s.poll_output()).any(|o| o == Output::Renew)
}

#[test]
fn every_renewal_carries_the_whole_conversation() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    let mut streaming_since = t0;
    let mut conversation: Vec<(String, String)> = Vec::new();
    for n in 1..=3u32 {
        let talk = streaming_since + Duration::from_secs(60);
        for (role, text) in [("user", format!("question {n}")), ("assistant", format!("answer {n}"))] {
            s.handle_text(talk, &said(role, &text));
            conversation.push((role.to_owned(), text));
        }
        let renew = run(&mut s, talk, streaming_since + RENEW_AFTER + Duration::from_secs(5), None)
            .unwrap_or_else(|| panic!("renewal {n}"));
        assert_eq!(renew, streaming_since + RENEW_AFTER, "renewal {n} on time");
        let settings = s.renewal_settings(config().settings_message(AudioFormat::Ulaw8k));
        assert_eq!(settings.agent.greeting, None);
        assert_eq!(context_of(&settings), conversation, "renewal {n} carries every line so far");
        let mut next = open_renewed(renew, settings);
        next.continue_from(&s);
        s = next;
        streaming_since = renew + Duration::from_millis(400);
    }
    // The third renewal happened a little after 5 h 30 min: three sessions of 110 min.
    assert!(streaming_since - t0 > Duration::from_secs(3 * 110 * 60));
    let lines: Vec<(Role, String)> = s.history().map(|(r, t)| (r, t.to_owned())).collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0], (Role::User, "question 1".to_owned()));
}

#[test]
fn lines_said_while_the_new_session_opens_reach_the_next_renewal_once() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    s.handle_text(t0, &said("user", "before"));
    s.handle_text(t0, WARNING);
    assert!(asks_to_renew(&mut s));
    // A first attempt fails; a line comes; the retry takes the settings again.
    let _ = s.renewal_settings(config().settings_message(AudioFormat::Ulaw8k));
    let t1 = t0 + Duration::from_secs(5);
    s.renew_failed(t1);
    s.handle_text(t1, &said("assistant", "between attempts"));
    let t2 = run(&mut s, t1, t1 + Duration::from_secs(60), None).expect("retry");
    let settings = s.renewal_settings(config().settings_message(AudioFormat::Ulaw8k));
    assert_eq!(context_of(&settings).len(), 2);
    // While the new one shakes hands, the old one still hears the caller.
    s.handle_text(t2 + Duration::from_millis(100), &said("user", "during the handshake"));
    let mut next = open_renewed(t2, settings);
    next.continue_from(&s);
    let t3 = t2 + RENEW_AFTER + Duration::from_secs(1);
    next.handle_text(t3, WARNING);
    assert!(asks_to_renew(&mut next));
    let settings = next.renewal_settings(config().settings_message(AudioFormat::Ulaw8k));
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter().map(|(r, t)| ((*r).to_owned(), (*t).to_owned())).collect()
    };
    assert_eq!(
        context_of(&settings),
        pairs(&[("user", "before"), ("assistant", "between attempts"), ("user", "during the handshake")])
    );
}

#[test]
fn carried_history_stays_within_the_bounds() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    let long = "é".repeat(HISTORY_MAX_CHARS / 8);
    for i in 0..(HISTORY_MAX_LINES * 2) {
        let text = if i % 50 == 0 { long.clone() } else { format!("line {i}") };
        s.handle_text(t0, &said("user", &text));
    }
    for _ in 0..3 {
        let settings = s.renewal_settings(config().settings_message(AudioFormat::Ulaw8k));
        let context = context_of(&settings);
        assert!(context.len() <= HISTORY_MAX_LINES);
        assert!(context.iter().map(|(_, t)| t.len()).sum::<usize>() <= HISTORY_MAX_CHARS);
        assert_eq!(
            context.last().map(|(_, t)| t.as_str()),
            Some(format!("line {}", HISTORY_MAX_LINES * 2 - 1).as_str())
        );
        let mut next = open_renewed(t0, settings);
        next.continue_from(&s);
        s = next;
    }
}
