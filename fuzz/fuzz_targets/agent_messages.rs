//! Deepgram server messages: any text frame parses or is refused without a panic; what
//! parses re-encodes and parses back to the same message (floats within a rounding
//! error: serde_json's default float parser may be one ULP off); a streaming session
//! takes the frame too, with its history kept within its bounds.
#![no_main]

use std::time::{Duration, Instant};

#[path = "json.rs"]
mod json;

use json::close;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use voice_ua_agent::deepgram::messages::ServerMessage;
use voice_ua_agent::deepgram::session::{DeepgramSession, HISTORY_MAX_CHARS, HISTORY_MAX_LINES};
use voice_ua_agent::{AudioFormat, DeepgramConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(message) = ServerMessage::parse(text) {
        let again = ServerMessage::parse(&message.to_json()).expect("a re-encoded message parses");
        assert!(close(&as_value(&message), &as_value(&again)), "{message:?} became {again:?}");
    }

    let format = AudioFormat::Ulaw8k;
    let t0 = Instant::now();
    let mut session = DeepgramSession::new(t0, format, DeepgramConfig::new("k").settings_message(format));
    session.handle_text(t0, r#"{"type":"Welcome","request_id":"r"}"#);
    session.handle_text(t0, r#"{"type":"SettingsApplied"}"#);
    for i in 0..3 {
        session.handle_text(t0 + Duration::from_millis(i), text);
    }
    session.handle_timeout(t0 + Duration::from_secs(3 * 3600));
    while session.poll_output().is_some() {}
    assert!(session.history().count() <= HISTORY_MAX_LINES);
    assert!(session.history().map(|(_, t)| t.len()).sum::<usize>() <= HISTORY_MAX_CHARS);
});

fn as_value(message: &ServerMessage) -> Value {
    match message {
        ServerMessage::Unknown { raw, .. } => raw.clone(),
        other => serde_json::to_value(other).expect("a known message serialises"),
    }
}
