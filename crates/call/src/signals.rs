//! What the dialog does while the call talks — re-offers (hold, resume, a moved
//! remote, session refreshes from the PBX), late answers, INFO digits, the transfer's
//! NOTIFYs, the end — and the session timer (RFC 4028): our refreshes, their answers,
//! the expiry.

use crate::core::CallCore;
use crate::io::{Action, EndedBy, Signal};
use crate::media_leg::codec_of;
use std::time::Instant;
use voice_ua_records::CallOutcome;
use voice_ua_sip::session_timer::{Refresher, SessionTimer, TimerAction};
use voice_ua_sip::Reason;

/// The Session-Expires line for the 200 OK to a session refresh.
fn session_expires_header(t: &SessionTimer) -> Vec<(&'static str, String)> {
    let who = if t.refresher() == Refresher::Them { "uac" } else { "uas" };
    vec![("Session-Expires", format!("{};refresher={who}", t.interval_secs()))]
}

impl CallCore {
    pub(crate) fn in_call_signal(&mut self, now: Instant, signal: Signal) {
        match signal {
            Signal::Offer { sdp } => self.re_offer(now, &sdp),
            Signal::Acked { sdp: Some(sdp) } => {
                if let Ok(plan) = self.oa.accept_answer(&sdp) {
                    let seed = self.stir();
                    if let Some(leg) = self.leg.as_mut() {
                        leg.replan(now, plan, seed);
                    }
                }
            }
            Signal::Acked { sdp: None } => {}
            Signal::Digit(d) => self.forward_digit(d),
            Signal::TransferProgress(code) => self.transfer_progress(now, code),
            Signal::ReferAnswered(answer) => self.refer_answered(now, answer),
            Signal::RefreshAnswered(answer) => self.refresh_answered(now, answer),
            Signal::Ended { by_remote, detail } => {
                let (outcome, by) = EndedBy::dialog_end(by_remote);
                self.end(outcome, by, detail);
            }
            Signal::Stop => {}
        }
    }

    /// A re-INVITE or UPDATE: answered at once. Any offer refreshes the session.
    fn re_offer(&mut self, now: Instant, sdp: &[u8]) {
        if let Some(t) = self.timer.as_mut() {
            t.refreshed(now);
        }
        if sdp.is_empty() {
            let sdp = self.oa.offer();
            self.push(Action::AnswerOffer { sdp, headers: vec![] });
            return;
        }
        // Kept to undo the answer's state when we refuse it: a refused re-offer leaves the
        // session as it was (RFC 3261 §14.2).
        let before = self.oa.clone();
        match self.oa.answer(sdp) {
            Ok((plan, answer))
                if codec_of(plan.codec).is_some()
                    && self.leg.as_ref().is_none_or(|l| l.can_switch_to(plan.codec)) =>
            {
                tracing::info!(codec = plan.codec.encoding(), direction = plan.direction.as_str(), remote = ?plan.remote, "media renegotiated");
                let seed = self.stir();
                if let Some(leg) = self.leg.as_mut() {
                    leg.replan(now, plan, seed);
                }
                let headers = self.timer.as_ref().map(session_expires_header).unwrap_or_default();
                self.push(Action::AnswerOffer { sdp: answer, headers });
            }
            Ok((plan, _)) => {
                tracing::info!(
                    codec = plan.codec.encoding(),
                    "re-offer refused: the call's audio rate cannot change mid-call"
                );
                self.oa = before;
                self.push(Action::RejectOffer { status: 488 })
            }
            Err(e) => {
                tracing::info!(status = e.status(), "re-offer refused: {e}");
                self.push(Action::RejectOffer { status: e.status() });
            }
        }
    }

    /// The session timer's instant has come: refresh, or end the expired session.
    pub(crate) fn session_timer_due(&mut self, now: Instant) {
        let Some(t) = self.timer.as_mut() else { return };
        match t.handle_timeout(now) {
            Some(TimerAction::Refresh) if !self.refresh_in_flight => {
                tracing::info!(attempt = t.failures() + 1, "refreshing the session (re-INVITE)");
                let sdp = self.oa.refresh_offer().unwrap_or_else(|| self.oa.offer());
                self.refresh_in_flight = true;
                self.push(Action::Refresh { sdp });
            }
            Some(TimerAction::Refresh) | None => {}
            Some(TimerAction::Expired) => {
                let why = if t.refresher() == Refresher::Us {
                    format!(
                        "session expired: no successful refresh of ours in {} s ({} failed)",
                        t.interval_secs(),
                        t.failures()
                    )
                } else {
                    format!("session expired: no refresh from the PBX in {} s", t.interval_secs())
                };
                tracing::warn!("ending the call: {why}");
                let reason = Reason::sip(408, "session timer expired");
                self.hang_up(Some(reason), CallOutcome::SessionExpired, EndedBy::VoiceUa, why);
            }
        }
    }

    /// The answer to our session refresh (0: none came).
    fn refresh_answered(&mut self, now: Instant, answer: Result<u16, String>) {
        self.refresh_in_flight = false;
        let Some(t) = self.timer.as_mut() else { return };
        let status = match answer {
            Ok(code) if (200..300).contains(&code) => {
                tracing::info!(status = code, "session refreshed");
                t.refreshed(now);
                return;
            }
            Ok(code) => code,
            Err(e) => {
                tracing::warn!("session refresh failed: {e}");
                0
            }
        };
        if t.refresh_failed(now, status) == Some(TimerAction::Expired) {
            let why = format!("our session refresh got {status}: the PBX no longer knows the call");
            let reason = Reason::sip(481, "session refresh: dialog gone");
            self.hang_up(Some(reason), CallOutcome::SessionExpired, EndedBy::VoiceUa, why);
            return;
        }
        let retry_in = t.poll_timeout().map(|at| at.saturating_duration_since(now).as_secs_f32());
        tracing::warn!(
            status,
            failures = t.failures(),
            retry_in_s = ?retry_in,
            expires_in_s = t.expires_at().saturating_duration_since(now).as_secs_f32(),
            "session refresh failed (status 0: no answer); retrying while the session lasts"
        );
    }
}
