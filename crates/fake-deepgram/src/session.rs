//! One fake session: the WebSocket upgrade with its key check, the strict protocol
//! checks, the script run, and the [`Record`] of what the client sent.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use voice_ua_agent::deepgram::messages::{
    AudioSettings, ClientMessage, ConversationRole, FunctionCall, ServerMessage,
};
use voice_ua_agent::echo::level_dbfs;
use voice_ua_agent::AudioFormat;

use crate::{tone, FakeConfig, Record, Step, AGENT_PATH, BAD_KEY_TEXT};

/// What the script is waiting for.
#[derive(Debug)]
enum Wait {
    Nothing,
    Audio { remaining: usize, min_dbfs: Option<f32> },
    Response { id: String, name: String },
    Until(Instant),
}

struct Conn<S> {
    ws: WebSocketStream<S>,
    record: Record,
    format: AudioFormat,
}

/// How long the fake waits for the client's Close after its own.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(2);

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn send(&mut self, message: &ServerMessage) -> bool {
        if matches!(message, ServerMessage::UserStartedSpeaking) {
            self.record.barge_ins.push(std::time::Instant::now());
        }
        self.ws.send(Message::text(message.to_json())).await.is_ok()
    }

    /// Send an Error and close normally.
    async fn fail(&mut self, code: &str, description: &str) {
        self.record.errors_sent.push(code.to_owned());
        let error = ServerMessage::Error { code: code.into(), description: description.into() };
        let _ = self.send(&error).await;
        let _ = self.ws.close(None).await;
        // A normal close, as a real server does it: read on until the client's Close.
        // Dropping a socket with the caller's audio still unread makes the kernel send a
        // reset, which can overtake the Error on its way to the client.
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
            while let Some(Ok(message)) = self.ws.next().await {
                if message.is_close() {
                    break;
                }
            }
        })
        .await;
        self.record.end = format!("error {code}");
    }
}

pub(crate) async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    config: &FakeConfig,
    n: u32,
) -> Record {
    let mut auth = None;
    let mut refused = None;
    let expected = format!("Token {}", config.api_key);
    // The signature tungstenite's `Callback` wants; its error type is not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        auth = request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let refused_from = config.refuse_from.filter(|(from, _)| n >= *from);
        let (status, text) = if request.uri().path() != AGENT_PATH {
            (StatusCode::NOT_FOUND, "NOT_FOUND: no such endpoint")
        } else if auth.as_deref() != Some(expected.as_str()) {
            (StatusCode::UNAUTHORIZED, BAD_KEY_TEXT)
        } else if let Some((_, status)) = refused_from {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let text = if status == StatusCode::UNAUTHORIZED {
                BAD_KEY_TEXT
            } else {
                "SERVICE_UNAVAILABLE: try again"
            };
            (status, text)
        } else {
            return Ok(response);
        };
        refused = Some(status.as_u16());
        let mut error = ErrorResponse::new(Some(text.to_owned()));
        *error.status_mut() = status;
        if let Ok(value) = text.parse() {
            error.headers_mut().insert("dg-error", value);
        }
        Err(error)
    };
    let ws = match tokio_tungstenite::accept_hdr_async(stream, callback).await {
        Ok(ws) => ws,
        Err(e) => {
            return Record {
                connection: n,
                authorization: auth,
                refused,
                end: format!("upgrade refused: {e}"),
                ..Record::default()
            };
        }
    };
    let record = Record { connection: n, authorization: auth, ..Record::default() };
    let mut conn = Conn { ws, record, format: AudioFormat::Ulaw8k };
    run_session(&mut conn, config, n).await;
    conn.record
}

