//! The pipeline agent's wire formats, sans-IO: bytes or text in, values out. Nothing here
//! reads a socket, a clock or a random source; every buffer is bounded (a broken or
//! hostile server gets a typed error, not unbounded memory) and no input panics.
//!
//! - [`sse`]: server-sent events ([`SseDecoder`]), as the chat completions stream uses.
//! - [`chat`]: chat completions: the request ([`ChatRequest`], [`Message`]) and the
//!   streamed reply assembled into [`ChatStep`]s ([`ChatStream`]), tool-call deltas included.
//! - [`sentences`]: the LLM's text cut into sentences for TTS ([`SentenceSplitter`]).
//! - [`history`]: the conversation kept for the LLM, bounded ([`History`]).
//! - [`audio_files`]: an utterance as a WAV file and the multipart form that uploads it.

pub mod audio_files;
pub mod chat;
pub mod history;
pub mod sentences;
pub mod sse;

pub use audio_files::{multipart_form, wav_pcm16, write_wav_pcm16, FilePart, MultipartError};
pub use chat::{
    parse_completion, ChatError, ChatRequest, ChatStep, ChatStream, FinishReason, Message, ToolCallRequest,
};
pub use history::History;
pub use sentences::SentenceSplitter;
pub use sse::{SseDecoder, SseError, SseEvent};
