//! The WebSocket bot bridge's latency, beside Deepgram's as measured in the same run
//! (`bridge_latency.rs` is the Deepgram and OpenAI bench). How long the Deepgram bridge holds audio, each way, and how fast a barge-in reaches
//! the call: the production provider (`DeepgramProvider`, tokio-tungstenite, its session
//! task and the seam's channels) against a WebSocket peer on 127.0.0.1 written here that
//! time-stamps what it sends and receives with the same clock.
//!
//! - **call → agent**: `AgentSession::send_audio` of a 20 ms frame → the frame read by the
//!   peer. The call does this once per tick right after the jitter buffer's pop.
//! - **agent → call**: the peer writes a 20 ms binary frame → `AgentSession::event`
//!   yields it. The call pushes it into its pacer on arrival; when it then plays is the
//!   pacer's 20 ms schedule, not processing.
//! - **barge-in**: the peer writes 5 s of agent audio, then `UserStartedSpeaking` →
//!   `FlushPlayback` reaches the call (which flushes its pacer at once, so no agent
//!   frame leaves after that).
//!
//! The same three figures for the WebSocket bot bridge (`WebSocketProvider`), with peers
//! that speak the Twilio dialect (base64 μ-law in JSON; barge-in is the bot's `clear`)
//! and ASP (binary PCM16 behind the 12-byte header; its barge-in is voice-ua's own VAD,
//! so it has no row here).
//!
//! Run: `cargo bench -p voice-ua-agent --bench bot_bridge_latency` (prints a Markdown table).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use voice_ua_agent::websocket::asp::session_hash;
use voice_ua_agent::{
    AgentEvent, AgentProvider, AgentSession, AudioFormat, AudioFrame, CallFacts, DeepgramConfig,
    DeepgramProvider, Dialect, WebSocketConfig, WebSocketProvider,
};
use voice_ua_media::g711::{ulaw_decode, ulaw_encode};

/// Run by `cargo test` (no `--bench` argument): a short run that proves the bench works,
/// not a measurement.
fn smoke() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

/// Frames per one-way run (60 s); `VOICE_UA_BENCH_FRAMES` sets another count.
fn frames() -> u32 {
    std::env::var("VOICE_UA_BENCH_FRAMES").ok().and_then(|v| v.parse().ok()).unwrap_or(if smoke() {
        50
    } else {
        3000
    })
}
/// Barge-ins per bridge (5 in a `cargo test` smoke run).
fn barge_ins() -> u32 {
    if smoke() {
        5
    } else {
        100
    }
}

/// What the peer does after the handshake.
#[derive(Clone, Copy)]
enum Plan {
    /// Read frames; report each one's sequence number and arrival instant.
    Receive,
    /// Send `frames()` frames 20 ms apart; report each one's send instant.
    Send,
    /// `barge_ins()` times: 5 s of audio, 100 ms later `UserStartedSpeaking`; report the
    /// instant each `UserStartedSpeaking` was written.
    BargeIn,
}

/// 20 ms of μ-law carrying `seq` in its first 8 bytes, one nibble each (0x20-0x2F: codes
/// that survive μ-law → PCM16 → μ-law, as the ASP bridge converts them).
fn stamp(seq: u32) -> [u8; 160] {
    let mut b = [0xffu8; 160];
    for (i, byte) in b.iter_mut().take(8).enumerate() {
        *byte = 0x20 + ((seq >> (4 * i)) & 0xF) as u8;
    }
    b
}

fn seq_of(bytes: &[u8]) -> Option<u32> {
    let head = bytes.get(..8)?;
    head.iter().enumerate().try_fold(0u32, |acc, (i, &b)| {
        (0x20..0x30).contains(&b).then(|| acc | (u32::from(b - 0x20) << (4 * i)))
    })
}

fn facts() -> CallFacts {
    CallFacts {
        call_id: "bench".into(),
        caller_display: None,
        caller_uri: "sip:2001@127.0.0.1".into(),
        callee: "sip:9000@127.0.0.1".into(),
        extension: "9000".into(),
        format: AudioFormat::Ulaw8k,
    }
}

/// Who the bench talks to.
#[derive(Clone, Copy)]
enum Peer {
    Deepgram,
    Twilio,
    Asp,
}

async fn open(peer: Peer, addr: SocketAddr) -> AgentSession {
    match peer {
        Peer::Deepgram => {
            let mut config = DeepgramConfig::new("bench-key");
            config.url = format!("ws://{addr}/v1/agent/converse");
            DeepgramProvider::new(config).expect("provider").open(facts()).await.expect("open")
        }
        Peer::Twilio | Peer::Asp => {
            let dialect = if matches!(peer, Peer::Twilio) { Dialect::Twilio } else { Dialect::Asp };
            let config = WebSocketConfig::new(format!("ws://{addr}/media"), dialect);
            WebSocketProvider::new(config).expect("provider").open(facts()).await.expect("open")
        }
    }
}

type Frame = Box<dyn Fn(u32) -> Message + Send>;
type Read = Box<dyn Fn(&Message) -> Vec<u8> + Send>;

