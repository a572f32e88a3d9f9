//! A call in virtual time, like quinn's `Pair`: a [`CallCore`], a scripted PBX peer and a
//! scripted agent, with one clock that jumps from event to event. Nothing sleeps and
//! nothing touches a socket, so a minute of call runs in milliseconds and every
//! timing is exact.
//!
//! - The **PBX** sends the INVITE, ACKs the 200 (after `ack_after`), streams RTP every
//!   20 ms while a stream is set, and answers our REFER and session refreshes as
//!   scripted. It keeps every packet and every action it saw, with its instant.
//! - The **agent** opens after `open_after` (or fails), keeps every input it got, with
//!   its instant, and sends the events scripted for it.
//! - Tests schedule more inputs at any instant with [`Pair::at`].

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use voice_ua_agent::{AgentError, AgentEvent, AudioFrame, CallInput};
use voice_ua_call::{Action, CallCore, CallSettings, CallSetup, Fallback, Invite, Observation, Signal};
use voice_ua_media::{G722Encoder, JitterConfig, Law, RtpHeader, RtpPacket};
use voice_ua_sip::negotiate::Codec;
use voice_ua_sip::session_timer::TimerRequest;
use voice_ua_sip::Reason;

pub const PBX_SIP: &str = "127.0.0.1:5060";
pub const PBX_RTP: &str = "127.0.0.1:40000";
pub const OUR_RTP: &str = "127.0.0.1:30000";
pub const MS: Duration = Duration::from_millis(1);
pub const FRAME: Duration = Duration::from_millis(20);

/// A PCMU offer with telephone-event 101 from the PBX's RTP address.
pub fn offer(direction: &str) -> Vec<u8> {
    format!(
        "v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na={direction}\r\n"
    )
    .into_bytes()
}

pub fn settings() -> CallSettings {
    CallSettings {
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        media_timeout: Duration::from_secs(30),
        ring: Duration::from_millis(200),
        ack_wait: Duration::from_secs(8),
        jitter: JitterConfig::default(),
        domain: "pbx.test".into(),
        fallback: Fallback::default(),
        consent_prompt: Vec::new(),
        log_transcripts: false,
        echo_cancel: voice_ua_call::DEFAULT_ECHO_CANCEL,
        barge_in_min_ms: voice_ua_call::DEFAULT_BARGE_IN_MIN_MS,
        duck_ms: voice_ua_call::DEFAULT_DUCK_MS,
    }
}

/// The default settings with echo cancellation, and so the barge-in gate, off: the
/// agent's flush is carried out at once, whatever the caller did.
pub fn settings_without_echo_gate() -> CallSettings {
    CallSettings { echo_cancel: false, ..settings() }
}

/// What the caller's RTP stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sound {
    /// Digital silence.
    Silence,
    /// A 1 kHz tone at -10 dBFS (loud enough to be speech for the VAD).
    Tone,
    /// 1 kHz and 5 kHz tones at 16 kHz (a G.722 stream only; 5 kHz is beyond G.711).
    Wideband,
}

/// An input scheduled for an instant.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Input {
    Signal(Signal),
    Agent(AgentEvent),
    Datagram(SocketAddr, Vec<u8>),
    AgentOpened,
    AgentFailed(AgentError),
    /// Start (Some) or stop (None) the PBX's RTP stream.
    Stream(Option<Sound>),
}

/// The scripted PBX: how it answers what we send.
#[derive(Debug)]
pub struct PbxScript {
    /// ACK this long after the 200 (None: never).
    pub ack_after: Option<Duration>,
    /// The SDP answer in the ACK (late offer).
    pub ack_sdp: Option<Vec<u8>>,
    /// Answer our REFER after this long with this (None: never).
    pub refer_answer: Option<(Duration, Result<u16, String>)>,
    /// NOTIFYs after the REFER's answer: (delay after the REFER, sipfrag code).
    pub notifies: Vec<(Duration, u16)>,
    /// Answer our session refreshes after this long with these, in turn (the last repeats).
    pub refresh_answers: Vec<(Duration, Result<u16, String>)>,
    /// Start the RTP stream with the ACK.
    pub stream: Option<Sound>,
}

impl Default for PbxScript {
    fn default() -> Self {
        PbxScript {
            ack_after: Some(10 * MS),
            ack_sdp: None,
            refer_answer: Some((30 * MS, Ok(202))),
            notifies: vec![(200 * MS, 100), (1500 * MS, 200)],
            refresh_answers: vec![(40 * MS, Ok(200))],
            stream: Some(Sound::Silence),
        }
    }
}

