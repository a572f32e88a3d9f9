//! The fake's script: the [`Step`]s each connection plays once its session is
//! configured. The fake names what it creates in order: responses `resp_1`, `resp_2`, …
//! and items `item_1`, `item_2`, … (user items included), so tests know the ids.

use std::time::Duration;

use voice_ua_agent::openai::messages::ServerEvent;

/// One scripted action, in order.
#[derive(Debug, Clone)]
pub enum Step {
    /// A spoken reply: `response.created`, `response.output_item.added` (an assistant
    /// audio item), `ms` of a tone at `hz` as `response.output_audio.delta`s (all at once,
    /// faster than real time); then, when `finish`, `response.output_audio.done`,
    /// `response.output_audio_transcript.done` (`text`), `response.output_item.done` and
    /// `response.done` (completed, with usage). Unfinished, the response stays in
    /// progress until the caller speaks (cancelled, `turn_detected`) or the client
    /// cancels it.
    Speak {
        /// The agent's words (its transcript).
        text: String,
        /// Audio length.
        ms: u32,
        /// The tone's frequency.
        hz: f64,
        /// End the response.
        finish: bool,
    },
    /// Wait for a `response.create` (one received earlier counts): the greeting, or the
    /// client asking the model to go on.
    AwaitResponseCreate,
    /// Wait for this many more 20 ms frames of appended caller audio, counting only
    /// frames at least `min_dbfs` loud when given.
    WaitAudio {
        /// Frames to wait for.
        frames: usize,
        /// Energy threshold.
        min_dbfs: Option<f32>,
    },
    /// The caller speaks: `input_audio_buffer.speech_started` (cancelling a response in
    /// progress, as server VAD does), `speech_stopped`, `conversation.item.added` and
    /// the transcription.
    UserSays(String),
    /// Only `input_audio_buffer.speech_started` (cancelling a response in progress).
    SpeechStarted,
    /// A delta of `ms` for the response the caller's speech cancelled last, as a real
    /// server's late one: the client must not play it.
    StaleDelta {
        /// Audio length.
        ms: u32,
    },
    /// Wait for the next `conversation.item.truncate`.
    AwaitTruncate,
    /// A function call: `response.created`, `response.output_item.added` (a function
    /// call item), `response.function_call_arguments.done`, `response.output_item.done`,
    /// `response.done`; then wait for its `function_call_output` and a `response.create`.
    CallFunction {
        /// Its call id.
        call_id: String,
        /// Function name.
        name: String,
        /// Arguments (a JSON object, sent as a string).
        arguments: String,
    },
    /// Send this event.
    Send(Box<ServerEvent>),
    /// Send this text frame as it is (unknown types, garbage).
    SendRaw(String),
    /// Wait.
    Pause(Duration),
    /// Send an `error` event (the session goes on).
    Error {
        /// `invalid_request_error`, `server_error`, ...
        kind: String,
        /// `session_expired`, ...; empty: none.
        code: String,
        /// Human text.
        message: String,
    },
    /// Close the connection with this code and reason.
    Close {
        /// Close code (1001 "going away" at the 60-minute cap).
        code: u16,
        /// Reason.
        reason: String,
    },
    /// Drop the connection without a close frame.
    CloseAbruptly,
    /// A reply cut off by a dropped connection: `response.created`, the item, the first
    /// `cut_ms` of `ms` of 440 Hz as deltas, then the connection is dropped without a
    /// close frame (no transcript: the server never finished the reply).
    SpeakThenDrop {
        /// The agent's words (never sent: the reply was not finished).
        text: String,
        /// The whole reply's length.
        ms: u32,
        /// Audio sent before the drop.
        cut_ms: u32,
    },
}

impl Step {
    /// A finished reply of `ms` of 440 Hz.
    pub fn speak(text: &str, ms: u32) -> Self {
        Step::Speak { text: text.into(), ms, hz: 440.0, finish: true }
    }

    /// A finished reply of `ms` at `hz`.
    pub fn speak_hz(text: &str, ms: u32, hz: f64) -> Self {
        Step::Speak { text: text.into(), ms, hz, finish: true }
    }

    /// A reply still in progress after its audio.
    pub fn speak_unfinished(text: &str, ms: u32) -> Self {
        Step::Speak { text: text.into(), ms, hz: 440.0, finish: false }
    }

    /// [`Step::UserSays`].
    pub fn user_says(text: &str) -> Self {
        Step::UserSays(text.into())
    }

    /// [`Step::CallFunction`].
    pub fn call(call_id: &str, name: &str, arguments: &str) -> Self {
        Step::CallFunction { call_id: call_id.into(), name: name.into(), arguments: arguments.into() }
    }

    /// [`Step::SpeakThenDrop`].
    pub fn speak_then_drop(text: &str, ms: u32, cut_ms: u32) -> Self {
        Step::SpeakThenDrop { text: text.into(), ms, cut_ms }
    }

    /// Drop the connection once `frames` more caller audio frames have been appended.
    pub fn drop_after_audio(frames: usize) -> Vec<Self> {
        vec![Step::WaitAudio { frames, min_dbfs: None }, Step::CloseAbruptly]
    }

    /// [`Step::Error`].
    pub fn error(kind: &str, code: &str, message: &str) -> Self {
        Step::Error { kind: kind.into(), code: code.into(), message: message.into() }
    }

    /// [`Step::Close`].
    pub fn close(code: u16, reason: &str) -> Self {
        Step::Close { code, reason: reason.into() }
    }
}
