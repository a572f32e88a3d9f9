//! [`CallCore`]: one call, start to end, with no sockets, no tasks and no clock. Its
//! driver hands it datagrams, agent events, SIP signals and timeouts, each with the
//! `now` it happened at, and drains what it decided: packets ([`CallCore::poll_transmit`]),
//! actions ([`CallCore::poll_action`]) and the next instant it wants to be woken at
//! ([`CallCore::poll_timeout`]).
//!
//! The call's phases: ringing (180, then the 200 after the ring time), waiting for the
//! ACK, opening the agent, talking (one tick every 20 ms moves a frame each way), over.
//! This file owns the phases and the drain side; the tick, the agent's events and the
//! in-call signals live in `tick.rs`, `agent_events.rs` and `signals.rs`.

use crate::barge_in::EchoGuard;
use crate::figures::{Figures, WallClock};
use crate::heard::Heard;
use crate::io::{Action, Datagram, EndedBy, Ending, Invite, Observation, Signal, ENDED_BY_SHUTDOWN};
use crate::media_leg::{agent_format, codec_of, MediaLeg};
use crate::playback::Playback;
use crate::settings::{CallSettings, CallSetup};
use crate::transfer::{AfterPlayback, Transfer};
use crate::turn::TurnClock;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use voice_ua_agent::AgentError;
use voice_ua_media::{AudioCodec, Law};
use voice_ua_records::{CallOutcome, CallRecord, MediaStats};
use voice_ua_sip::negotiate::{MediaPlan, OfferAnswer};
use voice_ua_sip::session_timer::{SessionTimer, TimerDecision};
use voice_ua_sip::{IdSource, Reason};

pub(crate) const TICK: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ringing { until: Instant },
    AwaitingAck { until: Instant },
    OpeningAgent,
    Talking,
    Over,
}

/// One call as a state machine. See the module comment.
pub struct CallCore {
    pub(crate) settings: Arc<CallSettings>,
    phase: Phase,
    pub(crate) oa: OfferAnswer,
    timer_decision: TimerDecision,
    pbx_ips: Vec<IpAddr>,
    /// Randomness for SSRC, sequence numbers and timestamps, one draw per RTP stream.
    ids: IdSource,
    pub(crate) clock: WallClock,
    /// The 200 OK's SDP, until it is sent.
    answer_sdp: Option<String>,
    /// The agreed media, from the answer on.
    plan: Option<MediaPlan>,
    pub(crate) leg: Option<MediaLeg>,
    pub(crate) timer: Option<SessionTimer>,
    pub(crate) refresh_in_flight: bool,
    pub(crate) transfer: Option<Transfer>,
    pub(crate) after_playback: Option<AfterPlayback>,
    /// The agent failed (or ended): no more audio goes to it.
    pub(crate) agent_failed: bool,
    /// Why the caller is on hold ([`voice_ua_agent::HoldReason::bit`]s); 0: not on hold.
    pub(crate) hold_reasons: u8,
    pub(crate) turns: TurnClock,
    /// The agent's marks waiting for their audio to play.
    pub(crate) playback: Playback,
    /// Samples of the consent prompt at the head of the call's audio (0: none): a
    /// barge-in does not cut them, and the agent's count of its audio leaves them out.
    pub(crate) consent_samples: u64,
    pub(crate) figures: Figures,
    actions: VecDeque<Action>,
    pub(crate) ending: Option<Ending>,
    /// voice-ua is stopping: hang up as soon as the call can be.
    stopping: bool,
    pub(crate) next_tick: Instant,
    /// This tick's audio, both sides, when kept (see [`CallSetup::keep_audio`]); only
    /// recorded calls pay for it.
    pub(crate) heard: Option<Box<Heard>>,
    /// The echo canceller and the barge-in gate.
    pub(crate) echo: EchoGuard,
}

