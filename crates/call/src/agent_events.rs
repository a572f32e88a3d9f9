//! What the agent asks of the call — audio to play, barge-in, hang up, transfer, send
//! digits — and what it tells it (transcripts, figures, tools, its end), plus the
//! blind transfer it can start and the fallback when it fails: the caller is never
//! left in silence. The consent prompt (a recording notice) plays before the agent's
//! first words and survives a barge-in; transcript lines are logged only when
//! configured (the record keeps them either way).

use crate::core::CallCore;
use crate::io::{Action, EndedBy, Observation};
use crate::transfer::{AfterPlayback, Transfer};
use std::sync::Arc;
use std::time::{Duration, Instant};
use voice_ua_agent::{AgentEvent, CallInput, HoldReason, SessionEnd, TransferOutcome};
use voice_ua_records::CallOutcome;
use voice_ua_sip::Reason;

impl CallCore {
    /// One event from the agent session.
    pub fn handle_agent_event(&mut self, now: Instant, event: AgentEvent) {
        if !self.talking() {
            return;
        }
        match event {
            AgentEvent::Audio(frame) => {
                if let Some(leg) = self.leg.as_mut() {
                    leg.play(frame.as_bytes());
                }
            }
            // Carried out when the caller really spoke over the playback (barge_in.rs).
            AgentEvent::FlushPlayback => {
                if self.echo.request(self.audio_queued()) {
                    self.flush_playback();
                }
            }
            AgentEvent::Mark(id) => {
                let (sent, queued) = match self.leg.as_ref() {
                    Some(leg) => (leg.pacer.stats().audio_samples, leg.pacer.queued_samples() as u64),
                    None => (0, 0),
                };
                if let Some(id) = self.playback.mark(id, sent, queued) {
                    self.push(Action::ToAgent(CallInput::MarkPlayed { id, cleared: false }));
                }
            }
            AgentEvent::Usage(usage) => self.figures.usage = self.figures.usage.plus(usage),
            AgentEvent::Hold { reason, on } => self.hold(reason, on),
            AgentEvent::Reconnected { ok, attempts, after } => {
                if ok {
                    self.figures.agent_reconnects = self.figures.agent_reconnects.saturating_add(1);
                }
                self.observe(Observation::Reconnect { ok, attempts, after });
            }
            AgentEvent::HangUp { after_playback: true, reason } => {
                self.tool_used(now, "hangup", "ok");
                self.after_playback = Some(AfterPlayback::HangUp(reason));
            }
            AgentEvent::HangUp { after_playback: false, reason } => {
                self.tool_used(now, "hangup", "ok");
                self.hang_up(None, CallOutcome::AgentHangup, EndedBy::Agent, reason);
            }
            // The agent's last words ("I'm putting you through") play out first: a
            // blind transfer would cut them off.
            AgentEvent::Transfer { target } if self.audio_queued() && self.after_playback.is_none() => {
                self.after_playback = Some(AfterPlayback::Transfer { target, for_agent: true });
            }
            AgentEvent::Transfer { target } => self.start_transfer(now, &target, true),
            AgentEvent::SendDigits(digits) => {
                let mut result = "ok";
                for d in digits.chars() {
                    let sent = match self.leg.as_mut() {
                        Some(leg) => leg.pacer.send_dtmf(d, Duration::from_millis(100)),
                        None => Ok(()),
                    };
                    if let Err(e) = sent {
                        tracing::warn!("digit {d} not sent: {e}");
                        result = "error";
                    }
                }
                self.tool_used(now, "dtmf", result);
            }
            AgentEvent::Transcript { role, text, at } => {
                if self.settings.log_transcripts {
                    tracing::info!(?role, %text, "transcript");
                } else {
                    tracing::debug!(?role, chars = text.chars().count(), "transcript line (text not logged)");
                }
                self.figures.said(at, role, text);
            }
            AgentEvent::ReplyStarted(figures) => self.turns.reply_announced(figures),
            AgentEvent::SessionOpened { id } => self.figures.agent_session_id = Some(id),
            AgentEvent::ToolFinished { name, ok } => {
                self.tool_used(now, &name, if ok { "ok" } else { "error" })
            }
            AgentEvent::Ended(SessionEnd::Failed(e)) => {
                let cause = e.to_string();
                self.observe(Observation::AgentError(e));
                self.fall_back(&cause);
            }
            AgentEvent::Ended(end) => {
                tracing::info!("agent session ended: {end}");
                self.agent_failed = true;
                self.end_hold();
                if self.after_playback.is_none() {
                    self.after_playback = Some(AfterPlayback::HangUp(end.to_string()));
                }
            }
        }
    }

