//! The OpenAI connection, the async shell around [`OpenAiSession`]: the WebSocket to
//! `wss://api.openai.com/v1/realtime?model=…` with `Authorization: Bearer <key>` (TLS,
//! the upgrade and its errors are [`crate::ws`]'s), frames capped at
//! [`MAX_EVENT_BYTES`], the per-call task that moves events between the call, the socket
//! and the state machine (renewing the session before OpenAI's 60-minute cap), and
//! [`check_key`].

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use super::config::OpenAiConfig;
use super::messages::{append_json, append_json_len};
use super::session::{Closed, OpenAiSession, Output, State, MAX_APPEND_BYTES, MAX_EVENT_BYTES, PROVIDER};
use crate::provider::{AgentEvent, AgentIo, AudioFormat, CallFacts, CallInput, Role, SessionEnd};
use crate::tools::{start_tool, tool_finished, transfer_answer, PendingTransfer, ToolResult};
use crate::ws::{self, install_crypto_provider, now, sleep_until, AudioOut, Endpoint, Handshake, Step, Ws};
use crate::AgentError;

/// The OpenAI end of a connection, for its errors.
const ENDPOINT: Endpoint = Endpoint { provider: PROVIDER, label: "OpenAI", error_header: None };

/// Open the WebSocket with `Authorization: Bearer <key>` and no `OpenAI-Beta` header (the
/// GA shape). Frames over [`MAX_EVENT_BYTES`] are refused by tungstenite itself.
async fn connect(config: &OpenAiConfig, tls: &Arc<rustls::ClientConfig>) -> Result<Ws, AgentError> {
    let auth = format!("Bearer {}", config.api_key.trim());
    ws::connect(ENDPOINT, &config.request_url(), &auth, tls, MAX_EVENT_BYTES).await
}

type Renewal = tokio::task::JoinHandle<Result<(Ws, OpenAiSession), AgentError>>;