impl CallCore {
    /// A call for this INVITE, arriving at `now`. The first actions are already queued:
    /// a refusal (no acceptable codec), or 180 Ringing (and the 200 when there is no
    /// ring time).
    pub fn new(now: Instant, settings: Arc<CallSettings>, setup: CallSetup, invite: Invite) -> CallCore {
        let mut oa = OfferAnswer::new(settings.codecs.clone(), setup.local_media, setup.seed >> 16);
        // The INVITE's offer answered (or our own offer, for a late-offer INVITE), or why not.
        let negotiated = match invite.offer.as_deref() {
            Some(offer) => match oa.answer(offer) {
                Ok((plan, answer)) if codec_of(plan.codec).is_some() => Ok((Some(plan), answer)),
                Ok((plan, _)) => {
                    let codec = plan.codec.encoding();
                    tracing::warn!(codec, "refusing the call: {codec} is not carried end to end");
                    Err((
                        488,
                        CallOutcome::NoCodec,
                        format!("refused with 488: {codec} is not carried end to end"),
                    ))
                }
                Err(e) => {
                    let status = e.status();
                    tracing::warn!(status, "refusing the call: {e}");
                    let outcome = if status == 488 { CallOutcome::NoCodec } else { CallOutcome::Failed };
                    Err((status, outcome, format!("refused with {status}: {e}")))
                }
            },
            None => Ok((None, oa.offer())),
        };
        let mut pbx_ips = setup.pbx_ips;
        pbx_ips.push(invite.source.ip());
        let mut core = CallCore {
            phase: Phase::Over,
            oa,
            timer_decision: TimerDecision::decide(&invite.timer),
            pbx_ips,
            ids: IdSource::from_seed(setup.seed),
            clock: WallClock::new(now, setup.wall_clock),
            answer_sdp: None,
            plan: None,
            leg: None,
            timer: None,
            refresh_in_flight: false,
            transfer: None,
            after_playback: None,
            agent_failed: false,
            hold_reasons: 0,
            turns: TurnClock::new(),
            playback: Playback::new(),
            consent_samples: 0,
            figures: Figures::default(),
            // Room for a tick's actions (an agent frame, an observation); it grows only if a
            // burst ever needs more. An action with a frame is ~650 bytes.
            actions: VecDeque::with_capacity(2),
            ending: None,
            stopping: false,
            next_tick: now,
            heard: setup.keep_audio.then(|| Box::new(Heard::new())),
            echo: EchoGuard::new(settings.echo_cancel, settings.barge_in_min_ms, settings.duck_ms),
            settings,
        };
        match negotiated {
            Ok((plan, sdp)) => {
                core.plan = plan;
                core.answer_sdp = Some(sdp);
            }
            Err((status, outcome, why)) => {
                core.refuse(status, outcome, why);
                return core;
            }
        }
        core.push(Action::Ring);
        if core.settings.ring.is_zero() {
            core.answer(now);
        } else {
            core.phase = Phase::Ringing { until: now + core.settings.ring };
        }
        core
    }

    fn refuse(&mut self, status: u16, outcome: CallOutcome, why: String) {
        self.push(Action::Reject { status });
        self.end(outcome, EndedBy::VoiceUa, why);
    }

    fn answer(&mut self, now: Instant) {
        let sdp = self.answer_sdp.take().unwrap_or_default();
        self.push(Action::Answer { sdp, headers: self.timer_decision.response_headers() });
        self.phase = Phase::AwaitingAck { until: now + self.settings.ack_wait };
    }

    pub(crate) fn push(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    pub(crate) fn observe(&mut self, what: Observation) {
        self.push(Action::Observe(what));
    }

    /// The call is over: no more actions after the ones queued.
    pub(crate) fn end(&mut self, outcome: CallOutcome, by: EndedBy, why: String) {
        if self.ending.is_none() {
            self.ending = Some(Ending { outcome, by, why });
        }
        self.phase = Phase::Over;
    }

    /// Hang up (BYE with `reason`) and end the call.
    pub(crate) fn hang_up(&mut self, reason: Option<Reason>, outcome: CallOutcome, by: EndedBy, why: String) {
        self.push(Action::HangUp { reason });
        self.end(outcome, by, why);
    }

    pub(crate) fn talking(&self) -> bool {
        self.phase == Phase::Talking
    }

    /// How the call ended; None while it goes on.
    pub fn ending(&self) -> Option<&Ending> {
        self.ending.as_ref()
    }

    /// The call is over (its last actions may still be queued).
    pub fn is_over(&self) -> bool {
        self.phase == Phase::Over
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next RTP packet to send, copied into `buf` (at least 172 bytes).
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Datagram> {
        let leg = self.leg.as_mut()?;
        let (len, to) = leg.take_packet(buf)?;
        // Ducking re-encodes the G.711 payload; other codecs are not ducked.
        if let (true, Some(law)) = (self.echo.ducking(), leg.codec.law()) {
            crate::barge_in::duck_packet(law, leg.plan.pt, &mut buf[..len]);
        }
        Some(Datagram { len, to })
    }

    /// When the core wants [`CallCore::handle_timeout`] next; None when only input
    /// can move it.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Ringing { until } | Phase::AwaitingAck { until } => Some(until),
            Phase::Talking => {
                let timer = self.timer.as_ref().and_then(|t| t.poll_timeout());
                let report = self.transfer.as_ref().and_then(|t| t.report_at());
                Some([timer, report].into_iter().flatten().fold(self.next_tick, Instant::min))
            }
            Phase::OpeningAgent | Phase::Over => None,
        }
    }