/// How a peer's audio and barge-in look on the wire.
struct Wire {
    /// Frame `seq` (20 ms of [`stamp`]) as the peer sends it.
    frame: Frame,
    /// The caller's μ-law in a message the peer reads.
    read: Read,
    /// 5 s of agent audio in one message.
    reply: Message,
    /// The barge-in.
    flush: Message,
}

/// A minimal peer of `peer`'s kind on 127.0.0.1: its handshake, then `plan`.
async fn bot(peer: Peer, plan: Plan, marks: mpsc::UnboundedSender<(u32, Instant)>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        tcp.set_nodelay(true).expect("nodelay");
        let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
        let wire = match peer {
            Peer::Deepgram => deepgram_handshake(&mut ws).await,
            Peer::Twilio => twilio_wire(),
            Peer::Asp => asp_handshake(&mut ws).await,
        };
        play(ws, plan, marks, wire).await;
    });
    addr
}

/// Welcome, wait for Settings, SettingsApplied; raw μ-law binary frames.
async fn deepgram_handshake(ws: &mut WebSocketStream<TcpStream>) -> Wire {
    ws.send(Message::text(r#"{"type":"Welcome","request_id":"bench"}"#)).await.expect("welcome");
    while let Some(Ok(m)) = ws.next().await {
        if matches!(&m, Message::Text(t) if t.contains("\"Settings\"")) {
            break;
        }
    }
    ws.send(Message::text(r#"{"type":"SettingsApplied"}"#)).await.expect("applied");
    Wire {
        frame: Box::new(|seq| Message::binary(stamp(seq).to_vec())),
        read: Box::new(|m| if let Message::Binary(b) = m { b.to_vec() } else { Vec::new() }),
        reply: Message::binary(vec![0x55u8; 8000 * 5]),
        flush: Message::text(r#"{"type":"UserStartedSpeaking"}"#),
    }
}

/// No handshake; base64 μ-law in `media`, `clear`.
fn twilio_wire() -> Wire {
    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
    fn media(audio: &[u8]) -> Message {
        Message::text(format!(r#"{{"event":"media","media":{{"payload":"{}"}}}}"#, B64.encode(audio)))
    }
    Wire {
        frame: Box::new(|seq| media(&stamp(seq))),
        read: Box::new(|m| {
            let Message::Text(t) = m else { return Vec::new() };
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
            v["media"]["payload"].as_str().and_then(|p| B64.decode(p).ok()).unwrap_or_default()
        }),
        reply: media(&vec![0x55u8; 8000 * 5]),
        flush: Message::text(r#"{"event":"clear"}"#),
    }
}

/// Capabilities, session.start, session.started, an empty greeting (the caller's audio
/// flows after it); PCM16 behind the 12-byte header.
async fn asp_handshake(ws: &mut WebSocketStream<TcpStream>) -> Wire {
    ws.send(Message::text(r#"{"type":"protocol.capabilities","version":"1.0.0"}"#)).await.expect("caps");
    let mut id = String::new();
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Text(t) = m {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
            id = v["session_id"].as_str().unwrap_or_default().to_owned();
            break;
        }
    }
    for m in [
        format!(r#"{{"type":"session.started","session_id":"{id}","status":"accepted"}}"#),
        format!(r#"{{"type":"response.start","session_id":"{id}","text":""}}"#),
        format!(r#"{{"type":"response.end","session_id":"{id}"}}"#),
    ] {
        ws.send(Message::text(m)).await.expect("handshake");
    }
    let hash = session_hash(&id);
    let frame = move |ulaw: &[u8]| -> Message {
        let mut f = vec![0x01, 0x01];
        f.extend_from_slice(&hash);
        f.extend_from_slice(&[0, 0]);
        for &c in ulaw {
            f.extend_from_slice(&ulaw_decode(c).to_le_bytes());
        }
        Message::binary(f)
    };
    Wire {
        frame: Box::new(move |seq| frame(&stamp(seq))),
        read: Box::new(|m| match m {
            Message::Binary(b) if b.len() > 12 => {
                b[12..].chunks_exact(2).map(|s| ulaw_encode(i16::from_le_bytes([s[0], s[1]]))).collect()
            }
            _ => Vec::new(),
        }),
        reply: frame(&vec![0x55u8; 8000 * 5]),
        // ASP's barge-in is voice-ua's own; a flush message does not exist.
        flush: Message::text(r#"{"type":"noop"}"#),
    }
}

/// Run `plan` on `ws` with `wire`'s messages.
async fn play(
    ws: WebSocketStream<TcpStream>,
    plan: Plan,
    marks: mpsc::UnboundedSender<(u32, Instant)>,
    wire: Wire,
) {
    let (mut tx, mut rx) = ws.split();
    match plan {
        Plan::Receive => {
            while let Some(Ok(m)) = rx.next().await {
                let now = Instant::now();
                if let Some(seq) = seq_of(&(wire.read)(&m)) {
                    let _ = marks.send((seq, now));
                }
            }
        }
        Plan::Send => {
            // Keep reading so the client's audio never backs up.
            tokio::spawn(async move { while rx.next().await.is_some() {} });
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            for seq in 0..frames() {
                tick.tick().await;
                let frame = (wire.frame)(seq);
                let _ = marks.send((seq, Instant::now()));
                if tx.send(frame).await.is_err() {
                    return;
                }
            }
        }
        Plan::BargeIn => {
            tokio::spawn(async move { while rx.next().await.is_some() {} });
            for n in 0..barge_ins() {
                let _ = tx.send(wire.reply.clone()).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = marks.send((n, Instant::now()));
                let _ = tx.send(wire.flush.clone()).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// p50, p99, max in µs.
fn summary(mut v: Vec<Duration>) -> (f64, f64, f64, usize) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99), at(1.0), v.len())
}

async fn call_to_agent(p: Peer) -> Vec<Duration> {
    let (tx, mut marks) = mpsc::unbounded_channel();
    let session = open(p, bot(p, Plan::Receive, tx).await).await;
    // Let the handshake finish: frames before SettingsApplied are dropped by design.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut sent = vec![None; frames() as usize];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for seq in 0..frames() {
        tick.tick().await;
        let bytes = stamp(seq);
        let frame = AudioFrame::new(&bytes).expect("frame");
        sent[seq as usize] = Some(Instant::now());
        session.send_audio(frame).expect("send");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(session);
    let mut out = Vec::new();
    while let Ok((seq, at)) = marks.try_recv() {
        if let Some(Some(t0)) = sent.get(seq as usize) {
            out.push(at.saturating_duration_since(*t0));
        }
    }
    out
}

async fn agent_to_call(p: Peer) -> Vec<Duration> {
    let (tx, mut marks) = mpsc::unbounded_channel();
    let mut session = open(p, bot(p, Plan::Send, tx).await).await;
    let mut got = vec![None; frames() as usize];
    let deadline = tokio::time::sleep(Duration::from_millis(u64::from(frames()) * 20 + 2000));
    tokio::pin!(deadline);
    let mut n = 0;
    while n < frames() {
        tokio::select! {
            ev = session.event() => match ev {
                Some(AgentEvent::Audio(f)) => {
                    let now = Instant::now();
                    if let Some(seq) = seq_of(f.as_bytes()) {
                        if let Some(slot) = got.get_mut(seq as usize) {
                            *slot = Some(now);
                            n += 1;
                        }
                    }
                }
                Some(_) => {}
                None => break,
            },
            _ = &mut deadline => break,
        }
    }
    let mut out = Vec::new();
    while let Ok((seq, t0)) = marks.try_recv() {
        if let Some(Some(t1)) = got.get(seq as usize) {
            out.push(t1.saturating_duration_since(t0));
        }
    }
    out
}

async fn barge_in(p: Peer) -> Vec<Duration> {
    let (tx, mut marks) = mpsc::unbounded_channel();
    let mut session = open(p, bot(p, Plan::BargeIn, tx).await).await;
    let mut flushes = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_millis(u64::from(barge_ins()) * 200 + 3000));
    tokio::pin!(deadline);
    while flushes.len() < barge_ins() as usize {
        tokio::select! {
            ev = session.event() => match ev {
                Some(AgentEvent::FlushPlayback) => flushes.push(Instant::now()),
                Some(_) => {}
                None => break,
            },
            _ = &mut deadline => break,
        }
    }
    let mut out = Vec::new();
    while let Ok((n, t0)) = marks.try_recv() {
        if let Some(t1) = flushes.get(n as usize) {
            out.push(t1.saturating_duration_since(t0));
        }
    }
    out
}

fn main() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let results = rt.block_on(async {
        vec![
            (
                "Deepgram: call → agent (frame handed to the session → read by the peer)",
                call_to_agent(Peer::Deepgram).await,
            ),
            (
                "Deepgram: agent → call (frame written by the peer → event at the call)",
                agent_to_call(Peer::Deepgram).await,
            ),
            (
                "Deepgram: barge-in (UserStartedSpeaking written → FlushPlayback at the call)",
                barge_in(Peer::Deepgram).await,
            ),
            (
                "Twilio bot: call → bot (frame handed to the session → media read by the bot)",
                call_to_agent(Peer::Twilio).await,
            ),
            (
                "Twilio bot: bot → call (media written by the bot → event at the call)",
                agent_to_call(Peer::Twilio).await,
            ),
            (
                "Twilio bot: barge-in (clear written → FlushPlayback at the call)",
                barge_in(Peer::Twilio).await,
            ),
            (
                "ASP agent: call → agent (frame handed to the session → binary read by the agent)",
                call_to_agent(Peer::Asp).await,
            ),
            (
                "ASP agent: agent → call (binary written by the agent → event at the call)",
                agent_to_call(Peer::Asp).await,
            ),
        ]
    });
    println!("| path | samples | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    for (name, v) in results {
        if v.is_empty() {
            println!("| {name} | 0 | — | — | — |");
            continue;
        }
        let (p50, p99, max, n) = summary(v);
        println!("| {name} | {n} | {p50:.0} µs | {p99:.0} µs | {max:.0} µs |");
    }
}
