//! How long each agent bridge holds audio, each way, and how fast a barge-in reaches the
//! call: the production providers (`DeepgramProvider`, `OpenAiProvider`: tokio-tungstenite,
//! their session tasks and the seam's channels) against a WebSocket peer on 127.0.0.1
//! written here that time-stamps what it sends and receives with the same clock.
//!
//! - **call → agent**: `AgentSession::send_audio` of a 20 ms frame → the frame read by the
//!   peer (for OpenAI, out of the base64 of an `input_audio_buffer.append`; a frame that
//!   waits for the next one of its append counts that wait). The call does this once per
//!   tick right after the jitter buffer's pop.
//! - **agent → call**: the peer writes a 20 ms frame (a binary frame; an
//!   `response.output_audio.delta`) → `AgentSession::event` yields it. The call pushes
//!   it into its pacer on arrival; when it then plays is the pacer's 20 ms schedule, not
//!   processing.
//! - **barge-in**: the peer writes 5 s of agent audio, then `UserStartedSpeaking` /
//!   `input_audio_buffer.speech_started` → `FlushPlayback` reaches the call (which
//!   flushes its pacer at once, so no agent frame leaves after that).
//! - **OpenAI's append batching**: for 1, 2, 3 and 5 caller frames per append, the
//!   call → agent latency and the CPU the whole process spends per second of caller
//!   audio with 50 calls at once (utime + stime from /proc/self/stat; the peer only
//!   drains its socket).
//!
//! Run: `cargo bench -p voice-ua-agent --bench bridge_latency` (prints Markdown tables;
//! `BENCH_FRAMES=N` frames per direction, default 3000 = 60 s).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use voice_ua_agent::{
    AgentEvent, AgentProvider, AgentSession, AudioFormat, AudioFrame, CallFacts, DeepgramConfig,
    DeepgramProvider, OpenAiConfig, OpenAiProvider,
};

/// Run by `cargo test` (no `--bench` argument): a short run that proves the bench works,
/// not a measurement.
fn smoke() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

/// Barge-ins per bridge (5 in a `cargo test` smoke run).
fn barge_ins() -> u32 {
    if smoke() {
        5
    } else {
        100
    }
}
/// Calls at once for the CPU figure, and how long each streams.
/// Calls at once for the CPU table (5 in a `cargo test` smoke run).
fn cpu_calls() -> usize {
    if smoke() {
        5
    } else {
        50
    }
}
/// Seconds of caller audio per CPU row (1 in a `cargo test` smoke run).
fn cpu_seconds() -> u64 {
    if smoke() {
        1
    } else {
        10
    }
}

fn frames() -> u32 {
    std::env::var("BENCH_FRAMES").ok().and_then(|v| v.parse().ok()).unwrap_or(if smoke() { 50 } else { 3000 })
}

/// Which bridge.
#[derive(Clone, Copy, Debug)]
enum Provider {
    Deepgram,
    /// With this many caller frames per append.
    OpenAi(usize),
}

/// What the peer does after the handshake.
#[derive(Clone, Copy)]
enum Plan {
    /// Read frames; report each one's sequence number and arrival instant.
    Receive,
    /// Read and drop everything (the CPU figure).
    Drain,
    /// Send the frames 20 ms apart; report each one's send instant.
    Send,
    /// `barge_ins()` times: 5 s of audio, 100 ms later the caller starts speaking; report
    /// the instant each was written.
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

fn text(s: &str) -> Message {
    Message::text(s.to_owned())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// OpenAI's agent audio event for `bytes`.
fn delta(bytes: &[u8]) -> Message {
    text(&format!(
        r#"{{"type":"response.output_audio.delta","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0,"delta":"{}"}}"#,
        b64(bytes)
    ))
}

/// The caller frames a client message carries: a binary frame (Deepgram) or the audio of
/// an append (OpenAI), in 160-byte frames.
fn caller_frames(m: &Message) -> Vec<Vec<u8>> {
    let bytes = match m {
        Message::Binary(b) => b.to_vec(),
        Message::Text(t) => {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
            match v["audio"].as_str() {
                Some(a) => base64::engine::general_purpose::STANDARD.decode(a).unwrap_or_default(),
                None => return Vec::new(),
            }
        }
        _ => return Vec::new(),
    };
    bytes.chunks(160).map(<[u8]>::to_vec).collect()
}

/// A minimal peer of `provider`: its handshake, then `plan`.
async fn peer(provider: Provider, plan: Plan, marks: mpsc::UnboundedSender<(u32, Instant)>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            tcp.set_nodelay(true).expect("nodelay");
            let marks = marks.clone();
            tokio::spawn(async move { serve(provider, plan, tcp, marks).await });
        }
    });
    addr
}

