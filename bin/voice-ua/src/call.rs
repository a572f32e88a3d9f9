//! One call, start to end, in one owned task: negotiate the SDP, answer, open the
//! agent, then run the whole data path —
//!
//!   socket → source filter → RTP parse → (telephone-event → digits) | jitter buffer
//!          → 20 ms frame (PLC filled) → G.711 → agent
//!   agent → pacer (one frame per tick, silence when empty, flush on barge-in) → socket
//!
//! — while answering the dialog's re-offers, digits, session timer and BYE. At the
//! end, one summary line. The hot path reuses its buffers and never blocks: the agent
//! is reached with `try_send`, the socket is non-blocking, and nothing takes a lock.

use crate::config::Fallback;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use voice_ua_agent::{
    AgentEvent, AgentProvider, AgentSession, AudioFormat, AudioFrame, CallFacts, Digit, ReplyFigures, Role,
    SessionEnd, TransferOutcome,
};
use voice_ua_media::{
    pcm_level_dbfs, DtmfEvent, DtmfReceiver, JitterBuffer, JitterConfig, Law, Pacer, PacerConfig,
    PayloadTypes, RtpPacket, SourceFilter, SourceVerdict, SpeechDetector, TransmitKind,
};
use voice_ua_records::{
    CallOutcome, CallRecord, MediaStats, RecordWriter, Recorder, Recording, ToolCall, TranscriptLine,
};
use voice_ua_sip::negotiate::{Codec, MediaPlan, OfferAnswer};
use voice_ua_sip::session_timer::{Refresher, SessionTimer, TimerAction, TimerDecision};
use voice_ua_sip::{CallSignal, IncomingCall, Reason, SipError};

/// What every call shares (from the configuration).
#[derive(Debug)]
pub struct CallConfig {
    pub codecs: Vec<Codec>,
    /// The address for our SDP (the SIP contact address).
    pub media_ip: IpAddr,
    /// The address RTP sockets bind to.
    pub bind_ip: IpAddr,
    /// The PBX's (registrar's) IP, when known: RTP may latch to it as well as to the
    /// SDP's address (besides the INVITE's own source).
    pub pbx_ip: Option<IpAddr>,
    pub ports: PortPool,
    pub media_timeout: Duration,
    /// How long to ring before answering (a CANCEL meanwhile ends the call with 487).
    pub ring: Duration,
    pub jitter: JitterConfig,
    /// SIP domain, for transfer targets given as bare extensions.
    pub domain: String,
    /// What the caller hears, and where they go, when the agent fails.
    pub fallback: Fallback,
    /// Counted at call start and end and on agent events, never per frame.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Where call records go (`[records]`), if anywhere.
    pub records: Option<RecordWriter>,
    /// Where recordings go, when `records.recordings` is on.
    pub recorder: Option<Recorder>,
    /// The agent provider's name, for the records.
    pub agent_name: String,
}

/// The call's books: the metrics guard and the call record. Whatever path the call
/// takes, dropping this counts the outcome and hands the finished record to the writer.
struct Books {
    counted: crate::metrics::CallGuard,
    record: Option<(RecordWriter, CallRecord)>,
    /// voice-ua is stopping: a call cut off before it could finish its books (its
    /// task aborted at the shutdown deadline) ended by shutdown, not by failure.
    stop: CancellationToken,
}

impl Books {
    fn set_outcome(&mut self, outcome: CallOutcome) {
        self.counted.set_outcome(outcome);
        if let Some((_, r)) = self.record.as_mut() {
            r.outcome = outcome;
        }
    }

    /// Why the call ended and who ended it.
    fn ended_because(&mut self, why: &str, by: &str) {
        if let Some((_, r)) = self.record.as_mut() {
            r.end_reason = why.into();
            r.hung_up_by = by.into();
        }
    }

    fn record(&mut self) -> Option<&mut CallRecord> {
        self.record.as_mut().map(|(_, r)| r)
    }
}

impl Drop for Books {
    fn drop(&mut self) {
        if let Some((writer, mut r)) = self.record.take() {
            r.ended = Some(std::time::SystemTime::now());
            if r.outcome == CallOutcome::InProgress && self.stop.is_cancelled() {
                self.counted.set_outcome(CallOutcome::Shutdown);
                r.outcome = CallOutcome::Shutdown;
                r.end_reason = ENDED_BY_SHUTDOWN.into();
                r.hung_up_by = "voice-ua".into();
            } else if r.outcome == CallOutcome::InProgress {
                r.outcome = CallOutcome::Failed;
            }
            if !writer.finished(r) {
                tracing::warn!("the call record could not be queued for writing");
            }
        }
    }
}

/// What to do once the queued agent audio has played out.
enum AfterPlayback {
    HangUp(String),
    /// REFER to this target; `for_agent`: the agent asked (and waits for the outcome).
    Transfer {
        target: String,
        for_agent: bool,
    },
}

/// The end reason of every call that voice-ua's shutdown ended.
pub const ENDED_BY_SHUTDOWN: &str = "ended by shutdown";

/// On shutdown, how long a call waits for the answer to its BYE (it is sent at once).
const SHUTDOWN_BYE_WAIT: Duration = Duration::from_millis(400);

/// On shutdown, how long the agent gets to close its session.
const SHUTDOWN_AGENT_WAIT: Duration = Duration::from_millis(200);

/// How long after the PBX took a REFER (202) the agent is told "accepted" if no NOTIFY
/// has reported the end by then.
const TRANSFER_REPORT_AFTER: Duration = Duration::from_secs(4);

/// A blind transfer under way: the REFER runs on its own task (the audio loop never
/// waits for the PBX), then NOTIFYs report how the new call went (RFC 3515).
struct Transfer {
    uri: String,
    refer: Option<tokio::task::JoinHandle<Result<u16, SipError>>>,
    /// The agent asked for it and waits for exactly one result; the fallback's own
    /// transfer has nobody to tell.
    for_agent: bool,
    reported: bool,
    /// The PBX took the REFER: tell the agent "accepted" at this instant unless a
    /// NOTIFY has settled it first.
    report_by: Option<Instant>,
}

