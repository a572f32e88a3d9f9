//! What both dialects share, sans-IO: the [`DialectCore`] contract the shell drives, the
//! typed failure codes ([`FailureCode`]), how the socket closed ([`Closed`]), and
//! [`Common`], the part of a core that queues the call's events and ends the session the
//! same way in both dialects (a polite close, a failure with its code, malformed JSON
//! counted, unknown events logged at a bounded rate).

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::provider::{AgentEvent, CallInput, SessionEnd};
use crate::{AgentError, ProviderCode};

/// The provider name in errors, logs and metrics.
pub const PROVIDER: &str = "websocket";

/// Malformed text frames in a row that end the session.
pub const MAX_MALFORMED_IN_A_ROW: u32 = 5;
/// Malformed text frames in all that end the session.
pub const MAX_MALFORMED_TOTAL: u32 = 50;
/// At most one debug line per this long about events voice-ua does not know.
pub const UNKNOWN_LOG_EVERY: Duration = Duration::from_secs(10);
/// Events queued for the call are reserved for this many (no allocation in steady state).
pub(crate) const EVENT_QUEUE: usize = 256;

/// What the shell must send next; the bytes are in the buffer given to
/// [`DialectCore::poll_transmit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transmit {
    /// A text frame (JSON).
    Text,
    /// A binary frame.
    Binary,
    /// Close the WebSocket normally (1000) and send nothing more.
    Close,
}

/// How the WebSocket ended, as the shell saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// The peer sent a Close frame with this code (1005 when it gave none) and reason.
    Frame {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The peer sent a message larger than [`crate::MAX_MESSAGE_BYTES`].
    TooLarge,
    /// The connection broke without a Close frame.
    Lost(String),
}

/// The close code of a normal end (RFC 6455 §7.4.1).
pub const NORMAL_CLOSE: u16 = 1000;

/// Why a WebSocket session failed: the `code` of its [`AgentError::Provider`], a
/// bounded word for metrics and the call record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureCode {
    /// No answer to the connect within `connect_timeout`.
    ConnectTimeout,
    /// TCP connection refused.
    ConnectRefused,
    /// The server refused the WebSocket upgrade (any HTTP status).
    UpgradeRefused,
    /// The TLS handshake failed.
    TlsFailed,
    /// Any other connect failure (DNS, reset, bad URL).
    ConnectFailed,
    /// The dialect's handshake did not complete in time (ASP: `protocol.capabilities`
    /// or `session.started`).
    HandshakeTimeout,
    /// The bot rejected the session (ASP `session.started` with `rejected`).
    SessionRejected,
    /// The bot kept sending text voice-ua cannot parse.
    MalformedMessages,
    /// The bot sent a message over the 1 MiB cap.
    MessageTooLarge,
    /// The bot closed with a code other than 1000.
    ClosedAbnormally,
    /// The connection broke without a Close frame.
    ConnectionLost,
    /// The bot reported an error it cannot recover from (ASP `protocol.error`, `error`).
    BotError,
    /// The bot broke the protocol (a message out of order).
    ProtocolViolation,
}

impl FailureCode {
    /// The code as it appears in logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureCode::ConnectTimeout => "CONNECT_TIMEOUT",
            FailureCode::ConnectRefused => "CONNECT_REFUSED",
            FailureCode::UpgradeRefused => "UPGRADE_REFUSED",
            FailureCode::TlsFailed => "TLS_FAILED",
            FailureCode::ConnectFailed => "CONNECT_FAILED",
            FailureCode::HandshakeTimeout => "HANDSHAKE_TIMEOUT",
            FailureCode::SessionRejected => "SESSION_REJECTED",
            FailureCode::MalformedMessages => "MALFORMED_MESSAGES",
            FailureCode::MessageTooLarge => "MESSAGE_TOO_LARGE",
            FailureCode::ClosedAbnormally => "CLOSED_ABNORMALLY",
            FailureCode::ConnectionLost => "CONNECTION_LOST",
            FailureCode::BotError => "BOT_ERROR",
            FailureCode::ProtocolViolation => "PROTOCOL_VIOLATION",
        }
    }

    /// The [`AgentError`] of a session that failed with this code.
    pub fn error(self, detail: String) -> AgentError {
        AgentError::Provider { provider: PROVIDER.into(), detail, code: ProviderCode::new(self.as_str()) }
    }
}

