//! Turn timing: where the caller's utterances end (the caller-side VAD on each
//! played-out frame) and how long until the agent's reply starts (its first marked
//! RTP packet). The latency is measured as the caller experiences it: from the end of
//! their speech as received (the jitter buffer's playout delay taken off) to the
//! reply's first packet leaving.

use std::time::{Duration, Instant};
use voice_ua_agent::ReplyFigures;
use voice_ua_media::CallerVad;

const FRAME_TIME: Duration = Duration::from_millis(20);

pub(crate) struct TurnClock {
    vad: CallerVad,
    /// When the last loud caller frame was played out of the jitter buffer.
    last_loud: Option<Instant>,
    /// The caller's last utterance ended here (as received) and no reply has started.
    speech_end: Option<Instant>,
    /// The current utterance already had its turn measured (a reply started during it).
    utterance_measured: bool,
    /// The agent's own figures for the reply about to play.
    reply_figures: Option<ReplyFigures>,
}

impl TurnClock {
    pub(crate) fn new() -> TurnClock {
        TurnClock {
            vad: CallerVad::new(),
            last_loud: None,
            speech_end: None,
            utterance_measured: false,
            reply_figures: None,
        }
    }

    /// One played-out caller frame at `now`; `delay` is the jitter buffer's playout delay.
    pub(crate) fn caller_frame(&mut self, now: Instant, pcm: &[i16], delay: Duration) {
        let step = self.vad.push(pcm);
        if step.started {
            self.utterance_measured = false;
        }
        if step.loud {
            self.last_loud = Some(now);
        }
        if step.ended && !self.utterance_measured {
            self.speech_end = self.utterance_end(delay);
        }
    }

    fn utterance_end(&self, delay: Duration) -> Option<Instant> {
        self.last_loud.map(|t| (t + FRAME_TIME).checked_sub(delay).unwrap_or(t))
    }

    /// The agent announced a reply with its own figures.
    pub(crate) fn reply_announced(&mut self, figures: ReplyFigures) {
        self.reply_figures = Some(figures);
    }

    /// The reply's first packet left at `now`: the turn's latency, when there was an
    /// utterance to measure from.
    pub(crate) fn reply_started(
        &mut self,
        now: Instant,
        delay: Duration,
    ) -> Option<(Duration, ReplyFigures)> {
        let end = match self.speech_end.take() {
            Some(end) => Some(end),
            // The reply began while the caller was still (by our detector) talking.
            None if self.vad.speaking() && !self.utterance_measured => {
                self.utterance_measured = true;
                self.utterance_end(delay)
            }
            None => None,
        };
        let figures = self.reply_figures.take().unwrap_or_default();
        Some((now.saturating_duration_since(end?), figures))
    }
}