/// Speech detector settings for the caller's side: 12 dB over the noise floor and above
/// -45 dBFS; speech starts after 60 ms, ends after 200 ms of quiet.
const CALLER_VAD: (f32, f32, u32, u32) = (12.0, -45.0, 3, 10);

/// RTP ports handed out round-robin from a range (even ports, RFC 3550 §11).
#[derive(Debug)]
pub struct PortPool {
    first: u16,
    last: u16,
    next: AtomicU16,
}

impl PortPool {
    pub fn new(first: u16, last: u16) -> PortPool {
        let first = first + first % 2;
        PortPool { first, last: last.max(first), next: AtomicU16::new(first) }
    }

    /// Bind a UDP socket on the next free even port of the range.
    async fn bind(&self, ip: IpAddr) -> std::io::Result<UdpSocket> {
        let slots = u32::from((self.last - self.first) / 2 + 1);
        for _ in 0..slots {
            let p = self.next.fetch_add(2, Ordering::Relaxed);
            let port = if p > self.last || p < self.first {
                self.next.store(self.first + 2, Ordering::Relaxed);
                self.first
            } else {
                p
            };
            if let Ok(s) = UdpSocket::bind(SocketAddr::new(ip, port)).await {
                return Ok(s);
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("every RTP port in {}-{} is busy; widen calls.rtp_ports", self.first, self.last),
        ))
    }
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

fn law_of(codec: Codec) -> Option<Law> {
    match codec {
        Codec::Pcmu => Some(Law::Ulaw),
        Codec::Pcma => Some(Law::Alaw),
        Codec::G722 => None,
    }
}

fn format_of(law: Law) -> AudioFormat {
    match law {
        Law::Ulaw => AudioFormat::Ulaw8k,
        Law::Alaw => AudioFormat::Alaw8k,
    }
}

/// How the call ended, for the summary.
struct Ending {
    by: &'static str,
    why: String,
    /// The record's outcome and the `outcome` label of `voice_ua_calls_total`.
    outcome: CallOutcome,
}

/// Run one call to its end. Never panics on what the network sends.
pub async fn run_call(
    mut call: IncomingCall,
    cfg: Arc<CallConfig>,
    agent: Arc<dyn AgentProvider>,
    stop: CancellationToken,
) {
    let started = Instant::now();
    let record = cfg.records.clone().map(|w| {
        let now = std::time::SystemTime::now();
        let mut r = CallRecord::new(
            CallRecord::new_id(now),
            &call.info.sip_call_id,
            uri_of(&call.info.from),
            uri_of(&call.info.to),
            now,
        );
        r.caller_display = display_name(&call.info.from);
        (w, r)
    });
    let mut counted = Books { counted: cfg.metrics.call_started(), record, stop: stop.clone() };
    let socket = match cfg.ports.bind(cfg.bind_ip).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot open an RTP port for the call: {e}");
            counted.ended_because(&format!("refused with 503: {e}"), "voice-ua");
            let _ = call.reject(503);
            return;
        }
    };
    let local_port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
    let mut oa =
        OfferAnswer::new(cfg.codecs.clone(), SocketAddr::new(cfg.media_ip, local_port), random_u64() >> 16);

    // Offer/answer for the INVITE (or our offer when it came without SDP).
    let timer = TimerDecision::decide(&call.info.timer);
    let mut plan = match call.info.offer.as_deref() {
        Some(offer) => match oa.answer(offer) {
            Ok((plan, answer)) if law_of(plan.codec).is_some() => {
                if !ring_then_answer(&mut call, &answer, &timer, &cfg, &stop, &mut counted).await {
                    return;
                }
                Some(plan)
            }
            Ok(_) => {
                tracing::warn!("refusing the call: only G.711 is carried end to end so far");
                counted.ended_because("refused with 488: no G.711 in the offer", "voice-ua");
                let _ = call.reject(488);
                counted.set_outcome(CallOutcome::NoCodec);
                return;
            }
            Err(e) => {
                if e.status() == 488 {
                    counted.set_outcome(CallOutcome::NoCodec);
                }
                tracing::warn!(status = e.status(), "refusing the call: {e}");
                counted.ended_because(&format!("refused with {}: {e}", e.status()), "voice-ua");
                let _ = call.reject(e.status());
                return;
            }
        },
        None => {
            let offer = oa.offer();
            if !ring_then_answer(&mut call, &offer, &timer, &cfg, &stop, &mut counted).await {
                return;
            }
            None
        }
    };

    // Wait for the ACK (and the answer in it, for a late offer).
    loop {
        match tokio::time::timeout(voice_ua_sip::ACK_WAIT, call.next()).await {
            Ok(Some(CallSignal::Acked { sdp })) => {
                if plan.is_none() {
                    match sdp.as_deref().map(|s| oa.accept_answer(s)) {
                        Some(Ok(p)) if law_of(p.codec).is_some() => plan = Some(p),
                        other => {
                            tracing::warn!(?other, "the ACK carried no usable SDP answer: hanging up");
                            counted.set_outcome(CallOutcome::NoCodec);
                            let _ = call.hangup(Some(Reason::sip(488, "no usable SDP answer"))).await;
                            return;
                        }
                    }
                }
                break;
            }
            Ok(Some(CallSignal::Ended(end))) => {
                tracing::info!(
                    by_remote = end.by_remote,
                    "call ended before it was established: {}",
                    end.detail
                );
                if end.by_remote {
                    counted.set_outcome(CallOutcome::CallerHangup);
                }
                counted.ended_because(
                    &format!("ended before it was established: {}", end.detail),
                    if end.by_remote { "caller" } else { "voice-ua" },
                );
                return;
            }
            Ok(Some(CallSignal::Offer(req))) => req.reject(491, vec![]).await,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                tracing::warn!("no ACK for our 200 OK: giving up on the call");
                counted.ended_because("no ACK for our 200 OK", "voice-ua");
                return;
            }
        }
    }
    let Some(plan) = plan else { return };
    let Some(law) = law_of(plan.codec) else { return };

    if let Some((w, r)) = counted.record.as_mut() {
        r.answered = Some(std::time::SystemTime::now());
        r.codec = Some(plan.codec.encoding().to_string());
        r.agent = Some(cfg.agent_name.clone());
        w.started(r);
    }
    let record_id = counted.record().map(|r| r.id.clone());
    let facts = CallFacts {
        call_id: call.info.sip_call_id.clone(),
        caller_display: display_name(&call.info.from),
        caller_uri: uri_of(&call.info.from),
        callee: uri_of(&call.info.to),
        format: format_of(law),
    };
    let (session, open_error) = match agent.open(facts).await {
        Ok(s) => (s, None),
        // Still run the call: the caller hears the fallback prompt, not silence.
        Err(e) => {
            cfg.metrics.agent_error(&e);
            (
                AgentSession::spawn("none", |_io| async {}),
                Some(format!("the {} agent could not start: {e}", agent.name())),
            )
        }
    };
    let timer = match timer {
        TimerDecision::Run { interval, refresher, .. } => {
            Some(SessionTimer::start(Instant::now(), interval, refresher))
        }
        _ => None,
    };
    // Media may come from the SDP's address, the PBX's, or where the INVITE came from.
    let pbx_ips: Vec<IpAddr> = cfg.pbx_ip.into_iter().chain([call.info.source.ip()]).collect();
    let mut media = Media::new(socket, plan, law, &cfg, pbx_ips);
    if let (Some(recorder), Some(id)) = (cfg.recorder.as_ref(), record_id.as_deref()) {
        match recorder.create(id) {
            Ok(rec) => media.recording = Some(rec),
            Err(e) => tracing::warn!("the call is not recorded: {e}"),
        }
    }
    if let Some(cause) = open_error {
        media.fall_back(&cause, &cfg);
    }
    let ending = media.run(&mut call, &mut oa, session, timer, &cfg, &stop).await;
    media.summary(started, &ending, &cfg.metrics);
    counted.set_outcome(ending.outcome);
    counted.ended_because(&ending.why, ending.by);
    if let Some(r) = counted.record() {
        media.fill_record(r);
    }
}