impl fmt::Display for FailureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dialect's sans-IO core, as the shell drives it: inputs with the time injected,
/// frames to send, events for the call and the next timer out. Every method returns at
/// once and never panics on what the bot sends.
pub trait DialectCore: Send + 'static {
    /// The WebSocket is open (the handshake's timers start now).
    fn handle_connected(&mut self, _now: Instant) {}
    /// A text frame from the bot.
    fn handle_text(&mut self, now: Instant, text: &str);
    /// A binary frame from the bot.
    fn handle_binary(&mut self, now: Instant, bytes: &[u8]);
    /// Something from the call: audio, a digit, a playback report, a transfer's outcome,
    /// its end.
    fn handle_input(&mut self, now: Instant, input: CallInput);
    /// Time has passed [`DialectCore::poll_timeout`].
    fn handle_timeout(&mut self, now: Instant);
    /// The socket ended.
    fn handle_closed(&mut self, now: Instant, closed: Closed);
    /// The shell could not go on (a write failed): end as failed with `code`.
    fn fail(&mut self, code: FailureCode, detail: String);
    /// The next frame to send, written into `out` (cleared first).
    fn poll_transmit(&mut self, out: &mut Vec<u8>) -> Option<Transmit>;
    /// The next event for the call; `Ended` is the last.
    fn poll_event(&mut self) -> Option<AgentEvent>;
    /// When [`DialectCore::handle_timeout`] is next due.
    fn poll_timeout(&self) -> Option<Instant>;
}

/// The part of a core both dialects share: the call's event queue and the session's end.
#[derive(Debug)]
pub struct Common {
    events: VecDeque<AgentEvent>,
    ended: bool,
    malformed_run: u32,
    malformed_total: u32,
    unknown_logged: Option<Instant>,
    unknown_unlogged: u32,
}

impl Default for Common {
    fn default() -> Self {
        Common::new()
    }
}

impl Common {
    /// A session that has not ended.
    pub fn new() -> Common {
        Common {
            events: VecDeque::with_capacity(EVENT_QUEUE),
            ended: false,
            malformed_run: 0,
            malformed_total: 0,
            unknown_logged: None,
            unknown_unlogged: 0,
        }
    }

    /// The session is over (an `Ended` is queued or sent).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Queue an event for the call (nothing after the end).
    pub fn event(&mut self, event: AgentEvent) {
        if !self.ended {
            self.events.push_back(event);
        }
    }

    /// The next event for the call.
    pub fn poll_event(&mut self) -> Option<AgentEvent> {
        self.events.pop_front()
    }

    /// End as failed: one warning, then `Ended(Failed)` with the typed code. Returns
    /// false when the session had already ended.
    pub fn fail(&mut self, code: FailureCode, detail: String) -> bool {
        if self.ended {
            return false;
        }
        tracing::warn!(%code, %detail, "WebSocket bot session failed");
        self.events.push_back(AgentEvent::Ended(SessionEnd::Failed(code.error(detail))));
        self.ended = true;
        true
    }

    /// The bot ended the conversation: hang up once its audio has played.
    pub fn finish(&mut self, reason: String) -> bool {
        if self.ended {
            return false;
        }
        tracing::info!(%reason, "the WebSocket bot ended the call");
        self.events.push_back(AgentEvent::HangUp { after_playback: true, reason: reason.clone() });
        self.events.push_back(AgentEvent::Ended(SessionEnd::AgentFinished { reason }));
        self.ended = true;
        true
    }

    /// The call ended first. Returns false when the session had already ended.
    pub fn call_ended(&mut self) -> bool {
        if self.ended {
            return false;
        }
        self.events.push_back(AgentEvent::Ended(SessionEnd::CallEnded));
        self.ended = true;
        true
    }

    /// The socket closed under a running session: a normal close (1000) is the bot
    /// hanging up after its audio, anything else a failure.
    pub fn closed(&mut self, closed: Closed) {
        match closed {
            Closed::Frame { code: NORMAL_CLOSE, reason } => {
                let reason = if reason.is_empty() {
                    "the bot closed the stream".to_owned()
                } else {
                    format!("the bot closed the stream: {}", crate::tools::http::one_line(&reason, 120))
                };
                self.finish(reason);
            }
            Closed::Frame { code, reason } => {
                let reason = crate::tools::http::one_line(&reason, 120);
                self.fail(
                    FailureCode::ClosedAbnormally,
                    format!("the bot closed the WebSocket mid-call (close code {code} {reason:?})"),
                );
            }
            Closed::TooLarge => {
                self.fail(
                    FailureCode::MessageTooLarge,
                    format!("the bot sent a message over {} bytes", crate::MAX_MESSAGE_BYTES),
                );
            }
            Closed::Lost(why) => {
                self.fail(FailureCode::ConnectionLost, format!("the connection to the bot broke ({why})"));
            }
        }
    }