async fn serve(
    provider: Provider,
    plan: Plan,
    tcp: tokio::net::TcpStream,
    marks: mpsc::UnboundedSender<(u32, Instant)>,
) {
    let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
    let (hello, wanted, ready) = match provider {
        Provider::Deepgram => {
            (r#"{"type":"Welcome","request_id":"bench"}"#, "\"Settings\"", r#"{"type":"SettingsApplied"}"#)
        }
        Provider::OpenAi(_) => (
            r#"{"type":"session.created","session":{"type":"realtime","id":"bench"}}"#,
            "\"session.update\"",
            r#"{"type":"session.updated","session":{"type":"realtime"}}"#,
        ),
    };
    ws.send(text(hello)).await.expect("hello");
    while let Some(Ok(m)) = ws.next().await {
        if matches!(&m, Message::Text(t) if t.contains(wanted)) {
            break;
        }
    }
    ws.send(text(ready)).await.expect("ready");
    let frame = |bytes: &[u8]| match provider {
        Provider::Deepgram => Message::binary(bytes.to_vec()),
        Provider::OpenAi(_) => delta(bytes),
    };
    match plan {
        Plan::Receive => {
            while let Some(Ok(m)) = ws.next().await {
                let now = Instant::now();
                for f in caller_frames(&m) {
                    if let Some(seq) = seq_of(&f) {
                        let _ = marks.send((seq, now));
                    }
                }
            }
        }
        Plan::Drain => while let Some(Ok(_)) = ws.next().await {},
        Plan::Send => {
            let (mut tx, mut rx) = ws.split();
            // Keep reading so the client's audio never backs up.
            tokio::spawn(async move { while rx.next().await.is_some() {} });
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            for seq in 0..frames() {
                tick.tick().await;
                let m = frame(&stamp(seq));
                let _ = marks.send((seq, Instant::now()));
                if tx.send(m).await.is_err() {
                    return;
                }
            }
        }
        Plan::BargeIn => {
            let (mut tx, mut rx) = ws.split();
            tokio::spawn(async move { while rx.next().await.is_some() {} });
            let reply = vec![0x55u8; 8000 * 5];
            let (speech, stopped) = match provider {
                Provider::Deepgram => (r#"{"type":"UserStartedSpeaking"}"#, None),
                Provider::OpenAi(_) => (
                    r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":0,"item_id":"u"}"#,
                    Some(r#"{"type":"input_audio_buffer.speech_stopped","audio_end_ms":0,"item_id":"u"}"#),
                ),
            };
            for n in 0..barge_ins() {
                let _ = tx.send(frame(&reply)).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = marks.send((n, Instant::now()));
                let _ = tx.send(text(speech)).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Some(stopped) = stopped {
                    let _ = tx.send(text(stopped)).await;
                }
            }
        }
    }
}

async fn open(provider: Provider, addr: SocketAddr) -> AgentSession {
    let facts = CallFacts {
        call_id: "bench".into(),
        caller_display: None,
        caller_uri: "sip:2001@127.0.0.1".into(),
        callee: "sip:9000@127.0.0.1".into(),
        extension: "9000".into(),
        format: AudioFormat::Ulaw8k,
    };
    match provider {
        Provider::Deepgram => {
            let mut config = DeepgramConfig::new("bench-key");
            config.url = format!("ws://{addr}/v1/agent/converse");
            DeepgramProvider::new(config).expect("provider").open(facts).await.expect("open")
        }
        Provider::OpenAi(append_frames) => {
            let mut config = OpenAiConfig::new("bench-key");
            config.url = format!("ws://{addr}/v1/realtime");
            config.append_frames = append_frames;
            OpenAiProvider::new(config).expect("provider").open(facts).await.expect("open")
        }
    }
}

/// p50, p99, max in µs.
fn summary(mut v: Vec<Duration>) -> (f64, f64, f64, usize) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99), at(1.0), v.len())
}