    /// Time passed: ring out, give up on the ACK, run due ticks and timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Ringing { until } if now >= until => self.answer(now),
            Phase::AwaitingAck { until } if now >= until => {
                tracing::warn!("no ACK for our 200 OK: giving up on the call");
                self.end(CallOutcome::Failed, EndedBy::VoiceUa, "no ACK for our 200 OK".into());
            }
            Phase::Talking => {
                self.session_timer_due(now);
                self.report_transfer_if_due(now);
                if self.talking() && now >= self.next_tick {
                    // Far behind (a stalled process): catch up without a flood; the
                    // pacer keeps RTP timestamps on the clock.
                    if now.saturating_duration_since(self.next_tick) > TICK * 5 {
                        self.next_tick = now;
                    }
                    self.next_tick += TICK;
                    self.tick(now);
                }
            }
            _ => {}
        }
    }

    /// A datagram on the call's RTP socket.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if self.talking() {
            self.rtp_received(now, from, bytes);
        }
    }

    /// A signal from the dialog (or voice-ua).
    pub fn handle_signal(&mut self, now: Instant, signal: Signal) {
        match (self.phase, signal) {
            (Phase::Over, _) => {}
            (Phase::Ringing { .. }, Signal::Ended { by_remote, detail }) => {
                tracing::info!(by_remote, "call ended while ringing: {detail}");
                self.end(
                    CallOutcome::CallerCancel,
                    EndedBy::Caller,
                    "the caller gave up while it rang".into(),
                );
            }
            (Phase::Ringing { .. }, Signal::Stop) => {
                tracing::info!("voice-ua is stopping: refusing the ringing call with 503");
                self.refuse(503, CallOutcome::Shutdown, ENDED_BY_SHUTDOWN.into());
            }
            (Phase::Ringing { .. }, _) => {}
            (Phase::AwaitingAck { .. }, Signal::Acked { sdp }) => self.acked(sdp),
            (Phase::AwaitingAck { .. } | Phase::OpeningAgent, Signal::Ended { by_remote, detail }) => {
                tracing::info!(by_remote, "call ended before it was established: {detail}");
                let (outcome, by) = EndedBy::dialog_end(by_remote);
                self.end(outcome, by, format!("ended before it was established: {detail}"));
            }
            (Phase::AwaitingAck { .. } | Phase::OpeningAgent, Signal::Offer { .. }) => {
                self.push(Action::RejectOffer { status: 491 })
            }
            (Phase::AwaitingAck { .. } | Phase::OpeningAgent, Signal::Stop) => self.stopping = true,
            (Phase::AwaitingAck { .. } | Phase::OpeningAgent, _) => {}
            (Phase::Talking, Signal::Stop) => self.stop(),
            (Phase::Talking, signal) => self.in_call_signal(now, signal),
        }
    }

    fn stop(&mut self) {
        let reason = Reason::q850(16, "voice-ua stopping");
        self.hang_up(Some(reason), CallOutcome::Shutdown, EndedBy::VoiceUa, ENDED_BY_SHUTDOWN.into());
    }

    /// The ACK for our 200 OK (with the answer to our offer, for a late offer).
    fn acked(&mut self, sdp: Option<Vec<u8>>) {
        if self.plan.is_none() {
            match sdp.as_deref().map(|s| self.oa.accept_answer(s)) {
                Some(Ok(p)) if codec_of(p.codec).is_some() => self.plan = Some(p),
                other => {
                    tracing::warn!(?other, "the ACK carried no usable SDP answer: hanging up");
                    let reason = Reason::sip(488, "no usable SDP answer");
                    let why = "the ACK carried no usable SDP answer".to_string();
                    self.hang_up(Some(reason), CallOutcome::NoCodec, EndedBy::VoiceUa, why);
                    return;
                }
            }
        }
        let Some(plan) = self.plan.as_ref() else { return };
        let codec = codec_of(plan.codec).unwrap_or(AudioCodec::G711(Law::Ulaw));
        if self.stopping {
            self.stop();
            return;
        }
        self.push(Action::Answered { codec: plan.codec });
        self.push(Action::OpenAgent { format: agent_format(codec) });
        self.phase = Phase::OpeningAgent;
    }

    /// The agent session is open: the media starts now.
    pub fn agent_opened(&mut self, now: Instant) {
        if self.phase != Phase::OpeningAgent {
            return;
        }
        let Some(plan) = self.plan.clone() else { return };
        let codec = codec_of(plan.codec).unwrap_or(AudioCodec::G711(Law::Ulaw));
        let seed = self.stir();
        self.leg = Some(MediaLeg::new(now, plan, codec, self.settings.jitter, self.pbx_ips.clone(), seed));
        if let Some(h) = self.heard.as_deref_mut() {
            h.set_codec(codec);
        }
        self.play_consent_prompt();
        if let TimerDecision::Run { interval, refresher, .. } = self.timer_decision {
            self.timer = Some(SessionTimer::start(now, interval, refresher));
        }
        self.next_tick = now;
        self.phase = Phase::Talking;
        if self.stopping {
            self.stop();
        }
    }

    /// The agent session could not be opened: the call still runs, and the caller hears
    /// the fallback prompt rather than silence.
    pub fn agent_failed_to_open(&mut self, now: Instant, agent: &str, error: AgentError) {
        let cause = format!("the {agent} agent could not start: {error}");
        self.observe(Observation::AgentError(error));
        self.agent_opened(now);
        self.fall_back(&cause);
    }

    /// A new seed for an RTP stream's SSRC, sequence and timestamp.
    pub(crate) fn stir(&mut self) -> u64 {
        self.ids.next_u64()
    }

    /// The last tick's audio, once per tick, when kept: what the caller said (as played
    /// out of the jitter buffer) and what they heard from us (empty when we sent nothing),
    /// both at 8 kHz (a G.722 call's 16 kHz audio downsampled, see `heard.rs`).
    pub fn take_heard(&mut self) -> Option<(&[i16], &[i16])> {
        let h = self.heard.as_deref_mut()?;
        if !std::mem::replace(&mut h.ready, false) {
            return None;
        }
        Some((&h.caller, h.agent.get(..h.agent_len).unwrap_or(&[])))
    }

    /// The agent's flush requests the core dropped because the caller had not spoken
    /// over the playback (the agent heard our own echo).
    pub fn false_barge_ins_suppressed(&self) -> u64 {
        self.figures.false_barge_ins_suppressed
    }

    /// The echo's delay behind our playback, once the canceller has found it.
    pub fn echo_delay(&self) -> Option<Duration> {
        self.echo.delay()
    }

    /// The echo canceller's running ERLE (dB), once it runs.
    pub fn echo_erle_db(&self) -> Option<f32> {
        self.echo.erle_db()
    }

    /// The call's RTP figures so far.
    pub fn media_stats(&self) -> MediaStats {
        self.leg.as_ref().map(MediaLeg::stats).unwrap_or_default()
    }

    /// The agreed media plan, once there is one.
    pub fn plan(&self) -> Option<&MediaPlan> {
        self.leg.as_ref().map(|l| &l.plan).or(self.plan.as_ref())
    }

    /// One line at the end of the call: how long, how it ended, the RTP figures, the
    /// turns and their median latency when there were any, and the agent's tokens and
    /// cost when it reported them.
    pub fn log_summary(&self, now: Instant) {
        let m = self.media_stats();
        let usage = self.figures.usage();
        let f = &self.figures;
        let turns = (f.turns.len() as u64).saturating_add(f.turns_dropped);
        let (by, why, outcome) = match &self.ending {
            Some(e) => (e.by.as_str(), e.why.as_str(), e.outcome),
            None => ("voice-ua", "the call task stopped", CallOutcome::Failed),
        };
        tracing::info!(
            duration_s = now.saturating_duration_since(self.clock.start()).as_secs_f32(),
            codec = self.plan().map(|p| p.codec.encoding()).unwrap_or("none"),
            packets_in = m.packets_in,
            packets_out = m.packets_out,
            lost = m.lost,
            late = m.late,
            concealed = m.concealed,
            jitter_ms = m.jitter_ms,
            transcript_lines = self.figures.transcript.len(),
            turns = (turns > 0).then_some(turns),
            turn_median_ms = voice_ua_records::median_latency_ms(&f.turns),
            agent_reconnects = (f.agent_reconnects > 0).then_some(f.agent_reconnects),
            agent_tokens = usage.map(|u| u.total_tokens()),
            false_barge_ins = (f.false_barge_ins_suppressed > 0).then_some(f.false_barge_ins_suppressed),
            echo_delay_ms = self.echo.delay().map(|d| d.as_millis() as u64),
            cost = usage.and_then(|u| u.cost()).map(tracing::field::display),
            hung_up_by = by,
            %outcome,
            "call ended: {why}"
        );
    }

    /// Everything the call learnt, into its record: how it ended, the media figures,
    /// the conversation, the tools, the turns and what the agent used.
    pub fn fill_record(&mut self, r: &mut CallRecord) {
        if let Some(e) = &self.ending {
            r.outcome = e.outcome;
            r.end_reason = e.why.clone();
            r.hung_up_by = e.by.as_str().into();
        }
        r.media = self.media_stats();
        r.agent_session_id = self.figures.agent_session_id.take();
        r.transfer_target = self.figures.transfer_target.take();
        r.tool_calls = std::mem::take(&mut self.figures.tool_calls);
        r.transcript = std::mem::take(&mut self.figures.transcript);
        r.turns = std::mem::take(&mut self.figures.turns);
        r.turns_dropped = self.figures.turns_dropped;
        r.usage = self.figures.usage();
    }
}
