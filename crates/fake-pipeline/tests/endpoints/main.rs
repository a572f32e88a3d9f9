//! The fake pipeline driven over real HTTP/1.1 connections: each stage's strictness,
//! answers, pacing and failure knobs, and the connection handling (keep-alive, chunked
//! request bodies, TLS, idle timeout).

mod chat;
mod client;
mod http;
mod stt;
mod tts;