/// Ring, then answer with `sdp`. False when the call ended first: the caller gave up,
/// voice-ua is stopping (503), or the 200 OK could not be sent.
async fn ring_then_answer(
    call: &mut IncomingCall,
    sdp: &str,
    timer: &TimerDecision,
    cfg: &CallConfig,
    stop: &CancellationToken,
    books: &mut Books,
) -> bool {
    match ring(call, cfg.ring, stop).await {
        Rang::Out => {}
        Rang::CallerGone => {
            books.set_outcome(CallOutcome::CallerCancel);
            books.ended_because("the caller gave up while it rang", "caller");
            return false;
        }
        Rang::Stopping => {
            tracing::info!("voice-ua is stopping: refusing the ringing call with 503");
            let _ = call.reject(503);
            books.set_outcome(CallOutcome::Shutdown);
            books.ended_because(ENDED_BY_SHUTDOWN, "voice-ua");
            return false;
        }
    }
    if let Err(e) = call.accept(sdp, timer.response_headers()) {
        tracing::warn!("could not answer the call: {e}");
        return false;
    }
    true
}

/// How ringing ended.
enum Rang {
    /// The ring time is over: answer.
    Out,
    /// CANCEL (or the dialog ended) while it rang.
    CallerGone,
    /// SIGTERM while it rang.
    Stopping,
}

/// 180 Ringing, then wait `ring` for a CANCEL or the stop.
async fn ring(call: &mut IncomingCall, ring: Duration, stop: &CancellationToken) -> Rang {
    if let Err(e) = call.ringing() {
        tracing::warn!("could not send 180 Ringing: {e}");
    }
    if stop.is_cancelled() {
        return Rang::Stopping;
    }
    if ring.is_zero() {
        return Rang::Out;
    }
    let until = tokio::time::sleep(ring);
    tokio::pin!(until);
    loop {
        tokio::select! {
            _ = &mut until => return Rang::Out,
            _ = stop.cancelled() => return Rang::Stopping,
            sig = call.next() => match sig {
                Some(CallSignal::Ended(end)) => {
                    tracing::info!(by_remote = end.by_remote, "call ended while ringing: {}", end.detail);
                    return Rang::CallerGone;
                }
                None => return Rang::CallerGone,
                Some(_) => {}
            },
        }
    }
}

struct Media {
    socket: UdpSocket,
    plan: MediaPlan,
    law: Law,
    filter: Option<SourceFilter>,
    /// The PBX's IPs, for the source filter.
    pbx_ips: Vec<IpAddr>,
    jitter: JitterBuffer,
    pacer: Pacer,
    dtmf: Option<DtmfReceiver>,
    packets_in: u64,
    packets_out: u64,
    last_rtp: Instant,
    after_playback: Option<AfterPlayback>,
    /// The agent failed: no more audio goes to it.
    agent_failed: bool,
    /// The conversation as text, with when each line arrived (kept for the call record).
    transcript: Vec<(std::time::SystemTime, Role, String)>,
    /// The caller's speech, for turn latency: where their utterances end.
    vad: SpeechDetector,
    /// When the last loud caller frame was played out of the jitter buffer.
    last_loud: Option<Instant>,
    /// The caller's last utterance ended here (as received) and no reply has started.
    speech_end: Option<Instant>,
    /// The current utterance already had its turn measured (a reply started during it).
    utterance_measured: bool,
    /// The agent's own figures for the reply about to play.
    reply_figures: Option<ReplyFigures>,
    /// The blind transfer under way, if any.
    transfer: Option<Transfer>,
    /// The agent's id for the conversation (for the call record).
    agent_session_id: Option<String>,
    /// Tools the agent used: when, name, result (for the call record).
    tool_calls: Vec<(std::time::SystemTime, String, String)>,
    /// Where the caller was last transferred to (for the call record).
    transfer_target: Option<String>,
    /// The stereo WAV of the call, when recordings are on.
    recording: Option<Recording>,
}

