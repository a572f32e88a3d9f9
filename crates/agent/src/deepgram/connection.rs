//! The Deepgram connection, the async shell around [`DeepgramSession`]: the WebSocket
//! (TLS, the handshake and its errors are [`crate::ws`]'s, shared with the other
//! providers), the per-call task that moves frames between the call, the socket and the
//! state machine (renewing the session past Deepgram's cap), and [`check_key`].

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{self, Message};

use super::config::DeepgramConfig;
use super::messages::Settings;
use super::session::{DeepgramSession, Output, State, PROVIDER};
use crate::provider::{AgentEvent, AgentIo, AudioFormat, AudioFrame, CallFacts, CallInput, SessionEnd};
use crate::tools::{start_tool, tool_finished, transfer_answer, PendingTransfer, ToolResult};
use crate::ws::{self, install_crypto_provider, now, sleep_until, AudioOut, Endpoint, Handshake, Step, Ws};
use crate::AgentError;

/// The Deepgram end of a connection, for its errors.
const ENDPOINT: Endpoint = Endpoint { provider: PROVIDER, label: "Deepgram", error_header: Some("dg-error") };

/// Open the WebSocket with `Authorization: Token <key>`. Errors are one line for the log.
async fn connect(config: &DeepgramConfig, tls: &Arc<rustls::ClientConfig>) -> Result<Ws, AgentError> {
    let auth = format!("Token {}", config.api_key.trim());
    ws::connect(ENDPOINT, &config.url, &auth, tls, ws::MAX_MESSAGE_BYTES).await
}

