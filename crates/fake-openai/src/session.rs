//! One fake connection: the upgrade with its key, path and beta-header checks, the strict
//! protocol checks, the script (or the echo), and the [`Record`] of what the client sent.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use voice_ua_agent::echo::level_dbfs;
use voice_ua_agent::openai::messages::{
    ClientEvent, ContentPart, ErrorDetail, InputTokenDetails, Item, OutputTokenDetails, ResponseInfo,
    ServerEvent, SessionConfig, StatusDetails, UsageInfo,
};
use voice_ua_agent::AudioFormat;
use voice_ua_fake_server::Conn;

use crate::{tone_hz, FakeConfig, Record, Step, Truncation, BAD_KEY_MESSAGE, REALTIME_PATH};

/// How long the fake waits for the client's Close after its own.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(2);
/// Echo mode: a frame at least this loud is speech…
const ECHO_LOUD_DBFS: f32 = -35.0;
/// …this many loud frames in a row start an utterance…
const ECHO_START_FRAMES: u32 = 3;
/// …this many quiet ones end it…
const ECHO_END_FRAMES: u32 = 25;
/// …and at most this much of it is echoed (10 s of G.711).
const ECHO_MAX_BYTES: usize = 80_000;

/// What the script is waiting for.
#[derive(Debug)]
enum Wait {
    Nothing,
    Audio { remaining: usize, min_dbfs: Option<f32> },
    ResponseCreate,
    FunctionOutput { call_id: String },
    Truncate { seen: usize },
    Until(Instant),
}

/// What the fake knows of an item of this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An assistant message with this many bytes of audio.
    AssistantAudio { bytes: usize },
    /// A function call.
    FunctionCall,
    /// Anything else (user and client items).
    Other,
}

/// A spoken response still in progress.
#[derive(Debug)]
struct Active {
    response: String,
    item: String,
    text: String,
    ms: u32,
}

#[derive(Debug, Default)]
struct Echo {
    loud_run: u32,
    quiet_run: u32,
    speaking: bool,
    audio: Vec<u8>,
    turns: u32,
}

enum Flow {
    Continue,
    Wait(Wait),
    Stop,
}

struct Fake<'a> {
    ws: WebSocketStream<Conn>,
    config: &'a FakeConfig,
    record: Record,
    n: u32,
    format: AudioFormat,
    configured: bool,
    next_id: u32,
    events: u32,
    items: HashMap<String, Kind>,
    active: Option<Active>,
    /// The response the caller's speech cancelled last, and its item.
    cancelled: Option<(String, String)>,
    /// `response.create`s no step has consumed yet.
    response_creates: usize,
    /// Caller audio appended, ms.
    appended_ms: u64,
    echo: Echo,
}

pub(crate) async fn connection(stream: Conn, config: &FakeConfig, n: u32) -> Record {
    let mut record = Record { connection: n, ..Record::default() };
    let expected = format!("Bearer {}", config.api_key);
    // The signature tungstenite's `Callback` wants; its error type is not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let header =
            |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        record.authorization = header("authorization");
        record.beta_header = header("openai-beta");
        record.request = request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
        let has_model = request.uri().query().is_some_and(|q| q.split('&').any(|p| p.starts_with("model=")));
        let (status, code, message) = if request.uri().path() != REALTIME_PATH {
            (StatusCode::NOT_FOUND, "not_found", "Invalid URL")
        } else if record.authorization.as_deref() != Some(expected.as_str()) {
            (StatusCode::UNAUTHORIZED, "invalid_api_key", BAD_KEY_MESSAGE)
        } else if !has_model {
            (StatusCode::BAD_REQUEST, "missing_model", "Missing required parameter: 'model'.")
        } else if let Some((_, status)) = config.refuse_from.filter(|(from, _)| n >= *from) {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            if status == StatusCode::UNAUTHORIZED {
                (status, "invalid_api_key", BAD_KEY_MESSAGE)
            } else {
                (status, "server_error", "The server is overloaded; try again.")
            }
        } else {
            return Ok(response);
        };
        record.refused = Some(status.as_u16());
        let body = json!({"error": {"message": message, "type": "invalid_request_error", "code": code}});
        let mut error = ErrorResponse::new(Some(body.to_string()));
        *error.status_mut() = status;
        Err(error)
    };
    let ws = match tokio_tungstenite::accept_hdr_async(stream, callback).await {
        Ok(ws) => ws,
        Err(e) => {
            record.end = format!("upgrade refused: {e}");
            return record;
        }
    };
    let mut fake = Fake {
        ws,
        config,
        record,
        n,
        format: AudioFormat::Ulaw8k,
        configured: false,
        next_id: 0,
        events: 0,
        items: HashMap::new(),
        active: None,
        cancelled: None,
        response_creates: 0,
        appended_ms: 0,
        echo: Echo::default(),
    };
    fake.run().await;
    fake.record
}

