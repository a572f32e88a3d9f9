//! How long the Deepgram bridge holds audio, each way, and how fast a barge-in reaches
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
//! Run: `cargo bench -p voice-ua-agent --bench bridge_latency` (prints a Markdown table).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use voice_ua_agent::{
    AgentEvent, AgentProvider, AgentSession, AudioFormat, AudioFrame, CallFacts, DeepgramConfig,
    DeepgramProvider,
};

const FRAMES: u32 = 3000;
const BARGE_INS: u32 = 100;

/// What the peer does after the handshake.
#[derive(Clone, Copy)]
enum Plan {
    /// Read frames; report each one's sequence number and arrival instant.
    Receive,
    /// Send `FRAMES` frames 20 ms apart; report each one's send instant.
    Send,
    /// `BARGE_INS` times: 5 s of audio, 100 ms later `UserStartedSpeaking`; report the
    /// instant each `UserStartedSpeaking` was written.
    BargeIn,
}

fn stamp(seq: u32) -> [u8; 160] {
    let mut b = [0xffu8; 160];
    b[..4].copy_from_slice(&seq.to_be_bytes());
    b
}

fn seq_of(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?))
}

/// A minimal Voice Agent peer: Welcome, wait for Settings, SettingsApplied, then `plan`.
async fn peer(plan: Plan, marks: mpsc::UnboundedSender<(u32, Instant)>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        tcp.set_nodelay(true).expect("nodelay");
        let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
        let text = |s: &str| Message::text(s.to_owned());
        ws.send(text(r#"{"type":"Welcome","request_id":"bench"}"#)).await.expect("welcome");
        while let Some(Ok(m)) = ws.next().await {
            if matches!(&m, Message::Text(t) if t.contains("\"Settings\"")) {
                break;
            }
        }
        ws.send(text(r#"{"type":"SettingsApplied"}"#)).await.expect("applied");
        match plan {
            Plan::Receive => {
                while let Some(Ok(m)) = ws.next().await {
                    if let Message::Binary(b) = m {
                        let now = Instant::now();
                        if let Some(seq) = seq_of(&b) {
                            let _ = marks.send((seq, now));
                        }
                    }
                }
            }
            Plan::Send => {
                let (mut tx, mut rx) = ws.split();
                // Keep reading so the client's audio never backs up.
                tokio::spawn(async move { while rx.next().await.is_some() {} });
                let mut tick = tokio::time::interval(Duration::from_millis(20));
                for seq in 0..FRAMES {
                    tick.tick().await;
                    let frame = Message::binary(stamp(seq).to_vec());
                    let _ = marks.send((seq, Instant::now()));
                    if tx.send(frame).await.is_err() {
                        return;
                    }
                }
            }
            Plan::BargeIn => {
                let (mut tx, mut rx) = ws.split();
                tokio::spawn(async move { while rx.next().await.is_some() {} });
                let reply = vec![0x55u8; 8000 * 5];
                for n in 0..BARGE_INS {
                    let _ = tx.send(Message::binary(reply.clone())).await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let _ = marks.send((n, Instant::now()));
                    let _ = tx.send(text(r#"{"type":"UserStartedSpeaking"}"#)).await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    addr
}

async fn open(addr: SocketAddr) -> AgentSession {
    let mut config = DeepgramConfig::new("bench-key");
    config.url = format!("ws://{addr}/v1/agent/converse");
    let provider = DeepgramProvider::new(config).expect("provider");
    let facts = CallFacts {
        call_id: "bench".into(),
        caller_display: None,
        caller_uri: "sip:2001@127.0.0.1".into(),
        callee: "sip:9000@127.0.0.1".into(),
        extension: "9000".into(),
        format: AudioFormat::Ulaw8k,
    };
    provider.open(facts).await.expect("open")
}

/// p50, p99, max in µs.
fn summary(mut v: Vec<Duration>) -> (f64, f64, f64, usize) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99), at(1.0), v.len())
}

async fn call_to_agent() -> Vec<Duration> {
    let (tx, mut marks) = mpsc::unbounded_channel();
    let session = open(peer(Plan::Receive, tx).await).await;
    // Let the handshake finish: frames before SettingsApplied are dropped by design.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut sent = vec![None; FRAMES as usize];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for seq in 0..FRAMES {
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

async fn agent_to_call() -> Vec<Duration> {
    let (tx, mut marks) = mpsc::unbounded_channel();
    let mut session = open(peer(Plan::Send, tx).await).await;
    let mut got = vec![None; FRAMES as usize];
    let deadline = tokio::time::sleep(Duration::from_millis(u64::from(FRAMES) * 20 + 2000));
    tokio::pin!(deadline);
    let mut n = 0;
    while n < FRAMES {
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

async fn barge_in() -> Vec<Duration> {
    let (tx, mut marks) = mpsc::unbounded_channel();
    let mut session = open(peer(Plan::BargeIn, tx).await).await;
    let mut flushes = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_millis(u64::from(BARGE_INS) * 200 + 3000));
    tokio::pin!(deadline);
    while flushes.len() < BARGE_INS as usize {
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
        let up = call_to_agent().await;
        let down = agent_to_call().await;
        let barge = barge_in().await;
        [
            ("call → agent (frame handed to the session → read by the peer)", up),
            ("agent → call (frame written by the peer → event at the call)", down),
            ("barge-in (UserStartedSpeaking written → FlushPlayback at the call)", barge),
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
