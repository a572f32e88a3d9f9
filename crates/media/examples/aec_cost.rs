//! The echo canceller's cost per 20 ms frame with playback running, for a profiler or
//! `perf stat`: 10 s of speech-like playback echoed back 80 ms late at -12 dB, the
//! canceller warmed up first, then `FRAMES` (default 20000) frames timed, in wall time
//! and (on Linux) in the process's CPU time, which a loaded machine inflates less.
//!
//! Run: `cargo run --release -p voice-ua-media --example aec_cost -- 8000`

use std::time::Instant;
use voice_ua_media::aec::echo_path::{EchoLine, EchoSettings, Talker};
use voice_ua_media::EchoCanceller;

fn main() {
    let rate: u32 = std::env::args().nth(1).and_then(|r| r.parse().ok()).unwrap_or(8000);
    let frames: usize = std::env::var("FRAMES").ok().and_then(|f| f.parse().ok()).unwrap_or(20000);
    let n = rate as usize / 50;
    let total = 500;
    let mut talker = Talker::new(rate, -18.0, 1);
    let mut line =
        EchoLine::new(EchoSettings { rate, delay_ms: 80, atten_db: 12.0, noise_dbfs: -50.0, seed: 2 });
    let far = talker.take(total * n);
    let mut near = vec![0i16; total * n];
    let mut echo = vec![0i16; n];
    for k in 0..total {
        line.frame(&far[k * n..(k + 1) * n], &[], &mut echo, &mut near[k * n..(k + 1) * n]);
    }
    let mut aec = EchoCanceller::new(rate).expect("8000 or 16000");
    let mut out = vec![0i16; n];
    for k in 0..total {
        out.copy_from_slice(&near[k * n..(k + 1) * n]);
        aec.process(&far[k * n..(k + 1) * n], &mut out);
    }
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    for i in 0..frames {
        let k = i % total;
        out.copy_from_slice(&near[k * n..(k + 1) * n]);
        aec.process(&far[k * n..(k + 1) * n], &mut out);
    }
    let per = start.elapsed() / frames as u32;
    let cpu = match (cpu0, cpu_seconds()) {
        (Some(a), Some(b)) => format!("{:.1} µs CPU", (b - a) * 1e6 / frames as f64),
        _ => "CPU time unknown".into(),
    };
    println!(
        "{rate} Hz: {per:?} wall, {cpu} per 20 ms frame over {frames} frames (ERLE {:.1} dB)",
        aec.erle_db()
    );
}

/// This process's user + system CPU time from /proc/self/stat (clock ticks of 10 ms).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