/// The session task: connect, then shuttle events between the call, the socket and the
/// state machine until one side ends.
pub(super) async fn run(
    config: Arc<OpenAiConfig>,
    tls: Arc<rustls::ClientConfig>,
    call: CallFacts,
    mut io: AgentIo,
) {
    let started = OpenAiSession::new(now(), call.format, &config, None);
    let connected = match started {
        Ok(session) => connect(&config, &tls).await.map(|ws| (ws, session)),
        Err(e) => Err(e),
    };
    let (mut ws, mut session) = match connected {
        Ok(pair) => pair,
        Err(error) => {
            tracing::warn!(%error, "OpenAI agent could not start");
            let _ = io.send(AgentEvent::Ended(SessionEnd::Failed(error))).await;
            return;
        }
    };
    let (tool_tx, mut tool_rx) = mpsc::channel::<ToolResult>(8);
    // A fresh session being opened to continue the call past OpenAI's 60-minute cap.
    let mut renewal: Option<Renewal> = None;
    // The transfer the call is carrying out: its function call waits for the outcome.
    let mut transfer: Option<PendingTransfer> = None;
    let mut call_open = true;
    // OpenAI closed this socket (while a renewal is being opened): read it no more.
    let mut socket_open = true;
    let mut audio_out = AudioOut::new(append_json_len(MAX_APPEND_BYTES));
    loop {
        // Act on everything the state machine decided.
        while let Some(output) = session.poll_output() {
            match output {
                Output::SendText(text) => send(&mut ws, &mut session, Message::text(text)).await,
                Output::SendAudio(batch) => {
                    // tungstenite copies the payload and drops it within `send`: the next
                    // append reuses its storage.
                    let audio = batch.as_bytes();
                    let payload = audio_out.build(append_json_len(audio.len()), |b| append_json(audio, b));
                    if let Ok(text) = Utf8Bytes::try_from(payload) {
                        send(&mut ws, &mut session, Message::Text(text)).await;
                    }
                }
                Output::Event(event) => {
                    let last = matches!(event, AgentEvent::Ended(_));
                    if io.send(event).await.is_err() {
                        call_open = false;
                        session.call_ended();
                    }
                    if last {
                        let _ = ws.close(None).await;
                        log_counts(&session, &io);
                        abort(&mut renewal);
                        return;
                    }
                }
                Output::RunTool(tool) => {
                    if let Some((id, name, content)) =
                        start_tool(&config.functions, &tls, tool, &io, &tool_tx, &mut transfer).await
                    {
                        session.handle_tool_result(now(), id, name, content);
                    }
                }
                Output::Close => {
                    let _ = ws.close(None).await;
                    log_counts(&session, &io);
                    abort(&mut renewal);
                    return;
                }
                Output::Renew => {
                    let seed = session.renewal_seed();
                    renewal = Some(spawn_open(&config, &tls, call.format, Some(seed)));
                }
                Output::Reconnect => {
                    // The same session a renewal opens; an attempt still under way is dropped.
                    abort(&mut renewal);
                    let seed = session.reconnect_seed();
                    renewal = Some(spawn_open(&config, &tls, call.format, seed));
                }
            }
        }
        if !call_open {
            let _ = ws.close(None).await;
            abort(&mut renewal);
            return;
        }
        let deadline = session.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            frame = ws.next(), if socket_open => on_frame(&mut session, frame, &mut socket_open),
            input = io.recv() => match input {
                Some(CallInput::Audio(frame)) => session.handle_call_audio(now(), &frame),
                Some(CallInput::PlaybackFlushed { played_samples }) => {
                    session.handle_playback_flushed(now(), played_samples);
                }
                Some(CallInput::Digit(digit)) => session.handle_digit(now(), digit),
                Some(CallInput::TransferResult(outcome)) => {
                    if let Some((id, name, content)) = transfer_answer(&mut transfer, outcome) {
                        session.handle_tool_result(now(), id, name, content);
                    }
                }
                // OpenAI's playback marks are its truncation, from PlaybackFlushed.
                Some(CallInput::MarkPlayed { .. }) => {}
                Some(CallInput::CallEnded) | None => session.call_ended(),
            },
            Some((id, name, content)) = tool_rx.recv() => {
                tool_finished(&io, &name, &content).await;
                session.handle_tool_result(now(), id, name, content);
            }
            opened = ws::join_renewal(PROVIDER, &mut renewal) => match opened {
                Ok((new_ws, mut new_session)) => {
                    // Lines said while it was being opened go over too, and the call's
                    // count of agent audio.
                    new_session.continue_from(&session);
                    if !session.reconnecting() {
                        tracing::info!(
                            session = new_session.session_id().unwrap_or_default(),
                            lines = new_session.history().count(),
                            "OpenAI session renewed: the call goes on with its history"
                        );
                    }
                    new_session.take_over(now(), &session);
                    if socket_open {
                        let _ = ws.close(None).await;
                    }
                    log_counts(&session, &io);
                    ws = new_ws;
                    session = new_session;
                    socket_open = true;
                }
                Err(e) if session.reconnecting() => session.reconnect_failed(now(), &e),
                Err(e) => session.renew_failed(now(), &e.to_string()),
            },
            _ = sleep_until(deadline) => session.handle_timeout(now()),
        }
    }
}

/// Open a session seeded with `seed` in a task of its own (a renewal or a reconnect
/// attempt), so the call goes on meanwhile.
fn spawn_open(
    config: &Arc<OpenAiConfig>,
    tls: &Arc<rustls::ClientConfig>,
    format: AudioFormat,
    seed: Option<Vec<(Role, String)>>,
) -> Renewal {
    let (config, tls) = (Arc::clone(config), Arc::clone(tls));
    tokio::spawn(async move { open_streaming(&config, &tls, format, seed).await })
}

/// Stop a session being opened that is no longer wanted.
fn abort(task: &mut Option<Renewal>) {
    if let Some(t) = task.take() {
        t.abort();
    }
}

/// Send one frame; a failed write is the connection closing.
async fn send(ws: &mut Ws, session: &mut OpenAiSession, message: Message) {
    if let Err(e) = ws.send(message).await {
        session.handle_closed(now(), closed(e));
    }
}

