//! One call's task: the driver of its [`CallCore`]. It owns the call's RTP socket, its
//! dialog, its agent session and the REFER and refresh tasks, and moves what they
//! produce into the core with the instant it arrived; then it carries out what the core
//! decided. It decides nothing itself. The data path, one 20 ms frame each way:
//!
//!   socket → `handle_datagram` (filter, parse, jitter buffer)
//!   timer → `handle_timeout` (one frame out of the jitter buffer → `ToAgent` audio;
//!           the pacer's packet → `poll_transmit` → socket)
//!   agent event → `handle_agent_event` (audio into the pacer, barge-in flush)
//!
//! The hot path reuses its buffers and never blocks: the agent is reached with
//! `try_send`, the socket is non-blocking, and nothing takes a lock.

mod books;
mod parties;
mod ports;

pub use parties::resolve_ip;
pub use ports::PortPool;

use books::Books;
use parties::{display_name, uri_of};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use voice_ua_agent::{AgentProvider, AgentSession, AudioFormat, CallFacts, CallInput};
use voice_ua_call::{Action, CallCore, CallSettings, CallSetup, Invite, Observation, Signal};
use voice_ua_records::{RecordWriter, Recorder, Recording};
use voice_ua_sip::{CallSignal, IncomingCall, OfferRequest, SipError};

/// What every call shares (from the configuration).
#[derive(Debug)]
pub struct CallConfig {
    /// What the call core needs: codecs, timeouts, jitter buffer, domain, fallback.
    pub core: Arc<CallSettings>,
    /// The address for our SDP (the SIP contact address).
    pub media_ip: IpAddr,
    /// The address RTP sockets bind to.
    pub bind_ip: IpAddr,
    /// The PBX's (registrar's) IP, when known: RTP may latch to it as well as to the
    /// SDP's address (besides the INVITE's own source).
    pub pbx_ip: Option<IpAddr>,
    pub ports: PortPool,
    /// Counted at call start and end and on agent events, never per frame.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Where call records go (`[records]`), if anywhere.
    pub records: Option<RecordWriter>,
    /// Where recordings go, when `records.recordings` is on.
    pub recorder: Option<Recorder>,
    /// The agent provider's name, for the records.
    pub agent_name: String,
    /// The extension we are registered as, for the agent.
    pub extension: String,
}

/// On shutdown, how long a call waits for the answer to its BYE (it is sent at once).
const SHUTDOWN_BYE_WAIT: Duration = Duration::from_millis(400);

/// On shutdown, how long the agent gets to close its session.
const SHUTDOWN_AGENT_WAIT: Duration = Duration::from_millis(200);

/// How long the agent gets to close its session after an ordinary call.
const AGENT_FINISH_WAIT: Duration = Duration::from_millis(500);

/// The call's I/O: everything the core's actions act on.
struct Driver {
    call: IncomingCall,
    socket: UdpSocket,
    cfg: Arc<CallConfig>,
    agent: Arc<dyn AgentProvider>,
    session: Option<AgentSession>,
    /// The session has sent its last event (it is kept open for `finish`).
    events_done: bool,
    /// The re-offer the core is answering.
    offer: Option<OfferRequest>,
    refer: Option<JoinHandle<Result<u16, SipError>>>,
    refresh: Option<JoinHandle<Result<u16, SipError>>>,
    recording: Option<Recording>,
    stopping: bool,
    /// Where the core's packets are copied on their way to the socket.
    out: [u8; 1500],
}

/// Run one call to its end. Never panics on what the network sends.
pub async fn run_call(
    call: IncomingCall,
    cfg: Arc<CallConfig>,
    agent: Arc<dyn AgentProvider>,
    stop: CancellationToken,
) {
    let mut books = Books::open(&cfg, &call.info, &stop);
    let socket = match cfg.ports.bind(cfg.bind_ip).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot open an RTP port for the call: {e}");
            books.refused(format!("refused with 503: {e}"));
            let _ = call.reject(503);
            return;
        }
    };
    let local_port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
    let setup = CallSetup {
        local_media: SocketAddr::new(cfg.media_ip, local_port),
        pbx_ips: cfg.pbx_ip.into_iter().collect(),
        seed: voice_ua_sip::IdSource::from_os().next_u64(),
        wall_clock: SystemTime::now(),
        keep_audio: cfg.recorder.is_some() && cfg.records.is_some(),
    };
    let invite = Invite { source: call.info.source, offer: call.info.offer.clone(), timer: call.info.timer };
    let mut core = CallCore::new(Instant::now(), cfg.core.clone(), setup, invite);
    let mut d = Driver {
        call,
        socket,
        cfg,
        agent,
        session: None,
        events_done: false,
        offer: None,
        refer: None,
        refresh: None,
        recording: None,
        stopping: false,
        out: [0; 1500],
    };
    d.run(&mut core, &mut books, &stop).await;
    if let Some(task) = d.refresh.take() {
        task.abort();
    }
    if let Some(session) = d.session.take() {
        session.finish(if d.stopping { SHUTDOWN_AGENT_WAIT } else { AGENT_FINISH_WAIT }).await;
    }
    core.log_summary(Instant::now());
    d.cfg.metrics.rtp_summary(&core.media_stats());
    books.close(&mut core, d.recording.take().map(Recording::finish));
}