async fn call_to_agent(provider: Provider, n: u32) -> Vec<Duration> {
    let (tx, mut marks) = mpsc::unbounded_channel();
    let session = open(provider, peer(provider, Plan::Receive, tx).await).await;
    // Let the handshake finish: frames before it are dropped by design.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut sent = vec![None; n as usize];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for seq in 0..n {
        tick.tick().await;
        let frame = AudioFrame::new(&stamp(seq)).expect("frame");
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

async fn agent_to_call(provider: Provider) -> Vec<Duration> {
    let n = frames();
    let (tx, mut marks) = mpsc::unbounded_channel();
    let mut session = open(provider, peer(provider, Plan::Send, tx).await).await;
    let mut got = vec![None; n as usize];
    let deadline = tokio::time::sleep(Duration::from_millis(u64::from(n) * 20 + 2000));
    tokio::pin!(deadline);
    let mut count = 0;
    while count < n {
        tokio::select! {
            ev = session.event() => match ev {
                Some(AgentEvent::Audio(f)) => {
                    let now = Instant::now();
                    if let Some(slot) = seq_of(f.as_bytes()).and_then(|seq| got.get_mut(seq as usize)) {
                        *slot = Some(now);
                        count += 1;
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

async fn barge_in(provider: Provider) -> Vec<Duration> {
    let count = barge_ins();
    let (tx, mut marks) = mpsc::unbounded_channel();
    let mut session = open(provider, peer(provider, Plan::BargeIn, tx).await).await;
    let mut flushes = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_millis(u64::from(count) * 200 + 3000));
    tokio::pin!(deadline);
    while flushes.len() < count as usize {
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

/// utime + stime of this process.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis: state is field 3; utime and stime
    // are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<u64> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// CPU of the whole process per second of caller audio, `cpu_calls()` calls at once, the
/// peer only draining.
async fn cpu_per_call_second(provider: Provider) -> Duration {
    let (tx, _marks) = mpsc::unbounded_channel();
    let addr = peer(provider, Plan::Drain, tx).await;
    let mut sessions = Vec::new();
    for _ in 0..cpu_calls() {
        sessions.push(open(provider, addr).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let frame = AudioFrame::silence(AudioFormat::Ulaw8k);
    let start = cpu_time();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..cpu_seconds() * 50 {
        tick.tick().await;
        for s in &sessions {
            s.send_audio(frame).expect("send");
        }
    }
    let used = cpu_time().saturating_sub(start);
    drop(sessions);
    used / (cpu_calls() as u32 * cpu_seconds() as u32)
}

fn row(name: &str, v: Vec<Duration>) {
    if v.is_empty() {
        println!("| {name} | 0 | — | — | — |");
        return;
    }
    let (p50, p99, max, n) = summary(v);
    println!("| {name} | {n} | {p50:.0} µs | {p99:.0} µs | {max:.0} µs |");
}

fn main() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let openai = Provider::OpenAi(voice_ua_agent::openai::DEFAULT_APPEND_FRAMES);
    println!("| path | samples | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    rt.block_on(async {
        let n = frames();
        row("deepgram: call → agent (frame handed to the session → read by the peer)", call_to_agent(Provider::Deepgram, n).await);
        row("deepgram: agent → call (frame written by the peer → event at the call)", agent_to_call(Provider::Deepgram).await);
        row("deepgram: barge-in (UserStartedSpeaking written → FlushPlayback at the call)", barge_in(Provider::Deepgram).await);
        row(
            "openai: call → agent (frame handed to the session → read by the peer out of its append; 2 frames per append)",
            call_to_agent(openai, n).await,
        );
        row("openai: agent → call (delta written by the peer → audio event at the call)", agent_to_call(openai).await);
        row("openai: barge-in (speech_started written → FlushPlayback at the call)", barge_in(openai).await);
    });
    println!();
    println!(
        "| OpenAI frames per append | call → agent mean | p50 | p99 | CPU per second of caller audio ({} calls) |",
        cpu_calls()
    );
    println!("|---|---|---|---|---|");
    rt.block_on(async {
        for k in [1, 2, 3, 5] {
            let provider = Provider::OpenAi(k);
            let latencies = call_to_agent(provider, 500).await;
            let mean = latencies.iter().sum::<Duration>().as_secs_f64() * 1e6 / latencies.len().max(1) as f64;
            let (p50, p99, _, _) = summary(latencies);
            let cpu = cpu_per_call_second(provider).await;
            println!(
                "| {k} | {mean:.0} µs | {p50:.0} µs | {p99:.0} µs | {:.0} µs |",
                cpu.as_secs_f64() * 1e6
            );
        }
        let cpu = cpu_per_call_second(Provider::Deepgram).await;
        println!("| (Deepgram, a binary frame each) | | | | {:.0} µs |", cpu.as_secs_f64() * 1e6);
    });
}