impl Media {
    fn new(socket: UdpSocket, plan: MediaPlan, law: Law, cfg: &CallConfig, pbx_ips: Vec<IpAddr>) -> Media {
        let now = Instant::now();
        let seed = random_u64();
        let mut pc = PacerConfig::new(law, seed as u32, (seed >> 32) as u16, (seed >> 48) as u32);
        pc.payload_type = plan.pt;
        pc.dtmf_payload_type = plan.dtmf_pt;
        Media {
            socket,
            filter: plan.remote.map(|r| SourceFilter::new(r, &pbx_ips, payload_types(&plan))),
            pbx_ips,
            jitter: JitterBuffer::new(cfg.jitter),
            pacer: Pacer::new(pc, now),
            dtmf: plan.dtmf_pt.map(DtmfReceiver::new),
            plan,
            law,
            packets_in: 0,
            packets_out: 0,
            last_rtp: now,
            after_playback: None,
            agent_failed: false,
            transcript: Vec::new(),
            vad: SpeechDetector::new(CALLER_VAD.0, CALLER_VAD.1, CALLER_VAD.2, CALLER_VAD.3),
            last_loud: None,
            speech_end: None,
            utterance_measured: false,
            reply_figures: None,
            transfer: None,
            agent_session_id: None,
            tool_calls: Vec::new(),
            transfer_target: None,
            recording: None,
        }
    }

    /// Apply a renegotiated plan (hold, resume, moved remote, new codec).
    fn replan(&mut self, plan: MediaPlan) {
        match (plan.remote, self.filter.as_mut()) {
            (Some(r), Some(f)) => f.renegotiate(r, payload_types(&plan)),
            (Some(r), None) => self.filter = Some(SourceFilter::new(r, &self.pbx_ips, payload_types(&plan))),
            _ => {}
        }
        if let Some(law) = law_of(plan.codec).filter(|l| *l != self.law) {
            let seed = random_u64();
            let mut pc = PacerConfig::new(law, seed as u32, (seed >> 32) as u16, (seed >> 48) as u32);
            pc.payload_type = plan.pt;
            pc.dtmf_payload_type = plan.dtmf_pt;
            self.pacer = Pacer::new(pc, Instant::now());
            self.law = law;
        }
        match (plan.dtmf_pt, self.dtmf.as_mut()) {
            (Some(pt), Some(d)) => d.set_payload_type(pt),
            (Some(pt), None) => self.dtmf = Some(DtmfReceiver::new(pt)),
            (None, _) => self.dtmf = None,
        }
        self.last_rtp = Instant::now();
        self.plan = plan;
    }

