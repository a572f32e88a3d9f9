//! The plumbing of one session: the call's end ([`AgentSession`]), the agent's end
//! ([`AgentIo`]), the channel sizes and the shared drop counters.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{self, error::TryRecvError, error::TrySendError};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::{AgentEvent, AudioFrame, CallInput, Digit, SessionEnd};
use crate::AgentError;

/// Call → agent channel capacity: 50 items, 1 s of audio.
pub const INPUT_CAPACITY: usize = 50;
/// Backlog (in frames) beyond which [`AgentIo::recv`] skips the oldest audio: 200 ms.
pub const INPUT_STALE_FRAMES: usize = 10;
/// Agent → call channel capacity, in events (64 G.711 frames are 1.28 s of audio).
pub const EVENT_CAPACITY: usize = 64;

/// Counters shared by both ends of a session.
#[derive(Debug, Default)]
pub struct SessionStats {
    input_frames: AtomicU64,
    input_frames_dropped: AtomicU64,
}

impl SessionStats {
    /// Audio frames the call offered.
    pub fn input_frames(&self) -> u64 {
        self.input_frames.load(Ordering::Relaxed)
    }

    /// Audio frames that never reached the agent (stale backlog or full channel).
    pub fn input_frames_dropped(&self) -> u64 {
        self.input_frames_dropped.load(Ordering::Relaxed)
    }