/// One packet the PBX got from us.
#[derive(Debug, Clone)]
pub struct Heard {
    pub at: Instant,
    pub to: SocketAddr,
    pub header: RtpHeader,
    pub payload: Vec<u8>,
}

impl Heard {
    /// The packet carried sound (not μ-law/A-law silence): the agent was heard.
    pub fn loud(&self) -> bool {
        self.header.payload_type < 96
            && self.payload.iter().any(|&b| b != 0xFF && b != 0x7F && b != 0xD5 && b != 0x55)
    }
}

#[derive(Debug, Default)]
pub struct Pbx {
    pub script: PbxScript,
    /// Every action the call sent the PBX's way (everything but agent inputs and metrics).
    pub actions: Vec<(Instant, Action)>,
    pub heard: Vec<Heard>,
    stream: Option<Sound>,
    seq: u16,
    ts: u32,
    next_packet: Option<Instant>,
    refreshes: usize,
    /// Where the PBX's RTP comes from (None: [`PBX_RTP`]); set it to move the stream.
    pub rtp_from: Option<SocketAddr>,
    /// Send G.722 (payload type 9, 16 kHz audio) instead of PCMU.
    pub g722: Option<G722Encoder>,
    /// 16 kHz samples sent so far (for the G.722 stream's tones).
    wide_samples: usize,
}

#[derive(Debug, Default)]
pub struct Agent {
    /// Open this long after the core asks (None: the test reports it).
    pub open_after: Option<Duration>,
    pub inputs: Vec<(Instant, CallInput)>,
}

pub struct Pair {
    pub t0: Instant,
    pub now: Instant,
    pub core: CallCore,
    pub pbx: Pbx,
    pub agent: Agent,
    pub observed: Vec<(Instant, Observation)>,
    /// The caller's audio (as played out) and what they heard, per tick.
    pub caller_pcm: Vec<i16>,
    pub heard_pcm: Vec<i16>,
    queue: BTreeMap<(Instant, u64), Input>,
    order: u64,
}

impl Pair {
    /// A call with a PCMU offer (sendrecv), default settings and a default PBX script.
    pub fn new() -> Pair {
        Pair::with(settings(), PbxScript::default(), Some(offer("sendrecv")), TimerRequest::default())
    }

    /// [`Pair::new`] with [`settings_without_echo_gate`].
    pub fn without_echo_gate() -> Pair {
        Pair::with(
            settings_without_echo_gate(),
            PbxScript::default(),
            Some(offer("sendrecv")),
            TimerRequest::default(),
        )
    }

    pub fn with(
        settings: CallSettings,
        script: PbxScript,
        offer: Option<Vec<u8>>,
        timer: TimerRequest,
    ) -> Pair {
        let t0 = Instant::now();
        let setup = CallSetup {
            local_media: OUR_RTP.parse().expect("addr"),
            pbx_ips: vec![],
            seed: 0x5eed_1234_abcd_0042,
            wall_clock: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            keep_audio: true,
        };
        let invite = Invite { source: PBX_SIP.parse().expect("addr"), offer, timer };
        let core = CallCore::new(t0, Arc::new(settings), setup, invite);
        let mut p = Pair {
            t0,
            now: t0,
            core,
            pbx: Pbx { script, ..Pbx::default() },
            agent: Agent { open_after: Some(50 * MS), ..Agent::default() },
            observed: Vec::new(),
            caller_pcm: Vec::new(),
            heard_pcm: Vec::new(),
            queue: BTreeMap::new(),
            order: 0,
        };
        p.drain();
        p
    }

    /// The instant `d` after the INVITE.
    pub fn t(&self, d: Duration) -> Instant {
        self.t0 + d
    }

    /// Schedule `input` at `at` (after the INVITE).
    pub fn at(&mut self, at: Duration, input: Input) {
        let when = self.t0 + at;
        self.schedule(when, input);
    }

    fn schedule(&mut self, when: Instant, input: Input) {
        self.order += 1;
        self.queue.insert((when, self.order), input);
    }

