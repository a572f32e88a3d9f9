//! The fake Twilio Media Streams bot: checks `connected`, `start` and every later
//! message the way a strict Twilio-speaking server would read them, and plays the script
//! as `media`, `mark`, `clear` and the `hangup`/`transfer` extension events.

use base64::Engine as _;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use voice_ua_agent::echo::level_dbfs;
use voice_ua_agent::AudioFormat;

use crate::run::{count_audio, keep, Bot, Flow, Wait};
use crate::{tone, Record, Step};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The bot's audio goes out in `media` messages of this many bytes (100 ms).
pub const MEDIA_CHUNK: usize = 800;

/// The fake bot's state for one connection.
#[derive(Debug, Default)]
pub struct TwilioBot {
    stream_sid: Option<String>,
    account_sid: String,
    call_sid: String,
    /// The last sequence number seen.
    seq: u64,
    chunks: u64,
    /// Marks sent and not yet echoed, in order.
    marks: Vec<String>,
    stopped: bool,
    heard: Vec<i16>,
    messages: u64,
}

impl TwilioBot {
    pub(crate) fn new() -> TwilioBot {
        TwilioBot::default()
    }

    fn send(&self, mut v: Value) -> Message {
        if let (Some(sid), Some(map)) = (&self.stream_sid, v.as_object_mut()) {
            map.insert("streamSid".into(), Value::from(sid.clone()));
        }
        Message::text(v.to_string())
    }

    fn check(&mut self, v: &Value, record: &mut Record, wait: &mut Wait) -> Vec<Message> {
        let event = v["event"].as_str().unwrap_or_default().to_owned();
        self.messages += 1;
        let fault = |record: &mut Record, what: String| record.violations.push(what);
        if self.stopped {
            fault(record, format!("{event} after stop"));
        }
        match (self.messages, event.as_str()) {
            (1, "connected") => {
                if v != &json!({"event":"connected","protocol":"Call","version":"1.0.0"}) {
                    fault(record, format!("connected is not exactly Twilio's: {v}"));
                }
                return Vec::new();
            }
            (1, other) => fault(record, format!("the first message is {other:?}, not connected")),
            (2, "start") => return self.on_start(v, record),
            (2, other) => fault(record, format!("the second message is {other:?}, not start")),
            (_, "connected" | "start") => fault(record, format!("a second {event}")),
            _ => {}
        }
        // Every message after connected: the next sequence number, our stream.
        let seq = v["sequenceNumber"].as_str().and_then(|s| s.parse::<u64>().ok());
        if seq != Some(self.seq + 1) {
            fault(record, format!("{event}: sequenceNumber {:?} after {}", v["sequenceNumber"], self.seq));
        }
        self.seq = seq.unwrap_or(self.seq + 1);
        if v["streamSid"].as_str() != self.stream_sid.as_deref() {
            fault(record, format!("{event}: streamSid {:?}", v["streamSid"]));
        }
        match event.as_str() {
            "media" => self.on_media(v, record, wait),
            "dtmf" => {
                let digit = v["dtmf"]["digit"].as_str().unwrap_or_default();
                if v["dtmf"]["track"] != "inbound_track" || digit.len() != 1 {
                    record.violations.push(format!("dtmf: {v}"));
                }
                record.digits.push_str(digit);
            }
            "mark" => {
                let name = v["mark"]["name"].as_str().unwrap_or_default().to_owned();
                if self.marks.first() == Some(&name) {
                    self.marks.remove(0);
                } else {
                    record
                        .violations
                        .push(format!("mark {name:?} echoed out of order (waiting: {:?})", self.marks));
                }
                record.marks_echoed.push(name);
            }
            "transfer_result" => record.transfer_results.push(v["transfer_result"].clone()),
            "stop" => {
                let stop = &v["stop"];
                if stop["accountSid"] != self.account_sid.as_str()
                    || stop["callSid"] != self.call_sid.as_str()
                {
                    record.violations.push(format!("stop: {v}"));
                }
                self.stopped = true;
                record.stopped = true;
            }
            other => record.violations.push(format!("unknown event {other:?}")),
        }
        Vec::new()
    }