fn closed(error: tungstenite::Error) -> Closed {
    match error {
        tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, .. }) => Closed::TooLarge(size),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => Closed::Dropped,
        other => Closed::Broken(other.to_string()),
    }
}

/// One frame (or the end) from OpenAI's socket, into the session.
fn on_frame(
    session: &mut OpenAiSession,
    frame: Option<Result<Message, tungstenite::Error>>,
    open: &mut bool,
) {
    match frame {
        Some(Ok(Message::Text(text))) => session.handle_text(now(), text.as_str()),
        Some(Ok(Message::Close(frame))) => {
            *open = false;
            let closed = match frame {
                Some(f) => Closed::Frame { code: u16::from(f.code), reason: f.reason.as_str().to_owned() },
                None => Closed::Frame { code: 1005, reason: String::new() },
            };
            session.handle_closed(now(), closed);
        }
        Some(Ok(Message::Binary(bytes))) => {
            tracing::debug!(len = bytes.len(), "a binary frame from OpenAI, which sends only JSON: ignored");
        }
        Some(Ok(_)) => {} // ping/pong: tungstenite answers pings itself
        Some(Err(e)) => {
            *open = false;
            session.handle_closed(now(), closed(e));
        }
        None => {
            *open = false;
            session.handle_closed(now(), Closed::Dropped);
        }
    }
}

fn log_counts(session: &OpenAiSession, io: &AgentIo) {
    let c = session.counts();
    let skipped = io.stats().input_frames_dropped();
    tracing::debug!(
        frames_sent = c.frames_sent,
        frames_dropped_early = c.frames_dropped,
        appends = c.appends,
        skipped,
        stale_deltas = c.stale_deltas,
        malformed = c.malformed,
        unknown = c.unknown,
        errors = c.errors,
        "OpenAI session counts"
    );
}

/// `voice-ua check --agent`: connect, send the `session.update` of a PCMU call, wait for
/// `session.updated`, close (no greeting: nothing is billed). Returns OpenAI's session id.
pub async fn check_key(config: &OpenAiConfig) -> Result<String, AgentError> {
    install_crypto_provider();
    ws::check_url(PROVIDER, &config.request_url())?;
    let tls = Arc::new(ws::tls_config(PROVIDER, config.extra_ca_file.as_ref())?);
    let quiet = OpenAiConfig { greeting: None, ..config.clone() };
    let (mut ws, session) = open_streaming(&quiet, &tls, AudioFormat::Ulaw8k, None).await?;
    let id = session.session_id().unwrap_or_default().to_owned();
    let _ = ws.close(None).await;
    Ok(id)
}

/// Connect and run the handshake (`session.update`, `session.updated`, then the seed's
/// items): a socket and a session that is streaming. Events other than the handshake's
/// are dropped (no audio flows yet).
async fn open_streaming(
    config: &OpenAiConfig,
    tls: &Arc<rustls::ClientConfig>,
    format: AudioFormat,
    seed: Option<Vec<(Role, String)>>,
) -> Result<(Ws, OpenAiSession), AgentError> {
    let session = OpenAiSession::new(now(), format, config, seed)?;
    ws::handshake(connect(config, tls).await?, session).await
}

impl Handshake for OpenAiSession {
    fn next_step(&mut self) -> Option<Step> {
        self.poll_output().map(Output::handshake_step)
    }

    fn streaming(&self) -> bool {
        self.state() == State::Streaming
    }

    fn poll_timeout(&self) -> Option<std::time::Instant> {
        OpenAiSession::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: std::time::Instant) {
        OpenAiSession::handle_timeout(self, now);
    }

    fn on_frame(&mut self, frame: Option<Result<Message, tungstenite::Error>>, open: &mut bool) {
        on_frame(self, frame, open);
    }

    fn on_send_error(&mut self, error: tungstenite::Error) {
        self.handle_closed(now(), closed(error));
    }
}
