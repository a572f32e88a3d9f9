//! The fake's script: the [`Step`]s each session plays after `SettingsApplied` (the tone
//! it speaks with is `voice-ua-fake-server`'s).

use std::time::Duration;

use voice_ua_agent::deepgram::messages::ServerMessage;

/// One scripted action, run after `SettingsApplied`, in order.
#[derive(Debug, Clone)]
pub enum Step {
    /// `ConversationText(assistant)`, `AgentStartedSpeaking`, `ms` of a 440 Hz tone in the
    /// session's output format (100 ms per binary frame), then `AgentAudioDone` if `done`.
    Speak {
        /// The agent's words.
        text: String,
        /// Audio length.
        ms: u32,
        /// Send `AgentAudioDone` after the audio.
        done: bool,
    },
    /// Wait for this many more client audio frames, counting only frames at least
    /// `min_dbfs` loud when given.
    WaitAudio {
        /// Frames to wait for.
        frames: usize,
        /// Energy threshold.
        min_dbfs: Option<f32>,
    },
    /// `UserStartedSpeaking` then `ConversationText(user)`.
    UserSays(String),
    /// A client-side `FunctionCallRequest`; waits for the `FunctionCallResponse` with the
    /// same id (a wrong name is recorded as a violation).
    CallFunction {
        /// Call id.
        id: String,
        /// Function name.
        name: String,
        /// Arguments (a JSON object, sent as a string).
        arguments: String,
    },
    /// Send this message.
    Send(ServerMessage),
    /// Send this text frame as it is (unknown types, garbage).
    SendRaw(String),
    /// Wait.
    Pause(Duration),
    /// Send `Error {code, description}` and close.
    Error {
        /// Error code.
        code: String,
        /// Description.
        description: String,
    },
    /// Drop the connection without a close frame.
    CloseAbruptly,
    /// A reply cut off by a dropped connection: like [`Step::Speak`] (no
    /// `AgentAudioDone`), but only the first `cut_ms` of its `ms` of audio are sent before
    /// the connection is dropped without a close frame.
    SpeakThenDrop {
        /// The agent's words.
        text: String,
        /// The whole reply's length.
        ms: u32,
        /// Audio sent before the drop.
        cut_ms: u32,
    },
}

impl Step {
    /// [`Step::Speak`].
    pub fn speak(text: &str, ms: u32, done: bool) -> Self {
        Step::Speak { text: text.into(), ms, done }
    }

    /// [`Step::UserSays`].
    pub fn user_says(text: &str) -> Self {
        Step::UserSays(text.into())
    }

    /// [`Step::CallFunction`].
    pub fn call(id: &str, name: &str, arguments: &str) -> Self {
        Step::CallFunction { id: id.into(), name: name.into(), arguments: arguments.into() }
    }

    /// [`Step::SpeakThenDrop`].
    pub fn speak_then_drop(text: &str, ms: u32, cut_ms: u32) -> Self {
        Step::SpeakThenDrop { text: text.into(), ms, cut_ms }
    }

    /// Drop the connection once `frames` more caller audio frames have arrived.
    pub fn drop_after_audio(frames: usize) -> Vec<Self> {
        vec![Step::WaitAudio { frames, min_dbfs: None }, Step::CloseAbruptly]
    }

    /// [`Step::Error`].
    pub fn error(code: &str, description: &str) -> Self {
        Step::Error { code: code.into(), description: description.into() }
    }
}
