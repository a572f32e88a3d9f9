//! One fake connection, whatever the dialect: the upgrade (path, `Authorization`), the
//! loop that runs the script while the dialect's [`Bot`] checks and counts what the
//! client sends, and the [`Record`] at the end.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::{asp, twilio, BotConfig, BotDialect, Record, Step};

/// Serve one connection (TLS already done) with `config`'s script: its record.
pub(crate) async fn serve(conn: voice_ua_fake_server::Conn, config: Arc<BotConfig>) -> Record {
    connection(conn, &config).await
}

/// What the script waits for.
#[derive(Debug)]
pub(crate) enum Wait {
    Nothing,
    Audio { remaining: usize, min_dbfs: Option<f32> },
    Mark(String),
    AudioEnds(usize),
    TransferResults(usize),
    Until(Instant),
}

/// What a step asks of the loop.
pub(crate) enum Flow {
    Continue,
    Wait(Wait),
    Close(u16, String),
    Drop,
}

/// A dialect's side of the fake.
pub(crate) trait Bot {
    /// Sent right after the upgrade.
    fn hello(&mut self) -> Vec<Message>;
    /// The script may run.
    fn ready(&self) -> bool;
    /// A client frame: checked and counted; the replies to send.
    fn on_message(&mut self, message: &Message, record: &mut Record, wait: &mut Wait) -> Vec<Message>;
    /// One step: the frames to send and what follows.
    fn step(&mut self, step: Step, record: &mut Record) -> (Vec<Message>, Flow);
    /// The client's audio since the last wait began, as 8 kHz samples.
    fn heard(&mut self) -> &mut Vec<i16>;
}

/// How long the fake waits for the client's Close after its own.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(2);
/// At most this much caller audio is kept for [`Step::EchoBack`] (30 s).
pub(crate) const MAX_HEARD: usize = 8000 * 30;

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(stream: S, config: &BotConfig) -> Record {
    let mut record = Record::default();
    let want = config.authorization.clone();
    let mut refused = None;
    // The signature tungstenite's `Callback` wants; its error type is not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        record.path = request.uri().path().to_owned();
        record.authorization =
            request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        if want.is_some() && record.authorization != want {
            refused = Some(401);
            let mut error = ErrorResponse::new(Some("bad credentials".to_owned()));
            *error.status_mut() = StatusCode::UNAUTHORIZED;
            return Err(error);
        }
        Ok(response)
    };
    let ws = tokio_tungstenite::accept_hdr_async(stream, callback).await;
    record.refused = refused;
    let mut ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            record.end = format!("upgrade refused: {e}");
            return record;
        }
    };
    match config.dialect {
        BotDialect::Twilio => run(&mut ws, twilio::TwilioBot::new(), config, &mut record).await,
        BotDialect::Asp => run(&mut ws, asp::AspBot::new(config), config, &mut record).await,
    }
    record
}

async fn run<S: AsyncRead + AsyncWrite + Unpin, B: Bot>(
    ws: &mut WebSocketStream<S>,
    mut bot: B,
    config: &BotConfig,
    record: &mut Record,
) {
    for m in bot.hello() {
        if ws.send(m).await.is_err() {
            record.end = "client gone before the hello".into();
            return;
        }
    }
    let mut step = 0;
    let mut wait = Wait::Nothing;
    loop {
        while bot.ready() {
            let ready = match &wait {
                Wait::Nothing => true,
                Wait::Audio { remaining, .. } => *remaining == 0,
                Wait::Mark(name) => record.marks_echoed.contains(name),
                Wait::AudioEnds(n) => record.audio_ends >= *n,
                Wait::TransferResults(n) => record.transfer_results.len() >= *n,
                Wait::Until(t) => Instant::now() >= *t,
            };
            if !ready {
                break;
            }
            let Some(next) = config.script.get(step).cloned() else {
                record.script_done = true;
                break;
            };
            step += 1;
            if !matches!(wait, Wait::Nothing) {
                bot.heard().clear();
            }
            wait = Wait::Nothing;
            let clear = matches!(next, Step::Clear);
            let (messages, flow) = bot.step(next, record);
            if clear && !messages.is_empty() {
                record.barge_ins.push(std::time::Instant::now());
            }
            for m in messages {
                if ws.send(m).await.is_err() {
                    record.end = "client gone while the script ran".into();
                    return;
                }
            }
            match flow {
                Flow::Continue => {}
                Flow::Wait(w) => wait = w,
                Flow::Close(code, reason) => {
                    let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
                    let _ = ws.close(Some(frame)).await;
                    drain_until_close(ws).await;
                    record.end = format!("closed by the script ({code})");
                    return;
                }
                Flow::Drop => {
                    record.end = "dropped by the script".into();
                    return;
                }
            }
            if config.script.len() == step {
                record.script_done = true;
            }
        }
        let timer = match &wait {
            Wait::Until(t) => Some(*t),
            _ => None,
        };
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Close(_))) => {
                    record.end = "client closed".into();
                    let _ = ws.close(None).await;
                    return;
                }
                Some(Ok(message)) => {
                    if let Message::Text(t) = &message {
                        record.texts.push(t.to_string());
                    }
                    for reply in bot.on_message(&message, record, &mut wait) {
                        let _ = ws.send(reply).await;
                    }
                }
                Some(Err(e)) => {
                    record.end = format!("client broke the connection: {e}");
                    return;
                }
                None => {
                    record.end = "client dropped the connection".into();
                    return;
                }
            },
            _ = sleep_opt(timer) => {}
        }
    }
}

async fn drain_until_close<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) {
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
        while let Some(Ok(message)) = ws.next().await {
            if message.is_close() {
                break;
            }
        }
    })
    .await;
}

async fn sleep_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Count `frames` 20 ms frames of caller audio towards an audio wait.
pub(crate) fn count_audio(wait: &mut Wait, level_dbfs: f32) {
    if let Wait::Audio { remaining, min_dbfs } = wait {
        if *remaining > 0 && min_dbfs.is_none_or(|min| level_dbfs >= min) {
            *remaining -= 1;
        }
    }
}

/// Keep caller samples for an echo reply (bounded).
pub(crate) fn keep(heard: &mut Vec<i16>, samples: impl Iterator<Item = i16>) {
    for s in samples {
        if heard.len() < MAX_HEARD {
            heard.push(s);
        }
    }
}
