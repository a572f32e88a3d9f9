//! The fake ASP agent, as theo-ai-voice-agent's `ai-agent` behaves on the wire:
//! `protocol.capabilities` on connect, `session.started` for a good `session.start`,
//! responses as `response.start {text}` + a burst of 2000-byte PCM16 frames +
//! `response.end`, `call.action`, `session.ended` for `session.end`. Stricter than the
//! real agent: what it would silently drop is recorded as a violation here.

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use voice_ua_agent::echo::level_dbfs;
use voice_ua_agent::websocket::asp::{
    session_hash, AUDIO_MAGIC, DIRECTION_INBOUND, DIRECTION_OUTBOUND, HEADER_LEN,
};
use voice_ua_agent::websocket::audio::PCM16_8K;

use crate::run::{count_audio, keep, Bot, Flow, Wait};
use crate::{tone, BotConfig, Record, Step};

/// The agent's audio frames: 2000 bytes of PCM16 (125 ms), as its batch mode sends them.
pub const AUDIO_CHUNK: usize = 2000;

/// The capabilities the real agent sends.
pub fn capabilities() -> Value {
    json!({
        "type": "protocol.capabilities",
        "version": "1.0.0",
        "capabilities": {
            "version": "1.0.0",
            "supported_sample_rates": [8000, 16000],
            "supported_encodings": ["pcm_s16le", "mulaw", "alaw"],
            "supported_frame_durations": [10, 20, 30],
            "vad_configurable": true,
            "max_session_duration_seconds": 3600,
            "features": ["barge_in", "streaming_tts", "sentence_pipeline"]
        },
        "timestamp": "2026-02-06T00:00:00.000Z",
        "server_id": "fake-ai-agent"
    })
}

/// The fake agent's state for one connection.
#[derive(Debug)]
pub struct AspBot {
    legacy: bool,
    reject: bool,
    never_start: bool,
    session_id: Option<String>,
    hash: [u8; 8],
    started: bool,
    heard: Vec<i16>,
}

impl AspBot {
    pub(crate) fn new(config: &BotConfig) -> AspBot {
        AspBot {
            legacy: config.legacy,
            reject: config.reject,
            never_start: config.never_start,
            session_id: None,
            hash: [0; 8],
            started: false,
            heard: Vec::new(),
        }
    }

    fn id(&self) -> String {
        self.session_id.clone().unwrap_or_default()
    }

    fn on_text(&mut self, v: &Value, record: &mut Record) -> Vec<Message> {
        let kind = v["type"].as_str().unwrap_or_default();
        if kind != "session.start" && v["session_id"].as_str() != self.session_id.as_deref() {
            record.violations.push(format!("{kind}: session_id {:?}", v["session_id"]));
        }
        match kind {
            "session.start" => self.on_start(v, record),
            "audio.end" => {
                record.audio_ends += 1;
                Vec::new()
            }
            "session.end" => {
                record.stopped = true;
                let ended = json!({"type":"session.ended","session_id": self.id(),
                    "timestamp":"2026-02-06T00:00:09.000Z","duration_seconds": 9.0,
                    "statistics":{"audio_frames_received":0,"audio_frames_sent":0,"vad_speech_events":0,"barge_in_count":0,"average_response_latency_ms":0.0}});
                vec![Message::text(ended.to_string())]
            }
            other => {
                record.violations.push(format!("unexpected message {other:?}"));
                Vec::new()
            }
        }
    }

    fn on_start(&mut self, v: &Value, record: &mut Record) -> Vec<Message> {
        if self.session_id.is_some() {
            record.violations.push("a second session.start".into());
            return Vec::new();
        }
        let Some(id) = v["session_id"].as_str().filter(|s| !s.is_empty()) else {
            record.violations.push(format!("session.start without a session_id: {v}"));
            return Vec::new();
        };
        let audio = json!({"sample_rate":8000,"encoding":"pcm_s16le","channels":1,"frame_duration_ms":20});
        if v["audio"] != audio {
            record.violations.push(format!("session.start audio is not 8000/pcm_s16le/1/20: {}", v["audio"]));
        }
        if !v["call_id"].is_string() || !v["vad"].is_object() {
            record.violations.push(format!("session.start without call_id or vad: {v}"));
        }
        self.session_id = Some(id.to_owned());
        self.hash = session_hash(id);
        record.start = Some(v.clone());
        if self.never_start {
            return Vec::new();
        }
        let answer = if self.reject {
            json!({"type":"session.started","session_id": id,"status":"rejected","timestamp":"2026-02-06T00:00:00.100Z",
                "errors":[{"code":"SESSION_LIMIT","category":"session","message":"too many sessions","recoverable":false}]})
        } else {
            self.started = true;
            json!({"type":"session.started","session_id": id,"status":"accepted","timestamp":"2026-02-06T00:00:00.100Z",
                "negotiated":{"audio": audio, "vad": v["vad"].clone(), "adjustments": []}})
        };
        vec![Message::text(answer.to_string())]
    }

