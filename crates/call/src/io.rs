//! What crosses the call core's edge: the INVITE it starts from, the SIP signals its
//! driver reports, the actions it asks the driver to carry out, the figures it reports
//! for the metrics, the packets it sends, and how the call ended.

use std::net::SocketAddr;
use std::time::Duration;
use voice_ua_agent::{AgentError, AudioFormat, CallInput, ReplyFigures};
use voice_ua_records::CallOutcome;
use voice_ua_sip::negotiate::Codec;
use voice_ua_sip::session_timer::TimerRequest;
use voice_ua_sip::Reason;

/// The INVITE a call starts from.
#[derive(Debug, Clone)]
pub struct Invite {
    /// Where the INVITE came from (RTP may also come from there).
    pub source: SocketAddr,
    /// The SDP offer; None for a late-offer INVITE (we offer, the ACK answers).
    pub offer: Option<Vec<u8>>,
    /// The INVITE's session timer headers.
    pub timer: TimerRequest,
}

/// Something the call's dialog (or voice-ua) did, as the driver reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// An ACK, with the SDP answer it carries when we made the offer.
    Acked { sdp: Option<Vec<u8>> },
    /// A re-INVITE or UPDATE offer (empty for an offerless re-INVITE). The core answers
    /// at once with [`Action::AnswerOffer`] or [`Action::RejectOffer`].
    Offer { sdp: Vec<u8> },
    /// A digit from SIP INFO.
    Digit(char),
    /// A NOTIFY about our REFER: its sipfrag status code.
    TransferProgress(u16),
    /// The final answer to our REFER ([`Action::Refer`]), or why none came.
    ReferAnswered(Result<u16, String>),
    /// The final answer to our session refresh ([`Action::Refresh`]), or why none came.
    RefreshAnswered(Result<u16, String>),
    /// The dialog ended: BYE or CANCEL from the PBX (`by_remote`), or our side gone.
    Ended { by_remote: bool, detail: String },
    /// voice-ua is stopping (SIGTERM).
    Stop,
}

/// What the core asks its driver to do, in order.
// Agent audio travels by value (no heap per frame), so the size is the point.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send 180 Ringing.
    Ring,
    /// Answer the INVITE: 200 OK with this SDP and these header lines.
    Answer { sdp: String, headers: Vec<(&'static str, String)> },
    /// Refuse the INVITE with this status.
    Reject { status: u16 },
    /// Answer the pending re-offer: 200 OK with this SDP and these header lines.
    AnswerOffer { sdp: String, headers: Vec<(&'static str, String)> },
    /// Refuse the pending re-offer with this status.
    RejectOffer { status: u16 },
    /// The call is up (ACKed) with this codec: time to write the record's first version.
    Answered { codec: Codec },
    /// Open the agent session in this format; report back with
    /// [`crate::CallCore::agent_opened`] or [`crate::CallCore::agent_failed_to_open`].
    OpenAgent { format: AudioFormat },
    /// Send this to the agent session.
    ToAgent(CallInput),
    /// Send a blind transfer (REFER) to this URI; report its answer with
    /// [`Signal::ReferAnswered`].
    Refer { uri: String },
    /// Send a session refresh (re-INVITE with this SDP); report its answer with
    /// [`Signal::RefreshAnswered`].
    Refresh { sdp: String },
    /// Send BYE (with this Reason header, when given). The call is over.
    HangUp { reason: Option<Reason> },
    /// Count this in the metrics.
    Observe(Observation),
}

/// Something worth counting, reported as it happens (never per frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A turn: the caller's end of speech to the agent's first RTP packet, beside the
    /// agent's own figures.
    Turn { latency: Duration, figures: ReplyFigures },
    /// The agent flushed its queued audio (barge-in).
    BargeIn,
    /// A built-in tool the agent used (transfer, hangup, dtmf) or a provider tool, with
    /// its result word.
    Tool { name: String, result: &'static str },
    /// The agent failed.
    AgentError(AgentError),
    /// The agent's connection dropped mid-call and a reconnect ended: `ok` when the call
    /// went on with a new session, after `attempts` connection attempts in `after`.
    Reconnect { ok: bool, attempts: u32, after: Duration },
}

/// One RTP packet to send: `len` bytes of the caller's buffer, to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    pub len: usize,
    pub to: SocketAddr,
}

/// Who ended the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    Caller,
    Agent,
    VoiceUa,
}

impl EndedBy {
    /// The dialog ended under a talking or answered call: the caller hung up (a BYE from
    /// the PBX), or our side of the signalling went away (a failure).
    pub(crate) fn dialog_end(by_remote: bool) -> (CallOutcome, EndedBy) {
        if by_remote {
            (CallOutcome::CallerHangup, EndedBy::Caller)
        } else {
            (CallOutcome::Failed, EndedBy::VoiceUa)
        }
    }

    /// The word in the summary line and the record: caller, agent, voice-ua.
    pub fn as_str(self) -> &'static str {
        match self {
            EndedBy::Caller => "caller",
            EndedBy::Agent => "agent",
            EndedBy::VoiceUa => "voice-ua",
        }
    }
}

impl std::fmt::Display for EndedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the call ended: the outcome (the metric label and the record's word), who
/// ended it and one human line why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    pub outcome: CallOutcome,
    pub by: EndedBy,
    pub why: String,
}

/// The end reason of every call that voice-ua's shutdown ended.
pub const ENDED_BY_SHUTDOWN: &str = "ended by shutdown";