    fn on_start(&mut self, v: &Value, record: &mut Record) -> Vec<Message> {
        let start = &v["start"];
        let sid = |key: &str, prefix: &str| {
            start[key].as_str().filter(|s| {
                s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
            })
        };
        let (Some(stream), Some(call), Some(account)) =
            (sid("streamSid", "MZ"), sid("callSid", "CA"), sid("accountSid", "AC"))
        else {
            record.violations.push(format!("start: bad ids: {v}"));
            return Vec::new();
        };
        if v["sequenceNumber"] != "1" || v["streamSid"] != stream {
            record.violations.push(format!("start: sequenceNumber or streamSid: {v}"));
        }
        if start["tracks"] != json!(["inbound"])
            || start["mediaFormat"] != json!({"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1})
        {
            record.violations.push(format!("start: tracks or mediaFormat: {v}"));
        }
        for key in ["caller", "callee", "call_id", "extension"] {
            if !start["customParameters"][key].is_string() {
                record.violations.push(format!("start: customParameters.{key} missing"));
            }
        }
        self.stream_sid = Some(stream.to_owned());
        self.call_sid = call.to_owned();
        self.account_sid = account.to_owned();
        self.seq = 1;
        record.start = Some(v.clone());
        Vec::new()
    }

    fn on_media(&mut self, v: &Value, record: &mut Record, wait: &mut Wait) {
        let media = &v["media"];
        self.chunks += 1;
        let chunk = media["chunk"].as_str().and_then(|s| s.parse::<u64>().ok());
        let timestamp = media["timestamp"].as_str().and_then(|s| s.parse::<u64>().ok());
        if media["track"] != "inbound"
            || chunk != Some(self.chunks)
            || timestamp != Some((self.chunks - 1) * 20)
        {
            record.violations.push(format!("media: track, chunk or timestamp: {media}"));
        }
        let payload = B64.decode(media["payload"].as_str().unwrap_or_default());
        match payload {
            Ok(bytes) if bytes.len() == 160 => {
                record.audio_frames += 1;
                record.audio_bytes += bytes.len();
                count_audio(wait, level_dbfs(AudioFormat::Ulaw8k, &bytes));
                keep(&mut self.heard, (0..bytes.len()).filter_map(|i| AudioFormat::Ulaw8k.sample(&bytes, i)));
            }
            Ok(bytes) => record.violations.push(format!("media payload of {} bytes, not 160", bytes.len())),
            Err(e) => record.violations.push(format!("media payload is not base64: {e}")),
        }
    }

    fn media(&self, ulaw: &[u8]) -> Vec<Message> {
        ulaw.chunks(MEDIA_CHUNK)
            .map(|c| self.send(json!({"event":"media","media":{"payload": B64.encode(c)}})))
            .collect()
    }
}

impl Bot for TwilioBot {
    fn hello(&mut self) -> Vec<Message> {
        Vec::new()
    }

    fn ready(&self) -> bool {
        self.stream_sid.is_some()
    }

    fn on_message(&mut self, message: &Message, record: &mut Record, wait: &mut Wait) -> Vec<Message> {
        match message {
            Message::Text(t) => match serde_json::from_str::<Value>(t.as_str()) {
                Ok(v) => self.check(&v, record, wait),
                Err(e) => {
                    record.violations.push(format!("not JSON: {e}"));
                    Vec::new()
                }
            },
            Message::Binary(_) => {
                record.violations.push("a binary frame (Twilio sends text only)".into());
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn step(&mut self, step: Step, record: &mut Record) -> (Vec<Message>, Flow) {
        let none = |flow| (Vec::new(), flow);
        match step {
            Step::Speak { ms, .. } => (self.media(&tone(AudioFormat::Ulaw8k, ms)), Flow::Continue),
            Step::Mark(name) => {
                self.marks.push(name.clone());
                (vec![self.send(json!({"event":"mark","mark":{"name": name}}))], Flow::Continue)
            }
            Step::WaitAudio { frames, min_dbfs } => {
                none(Flow::Wait(Wait::Audio { remaining: frames, min_dbfs }))
            }
            Step::WaitMark(name) => none(Flow::Wait(Wait::Mark(name))),
            Step::WaitTransferResult => {
                none(Flow::Wait(Wait::TransferResults(record.transfer_results.len() + 1)))
            }
            Step::EchoBack => {
                let mut ulaw = Vec::with_capacity(self.heard.len());
                for &s in &self.heard {
                    AudioFormat::Ulaw8k.push_sample(&mut ulaw, s);
                }
                (self.media(&ulaw), Flow::Continue)
            }
            // The client answers the marks the clear dropped: they stay expected.
            Step::Clear => (vec![self.send(json!({"event":"clear"}))], Flow::Continue),
            Step::Hangup(reason) => {
                (vec![self.send(json!({"event":"hangup","hangup":{"reason": reason}}))], Flow::Continue)
            }
            Step::Transfer(target) => {
                (vec![self.send(json!({"event":"transfer","transfer":{"target": target}}))], Flow::Continue)
            }
            Step::SendRaw(text) => (vec![Message::text(text)], Flow::Continue),
            Step::SendBinary(bytes) => (vec![Message::binary(bytes)], Flow::Continue),
            Step::Pause(d) => none(Flow::Wait(Wait::Until(tokio::time::Instant::now() + d))),
            Step::Close(code, reason) => none(Flow::Close(code, reason)),
            Step::CloseAbruptly => none(Flow::Drop),
            Step::WaitAudioEnd => {
                record.violations.push("script: WaitAudioEnd is ASP's".into());
                none(Flow::Continue)
            }
        }
    }

    fn heard(&mut self) -> &mut Vec<i16> {
        &mut self.heard
    }
}
