//! What the fake saw: one record per request, per stage ([`Records`]), each with its
//! HTTP side ([`Exchange`]: connection, status, whether the fake refused it, whether the
//! client left before the end), and one [`Connection`] per TCP connection.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;

use crate::chat::{ChatMessage, ChatRequest};
use crate::completion::Answer;
use crate::tts::{Speech, SpeechRequest};
use crate::{ApiError, Failure, Reply};

/// The HTTP side of one request.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The TCP connection it came on (from 1, in accept order): equal numbers mean a
    /// kept-alive connection was reused.
    pub connection: u32,
    /// `POST`, …
    pub method: String,
    /// The path (and query).
    pub path: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body came with `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// Body length.
    pub body_bytes: usize,
    /// The status sent; `None` while (or when) no response went out.
    pub status: Option<u16>,
    /// The fake's checks refused the request (a 4xx a real server would send): the
    /// client sent something it must not. Tests assert there is none.
    pub refused: Option<ApiError>,
    /// The failure injected into this request, if any.
    pub injected: Option<Failure>,
    /// When the request's head came in.
    pub received_at: Instant,
    /// When the first body byte was handed to the connection.
    pub first_byte_at: Option<Instant>,
    /// When the response ended (its last byte handed over, or the client left).
    pub ended_at: Option<Instant>,
    /// The client closed the connection (or dropped the request) before the response's
    /// end: a barge-in cut, or a client timeout.
    pub closed_early: bool,
    /// Body chunks handed to the connection.
    pub chunks_sent: usize,
    /// Body bytes handed to the connection.
    pub bytes_sent: usize,
}

impl Exchange {
    /// A request as it came in.
    pub(crate) fn new(connection: u32, method: &str, path: &str) -> Exchange {
        Exchange {
            connection,
            method: method.into(),
            path: path.into(),
            authorization: None,
            content_type: None,
            chunked: false,
            body_bytes: 0,
            status: None,
            refused: None,
            injected: None,
            received_at: Instant::now(),
            first_byte_at: None,
            ended_at: None,
            closed_early: false,
            chunks_sent: 0,
            bytes_sent: 0,
        }
    }

    /// The response went out whole.
    pub fn completed(&self) -> bool {
        self.ended_at.is_some() && !self.closed_early
    }

    /// Over (answered whole, or the client left).
    pub fn finished(&self) -> bool {
        self.ended_at.is_some()
    }
}

/// One `/v1/audio/transcriptions` request.
#[derive(Debug, Clone)]
pub struct TranscriptionRecord {
    /// The HTTP side.
    pub http: Exchange,
    /// The form's text fields (`model`, `language`, `prompt`, `response_format`,
    /// `temperature`, …), as far as the form could be read.
    pub fields: BTreeMap<String, String>,
    /// The file part's name.
    pub filename: Option<String>,
    /// The file part's Content-Type.
    pub file_content_type: Option<String>,
    /// The WAV's rate, when it parsed.
    pub sample_rate: Option<u32>,
    /// Its length.
    pub duration_ms: Option<u32>,
    /// Its RMS level.
    pub rms_dbfs: Option<f32>,
    /// The text answered.
    pub text: Option<String>,
}

impl TranscriptionRecord {
    /// A form field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// One `/v1/chat/completions` request.
#[derive(Debug, Clone)]
pub struct ChatRecord {
    /// The HTTP side.
    pub http: Exchange,
    /// The body, when it was JSON.
    pub raw: Option<Value>,
    /// The request, when it passed the checks.
    pub request: Option<ChatRequest>,
    /// What the script decided.
    pub reply: Option<Reply>,
    /// What was sent for it (ids, the text after the cap, finish reason, usage).
    pub answer: Option<Answer>,
    /// The first tool call's arguments were broken on purpose.
    pub malformed_arguments: bool,
}

impl ChatRecord {
    /// The request's messages (empty when refused).
    pub fn messages(&self) -> &[ChatMessage] {
        self.request.as_ref().map_or(&[], |r| r.messages.as_slice())
    }

    /// The names of the tools offered.
    pub fn tool_names(&self) -> Vec<String> {
        self.request.as_ref().map(|r| r.tools.clone()).unwrap_or_default()
    }

    /// `tool_choice` was in the body (even when refused).
    pub fn had_tool_choice(&self) -> bool {
        self.raw.as_ref().is_some_and(|r| r.get("tool_choice").is_some())
    }

    /// The client cut the stream before its end.
    pub fn cut_by_client(&self) -> bool {
        self.http.closed_early
    }
}

/// One `/v1/audio/speech` request.
#[derive(Debug, Clone)]
pub struct SpeechRecord {
    /// The HTTP side.
    pub http: Exchange,
    /// The body, when it was JSON.
    pub raw: Option<Value>,
    /// The request, when it passed the checks.
    pub request: Option<SpeechRequest>,
    /// The audio planned for it (rate, ms, tone, bytes); `http.bytes_sent` says how much
    /// went out.
    pub speech: Option<Speech>,
}

impl SpeechRecord {
    /// The text asked for.
    pub fn input(&self) -> Option<&str> {
        self.request.as_ref().map(|r| r.input.as_str())
    }

    /// The voice asked for.
    pub fn voice(&self) -> Option<&str> {
        self.request.as_ref().map(|r| r.voice.as_str())
    }

    /// The client closed before all the audio was sent.
    pub fn cut_by_client(&self) -> bool {
        self.http.closed_early
    }
}

/// Every request so far, per stage, in arrival order.
#[derive(Debug, Clone, Default)]
pub struct Records {
    /// `/v1/audio/transcriptions`.
    pub transcriptions: Vec<TranscriptionRecord>,
    /// `/v1/chat/completions`.
    pub chats: Vec<ChatRecord>,
    /// `/v1/audio/speech`.
    pub speeches: Vec<SpeechRecord>,
    /// Anything else (refused with 404).
    pub other: Vec<Exchange>,
}

impl Records {
    /// Every request's HTTP side, stage by stage.
    pub fn exchanges(&self) -> Vec<&Exchange> {
        let mut all: Vec<&Exchange> = Vec::new();
        all.extend(self.transcriptions.iter().map(|r| &r.http));
        all.extend(self.chats.iter().map(|r| &r.http));
        all.extend(self.speeches.iter().map(|r| &r.http));
        all.extend(self.other.iter());
        all.sort_by_key(|e| e.received_at);
        all
    }

    /// The requests the fake refused (a client bug when not injected): `(path, error)`.
    pub fn refused(&self) -> Vec<(String, ApiError)> {
        self.exchanges().into_iter().filter_map(|e| e.refused.clone().map(|r| (e.path.clone(), r))).collect()
    }

    pub(crate) fn http_mut(&mut self, at: RecordRef) -> Option<&mut Exchange> {
        match at {
            RecordRef::Stt(i) => self.transcriptions.get_mut(i).map(|r| &mut r.http),
            RecordRef::Chat(i) => self.chats.get_mut(i).map(|r| &mut r.http),
            RecordRef::Tts(i) => self.speeches.get_mut(i).map(|r| &mut r.http),
            RecordRef::Other(i) => self.other.get_mut(i),
        }
    }
}

/// Where a request's record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordRef {
    Stt(usize),
    Chat(usize),
    Tts(usize),
    Other(usize),
}

/// What one TCP connection did, recorded when it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    /// Its number (from 1).
    pub n: u32,
    /// Requests served on it.
    pub requests: u32,
    /// How it ended.
    pub end: String,
}

impl voice_ua_fake_server::Record for Connection {
    fn tls_failed(error: String) -> Self {
        Connection { end: error, ..Connection::default() }
    }
}