async fn run_session<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut Conn<S>, config: &FakeConfig, n: u32) {
    if !conn.send(&ServerMessage::Welcome { request_id: format!("fake-request-{n}") }).await {
        conn.record.end = "client gone before Welcome".into();
        return;
    }
    let mut applied = false;
    let mut applied_at: Option<Instant> = None;
    let mut last_client = Instant::now();
    let mut step = 0;
    let mut wait = Wait::Nothing;
    let script = config.script_of(n);
    loop {
        if applied && n <= config.close_after_handshake {
            // Read a moment first, so that the client has SettingsApplied before the drop.
            let _ = tokio::time::timeout(Duration::from_millis(100), async {
                while let Some(Ok(_)) = conn.ws.next().await {}
            })
            .await;
            conn.record.end = "closed abruptly after the handshake".into();
            return;
        }
        // Run the script while nothing blocks it.
        loop {
            if !applied {
                break;
            }
            let ready = match &wait {
                Wait::Nothing => true,
                Wait::Audio { remaining, .. } => *remaining == 0,
                Wait::Response { .. } => false,
                Wait::Until(t) => Instant::now() >= *t,
            };
            if !ready {
                break;
            }
            let Some(next) = script.get(step).cloned() else {
                conn.record.script_done = true;
                break;
            };
            step += 1;
            wait = Wait::Nothing;
            match run_step(conn, next).await {
                Flow::Continue => {}
                Flow::Wait(w) => wait = w,
                Flow::Stop => return,
            }
            if script.len() == step {
                conn.record.script_done = true;
            }
        }
        let idle_at = last_client + config.idle_timeout;
        let timer = match (&wait, applied_at) {
            (_, Some(t)) => Some(t),
            (Wait::Until(t), None) => Some(*t),
            _ => None,
        };
        tokio::select! {
            frame = conn.ws.next() => {
                last_client = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        conn.record.texts.push(text.to_string());
                        let message = match ClientMessage::parse(text.as_str()) {
                            Ok(m) => m,
                            Err(e) => {
                                conn.fail("UNPARSABLE_CLIENT_MESSAGE", &format!("cannot parse the client message: {e}")).await;
                                return;
                            }
                        };
                        match message {
                            ClientMessage::Settings(settings) => {
                                if conn.record.settings.is_some() {
                                    conn.fail("SETTINGS_ALREADY_APPLIED", "Settings can only be sent once per session").await;
                                    return;
                                }
                                let input = AudioSettings::call_format(settings.audio.input.encoding, settings.audio.input.sample_rate);
                                let output = AudioSettings::call_format(settings.audio.output.encoding, settings.audio.output.sample_rate);
                                let (Some(_), Some(output)) = (input, output) else {
                                    conn.fail("INVALID_SETTINGS", "audio formats not supported by this fake").await;
                                    return;
                                };
                                let listen = &settings.agent.listen.provider;
                                if listen.is_flux() && (listen.model.is_none() || listen.smart_format.is_some()) {
                                    conn.fail("INVALID_SETTINGS", "a v2 (Flux) listen provider needs a model and takes no smart_format").await;
                                    return;
                                }
                                conn.format = output;
                                conn.record.settings = Some(*settings);
                                if config.settings_applied_delay.is_zero() {
                                    applied = conn.send(&ServerMessage::SettingsApplied).await;
                                } else {
                                    applied_at = Some(Instant::now() + config.settings_applied_delay);
                                }
                            }
                            _ if conn.record.settings.is_none() => {
                                conn.fail("NON_SETTINGS_MESSAGE_BEFORE_SETTINGS", "the first message must be Settings").await;
                                return;
                            }
                            ClientMessage::KeepAlive => conn.record.keepalives += 1,
                            ClientMessage::InjectAgentMessage { message, behavior } => {
                                conn.record.injected_agent.push((message.clone(), behavior, std::time::Instant::now()));
                                if config.refuse_injections && !conn.send(&ServerMessage::InjectionRefused { message }).await {
                                    conn.record.end = "client gone".into();
                                    return;
                                }
                            }
                            ClientMessage::InjectUserMessage { content } => conn.record.injected_user.push(content),
                            ClientMessage::ForceEndTurn => {
                                conn.record.force_end_turns += 1;
                                let flux = conn.record.settings.as_ref().is_some_and(|s| s.agent.listen.provider.is_flux());
                                if !flux {
                                    let code = "FORCE_END_TURN_UNSUPPORTED";
                                    conn.record.warnings_sent.push(code.into());
                                    let warning = ServerMessage::Warning { code: code.into(), description: "ForceEndTurn needs a Flux listen provider".into() };
                                    if !conn.send(&warning).await {
                                        conn.record.end = "client gone".into();
                                        return;
                                    }
                                }
                            }
                            ClientMessage::FunctionCallResponse(response) => {
                                if let Wait::Response { id, name } = &wait {
                                    if response.id.as_deref() == Some(id.as_str()) {
                                        if &response.name != name {
                                            conn.record.violations.push(format!("FunctionCallResponse {id} named {:?}, expected {name:?}", response.name));
                                        }
                                        wait = Wait::Nothing;
                                    } else {
                                        conn.record.violations.push(format!("FunctionCallResponse with id {:?}, expected {id:?}", response.id));
                                    }
                                } else {
                                    conn.record.violations.push("FunctionCallResponse nobody asked for".into());
                                }
                                conn.record.function_responses.push(response);
                            }
                            _ => {}
                        }
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        if conn.record.settings.is_none() {
                            conn.fail("NON_SETTINGS_MESSAGE_BEFORE_SETTINGS", "audio arrived before Settings").await;
                            return;
                        }
                        if !applied {
                            conn.fail("AUDIO_BEFORE_SETTINGS_APPLIED", "audio arrived before SettingsApplied").await;
                            return;
                        }
                        if bytes.is_empty() {
                            conn.record.violations.push("empty binary frame".into());
                        }
                        conn.record.audio_frames += 1;
                        conn.record.audio_bytes += bytes.len();
                        if let Wait::Audio { remaining, min_dbfs } = &mut wait {
                            let loud = min_dbfs.is_none_or(|min| level_dbfs(conn.format, &bytes) >= min);
                            if loud && *remaining > 0 {
                                *remaining -= 1;
                            }
                        }
                    }
                    Some(Ok(Message::Close(_))) => {
                        conn.record.end = "client closed".into();
                        return;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        conn.record.end = format!("client broke the connection: {e}");
                        return;
                    }
                    None => {
                        conn.record.end = "client dropped the connection".into();
                        return;
                    }
                }
            }
            _ = tokio::time::sleep_until(idle_at) => {
                conn.fail("CLIENT_MESSAGE_TIMEOUT", "We waited too long for a websocket message. Please ensure that you're sending binary messages containing user speech.").await;
                return;
            }
            _ = sleep_opt(timer) => {
                if applied_at.is_some_and(|t| Instant::now() >= t) {
                    applied_at = None;
                    applied = conn.send(&ServerMessage::SettingsApplied).await;
                }
            }
        }
    }
}

