//! voice-ua's agent side: the seam between a call and an AI voice agent.
//!
//! - [`provider`] owns the contract: [`AgentProvider`] opens an [`AgentSession`] for one
//!   call, and the session carries audio, digits and events both ways over bounded
//!   channels without allocating per frame.
//! - [`echo`] is the agent used when no AI agent is configured: it plays the caller's
//!   own words back after they pause, like a PBX echo-test extension.
//! - [`deepgram`] bridges a call to the Deepgram Voice Agent API ([`DeepgramProvider`]).
//! - [`websocket`] bridges a call to a WebSocket bot in the Twilio Media Streams or ASP
//!   dialect ([`WebSocketProvider`]).
//! - [`openai`] bridges a call to the OpenAI Realtime API ([`OpenAiProvider`]).
//! - [`pipeline`] is the on-prem pipeline agent (STT, LLM with tools, TTS); [`pipeline::wire`]
//!   holds its sans-IO wire formats.
//! - [`tools`] runs the functions an agent calls: HTTP webhooks and the built-ins, and
//!   keeps the caller from dead air while a slow one runs ([`tools::filler`]).
//! - [`keypad`] turns the caller's DTMF into turn control and typed text.
//! - [`privacy`] says whether conversation text may be logged (off by default).
//! - [`ws`] is what the WebSocket providers share (TLS, the URL rule, the upgrade with a
//!   timeout and its typed failure, the message cap, the reusable payload buffer); `renewal` keeps the history and the timer of a session renewed before its cap;
//!   [`reconnect`] decides when and how often a dropped session is opened again.
//! - [`error`] holds the crate's one error type, [`AgentError`].

pub mod deepgram;
pub mod echo;
pub mod error;
pub mod http;
pub mod keypad;
pub mod openai;
pub mod pipeline;
pub mod privacy;
pub mod provider;
pub mod reconnect;
mod renewal;
pub mod tools;
pub mod websocket;
pub mod ws;

pub use deepgram::{
    check_key, AgentConfig, Builtin, DeepgramConfig, DeepgramProvider, FunctionSpec, ToolKind,
};
pub use echo::{EchoConfig, EchoCore, EchoOutput, EchoProvider};
pub use openai::{OpenAiConfig, OpenAiProvider};
pub use websocket::{Dialect, WebSocketConfig, WebSocketProvider};

pub use error::{AgentError, ProviderCode};
pub use provider::{
    AgentEvent, AgentIo, AgentProvider, AgentSession, AudioFormat, AudioFrame, CallFacts, CallInput, Digit,
    HoldReason, ReplyFigures, Role, SessionEnd, SessionStats, TransferOutcome, Usage,
};
pub use reconnect::ReconnectPolicy;
pub use ws::install_crypto_provider;
pub use ws::MAX_MESSAGE_BYTES;
