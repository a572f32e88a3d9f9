//! The `twilio` dialect, sans-IO: voice-ua plays Twilio's part of Media Streams (the
//! shape Pipecat, Telnyx, Exotel, SignalWire and Fonoster speak), the bot the server's.
//! Every frame is JSON text; audio is base64 μ-law at 8 kHz both ways. docs/websocket-bots.md
//! has every message byte for byte.
//!
//! - Out: `connected`, `start` (ids, tracks, custom parameters, media format), then a
//!   `media` per 20 ms of caller audio, `dtmf` per key, `mark` once the audio before a
//!   bot's mark has played (or was cleared), `transfer_result` (an extension of ours),
//!   `stop` when the call ends. Every message after `connected` carries the next
//!   `sequenceNumber`; `media.chunk` counts from 1, `media.timestamp` is the chunk's
//!   start in ms of call audio.
//! - In: `media` (any length; cut into frames for the call, transcoded to A-law for an
//!   A-law call), `mark` (its name kept, an [`AgentEvent::Mark`] id for the call),
//!   `clear` ([`AgentEvent::FlushPlayback`]), and the extensions `hangup` (after the
//!   queued audio) and `transfer` (a blind transfer; its outcome comes back as
//!   `transfer_result`). A normal close (1000) is the bot hanging up after its audio.
//!
//! The caller's audio leaves without an allocation: the JSON is written into the
//! shell's buffer, the base64 through a scratch buffer reused for every frame.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt::Display;
use std::time::Instant;

use base64::Engine as _;
use serde::{Deserialize, Serialize, Serializer};

use super::audio::Bridge;
use super::session::{valid_transfer_target, Closed, Common, DialectCore, FailureCode, Transmit};
use crate::provider::{AgentEvent, AudioFormat, AudioFrame, CallFacts, CallInput, Digit, TransferOutcome};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Twilio's ids for one stream: `MZ`, `CA` and `AC` followed by 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioIds {
    /// The stream's id (random per session).
    pub stream_sid: String,
    /// The call's id (from the SIP Call-ID: the same call, the same id).
    pub call_sid: String,
    /// The "account" (from the extension voice-ua answers as).
    pub account_sid: String,
}

impl TwilioIds {
    /// Ids for `call`; `random` makes the stream's.
    pub fn for_call(call: &CallFacts, random: [u8; 16]) -> TwilioIds {
        use md5::{Digest, Md5};
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let digest = |s: &str| hex(&Md5::digest(s.as_bytes()));
        TwilioIds {
            stream_sid: format!("MZ{}", hex(&random)),
            call_sid: format!("CA{}", digest(&call.call_id)),
            account_sid: format!("AC{}", digest(&format!("voice-ua extension {}", call.extension))),
        }
    }
}