    /// Run until `until` after the INVITE (or until the call is over and idle).
    pub fn run_until(&mut self, until: Duration) {
        let end = self.t0 + until;
        loop {
            let next_input = self.queue.keys().next().map(|k| k.0);
            let next =
                [next_input, self.core.poll_timeout(), self.pbx.next_packet].into_iter().flatten().min();
            let Some(next) = next.filter(|n| *n <= end) else { break };
            self.now = self.now.max(next);
            if next_input == Some(next) {
                if let Some((_, input)) = self.queue.pop_first() {
                    self.deliver(input);
                }
            } else if self.pbx.next_packet == Some(next) {
                self.send_rtp();
            } else {
                self.core.handle_timeout(self.now);
                if let Some((caller, heard)) = self.core.take_heard() {
                    self.caller_pcm.extend_from_slice(caller);
                    if heard.is_empty() {
                        self.heard_pcm.extend_from_slice(&[0; 160]);
                    } else {
                        self.heard_pcm.extend_from_slice(heard);
                    }
                }
            }
            self.drain();
        }
        self.now = self.now.max(end);
    }

    fn deliver(&mut self, input: Input) {
        let now = self.now;
        match input {
            Input::Signal(s) => self.core.handle_signal(now, s),
            Input::Agent(e) => self.core.handle_agent_event(now, e),
            Input::Datagram(from, bytes) => self.core.handle_datagram(now, from, &bytes),
            Input::AgentOpened => self.core.agent_opened(now),
            Input::AgentFailed(e) => self.core.agent_failed_to_open(now, "scripted", e),
            Input::Stream(s) => {
                self.pbx.stream = s;
                self.pbx.next_packet = s.map(|_| self.pbx.next_packet.unwrap_or(now));
            }
        }
    }

    fn send_rtp(&mut self) {
        let Some(sound) = self.pbx.stream else {
            self.pbx.next_packet = None;
            return;
        };
        let mut payload = [0xFFu8; 160];
        let mut payload_type = 0;
        if let Some(enc) = self.pbx.g722.as_mut() {
            let mut pcm = [0i16; 320];
            for (i, x) in pcm.iter_mut().enumerate() {
                let t = (self.pbx.wide_samples + i) as f64 / 16_000.0;
                let tau = 2.0 * std::f64::consts::PI;
                *x = match sound {
                    Sound::Silence => 0,
                    Sound::Tone => ((tau * 1000.0 * t).sin() * 10_000.0) as i16,
                    Sound::Wideband => {
                        ((tau * 1000.0 * t).sin() * 6000.0 + (tau * 5000.0 * t).sin() * 6000.0) as i16
                    }
                };
            }
            self.pbx.wide_samples += 320;
            enc.encode(&pcm, &mut payload);
            payload_type = 9;
        } else if sound != Sound::Silence {
            for (i, b) in payload.iter_mut().enumerate() {
                let x = (i as f64 * 2.0 * std::f64::consts::PI * 1000.0 / 8000.0).sin() * 10_000.0;
                *b = Law::Ulaw.encode(x as i16);
            }
        }
        let header = RtpHeader {
            marker: false,
            payload_type,
            sequence: self.pbx.seq,
            timestamp: self.pbx.ts,
            ssrc: 0x1234_5678,
        };
        self.pbx.seq = self.pbx.seq.wrapping_add(1);
        self.pbx.ts = self.pbx.ts.wrapping_add(160);
        let mut buf = [0u8; 172];
        if header.write_packet(&payload, &mut buf).is_ok() {
            let from = self.pbx.rtp_from.unwrap_or_else(|| PBX_RTP.parse().expect("addr"));
            self.core.handle_datagram(self.now, from, &buf);
        }
        self.pbx.next_packet = Some(self.now + FRAME);
    }

