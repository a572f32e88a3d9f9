//! Where the caller is in the agent's audio, sans-IO: what OpenAI's barge-in needs to
//! truncate the reply the caller interrupted (shared/openai-realtime.md §5).
//!
//! Over a WebSocket the client owns playback, so the server cannot know how much of a
//! reply was heard; the client tells it with `conversation.item.truncate`. The call
//! reports, on each [`AgentEvent::FlushPlayback`](crate::AgentEvent::FlushPlayback),
//! how many agent samples the caller has heard in this seam session
//! ([`CallInput::PlaybackFlushed`](crate::CallInput::PlaybackFlushed)): counted from the
//! session's first agent audio, without the audio earlier flushes dropped.
//!
//! [`Playback`] keeps, per assistant audio item, where it starts in the count of samples
//! the provider sent to the call, and how that count stands against the call's (which
//! never holds the audio earlier flushes dropped; each report resets it to the call's
//! own figure), so that a report lands in the right item — the one that was playing, not
//! the last one received — and at the right place in it.

use std::collections::VecDeque;

/// G.711: 8 samples a millisecond.
const SAMPLES_PER_MS: u64 = 8;
/// Items tracked at once; the oldest go first (they have long played).
const MAX_ITEMS: usize = 32;
/// Flushes awaiting their report at once (one per caller utterance; reports follow at
/// once, so more would be a call that stopped answering).
const MAX_FLUSHES: usize = 8;

/// One assistant audio item as the call got it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AudioItem {
    id: String,
    /// Where its first sample is in the provider's count.
    start: u64,
    /// Its samples sent to the call.
    len: u64,
}

/// A flush sent to the call and not yet reported.
#[derive(Debug)]
struct Flush {
    /// The provider's count when it was sent.
    at: u64,
    /// The items sent before it (since the previous flush).
    items: VecDeque<AudioItem>,
}

/// What the caller heard of an item the flush cut: send
/// `conversation.item.truncate { item_id, content_index: 0, audio_end_ms }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncate {
    /// The assistant item.
    pub item_id: String,
    /// Milliseconds of its audio the caller heard.
    pub audio_end_ms: u64,
}

/// The agent's audio as sent to the call, per item, and the flushes it has been through.
#[derive(Debug, Default)]
pub struct Playback {
    /// Agent samples sent to the call in this seam session.
    sent: u64,
    /// The provider's count minus the call's, for audio sent after the last reported
    /// flush: what earlier flushes dropped (negative if the call ever counted more than
    /// was sent).
    offset: i64,
    /// Items sent since the last flush, in order.
    items: VecDeque<AudioItem>,
    /// Flushes sent, oldest first, awaiting their report.
    flushes: VecDeque<Flush>,
}

impl Playback {
    /// `samples` of item `item_id` were sent to the call. A new item starts where the
    /// audio sent so far ends.
    pub fn audio(&mut self, item_id: &str, samples: u64) {
        match self.items.iter_mut().rev().find(|i| i.id == item_id) {
            Some(item) => item.len += samples,
            None => {
                if self.items.len() == MAX_ITEMS {
                    self.items.pop_front();
                }
                self.items.push_back(AudioItem { id: item_id.to_owned(), start: self.sent, len: samples });
            }
        }
        self.sent += samples;
    }

    /// Agent samples sent to the call so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// A flush went to the call: the items sent so far are settled by its report.
    pub fn flush(&mut self) {
        if self.flushes.len() == MAX_FLUSHES {
            self.flushes.pop_front();
        }
        let items = std::mem::take(&mut self.items);
        self.flushes.push_back(Flush { at: self.sent, items });
    }

    /// Flushes awaiting their report.
    pub fn flushes_pending(&self) -> usize {
        self.flushes.len()
    }

    /// The call reports the oldest pending flush: the caller had heard `played` samples.
    /// The items that flush cut, in order: the one playing (cut where the caller was in
    /// it), then any queued behind it that were not heard at all (cut at 0 ms). An item
    /// heard to its end is never cut; neither is anything when no flush is pending.
    pub fn flushed(&mut self, played: u64) -> Vec<Truncate> {
        let Some(flush) = self.flushes.pop_front() else { return Vec::new() };
        let played = i64::try_from(played).unwrap_or(i64::MAX);
        let mut cut = Vec::new();
        for item in &flush.items {
            // Where the item starts in the call's count.
            let start = i64::try_from(item.start).unwrap_or(i64::MAX).saturating_sub(self.offset);
            let heard = u64::try_from(played.saturating_sub(start)).unwrap_or(0);
            if heard >= item.len {
                continue; // played to its end (or the report overshoots it)
            }
            cut.push(Truncate { item_id: item.id.clone(), audio_end_ms: heard / SAMPLES_PER_MS });
        }
        // What the flush dropped never reaches the call's count: from here on, the flush
        // point is `played` there.
        self.offset = i64::try_from(flush.at).unwrap_or(i64::MAX).saturating_sub(played);
        cut
    }