    fn on_audio(&mut self, bytes: &[u8], record: &mut Record, wait: &mut Wait) {
        if !self.started {
            record.violations.push("audio before session.started".into());
            return;
        }
        let Some((header, pcm)) = bytes.split_at_checked(HEADER_LEN) else {
            record
                .violations
                .push(format!("an audio frame of {} bytes, shorter than the header", bytes.len()));
            return;
        };
        if header[0] != AUDIO_MAGIC
            || header[1] != DIRECTION_INBOUND
            || header[2..10] != self.hash
            || header[10..] != [0, 0]
        {
            record.violations.push(format!("bad audio header {header:02x?}"));
            return;
        }
        if pcm.len() != 320 {
            record.violations.push(format!("an audio frame of {} bytes, not 20 ms (320)", pcm.len()));
        }
        record.audio_frames += 1;
        record.audio_bytes += pcm.len();
        count_audio(wait, level_dbfs(PCM16_8K, pcm));
        keep(&mut self.heard, pcm.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
    }

    fn response(&self, text: &str, pcm: &[u8]) -> Vec<Message> {
        let id = self.id();
        let mut out =
            vec![Message::text(json!({"type":"response.start","session_id": id,"text": text}).to_string())];
        for chunk in pcm.chunks(AUDIO_CHUNK) {
            let mut frame = Vec::with_capacity(HEADER_LEN + chunk.len());
            frame.extend_from_slice(&[AUDIO_MAGIC, DIRECTION_OUTBOUND]);
            frame.extend_from_slice(&self.hash);
            frame.extend_from_slice(&[0, 0]);
            frame.extend_from_slice(chunk);
            out.push(Message::binary(frame));
        }
        out.push(Message::text(json!({"type":"response.end","session_id": id}).to_string()));
        out
    }

    fn action(&self, action: &str, target: Option<&str>, reason: &str) -> Message {
        let mut v = json!({"type":"call.action","session_id": self.id(),"action": action,
            "timestamp":"2026-02-06T00:00:05.000Z","reason": reason});
        if let (Some(t), Some(map)) = (target, v.as_object_mut()) {
            map.insert("target".into(), Value::from(t));
        }
        Message::text(v.to_string())
    }
}

impl Bot for AspBot {
    fn hello(&mut self) -> Vec<Message> {
        if self.legacy {
            Vec::new()
        } else {
            vec![Message::text(capabilities().to_string())]
        }
    }

    fn ready(&self) -> bool {
        self.started
    }

    fn on_message(&mut self, message: &Message, record: &mut Record, wait: &mut Wait) -> Vec<Message> {
        match message {
            Message::Text(t) => match serde_json::from_str::<Value>(t.as_str()) {
                Ok(v) => self.on_text(&v, record),
                Err(e) => {
                    record.violations.push(format!("not JSON: {e}"));
                    Vec::new()
                }
            },
            Message::Binary(b) => {
                self.on_audio(b, record, wait);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn step(&mut self, step: Step, record: &mut Record) -> (Vec<Message>, Flow) {
        let none = |flow| (Vec::new(), flow);
        match step {
            Step::Speak { text, ms } => (self.response(&text, &tone(PCM16_8K, ms)), Flow::Continue),
            Step::EchoBack => {
                let pcm: Vec<u8> = self.heard.iter().flat_map(|s| s.to_le_bytes()).collect();
                (self.response("(echo)", &pcm), Flow::Continue)
            }
            Step::WaitAudio { frames, min_dbfs } => {
                none(Flow::Wait(Wait::Audio { remaining: frames, min_dbfs }))
            }
            Step::WaitAudioEnd => none(Flow::Wait(Wait::AudioEnds(record.audio_ends + 1))),
            Step::Hangup(reason) => (vec![self.action("hangup", None, &reason)], Flow::Continue),
            Step::Transfer(target) => {
                (vec![self.action("transfer", Some(&target), "transfer")], Flow::Continue)
            }
            Step::SendRaw(text) => (vec![Message::text(text)], Flow::Continue),
            Step::SendBinary(bytes) => (vec![Message::binary(bytes)], Flow::Continue),
            Step::Pause(d) => none(Flow::Wait(Wait::Until(tokio::time::Instant::now() + d))),
            Step::Close(code, reason) => none(Flow::Close(code, reason)),
            Step::CloseAbruptly => none(Flow::Drop),
            Step::Mark(_) | Step::WaitMark(_) | Step::Clear | Step::WaitTransferResult => {
                record.violations.push(format!("script: {step:?} is Twilio's"));
                none(Flow::Continue)
            }
        }
    }

    fn heard(&mut self) -> &mut Vec<i16> {
        &mut self.heard
    }
}