    /// The caller waits for `reason` (or no longer): the hold tone plays while any
    /// reason holds and no agent audio is queued.
    pub(crate) fn hold(&mut self, reason: HoldReason, on: bool) {
        let before = self.hold_reasons;
        if on {
            self.hold_reasons |= reason.bit();
        } else {
            self.hold_reasons &= !reason.bit();
        }
        if (before == 0) != (self.hold_reasons == 0) {
            let on = self.hold_reasons != 0;
            tracing::info!(reason = reason.word(), "hold tone {}", if on { "on" } else { "off" });
            if let Some(leg) = self.leg.as_mut() {
                leg.pacer.set_hold_tone(on);
            }
        }
    }

    /// No more waiting: the agent is gone.
    fn end_hold(&mut self) {
        self.hold_reasons = 0;
        if let Some(leg) = self.leg.as_mut() {
            leg.pacer.set_hold_tone(false);
        }
    }

    /// Barge-in: the agent's queued audio goes, its marks are answered as cleared, and
    /// it learns how much the caller heard.
    pub(crate) fn flush_playback(&mut self) {
        self.observe(Observation::BargeIn);
        let played_samples = self.flush_agent_audio();
        while let Some(id) = self.playback.take() {
            self.push(Action::ToAgent(CallInput::MarkPlayed { id, cleared: true }));
        }
        self.push(Action::ToAgent(CallInput::PlaybackFlushed { played_samples }));
    }

    fn audio_queued(&self) -> bool {
        self.leg.as_ref().is_some_and(|l| !l.pacer.queued().is_zero())
    }

    /// A tool the agent used: counted, and kept for the call record.
    fn tool_used(&mut self, now: Instant, name: &str, result: &'static str) {
        self.observe(Observation::Tool { name: name.to_string(), result });
        let at = self.clock.wall(now);
        self.figures.tool(at, name, result);
    }

    /// Start a blind transfer (REFER). `for_agent`: the agent asked and gets one
    /// [`TransferOutcome`]; otherwise it is the fallback's transfer.
    pub(crate) fn start_transfer(&mut self, now: Instant, target: &str, for_agent: bool) {
        if self.transfer.is_some() {
            tracing::warn!(%target, "a transfer is already under way; not starting another");
            if for_agent {
                self.report_transfer(now, TransferOutcome::AlreadyInProgress);
            }
            return;
        }
        let uri = if target.starts_with("sip:") {
            target.to_string()
        } else {
            format!("sip:{target}@{}", self.settings.domain)
        };
        tracing::info!(%uri, "transferring the caller (REFER)");
        self.figures.transfer_target = Some(uri.clone());
        self.push(Action::Refer { uri: uri.clone() });
        self.transfer = Some(Transfer::new(uri, for_agent));
    }

    /// The PBX answered the REFER (or did not).
    pub(crate) fn refer_answered(&mut self, now: Instant, answer: Result<u16, String>) {
        let Some(t) = self.transfer.as_mut() else { return };
        let outcome = match answer {
            Ok(code) if (200..300).contains(&code) => {
                tracing::info!(uri = %t.uri, status = code, "transfer accepted by the PBX");
                t.accepted(now);
                return;
            }
            Ok(0) => {
                tracing::warn!(uri = %t.uri, "transfer failed: no response to the REFER");
                TransferOutcome::NoAnswer
            }
            Ok(status) => {
                tracing::warn!(uri = %t.uri, status, "transfer refused by the PBX");
                TransferOutcome::Refused { status }
            }
            Err(e) => {
                tracing::warn!(uri = %t.uri, "transfer failed: {e}");
                TransferOutcome::NoAnswer
            }
        };
        self.transfer_failed(now, outcome);
    }

    /// A NOTIFY reported the transfer's progress (a sipfrag status line).
    pub(crate) fn transfer_progress(&mut self, now: Instant, code: u16) {
        tracing::info!(status = code, "transfer progress");
        if (200..300).contains(&code) {
            if self.transfer.as_mut().is_some_and(Transfer::take_report) {
                self.report_transfer(now, TransferOutcome::Completed);
            }
            self.hang_up(None, CallOutcome::Transferred, EndedBy::VoiceUa, "transferred".into());
        } else if code >= 300 {
            self.transfer_failed(now, TransferOutcome::Failed { status: code });
        }
    }

