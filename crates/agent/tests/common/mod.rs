//! Helpers shared by the integration tests: synthetic audio in any call format, a
//! deterministic noise source and a Goertzel filter; HTTP servers for the tools
//! ([`http`]); a provider's session driven as a call drives it ([`session`]).

#![allow(dead_code)]

pub mod http;
pub mod pipeline;
pub mod session;

use std::f64::consts::TAU;

use std::time::Duration;

use voice_ua_agent::{AgentEvent, AgentSession, AudioFormat, AudioFrame, CallInput};

/// Linear samples → bytes in `format`.
pub fn encode(format: AudioFormat, pcm: &[i16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pcm.len() * 2);
    for &x in pcm {
        format.push_sample(&mut out, x);
    }
    out
}

/// Bytes in `format` → linear samples.
pub fn decode(format: AudioFormat, bytes: &[u8]) -> Vec<i16> {
    let n = bytes.len() / format.bytes_per_sample();
    (0..n).filter_map(|i| format.sample(bytes, i)).collect()
}

/// Deterministic white noise (xorshift), uniform in ±`amplitude`.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Noise(seed | 1)
    }

    pub fn sample(&mut self, amplitude: f64) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let unit = (self.0 >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        (unit * 2.0 - 1.0) * amplitude
    }
}

/// A signal built frame by frame: each segment appends 20 ms frames.
pub struct Script {
    pub format: AudioFormat,
    pub pcm: Vec<i16>,
    noise: Noise,
    noise_amplitude: f64,
}

impl Script {
    pub fn new(format: AudioFormat) -> Self {
        Script { format, pcm: Vec::new(), noise: Noise::new(7), noise_amplitude: 0.0 }
    }

    /// Background noise added to everything appended after this (peak amplitude).
    pub fn noise(mut self, amplitude: f64) -> Self {
        self.noise_amplitude = amplitude;
        self
    }

    pub fn frames(&self) -> usize {
        self.pcm.len() / self.format.frame_samples()
    }

    /// `frames` frames of background only.
    pub fn quiet(mut self, frames: usize) -> Self {
        self.add(frames, |_| 0.0);
        self
    }

    /// `frames` frames of a tone at `hz` with peak `amplitude`, plus the background.
    pub fn tone(mut self, frames: usize, hz: f64, amplitude: f64) -> Self {
        let rate = f64::from(self.format.sample_rate());
        self.add(frames, |t| amplitude * (TAU * hz * t / rate).sin());
        self
    }

    /// `frames` frames of a "voice": a gliding, wobbling tone, so no two frames are alike.
    pub fn voice(mut self, frames: usize, amplitude: f64) -> Self {
        let rate = f64::from(self.format.sample_rate());
        self.add(frames, |t| {
            let s = t / rate;
            let hz = 180.0 + 120.0 * (TAU * 1.3 * s).sin();
            amplitude * (TAU * hz * s).sin() * (0.75 + 0.25 * (TAU * 4.0 * s).sin())
        });
        self
    }

    fn add(&mut self, frames: usize, signal: impl Fn(f64) -> f64) {
        let n = frames * self.format.frame_samples();
        let start = self.pcm.len();
        for i in 0..n {
            let x = signal((start + i) as f64) + self.noise.sample(self.noise_amplitude);
            self.pcm.push(x.round().clamp(-32768.0, 32767.0) as i16);
        }
    }

    /// The whole signal in the call's format.
    pub fn bytes(&self) -> Vec<u8> {
        encode(self.format, &self.pcm)
    }
}

/// Power of `hz` in `samples` (Goertzel), normalised by the length.
pub fn goertzel(samples: &[i16], hz: f64, rate: f64) -> f64 {
    let coeff = 2.0 * (TAU * hz / rate).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (samples.len() as f64).powi(2)
}

/// The three call formats the echo agent must handle.
pub fn formats() -> [AudioFormat; 3] {
    [AudioFormat::Ulaw8k, AudioFormat::Alaw8k, AudioFormat::Linear16 { rate_hz: 16000 }]
}

/// The call's side of a session for the provider tests: `frame(n)` every 10 ms, each
/// mark answered as played at once, until `done` says so or the session ends (panics
/// after `limit`).
pub async fn drive(
    session: &mut AgentSession,
    frame: impl Fn(usize) -> AudioFrame,
    limit: Duration,
    mut done: impl FnMut(&[AgentEvent]) -> bool,
) -> Vec<AgentEvent> {
    let mut events = Vec::new();
    let until = tokio::time::Instant::now() + limit;
    let mut n = 0;
    while tokio::time::Instant::now() < until {
        let _ = session.send_audio(frame(n));
        n += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
        while let Some(event) = session.try_event() {
            if let AgentEvent::Mark(id) = event {
                let _ = session.send_playback(CallInput::MarkPlayed { id, cleared: false });
            }
            let end = matches!(event, AgentEvent::Ended(_));
            events.push(event);
            if end {
                return events;
            }
        }
        if done(&events) {
            return events;
        }
    }
    panic!("gave up waiting; events so far: {events:?}");
}
