//! Driving a provider's [`AgentSession`] the way a call does, for the provider tests:
//! the call's facts, loud caller frames every 10 ms, flushes answered with what was
//! heard, and the session's end.

use std::time::Duration;

use voice_ua_agent::{
    AgentError, AgentEvent, AgentSession, AudioFormat, AudioFrame, CallFacts, CallInput, SessionEnd,
};

/// How long a test waits for what it expects.
pub const LIMIT: Duration = Duration::from_secs(10);

/// A call from 2001 to 9000 in `format`.
pub fn facts(call_id: &str, format: AudioFormat) -> CallFacts {
    CallFacts {
        call_id: call_id.into(),
        caller_display: None,
        caller_uri: "sip:2001@127.0.0.1".into(),
        callee: "9000".into(),
        extension: "9000".into(),
        format,
    }
}

/// A loud frame (speech-like) in `format`.
pub fn loud(format: AudioFormat) -> AudioFrame {
    AudioFrame::new(&voice_ua_fake_openai::tone(format, 20)).expect("frame")
}

/// [`drive_heard`], every flush answered as if all agent audio had been heard.
pub async fn drive(
    session: &mut AgentSession,
    format: AudioFormat,
    done: impl FnMut(&[AgentEvent]) -> bool,
) -> Vec<AgentEvent> {
    drive_heard(session, format, |bytes| bytes, done).await
}

/// Feed loud caller frames every 10 ms and collect events until `done` says so, the
/// session ends, or the limit passes. A flush is answered at once, as the call does,
/// with `heard(agent audio bytes received so far)` samples played.
pub async fn drive_heard(
    session: &mut AgentSession,
    format: AudioFormat,
    heard: impl Fn(u64) -> u64,
    mut done: impl FnMut(&[AgentEvent]) -> bool,
) -> Vec<AgentEvent> {
    let mut events = Vec::new();
    let until = tokio::time::Instant::now() + LIMIT;
    while tokio::time::Instant::now() < until {
        let _ = session.send_audio(loud(format));
        tokio::time::sleep(Duration::from_millis(10)).await;
        while let Some(event) = session.try_event() {
            if event == AgentEvent::FlushPlayback {
                let played_samples = heard(audio_bytes(&events) as u64);
                session.send_playback(CallInput::PlaybackFlushed { played_samples }).expect("report");
            }
            let end = matches!(event, AgentEvent::Ended(_));
            events.push(event);
            if end {
                return events;
            }
        }
        if done(&events) {
            return events;
        }
    }
    panic!("gave up waiting; events so far: {events:?}");
}

/// Agent audio bytes among `events`.
pub fn audio_bytes(events: &[AgentEvent]) -> usize {
    events.iter().map(|e| if let AgentEvent::Audio(f) = e { f.len() } else { 0 }).sum()
}

/// End the call; the events that follow.
pub async fn finish(session: &mut AgentSession) -> Vec<AgentEvent> {
    session.end_call();
    let mut rest = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(LIMIT, session.event()).await {
        rest.push(event);
    }
    rest
}

/// The error the session failed with, as its last event.
pub fn failure(events: &[AgentEvent]) -> AgentError {
    match events.last() {
        Some(AgentEvent::Ended(SessionEnd::Failed(e))) => e.clone(),
        other => panic!("expected Ended(Failed), got {other:?} after {} events", events.len()),
    }
}