impl Driver {
    async fn run(&mut self, core: &mut CallCore, books: &mut Books, stop: &CancellationToken) {
        if stop.is_cancelled() {
            self.stopping = true;
            core.handle_signal(Instant::now(), Signal::Stop);
        }
        // One byte more than the largest packet: a longer datagram is seen as oversize,
        // never cut to the buffer and parsed as if whole.
        let mut rtp_in = [0u8; voice_ua_media::rtp::MAX_PACKET_LEN + 1];
        // One timer for the whole call, moved only when the core's next instant changes
        // (once per tick), not re-armed on every datagram and agent event.
        let timer = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        loop {
            self.carry_out(core, books).await;
            if core.is_over() {
                return;
            }
            let wake = core.poll_timeout();
            if wake != armed {
                if let Some(at) = wake {
                    timer.as_mut().reset(at.into());
                }
                armed = wake;
            }
            tokio::select! {
                r = self.socket.recv_from(&mut rtp_in) => {
                    if let Ok((n, from)) = r {
                        core.handle_datagram(Instant::now(), from, &rtp_in[..n.min(rtp_in.len())]);
                    }
                }
                // Agent events are handled as they arrive: a barge-in flushes the pacer
                // at once, so no agent frame leaves after it.
                ev = next_event(&mut self.session), if !self.events_done => match ev {
                    Some(ev) => {
                        let now = Instant::now();
                        core.handle_agent_event(now, ev);
                        self.drain_agent(core, now);
                    }
                    None => self.events_done = true,
                },
                sig = self.call.next() => self.on_signal(core, sig),
                r = join(&mut self.refer) => core.handle_signal(Instant::now(), Signal::ReferAnswered(r)),
                r = join(&mut self.refresh) => core.handle_signal(Instant::now(), Signal::RefreshAnswered(r)),
                _ = &mut timer, if armed.is_some() => {
                    armed = None;
                    let now = Instant::now();
                    // Audio the agent already sent is queued before this tick's packet.
                    self.drain_agent(core, now);
                    core.handle_timeout(now);
                    if let (Some(rec), Some((caller, agent))) = (self.recording.as_mut(), core.take_heard()) {
                        rec.push(caller, agent);
                    }
                }
                _ = stop.cancelled(), if !self.stopping => {
                    self.stopping = true;
                    core.handle_signal(Instant::now(), Signal::Stop);
                }
            }
        }
    }

    /// Every agent event already queued: one wake-up handles them all (a provider turns
    /// one WebSocket message into several frames).
    fn drain_agent(&mut self, core: &mut CallCore, now: Instant) {
        while let Some(ev) = self.session.as_mut().and_then(|s| s.try_event()) {
            core.handle_agent_event(now, ev);
        }
    }

    fn on_signal(&mut self, core: &mut CallCore, sig: Option<CallSignal>) {
        let now = Instant::now();
        let signal = match sig {
            Some(CallSignal::Acked { sdp }) => Signal::Acked { sdp },
            Some(CallSignal::Offer(mut req)) => {
                let sdp = std::mem::take(&mut req.sdp);
                self.offer = Some(req);
                Signal::Offer { sdp }
            }
            Some(CallSignal::Digit(d)) => Signal::Digit(d),
            Some(CallSignal::TransferProgress(code)) => Signal::TransferProgress(code),
            Some(CallSignal::Ended(end)) => Signal::Ended { by_remote: end.by_remote, detail: end.detail },
            None => Signal::Ended { by_remote: false, detail: "signalling ended".into() },
        };
        core.handle_signal(now, signal);
    }

    /// Carry out what the core decided: its packets, then its actions in order.
    async fn carry_out(&mut self, core: &mut CallCore, books: &mut Books) {
        loop {
            while let Some(p) = core.poll_transmit(&mut self.out) {
                let _ = self.socket.try_send_to(&self.out[..p.len], p.to);
            }
            let Some(action) = core.poll_action() else { return };
            self.act(core, books, action).await;
        }
    }