    #[allow(clippy::too_many_arguments)]
    async fn run(
        &mut self,
        call: &mut IncomingCall,
        oa: &mut OfferAnswer,
        mut session: AgentSession,
        mut timer: Option<SessionTimer>,
        cfg: &CallConfig,
        stop: &CancellationToken,
    ) -> Ending {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        // One byte more than the largest packet: a longer datagram is seen as oversize,
        // never cut to the buffer and parsed as if whole.
        let mut rtp_in = [0u8; voice_ua_media::rtp::MAX_PACKET_LEN + 1];
        let mut rtp_out = [0u8; 1500];
        let mut frame_bytes = [0u8; 160];
        let mut caller_pcm = [0i16; 160];
        let mut agent_pcm = [0i16; 160];
        let mut agent_open = true;
        // Our session refresh (re-INVITE) runs on its own task: RTP never waits for it.
        let mut refresh: Option<tokio::task::JoinHandle<Result<u16, SipError>>> = None;
        let ending = loop {
            let timer_due = timer.as_ref().and_then(|t| t.poll_timeout());
            tokio::select! {
                r = self.socket.recv_from(&mut rtp_in) => {
                    if let Ok((n, from)) = r {
                        self.on_datagram(&rtp_in[..n.min(rtp_in.len())], from, &session);
                    }
                }
                // Agent events are handled as they arrive: a barge-in flushes the pacer
                // at once, so no agent frame leaves after it.
                ev = session.event(), if agent_open => {
                    let Some(ev) = ev else {
                        agent_open = false;
                        continue;
                    };
                    if let Some(end) = self.on_agent_events(Some(ev), &mut session, call, cfg).await {
                        break end;
                    }
                }
                r = join_task(&mut refresh) => {
                    let Some(t) = timer.as_mut() else { continue };
                    let now = Instant::now();
                    let status = match r {
                        Ok(Ok(code)) if (200..300).contains(&code) => {
                            tracing::info!(status = code, "session refreshed");
                            t.refreshed(now);
                            continue;
                        }
                        Ok(Ok(code)) => code,
                        Ok(Err(e)) => {
                            tracing::warn!("session refresh failed: {e}");
                            0
                        }
                        Err(e) => {
                            tracing::warn!("the session refresh task stopped: {e}");
                            0
                        }
                    };
                    if t.refresh_failed(now, status) == Some(TimerAction::Expired) {
                        let _ = call.hangup(Some(Reason::sip(481, "session refresh: dialog gone"))).await;
                        break Ending { by: "voice-ua", why: format!("our session refresh got {status}: the PBX no longer knows the call"), outcome: CallOutcome::SessionExpired };
                    }
                    let retry_in = t.poll_timeout().map(|at| at.saturating_duration_since(now).as_secs_f32());
                    tracing::warn!(status, failures = t.failures(), retry_in_s = ?retry_in, expires_in_s = t.expires_at().saturating_duration_since(now).as_secs_f32(), "session refresh failed (status 0: no answer); retrying while the session lasts");
                }
                r = join_refer(&mut self.transfer) => {
                    if let Some(end) = self.on_refer_answered(r, &session, call, cfg).await {
                        break end;
                    }
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    let frame = self.jitter.pop(now);
                    let n = self.law.encode_slice(frame.samples, &mut frame_bytes);
                    let level = pcm_level_dbfs(frame.samples);
                    if self.recording.is_some() {
                        let n = frame.samples.len().min(caller_pcm.len());
                        caller_pcm[..n].copy_from_slice(&frame.samples[..n]);
                    }
                    self.track_caller_speech(now, level);
                    if !self.agent_failed {
                        if let Ok(f) = AudioFrame::new(&frame_bytes[..n]) {
                            let _ = session.send_audio(f);
                        }
                    }
                    if let Some(end) = self.on_agent_events(None, &mut session, call, cfg).await {
                        break end;
                    }
                    let mut agent_heard = false;
                    while let Some(tx) = self.pacer.poll_transmit(now, &mut rtp_out) {
                        // What the caller hears this tick, for the recording.
                        if self.recording.is_some() && !agent_heard && tx.kind != TransmitKind::Dtmf && tx.len >= 12 + 160 {
                            self.law.decode_slice(&rtp_out[12..12 + 160], &mut agent_pcm);
                            agent_heard = true;
                        }
                        if let (true, Some(to)) = (self.plan.direction.we_send(), self.send_target()) {
                            if self.socket.try_send_to(&rtp_out[..tx.len], to).is_ok() {
                                self.packets_out += 1;
                            }
                        }
                        // A marked packet starts the agent's answer: the turn is over.
                        if tx.marker {
                            self.reply_started(now, cfg);
                        }
                    }
                    if let Some(rec) = self.recording.as_mut() {
                        let agent: &[i16] = if agent_heard { &agent_pcm } else { &[] };
                        rec.push(&caller_pcm, agent);
                    }
                    self.report_transfer_if_due(now, &session, cfg);
                    if self.pacer.queued().is_zero() {
                        match self.after_playback.take() {
                            Some(AfterPlayback::HangUp(reason)) => {
                                let _ = call.hangup(None).await;
                                break Ending { by: "agent", why: reason, outcome: CallOutcome::AgentHangup };
                            }
                            Some(AfterPlayback::Transfer { target, for_agent }) => self.start_transfer(call, &target, for_agent, &session, cfg),
                            None => {}
                        }
                    }
                    if self.plan.direction.we_receive() && now.duration_since(self.last_rtp) > cfg.media_timeout {
                        let _ = call.hangup(Some(Reason::q850(102, "media timeout"))).await;
                        break Ending { by: "voice-ua", why: format!("no RTP for {} s", cfg.media_timeout.as_secs()), outcome: CallOutcome::MediaTimeout };
                    }
                }
                sig = call.next() => match sig {
                    Some(CallSignal::Offer(req)) => {
                        if let Some(t) = timer.as_mut() {
                            t.refreshed(Instant::now());
                        }
                        if req.sdp.is_empty() {
                            let offer = oa.offer();
                            req.answer(offer, vec![]).await;
                            continue;
                        }
                        match oa.answer(&req.sdp) {
                            Ok((plan, answer)) if law_of(plan.codec).is_some() => {
                                tracing::info!(codec = plan.codec.encoding(), direction = plan.direction.as_str(), remote = ?plan.remote, "media renegotiated");
                                self.replan(plan);
                                let headers = timer.as_ref().map(session_expires_header).unwrap_or_default();
                                req.answer(answer, headers).await;
                            }
                            Ok(_) => req.reject(488, vec![]).await,
                            Err(e) => {
                                tracing::info!(status = e.status(), "re-offer refused: {e}");
                                req.reject(e.status(), vec![]).await;
                            }
                        }
                    }
                    Some(CallSignal::Acked { sdp: Some(sdp) }) => {
                        if let Ok(plan) = oa.accept_answer(&sdp) {
                            self.replan(plan);
                        }
                    }
                    Some(CallSignal::Digit(d)) => self.forward_digit(d, &session),
                    Some(CallSignal::TransferProgress(code)) => {
                        if let Some(end) = self.on_transfer_progress(code, &session, call, cfg).await {
                            break end;
                        }
                    }
                    Some(CallSignal::Ended(end)) => {
                        let (by, outcome) = if end.by_remote { ("caller", CallOutcome::CallerHangup) } else { ("voice-ua", CallOutcome::Failed) };
                        break Ending { by, why: end.detail, outcome };
                    }
                    Some(CallSignal::Acked { sdp: None }) => {}
                    None => break Ending { by: "voice-ua", why: "signalling ended".into(), outcome: CallOutcome::Failed },
                },
                _ = sleep_until_opt(timer_due) => {
                    let Some(t) = timer.as_mut() else { continue };
                    match t.handle_timeout(Instant::now()) {
                        Some(TimerAction::Refresh) => {
                            let sdp = oa.refresh_offer().unwrap_or_else(|| oa.offer());
                            let refresher = call.session_refresher();
                            tracing::info!(attempt = t.failures() + 1, "refreshing the session (re-INVITE)");
                            refresh = Some(tokio::spawn(async move { refresher.refresh(&sdp, vec![]).await }));
                        }
                        Some(TimerAction::Expired) => {
                            if let Some(task) = refresh.take() {
                                task.abort();
                            }
                            let why = if t.refresher() == Refresher::Us {
                                format!("session expired: no successful refresh of ours in {} s ({} failed)", t.interval_secs(), t.failures())
                            } else {
                                format!("session expired: no refresh from the PBX in {} s", t.interval_secs())
                            };
                            tracing::warn!("ending the call: {why}");
                            let _ = call.hangup(Some(Reason::sip(408, "session timer expired"))).await;
                            break Ending { by: "voice-ua", why, outcome: CallOutcome::SessionExpired };
                        }
                        None => {}
                    }
                }
                _ = stop.cancelled() => {
                    // The BYE leaves at once; its answer is not worth holding up the exit.
                    let bye = call.hangup(Some(Reason::q850(16, "voice-ua stopping")));
                    if tokio::time::timeout(SHUTDOWN_BYE_WAIT, bye).await.is_err() {
                        tracing::info!("no answer to the BYE yet; stopping anyway");
                    }
                    break Ending { by: "voice-ua", why: ENDED_BY_SHUTDOWN.into(), outcome: CallOutcome::Shutdown };
                }
            }
        };
        if let Some(task) = refresh.take() {
            task.abort();
        }
        let finish = if stop.is_cancelled() { SHUTDOWN_AGENT_WAIT } else { Duration::from_millis(500) };
        session.finish(finish).await;
        ending
    }

    fn send_target(&self) -> Option<SocketAddr> {
        self.filter.as_ref().map(|f| f.remote()).or(self.plan.remote)
    }