impl Fake<'_> {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_{}", self.next_id)
    }

    /// Send one server event with an `event_id`.
    async fn send(&mut self, event: &ServerEvent) -> bool {
        self.events += 1;
        let mut value = serde_json::to_value(event).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert("event_id".into(), json!(format!("event_{}_{}", self.n, self.events)));
        }
        self.ws.send(Message::text(value.to_string())).await.is_ok()
    }

    /// An `error` event, as the real server sends one; the session goes on.
    async fn error(
        &mut self,
        kind: &str,
        code: &str,
        message: String,
        param: Option<&str>,
        event_id: Option<String>,
    ) -> bool {
        self.record.errors_sent.push(code.to_owned());
        let error = ErrorDetail {
            kind: kind.into(),
            code: (!code.is_empty()).then(|| code.to_owned()),
            message,
            param: param.map(str::to_owned),
            event_id,
        };
        self.send(&ServerEvent::Error { error }).await
    }

    /// A client mistake: recorded, and answered with an `invalid_request_error`.
    async fn refuse(
        &mut self,
        code: &str,
        message: String,
        param: Option<&str>,
        event_id: Option<String>,
    ) -> bool {
        self.record.violations.push(format!("{code}: {message}"));
        self.error("invalid_request_error", code, message, param, event_id).await
    }

    /// Close with `code` and `reason`, then read on until the client's Close (a reset
    /// would overtake what was sent before it).
    async fn close(&mut self, code: u16, reason: &str) {
        self.record.close_sent = Some((code, reason.to_owned()));
        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.to_owned().into() };
        let _ = self.ws.close(Some(frame)).await;
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
            while let Some(Ok(message)) = self.ws.next().await {
                if message.is_close() {
                    break;
                }
            }
        })
        .await;
    }

    async fn run(&mut self) {
        if self.record.beta_header.is_some() {
            let message =
                "The beta Realtime API shape is disabled: remove the OpenAI-Beta header.".to_owned();
            self.error("invalid_request_error", "beta_api_shape_disabled", message, None, None).await;
            self.close(4000, "beta_api_shape_disabled").await;
            self.record.end = "closed: beta header".into();
            return;
        }
        let created = SessionConfig {
            kind: "realtime".into(),
            id: Some(format!("sess_fake_{}", self.n)),
            model: None,
            instructions: None,
            output_modalities: None,
            audio: None,
            tools: None,
            tool_choice: None,
            max_output_tokens: None,
        };
        let created = serde_json::to_value(created).unwrap_or_default();
        if !self.send(&ServerEvent::SessionCreated { session: created }).await {
            self.record.end = "client gone before session.created".into();
            return;
        }
        let mut step = 0;
        let mut wait = Wait::Nothing;
        loop {
            if self.configured && self.n <= self.config.close_after_handshake {
                // Read a moment first, so that the client has session.updated before the drop.
                let _ = tokio::time::timeout(Duration::from_millis(100), async {
                    while let Some(Ok(_)) = self.ws.next().await {}
                })
                .await;
                self.record.end = "closed abruptly after the handshake".into();
                return;
            }
            // Run the script while nothing blocks it.
            while self.configured {
                if let Wait::FunctionOutput { call_id } = &wait {
                    if self.record.function_outputs.iter().any(|(c, _)| c == call_id) {
                        // Answered: now the client must ask the model to go on.
                        wait = Wait::ResponseCreate;
                    }
                }
                let ready = match &wait {
                    Wait::Nothing => true,
                    Wait::Audio { remaining, .. } => *remaining == 0,
                    Wait::ResponseCreate if self.response_creates > 0 => {
                        self.response_creates -= 1;
                        true
                    }
                    Wait::ResponseCreate | Wait::FunctionOutput { .. } => false,
                    Wait::Truncate { seen } => self.record.truncates.len() > *seen,
                    Wait::Until(t) => Instant::now() >= *t,
                };
                if !ready {
                    break;
                }
                let Some(next) = self.config.script_of(self.n).get(step).cloned() else {
                    self.record.script_done = true;
                    break;
                };
                step += 1;
                wait = Wait::Nothing;
                match self.step(next).await {
                    Flow::Continue => {}
                    Flow::Wait(w) => wait = w,
                    Flow::Stop => return,
                }
                if self.config.script_of(self.n).len() == step && matches!(wait, Wait::Nothing) {
                    self.record.script_done = true;
                }
            }
            let until = if let Wait::Until(t) = wait { Some(t) } else { None };
            tokio::select! {
                frame = self.ws.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        if !self.client_event(text.as_str(), &mut wait).await {
                            self.record.end = "client gone while the fake answered".into();
                            return;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        self.record.violations.push("a binary frame (events are JSON text)".into());
                    }
                    Some(Ok(Message::Close(_))) => {
                        self.record.end = "client closed".into();
                        return;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        self.record.end = format!("client broke the connection: {e}");
                        return;
                    }
                    None => {
                        self.record.end = "client dropped the connection".into();
                        return;
                    }
                },
                _ = sleep_opt(until) => {}
            }
        }
    }

    /// One client text frame. False when the client is gone.
    async fn client_event(&mut self, text: &str, wait: &mut Wait) -> bool {
        let event = match ClientEvent::parse(text) {
            Ok(e) => e,
            Err(e) => {
                self.record.texts.push(text.to_owned());
                let (code, param) = match serde_json::from_str::<serde_json::Value>(text) {
                    Ok(v) if v.get("type").and_then(|t| t.as_str()).is_some() => {
                        ("invalid_value", Some("type"))
                    }
                    Ok(_) => ("missing_required_parameter", Some("type")),
                    Err(_) => ("invalid_json", None),
                };
                return self.refuse(code, format!("cannot read the client event: {e}"), param, None).await;
            }
        };
        if let ClientEvent::InputAudioBufferAppend { audio } = &event {
            return self.append(audio, wait).await;
        }
        self.record.texts.push(text.to_owned());
        match event {
            ClientEvent::SessionUpdate { event_id, session } => self.session_update(event_id, *session).await,
            _ if !self.configured => {
                self.refuse(
                    "session_update_required",
                    "send session.update (type realtime) before anything else".into(),
                    None,
                    None,
                )
                .await
            }
            ClientEvent::ConversationItemCreate { item, .. } => self.item_create(item).await,
            ClientEvent::ConversationItemTruncate { item_id, content_index, audio_end_ms } => {
                self.truncate(item_id, content_index, audio_end_ms).await
            }
            ClientEvent::ResponseCreate { response } => {
                if let Some(active) = &self.active {
                    let message = format!(
                        "Conversation already has an active response in progress: {}",
                        active.response
                    );
                    return self
                        .error(
                            "invalid_request_error",
                            "conversation_already_has_active_response",
                            message,
                            None,
                            None,
                        )
                        .await;
                }
                if let Wait::FunctionOutput { call_id } = wait {
                    self.record.violations.push(format!("response.create before the output of {call_id}"));
                }
                self.record.response_creates.push(response);
                self.response_creates += 1;
                true
            }
            ClientEvent::ResponseCancel { .. } => {
                self.record.cancels += 1;
                match self.active.take() {
                    Some(active) => self.cancel(active, "client_cancelled").await,
                    None => {
                        let message = "Cancellation failed: no active response found".to_owned();
                        self.error("invalid_request_error", "response_cancel_not_active", message, None, None)
                            .await
                    }
                }
            }
            _ => true,
        }
    }

    async fn session_update(&mut self, event_id: Option<String>, session: SessionConfig) -> bool {
        if session.kind != "realtime" {
            let message = format!(
                "Invalid value: '{}'. Supported values are: 'realtime' and 'transcription'.",
                session.kind
            );
            return self.refuse("invalid_value", message, Some("session.type"), event_id).await;
        }
        let audio = session.audio.as_ref();
        let input = audio.and_then(|a| a.input.as_ref()).and_then(|i| i.format);
        let output = audio.and_then(|a| a.output.as_ref()).and_then(|o| o.format);
        let format = match (input, output) {
            (Some(i), Some(o)) if i.call_format().is_some() => o.call_format(),
            _ => None,
        };
        let Some(format) = format else {
            let message = format!(
                "this fake speaks G.711 only: audio.input.format {input:?}, audio.output.format {output:?}"
            );
            return self.refuse("invalid_value", message, Some("session.audio"), event_id).await;
        };
        self.format = format;
        self.configured = true;
        self.record.session_updates += 1;
        if self.record.session.is_none() {
            self.record.session = Some(session.clone());
        }
        let mut updated = session;
        updated.id = Some(format!("sess_fake_{}", self.n));
        let updated = serde_json::to_value(updated).unwrap_or_default();
        self.send(&ServerEvent::SessionUpdated { session: updated }).await
    }

    async fn append(&mut self, audio: &str, wait: &mut Wait) -> bool {
        if !self.configured {
            self.record.violations.push("input_audio_buffer.append before session.update".into());
            return self
                .refuse("session_update_required", "send session.update before audio".into(), None, None)
                .await;
        }
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(audio) else {
            return self.refuse("invalid_value", "the audio is not base64".into(), Some("audio"), None).await;
        };
        self.record.appends += 1;
        self.record.audio_bytes += bytes.len();
        let frame = self.format.frame_bytes();
        self.appended_ms += (bytes.len() / self.format.bytes_per_sample()) as u64 * 1000
            / u64::from(self.format.sample_rate());
        for chunk in bytes.chunks(frame) {
            let level = level_dbfs(self.format, chunk);
            if let Wait::Audio { remaining, min_dbfs } = wait {
                if min_dbfs.is_none_or(|min| level >= min) && *remaining > 0 {
                    *remaining -= 1;
                }
            }
            if self.config.echo && self.record.script_done && !self.echo_frame(chunk, level).await {
                return false;
            }
        }
        true
    }

    async fn item_create(&mut self, item: Item) -> bool {
        self.record.items.push(item.clone());
        let problem = match (item.kind.as_str(), item.role.as_deref()) {
            ("function_call_output", _) => {
                let call = item.call_id.clone().unwrap_or_default();
                if self.items.get(&format!("call:{call}")) != Some(&Kind::FunctionCall) {
                    Some(format!("no function call with call_id {call:?} in this conversation"))
                } else {
                    self.record.function_outputs.push((call, item.output.clone().unwrap_or_default()));
                    None
                }
            }
            ("message", Some(role)) => {
                let want = match role {
                    "user" | "system" => "input_text",
                    "assistant" => "output_text",
                    _ => "(no such role)",
                };
                let bad = item.content.iter().find(|c| c.kind != want);
                bad.map(|c| {
                    format!("Invalid value: '{}'. A {role} message's text content is '{want}'.", c.kind)
                })
            }
            (kind, _) => Some(format!("cannot create an item of type {kind:?} here")),
        };
        if let Some(message) = problem {
            return self.refuse("invalid_value", message, Some("item"), None).await;
        }
        let id = self.id("item");
        self.items.insert(id.clone(), Kind::Other);
        let mut added = item;
        added.id = Some(id);
        self.send(&ServerEvent::ConversationItemAdded { item: added }).await
    }

    async fn truncate(&mut self, item_id: String, content_index: u32, audio_end_ms: u64) -> bool {
        let bytes_per_ms = (self.format.bytes_per_second() / 1000).max(1);
        let kind = self.items.get(&item_id).copied();
        let item_ms = match kind {
            Some(Kind::AssistantAudio { bytes }) => Some((bytes / bytes_per_ms) as u64),
            _ => None,
        };
        let problem = match (kind, item_ms) {
            (None, _) => Some(format!("Item with item_id not found: {item_id}")),
            (Some(_), None) => Some(format!("Item {item_id} is not an assistant audio message")),
            _ if content_index != 0 => Some(format!("content_index {content_index} is not an audio part")),
            (_, Some(ms)) if audio_end_ms > ms => {
                Some(format!("audio_end_ms ({audio_end_ms}) is longer than the item's audio ({ms} ms)"))
            }
            _ => None,
        };
        self.record.truncates.push(Truncation {
            item_id: item_id.clone(),
            audio_end_ms,
            item_ms,
            accepted: problem.is_none(),
        });
        if let Some(message) = problem {
            return self.refuse("invalid_value", message, Some("audio_end_ms"), None).await;
        }
        self.send(&ServerEvent::ConversationItemTruncated { item_id, content_index, audio_end_ms }).await
    }

    /// The response's `usage`: a plausible split, deterministic.
    fn usage(&self, ms: u32, text: &str) -> UsageInfo {
        let input_audio = self.appended_ms / 100; // 1 token per 100 ms of the caller
        let output_audio = u64::from(ms) / 50; // 1 token per 50 ms of the agent
        let output_text = text.split_whitespace().count() as u64;
        UsageInfo {
            input_tokens: 100 + input_audio,
            output_tokens: output_audio + output_text,
            total_tokens: 100 + input_audio + output_audio + output_text,
            input_token_details: Some(InputTokenDetails {
                text_tokens: 100,
                audio_tokens: input_audio,
                cached_tokens: 0,
                cached_tokens_details: None,
            }),
            output_token_details: Some(OutputTokenDetails {
                text_tokens: output_text,
                audio_tokens: output_audio,
            }),
        }
    }

    fn response(
        &self,
        id: &str,
        status: &str,
        reason: Option<&str>,
        output: Vec<Item>,
        usage: Option<UsageInfo>,
    ) -> ResponseInfo {
        ResponseInfo {
            id: Some(id.into()),
            status: Some(status.into()),
            status_details: reason.map(|r| StatusDetails {
                kind: Some(status.into()),
                reason: Some(r.into()),
                error: None,
            }),
            output,
            usage,
        }
    }

    /// A spoken reply of `audio`; finished (`response.done`) unless `finish` is false.
    async fn speak(&mut self, text: String, audio: &[u8], finish: bool) -> bool {
        let response = self.id("resp");
        let item = self.id("item");
        let ms = (audio.len() / (self.format.bytes_per_second() / 1000).max(1)) as u32;
        let mut ok = self
            .send(&ServerEvent::ResponseCreated {
                response: self.response(&response, "in_progress", None, Vec::new(), None),
            })
            .await;
        let mut added = Item::assistant_audio(&item);
        added.status = Some("in_progress".into());
        ok &= self
            .send(&ServerEvent::OutputItemAdded {
                response_id: response.clone(),
                output_index: 0,
                item: added,
            })
            .await;
        self.items.insert(item.clone(), Kind::AssistantAudio { bytes: 0 });
        let per_delta = (self.format.bytes_per_second() / 1000 * self.config.delta_ms as usize).max(1);
        for chunk in audio.chunks(per_delta) {
            let delta = ServerEvent::OutputAudioDelta {
                response_id: response.clone(),
                item_id: item.clone(),
                output_index: 0,
                content_index: 0,
                delta: base64::engine::general_purpose::STANDARD.encode(chunk),
            };
            ok &= self.send(&delta).await;
            if let Some(Kind::AssistantAudio { bytes }) = self.items.get_mut(&item) {
                *bytes += chunk.len();
            }
        }
        self.record.spoken.push((item.clone(), u64::from(ms)));
        let active = Active { response, item, text, ms };
        if finish {
            ok &= self.finish(active).await;
        } else {
            self.active = Some(active);
        }
        ok
    }

    /// The rest of a reply: audio done, transcript, item done, `response.done`.
    async fn finish(&mut self, active: Active) -> bool {
        let Active { response, item, text, ms } = active;
        let mut ok = self
            .send(&ServerEvent::OutputAudioDone { response_id: response.clone(), item_id: item.clone() })
            .await;
        ok &= self
            .send(&ServerEvent::OutputAudioTranscriptDone {
                response_id: response.clone(),
                item_id: item.clone(),
                transcript: text.clone(),
            })
            .await;
        let mut done = Item::assistant_audio(&item);
        done.status = Some("completed".into());
        done.content =
            vec![ContentPart { kind: "output_audio".into(), text: None, transcript: Some(text.clone()) }];
        ok &= self
            .send(&ServerEvent::OutputItemDone {
                response_id: response.clone(),
                output_index: 0,
                item: done.clone(),
            })
            .await;
        let usage = self.usage(ms, &text);
        ok & self
            .send(&ServerEvent::ResponseDone {
                response: self.response(&response, "completed", None, vec![done], Some(usage)),
            })
            .await
    }

    /// A response in progress ends cancelled.
    async fn cancel(&mut self, active: Active, reason: &str) -> bool {
        let mut done = Item::assistant_audio(&active.item);
        done.status = Some("incomplete".into());
        let mut ok = self
            .send(&ServerEvent::OutputItemDone {
                response_id: active.response.clone(),
                output_index: 0,
                item: done.clone(),
            })
            .await;
        let usage = self.usage(active.ms, "");
        ok &= self
            .send(&ServerEvent::ResponseDone {
                response: self.response(&active.response, "cancelled", Some(reason), vec![done], Some(usage)),
            })
            .await;
        self.cancelled = Some((active.response, active.item));
        ok
    }

    /// Server VAD hears the caller start: a response in progress is cancelled.
    async fn speech_started(&mut self, item: &str) -> bool {
        let started = ServerEvent::SpeechStarted { audio_start_ms: self.appended_ms, item_id: item.into() };
        self.record.barge_ins.push(std::time::Instant::now());
        let mut ok = self.send(&started).await;
        if let Some(active) = self.active.take() {
            ok &= self.cancel(active, "turn_detected").await;
        }
        ok
    }

    async fn user_says(&mut self, text: String) -> bool {
        let item = self.id("item");
        let mut ok = self.speech_started(&item).await;
        ok &= self
            .send(&ServerEvent::SpeechStopped { audio_end_ms: self.appended_ms, item_id: item.clone() })
            .await;
        let mut user = Item::user_text("");
        user.id = Some(item.clone());
        user.content = vec![ContentPart { kind: "input_audio".into(), text: None, transcript: None }];
        self.items.insert(item.clone(), Kind::Other);
        ok &= self.send(&ServerEvent::ConversationItemAdded { item: user }).await;
        let completed = ServerEvent::InputTranscriptionCompleted {
            item_id: item,
            content_index: 0,
            transcript: text,
            usage: None,
        };
        ok & self.send(&completed).await
    }

    async fn step(&mut self, step: Step) -> Flow {
        let ok = match step {
            Step::Speak { text, ms, hz, finish } => {
                let audio = tone_hz(self.format, ms, hz);
                self.speak(text, &audio, finish).await
            }
            Step::AwaitResponseCreate => return Flow::Wait(Wait::ResponseCreate),
            Step::WaitAudio { frames, min_dbfs } => {
                return Flow::Wait(Wait::Audio { remaining: frames, min_dbfs })
            }
            Step::UserSays(text) => self.user_says(text).await,
            Step::SpeechStarted => {
                let item = self.id("item");
                self.speech_started(&item).await
            }
            Step::StaleDelta { ms } => match self.cancelled.clone() {
                Some((response_id, item_id)) => {
                    let audio = tone_hz(self.format, ms, 440.0);
                    let delta = base64::engine::general_purpose::STANDARD.encode(audio);
                    self.send(&ServerEvent::OutputAudioDelta {
                        response_id,
                        item_id,
                        output_index: 0,
                        content_index: 0,
                        delta,
                    })
                    .await
                }
                None => {
                    self.record.violations.push("script: StaleDelta without a cancelled response".into());
                    true
                }
            },
            Step::AwaitTruncate => return Flow::Wait(Wait::Truncate { seen: self.record.truncates.len() }),
            Step::CallFunction { call_id, name, arguments } => {
                let response = self.id("resp");
                let item = self.id("item");
                self.items.insert(item.clone(), Kind::FunctionCall);
                self.items.insert(format!("call:{call_id}"), Kind::FunctionCall);
                let mut ok = self
                    .send(&ServerEvent::ResponseCreated {
                        response: self.response(&response, "in_progress", None, Vec::new(), None),
                    })
                    .await;
                let call = Item::function_call(&item, &call_id, &name, "");
                ok &= self
                    .send(&ServerEvent::OutputItemAdded {
                        response_id: response.clone(),
                        output_index: 0,
                        item: call,
                    })
                    .await;
                let done = ServerEvent::FunctionCallArgumentsDone {
                    response_id: response.clone(),
                    item_id: item.clone(),
                    call_id: call_id.clone(),
                    name: Some(name.clone()),
                    arguments: arguments.clone(),
                };
                ok &= self.send(&done).await;
                let call = Item::function_call(&item, &call_id, &name, &arguments);
                ok &= self
                    .send(&ServerEvent::OutputItemDone {
                        response_id: response.clone(),
                        output_index: 0,
                        item: call.clone(),
                    })
                    .await;
                let usage = self.usage(0, &arguments);
                ok &= self
                    .send(&ServerEvent::ResponseDone {
                        response: self.response(&response, "completed", None, vec![call], Some(usage)),
                    })
                    .await;
                if !ok {
                    self.record.end = "client gone while the script ran".into();
                    return Flow::Stop;
                }
                // Only a response.create after the output counts.
                self.response_creates = 0;
                return Flow::Wait(Wait::FunctionOutput { call_id });
            }
            Step::Send(event) => self.send(&event).await,
            Step::SendRaw(text) => self.ws.send(Message::text(text)).await.is_ok(),
            Step::Pause(d) => return Flow::Wait(Wait::Until(Instant::now() + d)),
            Step::Error { kind, code, message } => self.error(&kind, &code, message, None, None).await,
            Step::Close { code, reason } => {
                self.close(code, &reason).await;
                self.record.end = format!("closed by the script ({code})");
                return Flow::Stop;
            }
            Step::CloseAbruptly => {
                self.record.end = "closed abruptly by the script".into();
                return Flow::Stop;
            }
            Step::SpeakThenDrop { text, ms, cut_ms } => {
                let audio = tone_hz(self.format, ms.min(cut_ms), 440.0);
                let ok = self.speak(text, &audio, false).await;
                self.active = None;
                self.record.end = if ok {
                    "dropped mid-reply by the script".into()
                } else {
                    "client gone while the script ran".into()
                };
                return Flow::Stop;
            }
        };
        if ok {
            Flow::Continue
        } else {
            self.record.end = "client gone while the script ran".into();
            Flow::Stop
        }
    }

    /// Echo mode, one 20 ms frame: an utterance found by level is answered with itself.
    async fn echo_frame(&mut self, frame: &[u8], level: f32) -> bool {
        let loud = level >= ECHO_LOUD_DBFS;
        let e = &mut self.echo;
        if loud {
            e.loud_run += 1;
            e.quiet_run = 0;
        } else {
            e.quiet_run += 1;
            e.loud_run = 0;
        }
        if !e.speaking {
            if e.loud_run >= ECHO_START_FRAMES {
                e.speaking = true;
                e.audio.clear();
                let item = self.id("item");
                return self.speech_started(&item).await;
            }
            return true;
        }
        if e.audio.len() + frame.len() <= ECHO_MAX_BYTES {
            e.audio.extend_from_slice(frame);
        }
        if e.quiet_run < ECHO_END_FRAMES {
            return true;
        }
        e.speaking = false;
        e.turns += 1;
        let turn = e.turns;
        let audio = std::mem::take(&mut e.audio);
        self.user_says(format!("caller turn {turn}")).await
            && self.speak(format!("echo {turn}"), &audio, true).await
    }
}

async fn sleep_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