    async fn act(&mut self, core: &mut CallCore, books: &mut Books, action: Action) {
        match action {
            Action::ToAgent(input) => self.to_agent(input),
            Action::Observe(o) => self.observe(o),
            Action::Ring => {
                if let Err(e) = self.call.ringing() {
                    tracing::warn!("could not send 180 Ringing: {e}");
                }
            }
            Action::Answer { sdp, headers } => {
                if let Err(e) = self.call.accept(&sdp, headers) {
                    tracing::warn!("could not answer the call: {e}");
                    let detail = format!("could not send the 200 OK: {e}");
                    core.handle_signal(Instant::now(), Signal::Ended { by_remote: false, detail });
                }
            }
            Action::Reject { status } => {
                let _ = self.call.reject(status);
            }
            Action::AnswerOffer { sdp, headers } => {
                if let Some(req) = self.offer.take() {
                    req.answer(sdp, headers).await;
                }
            }
            Action::RejectOffer { status } => {
                if let Some(req) = self.offer.take() {
                    req.reject(status, vec![]).await;
                }
            }
            Action::Answered { codec } => books.answered(codec, &self.cfg.agent_name),
            Action::OpenAgent { format } => self.open_agent(core, books, format).await,
            Action::Refer { uri } => {
                let transferer = self.call.transferer();
                self.refer = Some(tokio::spawn(async move { transferer.refer(&uri).await }));
            }
            Action::Refresh { sdp } => {
                let refresher = self.call.session_refresher();
                self.refresh = Some(tokio::spawn(async move { refresher.refresh(&sdp, vec![]).await }));
            }
            Action::HangUp { reason } => {
                let bye = self.call.hangup(reason);
                if !self.stopping {
                    let _ = bye.await;
                } else if tokio::time::timeout(SHUTDOWN_BYE_WAIT, bye).await.is_err() {
                    // The BYE left at once; its answer is not worth holding up the exit.
                    tracing::info!("no answer to the BYE yet; stopping anyway");
                }
            }
        }
    }

    async fn open_agent(&mut self, core: &mut CallCore, books: &Books, format: AudioFormat) {
        let info = &self.call.info;
        let facts = CallFacts {
            call_id: info.sip_call_id.clone(),
            caller_display: display_name(&info.from),
            caller_uri: uri_of(&info.from),
            callee: uri_of(&info.to),
            extension: self.cfg.extension.clone(),
            format,
        };
        if let (Some(recorder), Some(id)) = (self.cfg.recorder.as_ref(), books.record_id()) {
            match recorder.create(id) {
                Ok(rec) => self.recording = Some(rec),
                Err(e) => tracing::warn!("the call is not recorded: {e}"),
            }
        }
        match self.agent.open(facts).await {
            Ok(session) => {
                self.session = Some(session);
                core.agent_opened(Instant::now());
            }
            // The call still runs: the caller hears the fallback prompt, not silence.
            Err(e) => core.agent_failed_to_open(Instant::now(), self.agent.name(), e),
        }
    }

    fn to_agent(&self, input: CallInput) {
        let Some(session) = self.session.as_ref() else { return };
        let sent = match input {
            CallInput::Audio(frame) => session.send_audio(frame),
            CallInput::Digit(d) => session.send_digit(d),
            CallInput::TransferResult(outcome) => session.send_transfer_result(outcome),
            CallInput::MarkPlayed { .. } | CallInput::PlaybackFlushed { .. } => session.send_playback(input),
            CallInput::CallEnded => Ok(()),
        };
        if let Err(e) = sent {
            if !matches!(input, CallInput::Audio(_)) {
                tracing::warn!("{input:?} did not reach the agent: {e}");
            }
        }
    }

    fn observe(&self, o: Observation) {
        let m = &self.cfg.metrics;
        match o {
            Observation::Turn { latency, figures } => m.turn(latency, &figures),
            Observation::BargeIn => m.barge_in(),
            Observation::Tool { name, result } => m.tool_call(&name, result),
            Observation::AgentError(e) => m.agent_error(&e),
            Observation::Reconnect { ok, attempts, after } => {
                m.agent_reconnect(self.agent.name(), ok);
                tracing::debug!(ok, attempts, after_ms = after.as_millis() as u64, "agent reconnect counted");
            }
        }
    }
}

/// The session's next event; pending while there is no session.
async fn next_event(session: &mut Option<AgentSession>) -> Option<voice_ua_agent::AgentEvent> {
    match session.as_mut() {
        Some(s) => s.event().await,
        None => std::future::pending().await,
    }
}

/// A SIP task's final status, once (0 never: errors are reported as such); pending
/// while there is no task.
async fn join(task: &mut Option<JoinHandle<Result<u16, SipError>>>) -> Result<u16, String> {
    let Some(handle) = task.as_mut() else {
        return std::future::pending().await;
    };
    let r = handle.await;
    *task = None;
    match r {
        Ok(Ok(code)) => Ok(code),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("the task stopped: {e}")),
    }
}
