//! The call's data path, both ways, once per 20 ms tick — one frame each way:
//!
//!   datagram → source filter → RTP parse → (telephone-event → digit) | jitter buffer
//!   tick: jitter buffer → 20 ms frame (PLC filled; 160 samples at 8 kHz for G.711, 320
//!         at 16 kHz for G.722) → echo canceller → VAD (turn timing) → agent format
//!         (G.711, or linear16 16 kHz) → agent
//!   agent audio → pacer (one frame per tick, silence when empty, flushed on barge-in)
//!         → packet ring → driver → socket
//!
//! and what waits on the played-out audio: the hang-up or transfer after the agent's
//! last words, the "accepted" transfer report, the media timeout. Nothing here
//! allocates.

use crate::core::CallCore;
use crate::io::{Action, EndedBy, Observation};
use crate::media_leg::{to_agent, Received};
use crate::transfer::AfterPlayback;
use std::net::SocketAddr;
use std::time::Instant;
use voice_ua_agent::provider::MAX_FRAME_BYTES;
use voice_ua_agent::{AudioFrame, CallInput, Digit};
use voice_ua_media::TransmitKind;
use voice_ua_records::CallOutcome;
use voice_ua_sip::Reason;

impl CallCore {
    pub(crate) fn rtp_received(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Some(leg) = self.leg.as_mut() else { return };
        if let Received::Digit(d) = leg.receive(now, from, bytes) {
            self.forward_digit(d);
        }
    }

    /// A key the caller pressed (RFC 4733 or SIP INFO), for the agent.
    pub(crate) fn forward_digit(&mut self, d: char) {
        // The digits themselves (a PIN, a card number) only where transcripts are logged.
        if self.settings.log_transcripts {
            tracing::info!(digit = %d, "caller pressed a key");
        } else {
            tracing::info!("caller pressed a key");
        }
        self.echo.key_pressed();
        if let Ok(digit) = Digit::new(d) {
            self.push(Action::ToAgent(CallInput::Digit(digit)));
        }
    }

    /// One 20 ms tick at `now`.
    pub(crate) fn tick(&mut self, now: Instant) {
        let Some(leg) = self.leg.as_mut() else { return };
        // Caller → agent: one frame out of the jitter buffer.
        let delay = leg.jitter.stats().delay;
        let codec = leg.codec;
        let frame = leg.jitter.pop(now);
        // Our own playback's echo out before the VAD and the agent hear it (the
        // recording keeps the caller's audio as it came).
        let clean = self.echo.caller_frame(frame.samples);
        let mut bytes = [0u8; MAX_FRAME_BYTES];
        let n = to_agent(codec, clean, &mut bytes);
        self.turns.caller_frame(now, clean, delay);
        if let Some(h) = self.heard.as_deref_mut() {
            h.caller_frame(frame.samples);
        }
        if !self.agent_failed {
            if let Ok(f) = AudioFrame::new(&bytes[..n]) {
                self.push(Action::ToAgent(CallInput::Audio(f)));
            }
        }
        // Agent → caller: what the pacer has due.
        let mut reply_started = false;
        while let Some(leg) = self.leg.as_mut() {
            let pt = leg.plan.pt;
            let Some((tx, packet)) = leg.transmit(now) else { break };
            // What the caller hears: the echo canceller's reference, and the recording's.
            let audio = tx.payload_type == pt && tx.kind != TransmitKind::Dtmf;
            if let Some(payload) = packet.get(12..tx.len).filter(|_| audio) {
                self.echo.played(codec, payload);
                if let Some(h) = self.heard.as_deref_mut() {
                    h.sent_payload(payload);
                }
            }
            // A marked audio packet starts the agent's answer: the turn is over.
            reply_started |= tx.marker && tx.kind == TransmitKind::Audio;
        }
        if let Some(h) = self.heard.as_deref_mut() {
            h.ready = true;
        }
        // The agent's marks whose audio has now all gone out.
        let sent = self.leg.as_ref().map_or(0, |l| l.pacer.stats().audio_samples);
        while let Some(id) = self.playback.reached(sent) {
            self.push(Action::ToAgent(CallInput::MarkPlayed { id, cleared: false }));
        }
        if reply_started {
            self.reply_started(now, delay);
        }
        self.barge_in_step();
        self.after_playback_if_done(now);
        self.media_timeout(now);
    }

    /// The reply's first packet left: a turn, when there was caller speech to time it
    /// from. One log line with the latency and the stages the agent reported, the
    /// record's row, and the observation for the metrics.
    fn reply_started(&mut self, now: Instant, delay: std::time::Duration) {
        let Some((latency, figures)) = self.turns.reply_started(now, delay) else { return };
        let at = self.clock.wall(now);
        let t = self.figures.turn(at, latency, &figures);
        tracing::info!(
            latency_ms = t.latency_ms,
            endpointing_ms = t.endpointing_ms,
            transcribe_ms = t.transcribe_ms,
            think_ms = t.think_ms,
            speak_ms = t.speak_ms,
            agent_total_ms = t.agent_total_ms,
            index = t.index,
            "turn"
        );
        self.observe(Observation::Turn { latency, figures });
    }

    /// The agent's queued audio has played out: carry out what waited for it.
    fn after_playback_if_done(&mut self, now: Instant) {
        if !self.leg.as_ref().is_some_and(|l| l.pacer.queued().is_zero()) {
            return;
        }
        match self.after_playback.take() {
            Some(AfterPlayback::HangUp(reason)) => {
                self.hang_up(None, CallOutcome::AgentHangup, EndedBy::Agent, reason);
            }
            Some(AfterPlayback::GiveUp(why)) => {
                self.hang_up(None, CallOutcome::Failed, EndedBy::VoiceUa, why)
            }
            Some(AfterPlayback::Transfer { target, for_agent }) => {
                self.start_transfer(now, &target, for_agent)
            }
            None => {}
        }
    }

    fn media_timeout(&mut self, now: Instant) {
        if self.is_over() {
            return;
        }
        let timeout = self.settings.media_timeout;
        if self.leg.as_ref().is_some_and(|l| l.timed_out(now, timeout)) {
            let why = format!("no RTP for {} s", timeout.as_secs());
            let reason = Reason::q850(102, "media timeout");
            self.hang_up(Some(reason), CallOutcome::MediaTimeout, EndedBy::VoiceUa, why);
        }
    }
}