    /// The transfer is over and the caller is still here: tell the agent, or, when the
    /// agent has failed, go on with the fallback (its prompt still playing, or its human
    /// not tried yet) and else end the call rather than leave the caller in silence.
    fn transfer_failed(&mut self, now: Instant, outcome: TransferOutcome) {
        let failed = self.transfer.take();
        let agents_own = failed.as_ref().is_some_and(|t| t.for_agent);
        if failed.is_some_and(|mut t| t.take_report()) {
            self.report_transfer(now, outcome);
        }
        if self.agent_failed && self.after_playback.is_some() {
            tracing::warn!(%outcome, "the agent's transfer failed; what waits for the playback follows it");
            return;
        }
        if self.agent_failed && agents_own {
            // The prompt ended while the agent's transfer was under way, so the
            // fallback's own could not start then: it starts now.
            if let Some(human) = self.settings.fallback.transfer.clone() {
                tracing::warn!(%outcome, "the agent's transfer failed; transferring the caller to {human}");
                self.start_transfer(now, &human, false);
                return;
            }
        }
        if self.agent_failed {
            let why = format!("transfer failed ({outcome}) after the agent failed");
            self.hang_up(
                Some(Reason::sip(480, "transfer failed")),
                CallOutcome::Failed,
                EndedBy::VoiceUa,
                why,
            );
            return;
        }
        tracing::warn!(%outcome, "the transfer failed; the caller stays with the agent");
    }

    /// The PBX took the REFER a while ago and no NOTIFY has settled it: tell the agent
    /// "accepted" so it is not left waiting.
    pub(crate) fn report_transfer_if_due(&mut self, now: Instant) {
        let Some(t) = self.transfer.as_mut() else { return };
        if t.accepted_report_due(now) {
            tracing::info!(uri = %t.uri, "no final NOTIFY yet: telling the agent the transfer was accepted");
            self.report_transfer(now, TransferOutcome::Accepted);
        }
    }

    /// Tell the agent how its transfer went; count it and keep it for the record.
    fn report_transfer(&mut self, now: Instant, outcome: TransferOutcome) {
        self.tool_used(now, "transfer", outcome.word());
        self.push(Action::ToAgent(CallInput::TransferResult(outcome)));
    }

    /// The agent failed: play the fallback prompt, then transfer to the human target if
    /// there is one, else hang up.
    pub(crate) fn fall_back(&mut self, cause: &str) {
        if self.agent_failed {
            return;
        }
        self.agent_failed = true;
        self.end_hold();
        // The agent had already said goodbye and asked to hang up after it: the caller
        // hears the goodbye to its end and the call ends, as the agent meant.
        if matches!(self.after_playback, Some(AfterPlayback::HangUp(_))) {
            tracing::warn!(
                "the agent failed after its goodbye: {cause}; the goodbye plays out, then the call ends"
            );
            return;
        }
        let settings = self.settings.clone();
        let next = match &settings.fallback.transfer {
            Some(t) => format!("transferring the caller to {t}"),
            None => "ending the call".to_string(),
        };
        tracing::error!("the agent failed: {cause}; playing the fallback prompt, then {next}");
        // The agent is gone: its marks are never answered, its flush never carried out.
        while self.playback.take().is_some() {}
        self.echo.forget();
        self.flush_agent_audio();
        self.push_prompt(&settings.fallback.ulaw);
        self.after_playback = Some(match &settings.fallback.transfer {
            Some(t) => AfterPlayback::Transfer { target: t.clone(), for_agent: false },
            None => AfterPlayback::GiveUp(format!("agent failed: {cause}")),
        });
    }
}

impl CallCore {
    /// The consent prompt, first thing on a new media leg.
    pub(crate) fn play_consent_prompt(&mut self) {
        let prompt = Arc::clone(&self.settings);
        if prompt.consent_prompt.is_empty() {
            return;
        }
        tracing::info!(seconds = prompt.consent_prompt.len() as f64 / 8000.0, "playing the consent prompt");
        self.consent_samples = self.push_prompt(&prompt.consent_prompt);
    }

    /// Drop the agent's queued audio (barge-in, fallback). What is left of the consent
    /// prompt plays on. Returns how much agent audio the caller has heard, in samples,
    /// the consent prompt not counted.
    fn flush_agent_audio(&mut self) -> u64 {
        let Some(leg) = self.leg.as_mut() else { return 0 };
        leg.pacer.flush();
        let played = leg.pacer.stats().audio_samples;
        // The prompt is μ-law at 8 kHz; the pacer counts at the codec's rate.
        let per_8k = leg.samples_per_8k();
        if played < self.consent_samples {
            let settings = Arc::clone(&self.settings);
            let rest = settings.consent_prompt.get((played / per_8k) as usize..).unwrap_or_default();
            let queued = self.push_prompt(rest);
            // What is left of the prompt still counts as prompt, not agent audio.
            self.consent_samples = played + queued;
        }
        played.saturating_sub(self.consent_samples)
    }

    /// Queue μ-law 8 kHz audio for the caller, in the call's codec; returns the samples
    /// queued (at the codec's rate).
    fn push_prompt(&mut self, ulaw: &[u8]) -> u64 {
        self.leg.as_mut().map_or(0, |leg| leg.play_ulaw(ulaw))
    }
}