    fn count_dropped(&self) {
        self.input_frames_dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// The call's end of a session. Dropping it aborts the agent task.
#[derive(Debug)]
pub struct AgentSession {
    provider: String,
    input: Option<mpsc::Sender<CallInput>>,
    events: mpsc::Receiver<AgentEvent>,
    task: Option<JoinHandle<()>>,
    stats: Arc<SessionStats>,
    ended: bool,
}

/// The agent's end of a session, handed to the provider's task.
#[derive(Debug)]
pub struct AgentIo {
    input: mpsc::Receiver<CallInput>,
    events: mpsc::Sender<AgentEvent>,
    stats: Arc<SessionStats>,
}

impl AgentSession {
    /// Create the channels and spawn `agent(io)` as the session's task, in the current
    /// tracing span. Call from within a tokio runtime (as [`super::AgentProvider::open`] is).
    pub fn spawn<F, Fut>(provider: &str, agent: F) -> AgentSession
    where
        F: FnOnce(AgentIo) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (input_tx, input_rx) = mpsc::channel(INPUT_CAPACITY);
        let (events_tx, events_rx) = mpsc::channel(EVENT_CAPACITY);
        let stats = Arc::new(SessionStats::default());
        let io = AgentIo { input: input_rx, events: events_tx, stats: Arc::clone(&stats) };
        let task = tokio::spawn(agent(io).in_current_span());
        AgentSession {
            provider: provider.to_owned(),
            input: Some(input_tx),
            events: events_rx,
            task: Some(task),
            stats,
            ended: false,
        }
    }

    /// The provider's name.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Counters for this session.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// Offer 20 ms of caller audio. Never waits: when the channel is full the frame is
    /// dropped and counted. `Err` only when the agent is gone.
    pub fn send_audio(&self, frame: AudioFrame) -> Result<(), AgentError> {
        self.stats.input_frames.fetch_add(1, Ordering::Relaxed);
        match self.try_send(CallInput::Audio(frame)) {
            Err(TrySendError::Full(_)) => {
                self.stats.count_dropped();
                Ok(())
            }
            Err(TrySendError::Closed(_)) => Err(AgentError::Closed { side: "agent" }),
            Ok(()) => Ok(()),
        }
    }

    /// Pass a DTMF key to the agent. Never waits.
    pub fn send_digit(&self, digit: Digit) -> Result<(), AgentError> {
        match self.try_send(CallInput::Digit(digit)) {
            Err(TrySendError::Full(_)) => {
                Err(AgentError::InputFull { what: "digit", capacity: INPUT_CAPACITY })
            }
            Err(TrySendError::Closed(_)) => Err(AgentError::Closed { side: "agent" }),
            Ok(()) => Ok(()),
        }
    }

    /// Tell the agent how the transfer it asked for went. Like a digit, never skipped; a
    /// full channel is an [`AgentError::InputFull`] for the call to log.
    pub fn send_transfer_result(&self, outcome: super::TransferOutcome) -> Result<(), AgentError> {
        match self.try_send(CallInput::TransferResult(outcome)) {
            Err(TrySendError::Full(_)) => {
                Err(AgentError::InputFull { what: "transfer result", capacity: INPUT_CAPACITY })
            }
            Err(TrySendError::Closed(_)) => Err(AgentError::Closed { side: "agent" }),
            Ok(()) => Ok(()),
        }
    }

    /// Tell the agent where playback is ([`CallInput::MarkPlayed`],
    /// [`CallInput::PlaybackFlushed`]). Like a digit, never skipped; a full channel is an
    /// [`AgentError::InputFull`] for the call to log.
    pub fn send_playback(&self, report: CallInput) -> Result<(), AgentError> {
        match self.try_send(report) {
            Err(TrySendError::Full(_)) => {
                Err(AgentError::InputFull { what: "playback report", capacity: INPUT_CAPACITY })
            }
            Err(TrySendError::Closed(_)) => Err(AgentError::Closed { side: "agent" }),
            Ok(()) => Ok(()),
        }
    }

    fn try_send(&self, input: CallInput) -> Result<(), TrySendError<()>> {
        match &self.input {
            Some(tx) => tx.try_send(input).map_err(|e| match e {
                TrySendError::Full(_) => TrySendError::Full(()),
                TrySendError::Closed(_) => TrySendError::Closed(()),
            }),
            None => Err(TrySendError::Closed(())),
        }
    }

    /// The next agent event if one is waiting; for the call's audio loop. After the agent
    /// task has gone without an `Ended` event, yields one `Ended(Failed(AgentStopped))`.
    pub fn try_event(&mut self) -> Option<AgentEvent> {
        match self.events.try_recv() {
            Ok(event) => Some(self.note(event)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => self.stopped(),
        }
    }

    /// Wait for the next agent event; `None` once the session is over and reported.
    pub async fn event(&mut self) -> Option<AgentEvent> {
        match self.events.recv().await {
            Some(event) => Some(self.note(event)),
            None => self.stopped(),
        }
    }

    fn note(&mut self, event: AgentEvent) -> AgentEvent {
        if matches!(event, AgentEvent::Ended(_)) {
            self.ended = true;
        }
        event
    }

    fn stopped(&mut self) -> Option<AgentEvent> {
        if self.ended {
            return None;
        }
        self.ended = true;
        let error = AgentError::AgentStopped { provider: self.provider.clone() };
        Some(AgentEvent::Ended(SessionEnd::Failed(error)))
    }

    /// Tell the agent the call is over: send `CallEnded` and close the input. Events
    /// already on their way (and the agent's `Ended`) can still be read.
    pub fn end_call(&mut self) {
        if let Some(tx) = self.input.take() {
            // A full channel is fine: closing the sender tells the agent as well.
            let _ = tx.try_send(CallInput::CallEnded);
        }
    }

    /// End the session politely: [`AgentSession::end_call`], give the agent `grace` to
    /// finish, then abort it.
    pub async fn finish(mut self, grace: Duration) {
        self.end_call();
        if let Some(task) = self.task.as_mut() {
            if tokio::time::timeout(grace, task).await.is_ok() {
                self.task = None;
            }
        }
        // Drop aborts whatever is left.
    }
}

impl Drop for AgentSession {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl AgentIo {
    /// The next input, `None` once the call has closed its side. Skips the oldest audio
    /// frames while more than [`INPUT_STALE_FRAMES`] items wait behind them (counted as
    /// dropped); digits and `CallEnded` always come through.
    pub async fn recv(&mut self) -> Option<CallInput> {
        loop {
            let input = self.input.recv().await?;
            if matches!(input, CallInput::Audio(_)) && self.input.len() >= INPUT_STALE_FRAMES {
                self.stats.count_dropped();
                continue;
            }
            return Some(input);
        }
    }

    /// Send an event to the call, waiting while its queue is full. `Err` once the call
    /// has dropped its session: the agent should stop then.
    pub async fn send(&self, event: AgentEvent) -> Result<(), AgentError> {
        self.events.send(event).await.map_err(|_| AgentError::Closed { side: "call" })
    }

    /// Send agent audio of any length, cut into frames of `chunk` bytes (for the
    /// 20 ms frame of a format, use [`super::AudioFormat::frame_bytes`]).
    pub async fn send_audio(&self, bytes: &[u8], chunk: usize) -> Result<(), AgentError> {
        for frame in AudioFrame::chunks(bytes, chunk) {
            self.send(AgentEvent::Audio(frame)).await?;
        }
        Ok(())
    }

    /// Counters for this session.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }
}