    /// Carry out every action and packet the core has for us.
    pub fn drain(&mut self) {
        let now = self.now;
        let mut buf = [0u8; 1500];
        while let Some(d) = self.core.poll_transmit(&mut buf) {
            if let Ok(p) = RtpPacket::parse(&buf[..d.len]) {
                self.pbx.heard.push(Heard {
                    at: now,
                    to: d.to,
                    header: p.header,
                    payload: p.payload().to_vec(),
                });
            }
        }
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::ToAgent(input) => self.agent.inputs.push((now, input)),
                Action::Observe(o) => self.observed.push((now, o)),
                Action::OpenAgent { .. } => {
                    if let Some(after) = self.agent.open_after {
                        self.schedule(now + after, Input::AgentOpened);
                    }
                    self.pbx.actions.push((now, action));
                }
                Action::Answer { .. } => {
                    if let Some(after) = self.pbx.script.ack_after {
                        let sdp = self.pbx.script.ack_sdp.clone();
                        self.schedule(now + after, Input::Signal(Signal::Acked { sdp }));
                        if let Some(s) = self.pbx.script.stream {
                            self.schedule(now + after, Input::Stream(Some(s)));
                        }
                    }
                    self.pbx.actions.push((now, action));
                }
                Action::Refer { .. } => {
                    if let Some((after, answer)) = self.pbx.script.refer_answer.clone() {
                        self.schedule(now + after, Input::Signal(Signal::ReferAnswered(answer)));
                        for (after, code) in self.pbx.script.notifies.clone() {
                            self.schedule(now + after, Input::Signal(Signal::TransferProgress(code)));
                        }
                    }
                    self.pbx.actions.push((now, action));
                }
                Action::Refresh { .. } => {
                    let answers = &self.pbx.script.refresh_answers;
                    if let Some((after, answer)) = answers.get(self.pbx.refreshes).or(answers.last()).cloned()
                    {
                        self.schedule(now + after, Input::Signal(Signal::RefreshAnswered(answer)));
                    }
                    self.pbx.refreshes += 1;
                    self.pbx.actions.push((now, action));
                }
                other => self.pbx.actions.push((now, other)),
            }
        }
    }

    // ---- what happened -------------------------------------------------------------

    /// The first action matching `f`, with its time after the INVITE.
    pub fn action(&self, f: impl Fn(&Action) -> bool) -> Option<(Duration, &Action)> {
        self.pbx.actions.iter().find(|(_, a)| f(a)).map(|(t, a)| (*t - self.t0, a))
    }

    /// When the call was answered (200 OK), after the INVITE.
    pub fn answered_at(&self) -> Option<Duration> {
        self.action(|a| matches!(a, Action::Answer { .. })).map(|(t, _)| t)
    }

    /// The BYE, if any: when, and its Reason header.
    pub fn hang_up(&self) -> Option<(Duration, Option<String>)> {
        self.pbx.actions.iter().find_map(|(t, a)| match a {
            Action::HangUp { reason } => Some((*t - self.t0, reason.map(|r| r.to_string()))),
            _ => None,
        })
    }

    /// Audio frames the agent got.
    pub fn frames_to_agent(&self) -> usize {
        self.agent.inputs.iter().filter(|(_, i)| matches!(i, CallInput::Audio(_))).count()
    }

    /// Transfer results the agent got, with their times after the INVITE.
    pub fn transfer_results(&self) -> Vec<(Duration, voice_ua_agent::TransferOutcome)> {
        self.agent
            .inputs
            .iter()
            .filter_map(|(t, i)| match i {
                CallInput::TransferResult(o) => Some((*t - self.t0, *o)),
                _ => None,
            })
            .collect()
    }

    /// Digits the agent got.
    pub fn digits_to_agent(&self) -> String {
        self.agent
            .inputs
            .iter()
            .filter_map(|(_, i)| match i {
                CallInput::Digit(d) => Some(d.as_char()),
                _ => None,
            })
            .collect()
    }

    /// Packets the PBX heard at or after `from` (after the INVITE).
    pub fn heard_since(&self, from: Duration) -> impl Iterator<Item = &Heard> {
        let from = self.t0 + from;
        self.pbx.heard.iter().filter(move |h| h.at >= from)
    }
}

/// `ms` of agent audio (a 500 Hz tone, μ-law) as 20 ms agent events.
pub fn agent_speech(ms: u32) -> Vec<AgentEvent> {
    let mut out = Vec::new();
    let mut n = 0u32;
    for _ in 0..ms / 20 {
        let mut frame = [0u8; 160];
        for b in frame.iter_mut() {
            let x = (f64::from(n) * 2.0 * std::f64::consts::PI * 500.0 / 8000.0).sin() * 8_000.0;
            *b = Law::Ulaw.encode(x as i16);
            n += 1;
        }
        if let Ok(f) = AudioFrame::new(&frame) {
            out.push(AgentEvent::Audio(f));
        }
    }
    out
}

// ---- transfer, fallback and hang-up ----------------------------------------------------

impl Pair {
    /// Schedule `ms` of agent audio ([`agent_speech`]) arriving all at once at `at`, as
    /// a provider sends a reply faster than real time.
    pub fn agent_says(&mut self, at: Duration, ms: u32) {
        for e in agent_speech(ms) {
            self.at(at, Input::Agent(e));
        }
    }

