//! The pipeline agent's wire formats, sans-IO: bytes or text in, values out. Nothing here
//! reads a socket, a clock or a random source; every buffer is bounded (a broken or
//! hostile server gets a typed error, not unbounded memory) and no input panics.
//!
//! - [`sse`]: server-sent events ([`SseDecoder`]), as the chat completions stream uses.
//! - [`chat`]: chat completions: the request ([`ChatRequest`], [`Message`]) and the
//!   streamed reply assembled into [`ChatStep`]s ([`ChatStream`]), tool-call deltas included.

pub mod chat;
pub mod sse;

pub use chat::{
    parse_completion, ChatError, ChatRequest, ChatStep, ChatStream, FinishReason, Message, ToolCallRequest,
};
pub use sse::{SseDecoder, SseError, SseEvent};