    /// A text frame parsed: the run of malformed ones is over.
    pub fn parsed(&mut self) {
        self.malformed_run = 0;
    }

    /// A text frame that is not the JSON the dialect expects. Logged; too many in a row
    /// (or in all) end the session.
    pub fn malformed(&mut self, error: &dyn fmt::Display) {
        self.malformed_run += 1;
        self.malformed_total += 1;
        tracing::debug!(%error, run = self.malformed_run, "ignoring a bot message voice-ua cannot parse");
        if self.malformed_run >= MAX_MALFORMED_IN_A_ROW || self.malformed_total >= MAX_MALFORMED_TOTAL {
            self.fail(
                FailureCode::MalformedMessages,
                format!(
                    "the bot sent {} messages voice-ua cannot parse ({} in a row; the last: {error})",
                    self.malformed_total, self.malformed_run
                ),
            );
        }
    }

    /// An event (or message type) voice-ua does not know: ignored, with a debug line at
    /// most every [`UNKNOWN_LOG_EVERY`].
    pub fn unknown(&mut self, now: Instant, name: &str) {
        self.parsed();
        let due = self.unknown_logged.is_none_or(|t| now.saturating_duration_since(t) >= UNKNOWN_LOG_EVERY);
        if due {
            let name = crate::tools::http::one_line(name, 60);
            tracing::debug!(event = %name, also_ignored = self.unknown_unlogged, "ignoring a bot event voice-ua does not know");
            self.unknown_logged = Some(now);
            self.unknown_unlogged = 0;
        } else {
            self.unknown_unlogged += 1;
        }
    }
}

/// A transfer target a bot may ask for: an extension or a SIP URI, at most 128
/// characters of a conservative set (no spaces, quotes or angle brackets).
pub fn valid_transfer_target(target: &str) -> bool {
    (1..=128).contains(&target.len())
        && target.bytes().all(|b| b.is_ascii_alphanumeric() || b"+*#._-@:;=%".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_provider_codes() {
        for code in [
            FailureCode::ConnectTimeout,
            FailureCode::ConnectRefused,
            FailureCode::UpgradeRefused,
            FailureCode::TlsFailed,
            FailureCode::ConnectFailed,
            FailureCode::HandshakeTimeout,
            FailureCode::SessionRejected,
            FailureCode::MalformedMessages,
            FailureCode::MessageTooLarge,
            FailureCode::ClosedAbnormally,
            FailureCode::ConnectionLost,
            FailureCode::BotError,
            FailureCode::ProtocolViolation,
        ] {
            assert_eq!(code.error("x".into()).code(), Some(code.as_str()));
        }
    }

    #[test]
    fn five_malformed_in_a_row_fail_and_a_good_one_resets_the_run() {
        let mut c = Common::new();
        for _ in 0..4 {
            c.malformed(&"bad");
        }
        c.parsed();
        for _ in 0..4 {
            c.malformed(&"bad");
        }
        assert!(!c.ended());
        c.malformed(&"bad");
        assert!(c.ended());
        let Some(AgentEvent::Ended(SessionEnd::Failed(e))) = c.poll_event() else { panic!("failed") };
        assert_eq!(e.code(), Some("MALFORMED_MESSAGES"));
    }

    #[test]
    fn a_normal_close_hangs_up_after_playback_and_others_fail() {
        let mut c = Common::new();
        c.closed(Closed::Frame { code: 1000, reason: String::new() });
        assert!(matches!(c.poll_event(), Some(AgentEvent::HangUp { after_playback: true, .. })));
        assert!(matches!(c.poll_event(), Some(AgentEvent::Ended(SessionEnd::AgentFinished { .. }))));
        for (closed, code) in [
            (Closed::Frame { code: 1011, reason: "boom".into() }, "CLOSED_ABNORMALLY"),
            (Closed::Lost("reset".into()), "CONNECTION_LOST"),
            (Closed::TooLarge, "MESSAGE_TOO_LARGE"),
        ] {
            let mut c = Common::new();
            c.closed(closed);
            let Some(AgentEvent::Ended(SessionEnd::Failed(e))) = c.poll_event() else { panic!("failed") };
            assert_eq!(e.code(), Some(code));
        }
    }

    #[test]
    fn transfer_targets() {
        assert!(valid_transfer_target("9001"));
        assert!(valid_transfer_target("sip:9001@pbx.lan;user=phone"));
        assert!(!valid_transfer_target(""));
        assert!(!valid_transfer_target("9001\r\nVia: x"));
        assert!(!valid_transfer_target("<sip:x>"));
        assert!(!valid_transfer_target(&"1".repeat(129)));
    }
}