    /// Every REFER we sent: when (after the INVITE) and its Refer-To URI.
    pub fn refers(&self) -> Vec<(Duration, String)> {
        self.pbx
            .actions
            .iter()
            .filter_map(|(t, a)| match a {
                Action::Refer { uri } => Some((*t - self.t0, uri.clone())),
                _ => None,
            })
            .collect()
    }

    /// When (after the INVITE) the PBX heard our first and last packets carrying sound.
    pub fn loud_span(&self) -> Option<(Duration, Duration)> {
        let mut loud = self.pbx.heard.iter().filter(|h| h.loud()).map(|h| h.at - self.t0);
        let first = loud.next()?;
        Some((first, loud.next_back().unwrap_or(first)))
    }

    /// Audio frames the agent got at or after `from` (after the INVITE).
    pub fn frames_to_agent_since(&self, from: Duration) -> usize {
        let from = self.t0 + from;
        self.agent.inputs.iter().filter(|(t, i)| *t >= from && matches!(i, CallInput::Audio(_))).count()
    }

    /// The tools the call reported (name, result word), with their times after the INVITE.
    pub fn tools(&self) -> Vec<(Duration, String, &'static str)> {
        self.observed
            .iter()
            .filter_map(|(t, o)| match o {
                Observation::Tool { name, result } => Some((*t - self.t0, name.clone(), *result)),
                _ => None,
            })
            .collect()
    }

    /// The agent errors the call reported, with their times after the INVITE.
    pub fn agent_errors(&self) -> Vec<(Duration, AgentError)> {
        self.observed
            .iter()
            .filter_map(|(t, o)| match o {
                Observation::AgentError(e) => Some((*t - self.t0, e.clone())),
                _ => None,
            })
            .collect()
    }
}

/// `ms` of a fallback prompt: a 300 Hz tone in μ-law, unlike [`agent_speech`]'s 500 Hz,
/// so the packets that carry it can be told apart byte for byte.
pub fn prompt_ulaw(ms: u32) -> Vec<u8> {
    (0..ms * 8)
        .map(|n| {
            Law::Ulaw
                .encode(((f64::from(n) * 2.0 * std::f64::consts::PI * 300.0 / 8000.0).sin() * 6_000.0) as i16)
        })
        .collect()
}

// ---- barge-in, media timeout, hold, session timer, DTMF, shutdown ----------------------

impl Pair {
    /// Every action matching `f` that went the PBX's way, with its time after the INVITE.
    pub fn actions_where(&self, f: impl Fn(&Action) -> bool) -> Vec<(Duration, &Action)> {
        self.pbx.actions.iter().filter(|(_, a)| f(a)).map(|(t, a)| (*t - self.t0, a)).collect()
    }

    /// The BYE, if any: when (after the INVITE), and its Reason header as a value.
    pub fn bye(&self) -> Option<(Duration, Option<Reason>)> {
        self.pbx.actions.iter().find_map(|(t, a)| match a {
            Action::HangUp { reason } => Some((*t - self.t0, *reason)),
            _ => None,
        })
    }

    /// Every observation matching `f`, with its time after the INVITE.
    pub fn observed_where(&self, f: impl Fn(&Observation) -> bool) -> Vec<(Duration, &Observation)> {
        self.observed.iter().filter(|(_, o)| f(o)).map(|(t, o)| (*t - self.t0, o)).collect()
    }

    /// Digits the agent got, with their times after the INVITE.
    pub fn digits_to_agent_at(&self) -> Vec<(Duration, char)> {
        self.agent
            .inputs
            .iter()
            .filter_map(|(t, i)| match i {
                CallInput::Digit(d) => Some((*t - self.t0, d.as_char())),
                _ => None,
            })
            .collect()
    }

    /// When (after the INVITE) each packet the PBX heard left, between `from` and `to`.
    pub fn heard_between(&self, from: Duration, to: Duration) -> impl Iterator<Item = &Heard> {
        let (from, to) = (self.t0 + from, self.t0 + to);
        self.pbx.heard.iter().filter(move |h| h.at >= from && h.at < to)
    }
}

/// A writer into a shared buffer, for what a test logs.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Run `f` and return what it logged, as the service's text log shows it (no time, no
/// target).
#[allow(dead_code)]
pub fn logged(f: impl FnOnce()) -> String {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = out.0.lock().expect("lock").clone();
    String::from_utf8(bytes).expect("utf8")
}