async fn sleep_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

enum Flow {
    Continue,
    Wait(Wait),
    Stop,
}

async fn run_step<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut Conn<S>, step: Step) -> Flow {
    let ok = match step {
        Step::Speak { text, ms, done } => {
            let mut ok = conn
                .send(&ServerMessage::ConversationText { role: ConversationRole::Assistant, content: text })
                .await;
            let started = ServerMessage::AgentStartedSpeaking {
                total_latency: Some(0.8),
                tts_latency: Some(0.2),
                ttt_latency: Some(0.5),
            };
            ok &= conn.send(&started).await;
            let audio = tone(conn.format, ms);
            let per_frame = conn.format.bytes_per_second() / 10;
            for chunk in audio.chunks(per_frame.max(1)) {
                ok &= conn.ws.send(Message::binary(chunk.to_vec())).await.is_ok();
            }
            if done {
                ok &= conn.send(&ServerMessage::AgentAudioDone).await;
            }
            ok
        }
        Step::WaitAudio { frames, min_dbfs } => {
            return Flow::Wait(Wait::Audio { remaining: frames, min_dbfs })
        }
        Step::UserSays(text) => {
            conn.send(&ServerMessage::UserStartedSpeaking).await
                && conn
                    .send(&ServerMessage::ConversationText { role: ConversationRole::User, content: text })
                    .await
        }
        Step::CallFunction { id, name, arguments } => {
            let call = FunctionCall { id: id.clone(), name: name.clone(), arguments, client_side: true };
            if !conn.send(&ServerMessage::FunctionCallRequest { functions: vec![call] }).await {
                return Flow::Stop;
            }
            return Flow::Wait(Wait::Response { id, name });
        }
        Step::Send(message) => conn.send(&message).await,
        Step::SendRaw(text) => conn.ws.send(Message::text(text)).await.is_ok(),
        Step::Pause(d) => return Flow::Wait(Wait::Until(Instant::now() + d)),
        Step::Error { code, description } => {
            conn.fail(&code, &description).await;
            return Flow::Stop;
        }
        Step::CloseAbruptly => {
            conn.record.end = "closed abruptly by the script".into();
            return Flow::Stop;
        }
        Step::SpeakThenDrop { text, ms, cut_ms } => {
            let mut ok = conn
                .send(&ServerMessage::ConversationText { role: ConversationRole::Assistant, content: text })
                .await;
            ok &= conn
                .send(&ServerMessage::AgentStartedSpeaking {
                    total_latency: Some(0.8),
                    tts_latency: Some(0.2),
                    ttt_latency: Some(0.5),
                })
                .await;
            let audio = tone(conn.format, ms.min(cut_ms));
            let per_frame = conn.format.bytes_per_second() / 10;
            for chunk in audio.chunks(per_frame.max(1)) {
                ok &= conn.ws.send(Message::binary(chunk.to_vec())).await.is_ok();
            }
            conn.record.end = if ok {
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
        conn.record.end = "client gone while the script ran".into();
        Flow::Stop
    }
}
