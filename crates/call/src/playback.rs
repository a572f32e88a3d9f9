//! Where the agent's audio stands in its playback, for the agent: the marks it placed in
//! its audio, each answered once the caller has heard the audio before it (or once a
//! flush dropped that audio), in the order they were placed. Positions count the pacer's
//! audio samples sent ([`voice_ua_media::PacerStats::audio_samples`]), so a mark is
//! reached by the packet that carries its last sample, not by a clock.

use std::collections::VecDeque;

/// The most marks kept waiting; one more answers the oldest early (order is kept).
pub(crate) const MAX_MARKS: usize = 64;

/// The agent's marks that wait for their audio to play.
#[derive(Debug)]
pub(crate) struct Playback {
    /// `(id, the sent-sample count at which it is reached)`, oldest first.
    marks: VecDeque<(u32, u64)>,
}

impl Playback {
    pub(crate) fn new() -> Playback {
        Playback { marks: VecDeque::with_capacity(8) }
    }

    /// A mark placed after the audio queued now: `sent` samples have gone out and
    /// `queued` wait. Returns a mark to answer at once: this one when nothing waits
    /// before it (and nothing older is pending), or the oldest when too many wait.
    pub(crate) fn mark(&mut self, id: u32, sent: u64, queued: u64) -> Option<u32> {
        if queued == 0 && self.marks.is_empty() {
            return Some(id);
        }
        let early =
            if self.marks.len() >= MAX_MARKS { self.marks.pop_front().map(|(id, _)| id) } else { None };
        self.marks.push_back((id, sent.saturating_add(queued)));
        early
    }

    /// The oldest mark whose audio has all gone out, now that `sent` samples have.
    pub(crate) fn reached(&mut self, sent: u64) -> Option<u32> {
        match self.marks.front() {
            Some(&(id, at)) if at <= sent => {
                self.marks.pop_front();
                Some(id)
            }
            _ => None,
        }
    }

    /// The oldest mark still waiting, taken: a flush dropped its audio.
    pub(crate) fn take(&mut self) -> Option<u32> {
        self.marks.pop_front().map(|(id, _)| id)
    }

    /// Marks waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.marks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_with_nothing_before_it_is_answered_at_once() {
        let mut p = Playback::new();
        assert_eq!(p.mark(7, 1000, 0), Some(7));
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn a_mark_is_reached_by_its_last_sample_and_marks_keep_their_order() {
        let mut p = Playback::new();
        assert_eq!(p.mark(1, 0, 160), None);
        assert_eq!(p.mark(2, 0, 480), None);
        // Nothing waits before a third, but older ones do: it waits its turn.
        assert_eq!(p.mark(3, 0, 0), None);
        assert_eq!(p.reached(159), None);
        assert_eq!(p.reached(160), Some(1));
        assert_eq!(p.reached(160), None);
        assert_eq!(p.reached(480), Some(2));
        assert_eq!(p.reached(480), Some(3));
        assert_eq!(p.reached(10_000), None);
    }

    #[test]
    fn too_many_marks_answer_the_oldest_early() {
        let mut p = Playback::new();
        for id in 0..MAX_MARKS as u32 {
            assert_eq!(p.mark(id, 0, 160 * (u64::from(id) + 1)), None);
        }
        assert_eq!(p.mark(999, 0, 1_000_000), Some(0));
        assert_eq!(p.len(), MAX_MARKS);
        assert_eq!(p.take(), Some(1));
    }

    #[test]
    fn a_flush_takes_every_mark_oldest_first() {
        let mut p = Playback::new();
        p.mark(4, 0, 160);
        p.mark(5, 0, 320);
        assert_eq!(p.take(), Some(4));
        assert_eq!(p.take(), Some(5));
        assert_eq!(p.take(), None);
    }
}
