//! The on-prem pipeline agent (`[agent] provider = "pipeline"`): local endpointing, an
//! OpenAI-compatible STT, a streaming chat-completions LLM with tools and a TTS.
//!
//! - [`wire`] holds the sans-IO pieces of its HTTP traffic: SSE decoding, chat requests and
//!   the stream assembler, sentence splitting for TTS, the bounded history, WAV and
//!   multipart bodies.

pub mod wire;