/// The session task: connect, then shuttle frames between the call, the socket and the
/// state machine until one side ends.
pub(super) async fn run(
    config: Arc<DeepgramConfig>,
    tls: Arc<rustls::ClientConfig>,
    call: CallFacts,
    mut io: AgentIo,
) {
    let settings = config.settings_message(call.format);
    let mut session = new_session(&config, call.format, settings);
    let mut ws = match connect(&config, &tls).await {
        Ok(ws) => ws,
        Err(error) => {
            tracing::warn!(%error, "Deepgram agent could not start");
            let _ = io.send(AgentEvent::Ended(SessionEnd::Failed(error))).await;
            return;
        }
    };
    let (tool_tx, mut tool_rx) = mpsc::channel::<ToolResult>(8);
    // A fresh session being opened to continue the call past Deepgram's 2 h cap.
    let mut renewal: Option<Opening> = None;
    // The transfer the call is carrying out: its function call waits for the outcome.
    let mut transfer: Option<PendingTransfer> = None;
    let mut call_open = true;
    // Deepgram's socket has ended (the session reconnects): read it no more.
    let mut socket_open = true;
    let mut audio_out = AudioOut::new(crate::provider::MAX_FRAME_BYTES);
    loop {
        // Act on everything the state machine decided.
        while let Some(output) = session.poll_output() {
            match output {
                Output::SendText(text) => send_text(&mut ws, &mut session, text).await,
                Output::SendAudio(frame) => send_audio(&mut ws, &mut session, &mut audio_out, &frame).await,
                Output::Event(event) => {
                    let last = matches!(event, AgentEvent::Ended(_));
                    if io.send(event).await.is_err() {
                        call_open = false;
                        session.call_ended();
                    }
                    if last {
                        let _ = ws.close(None).await;
                        log_drops(&session, &io);
                        abort(&mut renewal);
                        return;
                    }
                }
                Output::RunTool(tool) => {
                    if let Some(result) =
                        start_tool(&config.settings.functions, &tls, tool, &io, &tool_tx, &mut transfer).await
                    {
                        session.handle_tool_result(now(), result.0, result.1, result.2);
                    }
                }
                Output::Close => {
                    let _ = ws.close(None).await;
                    log_drops(&session, &io);
                    abort(&mut renewal);
                    return;
                }
                Output::Renew => {
                    let settings = session.renewal_settings(config.settings_message(call.format));
                    renewal = Some(spawn_open(&config, &tls, call.format, settings));
                }
                Output::Reconnect => {
                    // The same session a renewal opens; an attempt still under way is dropped.
                    abort(&mut renewal);
                    let settings = session.reconnect_settings(config.settings_message(call.format));
                    renewal = Some(spawn_open(&config, &tls, call.format, settings));
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
            frame = ws.next(), if socket_open => {
                socket_open = !matches!(frame, None | Some(Err(_)) | Some(Ok(Message::Close(_))));
                on_frame(&mut session, frame);
            }
            input = io.recv() => match input {
                Some(CallInput::Audio(frame)) => session.handle_call_audio(now(), &frame),
                Some(CallInput::Digit(digit)) => session.handle_digit(now(), digit),
                Some(CallInput::TransferResult(outcome)) => {
                    if let Some((id, name, content)) = transfer_answer(&mut transfer, outcome) {
                        session.handle_tool_result(now(), id, name, content);
                    }
                }
                // Deepgram plays no marks and truncates nothing: its barge-in is its own.
                Some(CallInput::MarkPlayed { .. } | CallInput::PlaybackFlushed { .. }) => {}
                Some(CallInput::CallEnded) | None => session.call_ended(),
            },
            Some((id, name, content)) = tool_rx.recv() => {
                tool_finished(&io, &name, &content).await;
                session.handle_tool_result(now(), id, name, content);
            }
            opened = ws::join_renewal(PROVIDER, &mut renewal) => match opened {
                Ok((new_ws, mut new_session)) => {
                    // Lines said while it was being opened stay in the history too.
                    new_session.continue_from(&session);
                    if !session.reconnecting() {
                        tracing::info!(
                            request_id = new_session.request_id().unwrap_or_default(),
                            lines = new_session.history().count(),
                            "Deepgram session renewed: the call goes on with its history"
                        );
                    }
                    new_session.take_over(now(), &session);
                    if socket_open {
                        let _ = ws.close(None).await;
                    }
                    ws = new_ws;
                    session = new_session;
                    socket_open = true;
                }
                Err(e) if session.reconnecting() => session.reconnect_failed(now(), &e),
                Err(e) => {
                    tracing::warn!("could not renew the Deepgram session (the current one goes on): {e}");
                    session.renew_failed(now());
                }
            },
            _ = sleep_until(deadline) => session.handle_timeout(now()),
        }
    }
}

type Opening = tokio::task::JoinHandle<Result<(Ws, DeepgramSession), AgentError>>;

/// Open a session with `settings` in a task of its own (a renewal or a reconnect
/// attempt), so the call goes on meanwhile.
fn spawn_open(
    config: &Arc<DeepgramConfig>,
    tls: &Arc<rustls::ClientConfig>,
    format: AudioFormat,
    settings: Settings,
) -> Opening {
    let (config, tls) = (Arc::clone(config), Arc::clone(tls));
    tokio::spawn(async move { open_streaming(&config, &tls, format, settings).await })
}

/// Stop a session being opened that is no longer wanted.
fn abort(task: &mut Option<Opening>) {
    if let Some(t) = task.take() {
        t.abort();
    }
}

/// Send one JSON text frame; a failed write is the connection closing.
async fn send_text(ws: &mut Ws, session: &mut DeepgramSession, text: String) {
    if let Err(e) = ws.send(Message::text(text)).await {
        session.handle_closed(now(), &e.to_string());
    }
}

/// Send one frame of caller audio as a binary frame; a failed write is the connection
/// closing.
async fn send_audio(ws: &mut Ws, session: &mut DeepgramSession, out: &mut AudioOut, frame: &AudioFrame) {
    // tungstenite copies the payload into its write buffer and drops it within `send`:
    // the next frame reuses its storage.
    if let Err(e) = ws.send(Message::binary(out.payload(frame.as_bytes()))).await {
        session.handle_closed(now(), &e.to_string());
    }
}

/// One frame (or the end) from Deepgram's socket, into the session.
fn on_frame(session: &mut DeepgramSession, frame: Option<Result<Message, tungstenite::Error>>) {
    match frame {
        Some(Ok(Message::Text(text))) => session.handle_text(now(), text.as_str()),
        Some(Ok(Message::Binary(bytes))) => session.handle_binary(now(), &bytes),
        Some(Ok(Message::Close(frame))) => {
            let why = match frame {
                Some(f) => format!("close code {} {:?}", u16::from(f.code), f.reason.as_str()),
                None => "close without a code".into(),
            };
            session.handle_closed(now(), &why);
        }
        Some(Ok(_)) => {} // ping/pong: tungstenite answers pings itself
        Some(Err(e)) => session.handle_closed(now(), &e.to_string()),
        None => session.handle_closed(now(), "connection dropped"),
    }
}

fn log_drops(session: &DeepgramSession, io: &AgentIo) {
    let (sent, dropped_early) = session.audio_counts();
    let skipped = io.stats().input_frames_dropped();
    tracing::debug!(sent, dropped_early, skipped, "Deepgram session audio counts");
}

/// `voice-ua check --agent`: connect, get `Welcome`, send `Settings` (for a PCMU call),
/// wait for `SettingsApplied`, close. Returns Deepgram's `request_id`.
pub async fn check_key(config: &DeepgramConfig) -> Result<String, AgentError> {
    install_crypto_provider();
    ws::check_url(PROVIDER, &config.url)?;
    let tls = Arc::new(ws::tls_config(PROVIDER, config.extra_ca_file.as_ref())?);
    let format = AudioFormat::Ulaw8k;
    let (mut ws, session) = open_streaming(config, &tls, format, config.settings_message(format)).await?;
    let id = session.request_id().unwrap_or_default().to_owned();
    let _ = ws.close(None).await;
    Ok(id)
}

/// Connect and run the handshake (Welcome, `settings`, SettingsApplied): a socket and a
/// session that is streaming. Messages before SettingsApplied other than the handshake's
/// are dropped (there are none in the protocol).
async fn open_streaming(
    config: &DeepgramConfig,
    tls: &Arc<rustls::ClientConfig>,
    format: AudioFormat,
    settings: Settings,
) -> Result<(Ws, DeepgramSession), AgentError> {
    let session = new_session(config, format, settings);
    ws::handshake(connect(config, tls).await?, session).await
}

/// A session for a call in `format` that sends `settings`, with the configured
/// functions' fillers and the end-of-turn key.
fn new_session(config: &DeepgramConfig, format: AudioFormat, settings: Settings) -> DeepgramSession {
    let mut session = DeepgramSession::new(now(), format, settings)
        .with_functions(&config.settings.functions)
        .with_end_of_turn_key(config.settings.end_of_turn_key);
    session.set_reconnect(config.reconnect);
    session
}

impl Handshake for DeepgramSession {
    fn next_step(&mut self) -> Option<Step> {
        self.poll_output().map(Output::handshake_step)
    }

    fn streaming(&self) -> bool {
        self.state() == State::Streaming
    }

    fn poll_timeout(&self) -> Option<std::time::Instant> {
        DeepgramSession::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: std::time::Instant) {
        DeepgramSession::handle_timeout(self, now);
    }

    fn on_frame(&mut self, frame: Option<Result<Message, tungstenite::Error>>, _open: &mut bool) {
        on_frame(self, frame);
    }

    fn on_send_error(&mut self, error: tungstenite::Error) {
        self.handle_closed(now(), &error.to_string());
    }
}
