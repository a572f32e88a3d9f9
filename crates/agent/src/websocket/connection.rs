//! The async shell around a [`DialectCore`]: connect (with the configured timeout and the
//! 1 MiB message cap), then move frames between the call, the socket and the core until
//! the core says close. It decides nothing: what to send, what the call sees and when a
//! timer is due all come from the core.

use std::sync::Arc;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use super::session::{Closed, DialectCore, FailureCode, Transmit};
use super::WebSocketConfig;
use crate::provider::{AgentEvent, AgentIo, CallInput, SessionEnd};
use crate::ws::{self, AudioOut, ConnectFailure, Ws};
use crate::AgentError;

/// How long the shell waits for the bot's Close after its own.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_millis(300);

/// Where to connect, and with what.
pub(super) struct Target {
    pub config: Arc<WebSocketConfig>,
    pub headers: Arc<Vec<(HeaderName, HeaderValue)>>,
    pub tls: Arc<rustls::ClientConfig>,
}

impl Target {
    /// Open the WebSocket; a failure is the session's typed error.
    pub async fn open(&self) -> Result<Ws, AgentError> {
        let peer = ws::Peer {
            name: "the WebSocket bot",
            error_header: None,
            credential: "credentials",
            auth_fix: "check agent.websocket.headers",
        };
        let config = &self.config;
        ws::open(&config.url, &self.headers, &self.tls, config.connect_timeout, ws::MAX_MESSAGE_BYTES, peer)
            .await
            .map_err(|e| {
                let code = match e.kind {
                    ConnectFailure::Timeout => FailureCode::ConnectTimeout,
                    ConnectFailure::Refused => FailureCode::ConnectRefused,
                    ConnectFailure::Http(_) => FailureCode::UpgradeRefused,
                    ConnectFailure::Tls => FailureCode::TlsFailed,
                    ConnectFailure::Other => FailureCode::ConnectFailed,
                };
                code.error(e.detail)
            })
    }
}

/// The session task: connect, then shuttle until the core closes.
pub(super) async fn run<C: DialectCore>(mut core: C, target: Target, mut io: AgentIo) {
    let mut ws = match target.open().await {
        Ok(ws) => ws,
        Err(error) => {
            tracing::warn!(%error, "WebSocket bot could not be reached");
            let _ = io.send(AgentEvent::Ended(SessionEnd::Failed(error))).await;
            return;
        }
    };
    tracing::debug!(dialect = %target.config.dialect, "WebSocket bot connected");
    core.handle_connected(now());
    let mut out = Vec::with_capacity(2048);
    let mut payload = AudioOut::new(2048);
    let mut call_open = true;
    loop {
        while let Some(event) = core.poll_event() {
            if io.send(event).await.is_err() && call_open {
                call_open = false;
                core.handle_input(now(), CallInput::CallEnded);
            }
        }
        while let Some(transmit) = core.poll_transmit(&mut out) {
            let message = match transmit {
                Transmit::Close => {
                    close(&mut ws).await;
                    log_drops(&io);
                    return;
                }
                Transmit::Text => match Utf8Bytes::try_from(payload.payload(&out)) {
                    Ok(text) => Message::Text(text),
                    Err(_) => continue, // the cores write JSON: valid UTF-8 by construction
                },
                Transmit::Binary => Message::Binary(payload.payload(&out)),
            };
            if let Err(e) = ws.send(message).await {
                core.fail(FailureCode::ConnectionLost, format!("cannot write to the bot ({e})"));
            }
        }
        let deadline = core.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            frame = ws.next() => on_frame(&mut core, frame),
            input = io.recv(), if call_open => match input {
                Some(input) => core.handle_input(now(), input),
                None => {
                    call_open = false;
                    core.handle_input(now(), CallInput::CallEnded);
                }
            },
            _ = sleep_until(deadline) => core.handle_timeout(now()),
        }
    }
}

/// One frame (or the end) from the bot, into the core.
fn on_frame<C: DialectCore>(core: &mut C, frame: Option<Result<Message, tungstenite::Error>>) {
    let now = now();
    match frame {
        Some(Ok(Message::Text(text))) => core.handle_text(now, text.as_str()),
        Some(Ok(Message::Binary(bytes))) => core.handle_binary(now, &bytes),
        Some(Ok(Message::Close(frame))) => {
            let (code, reason) = match frame {
                Some(f) => (u16::from(f.code), f.reason.as_str().to_owned()),
                None => (1005, String::new()),
            };
            core.handle_closed(now, Closed::Frame { code, reason });
        }
        Some(Ok(_)) => {} // ping/pong: tungstenite answers pings itself
        Some(Err(tungstenite::Error::Capacity(_))) => core.handle_closed(now, Closed::TooLarge),
        Some(Err(e)) => core.handle_closed(now, Closed::Lost(e.to_string())),
        None => core.handle_closed(now, Closed::Lost("connection dropped".into())),
    }
}

/// Close normally (1000) and give the bot a moment to answer, so that the socket is not
/// reset under data it has not read yet.
async fn close(ws: &mut Ws) {
    let frame = CloseFrame { code: CloseCode::Normal, reason: Utf8Bytes::from_static("") };
    if ws.close(Some(frame)).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(message)) = ws.next().await {
            if message.is_close() {
                break;
            }
        }
    })
    .await;
}

fn log_drops(io: &AgentIo) {
    let skipped = io.stats().input_frames_dropped();
    if skipped > 0 {
        tracing::debug!(skipped, "caller audio frames skipped while the bot connection was behind");
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
