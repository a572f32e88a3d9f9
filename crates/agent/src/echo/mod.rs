//! The echo agent: what voice-ua answers calls with when no AI agent is configured.
//!
//! [`EchoCore`] (sans-IO, in `core`) holds all the behaviour; [`EchoProvider`] runs one
//! core per call in a tokio task fed by the session's channels. The task logs through
//! `tracing` in the call's span (the session spawns it there).

mod core;
mod tone;
mod vad;

pub use self::core::{
    EchoConfig, EchoCore, EchoOutput, LEAD_FRAMES, MAX_TIMING_MS, MAX_UTTERANCE_MS, PREROLL_FRAMES,
    TAIL_FRAMES,
};
pub use self::vad::level_dbfs;

use crate::provider::{AgentEvent, AgentIo, AgentProvider, AgentSession, CallFacts, CallInput, SessionEnd};
use crate::AgentError;

/// The echo-test agent: plays the caller's words back after they pause, reads digits back
/// as DTMF tones.
#[derive(Debug, Clone, Default)]
pub struct EchoProvider {
    config: EchoConfig,
}

impl EchoProvider {
    /// A provider whose sessions use `config`.
    pub fn new(config: EchoConfig) -> Self {
        EchoProvider { config }
    }
}

#[async_trait::async_trait]
impl AgentProvider for EchoProvider {
    fn name(&self) -> &str {
        "echo"
    }

    async fn open(&self, call: CallFacts) -> Result<AgentSession, AgentError> {
        let core = EchoCore::new(call.format, self.config.clone())?;
        tracing::info!(format = %call.format, "echo agent answering");
        Ok(AgentSession::spawn(self.name(), move |io| run(core, io)))
    }
}

/// The session task: input → core → events, until the call ends or goes away.
async fn run(mut core: EchoCore, mut io: AgentIo) {
    loop {
        if let Err(error) = drain(&mut core, &io).await {
            tracing::debug!(%error, "echo agent stopping");
            return; // The call dropped its session: nobody to tell.
        }
        match io.recv().await {
            Some(CallInput::Audio(frame)) => core.push_frame(frame.as_bytes()),
            Some(CallInput::Digit(digit)) => core.push_digit(digit),
            // It asks for no transfer, places no marks and needs no flush report.
            Some(
                CallInput::TransferResult(_)
                | CallInput::MarkPlayed { .. }
                | CallInput::PlaybackFlushed { .. },
            ) => {}
            Some(CallInput::CallEnded) | None => break,
        }
    }
    let dropped = io.stats().input_frames_dropped();
    if dropped > 0 {
        tracing::warn!(dropped, "echo agent fell behind and skipped caller audio frames");
    }
    tracing::debug!(frames = core.frames(), "echo agent done");
    // The call side may already be gone; the end event is a courtesy.
    let _ = io.send(AgentEvent::Ended(SessionEnd::CallEnded)).await;
}

/// Forward everything the core has ready.
async fn drain(core: &mut EchoCore, io: &AgentIo) -> Result<(), AgentError> {
    while let Some(out) = core.poll_output() {
        match out {
            EchoOutput::Audio(frame) => io.send(AgentEvent::Audio(frame)).await?,
            EchoOutput::FlushPlayback => io.send(AgentEvent::FlushPlayback).await?,
            EchoOutput::SpeechStarted { frame, barge_in } => {
                tracing::debug!(frame, barge_in, "echo: caller speaking");
            }
            EchoOutput::SpeechEnded { frame, recorded_bytes, truncated } => {
                tracing::debug!(frame, recorded_bytes, truncated, "echo: playing the caller back");
            }
            EchoOutput::DigitRead { digit, queued } => {
                tracing::debug!(%digit, queued, "echo: reading digit back");
            }
        }
    }
    Ok(())
}