    /// One datagram from the RTP socket: parsed first, so only valid RTP of a negotiated
    /// payload type from the call's source (see [`SourceFilter`]) gets any further.
    fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr, session: &AgentSession) {
        let Some(filter) = self.filter.as_mut() else { return };
        let Ok(packet) = RtpPacket::parse(bytes) else { return };
        let now = Instant::now();
        match filter.check(now, from, &packet.header) {
            SourceVerdict::Reject => return,
            SourceVerdict::Latched(addr) => {
                tracing::info!(%addr, ssrc = packet.header.ssrc, "RTP moved to the address it really comes from")
            }
            SourceVerdict::Accept => {}
        }
        self.packets_in += 1;
        self.last_rtp = now;
        if let Some(dtmf) = self.dtmf.as_mut() {
            if dtmf.accepts(&packet) {
                if let Some(DtmfEvent::Pressed { digit }) = dtmf.handle(&packet) {
                    self.forward_digit(digit, session);
                }
                return;
            }
        }
        if packet.header.payload_type == self.plan.pt {
            self.jitter.push(now, &packet);
        }
    }

    fn forward_digit(&self, d: char, session: &AgentSession) {
        tracing::info!(digit = %d, "caller pressed a key");
        if let Ok(digit) = Digit::new(d) {
            if let Err(e) = session.send_digit(digit) {
                tracing::warn!("digit {d} not passed to the agent: {e}");
            }
        }
    }

    /// `first` (when given) and every agent event already queued: one wake-up handles
    /// them all (a provider turns one WebSocket message into several frames).
    async fn on_agent_events(
        &mut self,
        first: Option<AgentEvent>,
        session: &mut AgentSession,
        call: &IncomingCall,
        cfg: &CallConfig,
    ) -> Option<Ending> {
        let mut next = first.or_else(|| session.try_event());
        while let Some(ev) = next {
            if let Some(end) = self.on_agent_event(ev, session, call, cfg).await {
                return Some(end);
            }
            next = session.try_event();
        }
        None
    }

    /// One event from the agent.
    async fn on_agent_event(
        &mut self,
        ev: AgentEvent,
        session: &AgentSession,
        call: &IncomingCall,
        cfg: &CallConfig,
    ) -> Option<Ending> {
        match ev {
            AgentEvent::Audio(frame) => {
                self.pacer.push_encoded(frame.as_bytes());
            }
            AgentEvent::FlushPlayback => {
                cfg.metrics.barge_in();
                self.pacer.flush()
            }
            AgentEvent::HangUp { after_playback: true, reason } => {
                self.tool_used(cfg, "hangup", "ok");
                self.after_playback = Some(AfterPlayback::HangUp(reason))
            }
            AgentEvent::HangUp { after_playback: false, reason } => {
                self.tool_used(cfg, "hangup", "ok");
                let _ = call.hangup(None).await;
                return Some(Ending { by: "agent", why: reason, outcome: CallOutcome::AgentHangup });
            }
            // The agent's last words ("I'm putting you through") play out first: a
            // blind transfer would cut them off.
            AgentEvent::Transfer { target }
                if !self.pacer.queued().is_zero() && self.after_playback.is_none() =>
            {
                self.after_playback = Some(AfterPlayback::Transfer { target, for_agent: true });
            }
            AgentEvent::Transfer { target } => self.start_transfer(call, &target, true, session, cfg),
            AgentEvent::SendDigits(digits) => {
                let mut result = "ok";
                for d in digits.chars() {
                    if let Err(e) = self.pacer.send_dtmf(d, Duration::from_millis(100)) {
                        tracing::warn!("digit {d} not sent: {e}");
                        result = "error";
                    }
                }
                self.tool_used(cfg, "dtmf", result);
            }
            AgentEvent::Transcript { role, text, at } => {
                tracing::info!(?role, %text, "transcript");
                self.transcript.push((at, role, text));
            }
            AgentEvent::ReplyStarted(figures) => self.reply_figures = Some(figures),
            AgentEvent::SessionOpened { id } => self.agent_session_id = Some(id),
            AgentEvent::ToolFinished { name, ok } => {
                self.tool_used(cfg, &name, if ok { "ok" } else { "error" })
            }
            AgentEvent::Ended(SessionEnd::Failed(e)) => {
                cfg.metrics.agent_error(&e);
                self.fall_back(&e.to_string(), cfg)
            }
            AgentEvent::Ended(end) => {
                tracing::info!("agent session ended: {end}");
                self.agent_failed = true;
                if self.after_playback.is_none() {
                    self.after_playback = Some(AfterPlayback::HangUp(end.to_string()));
                }
            }
        }
        None
    }

    /// A tool the agent used: counted, and kept for the call record.
    fn tool_used(&mut self, cfg: &CallConfig, name: &str, result: &str) {
        cfg.metrics.tool_call(name, result);
        self.tool_calls.push((std::time::SystemTime::now(), name.to_string(), result.to_string()));
    }

    /// Follow the caller's speech (one played-out frame per tick) to find where each
    /// utterance ends, as received: the last loud frame's end, less the jitter buffer's
    /// playout delay.
    fn track_caller_speech(&mut self, now: Instant, level_dbfs: f32) {
        let step = self.vad.push(level_dbfs, 0.0);
        if step.started {
            self.utterance_measured = false;
        }
        if step.loud {
            self.last_loud = Some(now);
        }
        if step.ended && !self.utterance_measured {
            self.speech_end = self.utterance_end();
        }
    }

    fn utterance_end(&self) -> Option<Instant> {
        let delay = self.jitter.stats().delay;
        self.last_loud.map(|t| (t + Duration::from_millis(20)).checked_sub(delay).unwrap_or(t))
    }

    /// The first packet of an agent reply left: log the turn's latency (the caller's
    /// end of speech → this packet) beside the agent's own figures.
    fn reply_started(&mut self, now: Instant, cfg: &CallConfig) {
        let end = match self.speech_end.take() {
            Some(end) => Some(end),
            // The reply began while the caller was still (by our detector) talking.
            None if self.vad.speaking() && !self.utterance_measured => {
                self.utterance_measured = true;
                self.utterance_end()
            }
            None => None,
        };
        let figures = self.reply_figures.take().unwrap_or_default();
        let Some(end) = end else { return };
        let latency = now.saturating_duration_since(end);
        cfg.metrics.turn_latency(latency.as_secs_f64());
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
        tracing::info!(
            latency_ms = latency.as_millis() as u64,
            agent_total_ms = ms(figures.total),
            agent_think_ms = ms(figures.think),
            agent_speak_ms = ms(figures.speak),
            "turn: caller's end of speech to the agent's first RTP packet"
        );
    }

    /// Start a blind transfer (REFER) on its own task. `for_agent`: the agent asked and
    /// gets one [`TransferOutcome`]; otherwise it is the fallback's transfer.
    fn start_transfer(
        &mut self,
        call: &IncomingCall,
        target: &str,
        for_agent: bool,
        session: &AgentSession,
        cfg: &CallConfig,
    ) {
        if self.transfer.is_some() {
            tracing::warn!(%target, "a transfer is already under way; not starting another");
            if for_agent {
                self.report_transfer(session, TransferOutcome::AlreadyInProgress, cfg);
            }
            return;
        }
        let uri = if target.starts_with("sip:") {
            target.to_string()
        } else {
            format!("sip:{target}@{}", cfg.domain)
        };
        tracing::info!(%uri, "transferring the caller (REFER)");
        self.transfer_target = Some(uri.clone());
        let transferer = call.transferer();
        let refer_to = uri.clone();
        let refer = tokio::spawn(async move { transferer.refer(&refer_to).await });
        self.transfer =
            Some(Transfer { uri, refer: Some(refer), for_agent, reported: false, report_by: None });
    }

    /// The PBX answered the REFER (or did not).
    async fn on_refer_answered(
        &mut self,
        answer: Result<u16, String>,
        session: &AgentSession,
        call: &IncomingCall,
        cfg: &CallConfig,
    ) -> Option<Ending> {
        let t = self.transfer.as_mut()?;
        let outcome = match answer {
            Ok(code) if (200..300).contains(&code) => {
                tracing::info!(uri = %t.uri, status = code, "transfer accepted by the PBX");
                t.report_by = Some(Instant::now() + TRANSFER_REPORT_AFTER);
                return None;
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
        self.transfer_failed(outcome, session, call, cfg).await
    }

    /// A NOTIFY reported the transfer's progress (a sipfrag status line).
    async fn on_transfer_progress(
        &mut self,
        code: u16,
        session: &AgentSession,
        call: &IncomingCall,
        cfg: &CallConfig,
    ) -> Option<Ending> {
        tracing::info!(status = code, "transfer progress");
        if (200..300).contains(&code) {
            if self
                .transfer
                .as_mut()
                .is_some_and(|t| t.for_agent && !std::mem::replace(&mut t.reported, true))
            {
                self.report_transfer(session, TransferOutcome::Completed, cfg);
            }
            let _ = call.hangup(None).await;
            return Some(Ending {
                by: "voice-ua",
                why: "transferred".into(),
                outcome: CallOutcome::Transferred,
            });
        }
        if code >= 300 {
            return self.transfer_failed(TransferOutcome::Failed { status: code }, session, call, cfg).await;
        }
        None
    }

    /// The transfer is over and the caller is still here: tell the agent, or, when the
    /// agent has failed, end the call rather than leave the caller in silence.
    async fn transfer_failed(
        &mut self,
        outcome: TransferOutcome,
        session: &AgentSession,
        call: &IncomingCall,
        cfg: &CallConfig,
    ) -> Option<Ending> {
        let t = self.transfer.take();
        if t.as_ref().is_some_and(|t| t.for_agent && !t.reported) {
            self.report_transfer(session, outcome, cfg);
        }
        if self.agent_failed {
            let _ = call.hangup(Some(Reason::sip(480, "transfer failed"))).await;
            let why = format!("transfer failed ({outcome}) after the agent failed");
            return Some(Ending { by: "voice-ua", why, outcome: CallOutcome::Failed });
        }
        tracing::warn!(%outcome, "the transfer failed; the caller stays with the agent");
        None
    }

    /// The PBX took the REFER a while ago and no NOTIFY has settled it: tell the agent
    /// "accepted" so it is not left waiting.
    fn report_transfer_if_due(&mut self, now: Instant, session: &AgentSession, cfg: &CallConfig) {
        let Some(t) = self.transfer.as_mut() else { return };
        if t.report_by.is_some_and(|at| now >= at) {
            t.report_by = None;
            if t.for_agent && !t.reported {
                t.reported = true;
                tracing::info!(uri = %t.uri, "no final NOTIFY yet: telling the agent the transfer was accepted");
                self.report_transfer(session, TransferOutcome::Accepted, cfg);
            }
        }
    }

    /// Tell the agent how its transfer went; count it and keep it for the record.
    fn report_transfer(&mut self, session: &AgentSession, outcome: TransferOutcome, cfg: &CallConfig) {
        let label = match outcome {
            TransferOutcome::Accepted => "accepted",
            TransferOutcome::Completed => "completed",
            TransferOutcome::Refused { .. } => "refused",
            TransferOutcome::Failed { .. } => "failed",
            TransferOutcome::NoAnswer => "no_answer",
            TransferOutcome::AlreadyInProgress => "busy",
        };
        self.tool_used(cfg, "transfer", label);
        if let Err(e) = session.send_transfer_result(outcome) {
            tracing::warn!("the transfer result did not reach the agent: {e}");
        }
    }

    /// The agent failed: the caller is never left in silence. Play the fallback
    /// prompt, then transfer to the human target if there is one, else hang up.
    fn fall_back(&mut self, cause: &str, cfg: &CallConfig) {
        if self.agent_failed {
            return;
        }
        self.agent_failed = true;
        let next = match &cfg.fallback.transfer {
            Some(t) => format!("transferring the caller to {t}"),
            None => "ending the call".to_string(),
        };
        tracing::error!("the agent failed: {cause}; playing the fallback prompt, then {next}");
        self.pacer.flush();
        let mut chunk = [0u8; 160];
        for part in cfg.fallback.ulaw.chunks(160) {
            let out = &mut chunk[..part.len()];
            out.copy_from_slice(part);
            if self.law == Law::Alaw {
                voice_ua_media::g711::ulaw_to_alaw_in_place(out);
            }
            self.pacer.push_encoded(out);
        }
        self.after_playback = Some(match &cfg.fallback.transfer {
            Some(t) => AfterPlayback::Transfer { target: t.clone(), for_agent: false },
            None => AfterPlayback::HangUp(format!("agent failed: {cause}")),
        });
    }

    /// Everything the call learnt, into its record (and the recording closed).
    fn fill_record(&mut self, r: &mut CallRecord) {
        r.media = self.media_stats();
        r.agent_session_id = self.agent_session_id.take();
        r.transfer_target = self.transfer_target.take();
        r.tool_calls = std::mem::take(&mut self.tool_calls)
            .into_iter()
            .map(|(at, name, result)| ToolCall { at, name, result })
            .collect();
        r.transcript = std::mem::take(&mut self.transcript)
            .into_iter()
            .map(|(at, role, text)| TranscriptLine {
                at,
                role: if role == Role::User { "user" } else { "agent" }.into(),
                text,
            })
            .collect();
        if let Some(rec) = self.recording.take() {
            r.recording = Some(rec.finish());
        }
    }

    /// The call's RTP figures: for the summary line, the metrics and the record.
    fn media_stats(&self) -> MediaStats {
        let s = self.jitter.stats();
        MediaStats {
            packets_in: self.packets_in,
            packets_out: self.packets_out,
            lost: s.lost,
            late: s.late,
            concealed: s.concealed,
            jitter_ms: f64::from(s.jitter) / 8.0,
        }
    }

    fn summary(&self, started: Instant, ending: &Ending, metrics: &crate::metrics::Metrics) {
        let m = self.media_stats();
        metrics.rtp_summary(&m);
        tracing::info!(
            duration_s = started.elapsed().as_secs_f32(),
            codec = self.plan.codec.encoding(),
            packets_in = m.packets_in,
            packets_out = m.packets_out,
            lost = m.lost,
            late = m.late,
            concealed = m.concealed,
            jitter_ms = m.jitter_ms,
            transcript_lines = self.transcript.len(),
            hung_up_by = ending.by,
            outcome = %ending.outcome,
            "call ended: {}",
            ending.why
        );
    }
}

/// The PBX's IP from `pbx` ("HOST" or "HOST:PORT", as configured): IPv4 preferred,
/// None when the name does not resolve (media then latches to the SDP's and the
/// INVITE's addresses only).
pub async fn resolve_ip(pbx: &str) -> Option<IpAddr> {
    if let Ok(ip) = pbx.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = pbx.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    let target = if pbx.contains(':') { pbx.to_string() } else { format!("{pbx}:5060") };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(target).await.ok()?.collect();
    addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).map(|a| a.ip())
}

