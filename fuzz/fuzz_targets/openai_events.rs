//! OpenAI Realtime server events: any text frame parses or is refused without a panic;
//! what parses re-encodes and parses back to the same event (numbers within a rounding
//! error); a streaming session takes the frame too (agent audio, barge-in reports, tool
//! turns), with its history kept within its bounds.
#![no_main]

use std::time::{Duration, Instant};

#[path = "json.rs"]
mod json;

use json::close;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use voice_ua_agent::openai::messages::ServerEvent;
use voice_ua_agent::openai::session::{OpenAiSession, HISTORY_MAX_CHARS, HISTORY_MAX_LINES};
use voice_ua_agent::{AudioFormat, OpenAiConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(event) = ServerEvent::parse(text) {
        let again = ServerEvent::parse(&event.to_json()).expect("a re-encoded event parses");
        assert!(close(&as_value(&event), &as_value(&again)), "{event:?} became {again:?}");
    }

    let t0 = Instant::now();
    let Ok(mut session) = OpenAiSession::new(t0, AudioFormat::Ulaw8k, &OpenAiConfig::new("k"), None) else {
        return;
    };
    session.handle_text(t0, r#"{"type":"session.updated","session":{"type":"realtime"}}"#);
    for i in 0..3u64 {
        let t = t0 + Duration::from_millis(i);
        session.handle_text(t, text);
        session.handle_playback_flushed(t, i * 4000);
    }
    session.handle_timeout(t0 + Duration::from_secs(3600));
    while session.poll_output().is_some() {}
    assert!(session.history().count() <= HISTORY_MAX_LINES);
    assert!(session.history().map(|(_, t)| t.len()).sum::<usize>() <= HISTORY_MAX_CHARS);
});

fn as_value(event: &ServerEvent) -> Value {
    match event {
        ServerEvent::Unknown { raw, .. } => raw.clone(),
        other => serde_json::to_value(other).expect("a known event serialises"),
    }
}