/// The `start.customParameters` of a call: ours first (`caller`, `caller_uri`,
/// `caller_name` when known, `callee`, `call_id`, `extension`), then the configured ones
/// whose names are not ours.
pub fn custom_parameters(call: &CallFacts, configured: &[(String, String)]) -> Vec<(String, String)> {
    let caller = caller_number(&call.caller_uri);
    let mut out =
        vec![("caller".to_owned(), caller.to_owned()), ("caller_uri".to_owned(), call.caller_uri.clone())];
    if let Some(name) = &call.caller_display {
        out.push(("caller_name".to_owned(), name.clone()));
    }
    out.push(("callee".to_owned(), call.callee.clone()));
    out.push(("call_id".to_owned(), call.call_id.clone()));
    out.push(("extension".to_owned(), call.extension.clone()));
    for (k, v) in configured {
        if !out.iter().any(|(ours, _)| ours == k) {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

/// `2001` of `sip:2001@pbx;user=phone` (the whole URI when it has no user part).
pub fn caller_number(uri: &str) -> &str {
    let rest = uri.strip_prefix("sips:").or_else(|| uri.strip_prefix("sip:")).unwrap_or(uri);
    match rest.split_once('@') {
        Some((user, _)) => user.split(';').next().unwrap_or(user),
        None => uri,
    }
}

/// One message waiting to be written (serialised when it is sent, so that sequence
/// numbers follow the order on the wire).
// Frames travel by value in the queue (reserved once), like the seam's own events: no
// heap per frame, so the size is the point.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Pending {
    Connected,
    Start,
    Media(AudioFrame),
    Dtmf(Digit),
    Mark(String),
    TransferResult { target: String, outcome: Result<TransferOutcome, &'static str> },
    Stop,
    Close,
}

/// The Twilio-dialect core for one call.
#[derive(Debug)]
pub struct TwilioCore {
    common: Common,
    format: AudioFormat,
    ids: TwilioIds,
    parameters: Vec<(String, String)>,
    tx: VecDeque<Pending>,
    /// The last `sequenceNumber` written.
    seq: u64,
    /// `media` messages written.
    chunks: u64,
    /// The bot's marks the call has not answered yet: (our id, its name).
    marks: VecDeque<(u32, String)>,
    next_mark: u32,
    /// Transfers asked for and not yet reported.
    transfers: VecDeque<String>,
    /// `stop` (or the close) is queued: nothing else is.
    closing: bool,
    /// The call's format ↔ the wire's μ-law 8 kHz.
    bridge: Bridge,
    wire: Vec<u8>,
    b64: String,
    decoded: Vec<u8>,
    converted: Vec<u8>,
}

impl TwilioCore {
    /// A core for a call in `format` (checked by the provider), with `parameters` as
    /// `customParameters`: `connected` and `start` are queued at once.
    pub fn new(format: AudioFormat, ids: TwilioIds, parameters: Vec<(String, String)>) -> TwilioCore {
        let mut tx = VecDeque::with_capacity(64);
        tx.push_back(Pending::Connected);
        tx.push_back(Pending::Start);
        TwilioCore {
            common: Common::new(),
            format,
            ids,
            parameters,
            tx,
            seq: 0,
            chunks: 0,
            marks: VecDeque::new(),
            next_mark: 1,
            transfers: VecDeque::new(),
            closing: false,
            bridge: Bridge::new(format, AudioFormat::Ulaw8k),
            wire: Vec::with_capacity(crate::provider::MAX_FRAME_BYTES),
            b64: String::with_capacity(1024),
            decoded: Vec::with_capacity(4096),
            converted: Vec::with_capacity(4096),
        }
    }

    /// The stream's ids.
    pub fn ids(&self) -> &TwilioIds {
        &self.ids
    }

    /// `media` messages sent so far.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// Queue `stop` and the close, once.
    fn stop(&mut self) {
        if !self.closing {
            self.closing = true;
            self.tx.push_back(Pending::Stop);
            self.tx.push_back(Pending::Close);
        }
    }

    fn send(&mut self, message: Pending) {
        if !self.closing {
            self.tx.push_back(message);
        }
    }

    fn on_media(&mut self, payload: &str) {
        if payload.is_empty() {
            return;
        }
        self.decoded.clear();
        self.decoded.resize(base64::decoded_len_estimate(payload.len()), 0);
        let n = match B64.decode_slice(payload.as_bytes(), &mut self.decoded) {
            Ok(n) => n,
            Err(e) => {
                self.common.malformed(&format_args!("media payload is not base64: {e}"));
                return;
            }
        };
        self.common.parsed();
        self.converted.clear();
        self.bridge.from_wire(&self.decoded[..n], &mut self.converted);
        for frame in AudioFrame::chunks(&self.converted, self.format.frame_bytes()) {
            self.common.event(AgentEvent::Audio(frame));
        }
    }

    fn on_mark(&mut self, name: String) {
        let id = self.next_mark;
        self.next_mark = self.next_mark.wrapping_add(1).max(1);
        self.marks.push_back((id, name));
        self.common.event(AgentEvent::Mark(id));
    }

    fn on_transfer(&mut self, target: &str) {
        if valid_transfer_target(target) {
            tracing::info!(%target, "the bot asks for a transfer");
            self.transfers.push_back(target.to_owned());
            self.common.event(AgentEvent::Transfer { target: target.to_owned() });
        } else {
            let shown = crate::tools::http::one_line(target, 40);
            tracing::warn!(target = %shown, "the bot asked for a transfer to a target that is not an extension or SIP URI");
            self.send(Pending::TransferResult { target: shown, outcome: Err("invalid_target") });
        }
    }

    fn mark_played(&mut self, id: u32, cleared: bool) {
        // The call answers marks in order; anything before `id` was answered already.
        while let Some((front, name)) = self.marks.pop_front() {
            if front == id {
                tracing::trace!(%name, cleared, "mark reached: echoing it");
                self.send(Pending::Mark(name));
                return;
            }
        }
        tracing::debug!(id, "a playback report for a mark voice-ua does not know");
    }

    /// Write `message` as JSON into `out`.
    fn write(&mut self, message: &Pending, out: &mut Vec<u8>) -> Transmit {
        let ids = &self.ids;
        let written = match message {
            Pending::Connected => serde_json::to_writer(
                &mut *out,
                &Connected { event: "connected", protocol: "Call", version: "1.0.0" },
            ),
            Pending::Start => {
                self.seq += 1;
                let start = StartOut {
                    event: "start",
                    sequence_number: Num(self.seq),
                    start: StartBody {
                        account_sid: &ids.account_sid,
                        stream_sid: &ids.stream_sid,
                        call_sid: &ids.call_sid,
                        tracks: ["inbound"],
                        custom_parameters: Params(&self.parameters),
                        media_format: MediaFormat {
                            encoding: "audio/x-mulaw",
                            sample_rate: 8000,
                            channels: 1,
                        },
                    },
                    stream_sid: &ids.stream_sid,
                };
                serde_json::to_writer(&mut *out, &start)
            }
            Pending::Media(frame) => {
                self.seq += 1;
                self.chunks += 1;
                self.wire.clear();
                self.bridge.to_wire(frame.as_bytes(), &mut self.wire);
                self.b64.clear();
                B64.encode_string(&self.wire, &mut self.b64);
                let media = MediaOut {
                    event: "media",
                    sequence_number: Num(self.seq),
                    media: MediaBody {
                        track: "inbound",
                        chunk: Num(self.chunks),
                        timestamp: Num((self.chunks - 1) * 20),
                        payload: &self.b64,
                    },
                    stream_sid: &ids.stream_sid,
                };
                serde_json::to_writer(&mut *out, &media)
            }
            Pending::Dtmf(digit) => {
                self.seq += 1;
                let dtmf = DtmfOut {
                    event: "dtmf",
                    stream_sid: &ids.stream_sid,
                    sequence_number: Num(self.seq),
                    dtmf: DtmfBody { track: "inbound_track", digit: Num(digit.as_char()) },
                };
                serde_json::to_writer(&mut *out, &dtmf)
            }
            Pending::Mark(name) => {
                self.seq += 1;
                let mark = MarkOut {
                    event: "mark",
                    sequence_number: Num(self.seq),
                    stream_sid: &ids.stream_sid,
                    mark: MarkBody { name },
                };
                serde_json::to_writer(&mut *out, &mark)
            }
            Pending::TransferResult { target, outcome } => {
                self.seq += 1;
                let (word, status, description) = match outcome {
                    Ok(o) => (o.word(), sip_status(*o), o.to_string()),
                    Err(word) => {
                        (*word, None, "not started: the target is not an extension or SIP URI".into())
                    }
                };
                let result = TransferResultOut {
                    event: "transfer_result",
                    sequence_number: Num(self.seq),
                    stream_sid: &ids.stream_sid,
                    transfer_result: TransferResultBody {
                        target,
                        outcome: word,
                        succeeded: outcome.is_ok_and(TransferOutcome::succeeded),
                        sip_status: status,
                        description: &description,
                    },
                };
                serde_json::to_writer(&mut *out, &result)
            }
            Pending::Stop => {
                self.seq += 1;
                let stop = StopOut {
                    event: "stop",
                    sequence_number: Num(self.seq),
                    stream_sid: &ids.stream_sid,
                    stop: StopBody { account_sid: &ids.account_sid, call_sid: &ids.call_sid },
                };
                serde_json::to_writer(&mut *out, &stop)
            }
            Pending::Close => return Transmit::Close,
        };
        // Writing into a Vec fails only on a serialiser bug; the frame is then empty.
        if let Err(e) = written {
            tracing::warn!(%e, "could not write a Twilio message");
        }
        Transmit::Text
    }
}

/// The SIP status an outcome carries.
fn sip_status(outcome: TransferOutcome) -> Option<u16> {
    match outcome {
        TransferOutcome::Refused { status } | TransferOutcome::Failed { status } => Some(status),
        TransferOutcome::Completed => Some(200),
        TransferOutcome::Accepted => Some(202),
        TransferOutcome::NoAnswer | TransferOutcome::AlreadyInProgress => None,
    }
}

impl DialectCore for TwilioCore {
    fn handle_text(&mut self, now: Instant, text: &str) {
        if self.common.ended() {
            return;
        }
        let message: Inbound<'_> = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => return self.common.malformed(&e),
        };
        match &*message.event {
            "media" => match message.media {
                Some(media) => self.on_media(&media.payload),
                None => self.common.malformed(&"a media event without media"),
            },
            "mark" => match message.mark {
                Some(mark) => {
                    self.common.parsed();
                    self.on_mark(mark.name.into_owned());
                }
                None => self.common.malformed(&"a mark event without mark.name"),
            },
            "clear" => {
                self.common.parsed();
                tracing::debug!("the bot clears its queued audio (barge-in)");
                self.common.event(AgentEvent::FlushPlayback);
            }
            "hangup" => {
                self.common.parsed();
                let reason = message
                    .hangup
                    .and_then(|h| h.reason)
                    .map(|r| crate::tools::http::one_line(&r, crate::tools::MAX_HANGUP_REASON))
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| "the bot hung up".into());
                if self.common.finish(reason) {
                    self.stop();
                }
            }
            "transfer" => match message.transfer {
                Some(t) => {
                    self.common.parsed();
                    self.on_transfer(&t.target);
                }
                None => self.common.malformed(&"a transfer event without transfer.target"),
            },
            other => self.common.unknown(now, other),
        }
    }

    fn handle_binary(&mut self, now: Instant, _bytes: &[u8]) {
        // Twilio's protocol is text only.
        if !self.common.ended() {
            self.common.unknown(now, "(binary frame)");
        }
    }

    fn handle_input(&mut self, _now: Instant, input: CallInput) {
        match input {
            CallInput::Audio(frame) if !self.common.ended() && !frame.is_empty() => {
                self.send(Pending::Media(frame))
            }
            CallInput::Audio(_) => {}
            CallInput::Digit(digit) => self.send(Pending::Dtmf(digit)),
            CallInput::MarkPlayed { id, cleared } => self.mark_played(id, cleared),
            CallInput::PlaybackFlushed { played_samples } => {
                tracing::trace!(played_samples, "bot audio flushed");
            }
            CallInput::TransferResult(outcome) => match self.transfers.pop_front() {
                Some(target) => {
                    tracing::info!(%target, %outcome, "transfer result for the bot");
                    self.send(Pending::TransferResult { target, outcome: Ok(outcome) });
                }
                None => tracing::debug!(%outcome, "a transfer result nobody waits for"),
            },
            CallInput::CallEnded => {
                self.common.call_ended();
                self.stop();
            }
        }
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn handle_closed(&mut self, _now: Instant, closed: Closed) {
        self.common.closed(closed);
        // Nothing can be sent on a closed socket.
        self.tx.clear();
        self.closing = true;
        self.tx.push_back(Pending::Close);
    }

    fn fail(&mut self, code: FailureCode, detail: String) {
        if self.common.fail(code, detail) {
            self.stop();
        }
    }

    fn poll_transmit(&mut self, out: &mut Vec<u8>) -> Option<Transmit> {
        if self.common.ended() && !self.closing {
            // Ended by a malformed run or another failure: tell the bot and close.
            self.stop();
        }
        let message = self.tx.pop_front()?;
        out.clear();
        Some(self.write(&message, out))
    }

    fn poll_event(&mut self) -> Option<AgentEvent> {
        self.common.poll_event()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

// ------------------------------------------------------------------ wire types

/// A number Twilio writes as a JSON string (`"sequenceNumber":"3"`), written without an
/// allocation.
struct Num<T>(T);

impl<T: Display> Serialize for Num<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// `customParameters`, in order.
struct Params<'a>(&'a [(String, String)]);

impl Serialize for Params<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

#[derive(Serialize)]
struct Connected {
    event: &'static str,
    protocol: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StartOut<'a> {
    event: &'static str,
    sequence_number: Num<u64>,
    start: StartBody<'a>,
    stream_sid: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StartBody<'a> {
    account_sid: &'a str,
    stream_sid: &'a str,
    call_sid: &'a str,
    tracks: [&'static str; 1],
    custom_parameters: Params<'a>,
    media_format: MediaFormat,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MediaFormat {
    encoding: &'static str,
    sample_rate: u32,
    channels: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MediaOut<'a> {
    event: &'static str,
    sequence_number: Num<u64>,
    media: MediaBody<'a>,
    stream_sid: &'a str,
}

#[derive(Serialize)]
struct MediaBody<'a> {
    track: &'static str,
    chunk: Num<u64>,
    timestamp: Num<u64>,
    payload: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DtmfOut<'a> {
    event: &'static str,
    stream_sid: &'a str,
    sequence_number: Num<u64>,
    dtmf: DtmfBody,
}

#[derive(Serialize)]
struct DtmfBody {
    track: &'static str,
    digit: Num<char>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MarkOut<'a> {
    event: &'static str,
    sequence_number: Num<u64>,
    stream_sid: &'a str,
    mark: MarkBody<'a>,
}

#[derive(Serialize)]
struct MarkBody<'a> {
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TransferResultOut<'a> {
    event: &'static str,
    sequence_number: Num<u64>,
    stream_sid: &'a str,
    #[serde(rename = "transfer_result")]
    transfer_result: TransferResultBody<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TransferResultBody<'a> {
    target: &'a str,
    outcome: &'static str,
    succeeded: bool,
    sip_status: Option<u16>,
    description: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StopOut<'a> {
    event: &'static str,
    sequence_number: Num<u64>,
    stream_sid: &'a str,
    stop: StopBody<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StopBody<'a> {
    account_sid: &'a str,
    call_sid: &'a str,
}

/// Any message from the bot; borrowed where the JSON has no escapes (no allocation for
/// a `media` frame).
#[derive(Deserialize)]
struct Inbound<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default)]
    media: Option<MediaIn<'a>>,
    #[serde(borrow, default)]
    mark: Option<MarkIn<'a>>,
    #[serde(default)]
    hangup: Option<HangupIn>,
    #[serde(borrow, default)]
    transfer: Option<TransferIn<'a>>,
}

#[derive(Deserialize)]
struct MediaIn<'a> {
    #[serde(borrow)]
    payload: Cow<'a, str>,
}

#[derive(Deserialize)]
struct MarkIn<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

#[derive(Deserialize)]
struct HangupIn {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct TransferIn<'a> {
    #[serde(borrow)]
    target: Cow<'a, str>,
}