    /// This (renewed) session goes on where `previous` left the call's count: the same
    /// samples sent and dropped, and its flushes still to be reported (their items
    /// belong to the old connection, so only their places are kept).
    pub fn continue_from(&mut self, previous: &Playback) {
        self.sent = previous.sent;
        self.offset = previous.offset;
        self.items.clear();
        self.flushes = previous.flushes.iter().map(|f| Flush { at: f.at, items: VecDeque::new() }).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 ms of audio in samples.
    const MS: u64 = SAMPLES_PER_MS;

    fn cut(id: &str, ms: u64) -> Truncate {
        Truncate { item_id: id.into(), audio_end_ms: ms }
    }

    #[test]
    fn a_flush_mid_item_cuts_it_where_the_caller_was() {
        let mut p = Playback::default();
        p.audio("a", 1000 * MS);
        p.audio("a", 1000 * MS);
        p.flush();
        assert_eq!(p.flushed(1234 * MS), [cut("a", 1234)]);
    }

    #[test]
    fn the_item_playing_is_cut_not_the_last_one_received() {
        // Item a (2 s) is playing when the caller speaks; item b (1 s) is already queued.
        let mut p = Playback::default();
        p.audio("a", 2000 * MS);
        p.audio("b", 1000 * MS);
        p.flush();
        assert_eq!(p.flushed(500 * MS), [cut("a", 500), cut("b", 0)], "b was never heard");
        // Mid b: a was heard whole and is left alone.
        let mut p = Playback::default();
        p.audio("a", 2000 * MS);
        p.audio("b", 1000 * MS);
        p.flush();
        assert_eq!(p.flushed(2300 * MS), [cut("b", 300)]);
    }

    #[test]
    fn a_flush_exactly_at_a_boundary_cuts_the_next_item_at_zero() {
        let mut p = Playback::default();
        p.audio("a", 1000 * MS);
        p.audio("b", 1000 * MS);
        p.flush();
        assert_eq!(p.flushed(1000 * MS), [cut("b", 0)], "a ended exactly there: heard whole");
        // At the very end of everything sent: nothing to cut.
        let mut p = Playback::default();
        p.audio("a", 1000 * MS);
        p.flush();
        assert_eq!(p.flushed(1000 * MS), []);
    }

    #[test]
    fn a_flush_before_any_audio_cuts_nothing_or_the_unheard_items_at_zero() {
        let mut p = Playback::default();
        p.flush();
        assert_eq!(p.flushed(0), []);
        let mut p = Playback::default();
        p.audio("a", 800 * MS);
        p.flush();
        assert_eq!(p.flushed(0), [cut("a", 0)], "sent, never heard");
    }

    #[test]
    fn played_beyond_what_was_sent_is_clamped_to_heard_whole() {
        let mut p = Playback::default();
        p.audio("a", 300 * MS);
        p.flush();
        assert_eq!(p.flushed(10_000 * MS), []);
        // And the next item's offsets are not thrown off by it.
        p.audio("b", 400 * MS);
        p.flush();
        assert_eq!(p.flushed(10_000 * MS + 100 * MS), [cut("b", 100)]);
    }

    #[test]
    fn later_items_are_placed_in_the_calls_count_after_a_flush_dropped_audio() {
        let mut p = Playback::default();
        // 3 s sent, 1 s heard: 2 s dropped.
        p.audio("a", 3000 * MS);
        p.flush();
        assert_eq!(p.flushed(1000 * MS), [cut("a", 1000)]);
        // The next reply starts at 1 s in the call's count, although 3 s were sent.
        p.audio("b", 2000 * MS);
        p.flush();
        assert_eq!(p.flushed(1000 * MS + 700 * MS), [cut("b", 700)]);
        assert_eq!(p.sent(), 5000 * MS);
    }

    #[test]
    fn audio_sent_after_a_flush_and_before_its_report_belongs_to_the_next() {
        let mut p = Playback::default();
        p.audio("a", 2000 * MS);
        p.flush();
        // The new reply's audio arrives before the call's report.
        p.audio("b", 500 * MS);
        assert_eq!(p.flushed(600 * MS), [cut("a", 600)]);
        p.flush();
        // b started at 600 in the call's count: 250 ms of it heard.
        assert_eq!(p.flushed(850 * MS), [cut("b", 250)]);
    }

    #[test]
    fn two_flushes_before_their_reports_are_settled_in_order() {
        let mut p = Playback::default();
        p.audio("a", 1000 * MS);
        p.flush();
        p.audio("b", 1000 * MS);
        p.flush();
        assert_eq!(p.flushes_pending(), 2);
        assert_eq!(p.flushed(400 * MS), [cut("a", 400)]);
        // b starts at 400 in the call's count.
        assert_eq!(p.flushed(400 * MS + 250 * MS), [cut("b", 250)]);
        assert_eq!(p.flushed(0), [], "no flush pending: nothing");
    }

    #[test]
    fn milliseconds_round_down_and_deltas_of_one_item_add_up() {
        let mut p = Playback::default();
        for _ in 0..10 {
            p.audio("a", 160);
        }
        p.flush();
        assert_eq!(p.flushed(1599), [cut("a", 199)]);
    }

    #[test]
    fn a_renewed_session_keeps_the_calls_count() {
        let mut old = Playback::default();
        old.audio("a", 2000 * MS);
        old.flush();
        assert_eq!(old.flushed(500 * MS), [cut("a", 500)]);
        old.audio("b", 100 * MS);
        let mut new = Playback::default();
        new.continue_from(&old);
        new.audio("c", 1000 * MS);
        new.flush();
        // c starts after a's 500 heard ms and b's 100.
        assert_eq!(new.flushed(600 * MS + 300 * MS), [cut("c", 300)]);
    }
}