/// The payload types the source filter lets through.
fn payload_types(plan: &MediaPlan) -> PayloadTypes {
    PayloadTypes { audio: plan.pt, telephone_event: plan.dtmf_pt }
}

/// A task's result, once; pending while there is no task.
async fn join_task<T>(task: &mut Option<tokio::task::JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    let Some(handle) = task.as_mut() else {
        return std::future::pending().await;
    };
    let r = handle.await;
    *task = None;
    r
}

/// The REFER task's answer, once; pending while there is none.
async fn join_refer(transfer: &mut Option<Transfer>) -> Result<u16, String> {
    let Some(task) = transfer.as_mut().and_then(|t| t.refer.as_mut()) else {
        return std::future::pending().await;
    };
    let r = task.await;
    if let Some(t) = transfer.as_mut() {
        t.refer = None;
    }
    match r {
        Ok(Ok(code)) => Ok(code),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("the REFER task stopped: {e}")),
    }
}

/// The Session-Expires line for the 200 OK to a session refresh.
fn session_expires_header(t: &SessionTimer) -> Vec<(&'static str, String)> {
    let who = if t.refresher() == Refresher::Them { "uac" } else { "uas" };
    vec![("Session-Expires", format!("{};refresher={who}", t.interval_secs()))]
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// `"Alice" <sip:2001@pbx>;tag=x` → Alice.
fn display_name(from: &str) -> Option<String> {
    let before = from.split('<').next()?.trim().trim_matches('"').trim();
    (!before.is_empty() && from.contains('<')).then(|| before.to_string())
}

/// `"Alice" <sip:2001@pbx>;tag=x` → sip:2001@pbx.
fn uri_of(v: &str) -> String {
    match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => v[a + 1..b].to_string(),
        _ => v.split(';').next().unwrap_or(v).trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parties_are_read_from_from_and_to() {
        assert_eq!(display_name("\"Gate Phone\" <sip:2001@pbx>;tag=1").as_deref(), Some("Gate Phone"));
        assert_eq!(display_name("<sip:2001@pbx>;tag=1"), None);
        assert_eq!(display_name("sip:2001@pbx;tag=1"), None);
        assert_eq!(uri_of("\"Gate\" <sip:2001@pbx>;tag=1"), "sip:2001@pbx");
        assert_eq!(uri_of("sip:9000@pbx;tag=1"), "sip:9000@pbx");
    }

    #[tokio::test]
    async fn ports_come_from_the_range_even_and_wrap() {
        let pool = PortPool::new(41001, 41010);
        let a = pool.bind("127.0.0.1".parse().expect("ip")).await.expect("bind");
        let b = pool.bind("127.0.0.1".parse().expect("ip")).await.expect("bind");
        let (pa, pb) = (a.local_addr().expect("a").port(), b.local_addr().expect("b").port());
        assert!(pa % 2 == 0 && pb % 2 == 0 && pa != pb, "{pa} {pb}");
        assert!((41002..=41010).contains(&pa) && (41002..=41010).contains(&pb));
        let mut held = vec![a, b];
        for _ in 0..3 {
            held.push(pool.bind("127.0.0.1".parse().expect("ip")).await.expect("bind"));
        }
        let e = pool.bind("127.0.0.1".parse().expect("ip")).await.expect_err("range exhausted");
        assert!(e.to_string().contains("widen calls.rtp_ports"), "{e}");
    }
}
