//! Client-side tools, for every provider whose agent calls functions (Deepgram, OpenAI):
//! what a function is ([`FunctionSpec`]: an HTTP webhook or a built-in the call carries
//! out), a call of one ([`ToolCall`]), its arguments checked against its JSON Schema
//! ([`arguments`], sans-IO), the webhook's HTTP client ([`http`]), and running one
//! (`run`: built-ins at once, webhooks on their own task, a transfer waiting for the
//! call's outcome), and what the caller hears while a slow one runs ([`filler`]).

pub mod arguments;
pub mod filler;
pub mod http;
mod run;

use std::time::Duration;

pub use filler::{Filler, FillerAction, Fillers, DEFAULT_FILLER_AFTER};
pub use run::{
    start_tool, tool_finished, transfer_answer, transfer_result, PendingTransfer, ToolResult,
    MAX_DTMF_DIGITS, MAX_HANGUP_REASON,
};

/// A function the agent asked for, as its provider reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The provider's id for this call, echoed in the result.
    pub id: String,
    /// The function.
    pub name: String,
    /// The arguments, a JSON-encoded string.
    pub arguments: String,
}

/// A function the agent may call, run by voice-ua.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    /// Name the LLM calls it by.
    pub name: String,
    /// When to call it.
    pub description: String,
    /// JSON Schema of its arguments.
    pub parameters: serde_json::Value,
    /// What running it means.
    pub kind: ToolKind,
    /// What the caller hears while it runs longer than a moment (HTTP functions only;
    /// built-ins never get one). Default: the hold tone after 700 ms.
    pub filler: Filler,
}

/// How a function runs.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolKind {
    /// POST the arguments JSON to `url`; the response body is the result.
    Http {
        /// `http://` or `https://` URL.
        url: String,
        /// Extra request headers.
        headers: Vec<(String, String)>,
        /// Whole-request limit.
        timeout: Duration,
    },
    /// Something the call does.
    Builtin(Builtin),
}

/// Call actions the agent can take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builtin {
    /// Blind-transfer the caller to `target` (extension or SIP URI).
    Transfer {
        /// Where to.
        target: String,
    },
    /// Hang up once the agent's last words have played.
    Hangup,
    /// Send the DTMF digits in the `digits` argument.
    SendDtmf,
}
