//! Property tests: the jitter buffer against a simulated network (loss 0-20 %, jitter up to
//! 100 ms so packets reorder, duplicates, sequence/timestamp wrap, an SSRC change), in
//! virtual time with one pop per 20 ms.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use voice_ua_media::g711::{ulaw_decode, ulaw_encode};
use voice_ua_media::jitter::{FrameKind, JitterBuffer, JitterConfig, Pushed};
use voice_ua_media::rtp::{RtpHeader, RtpPacket};

#[derive(Debug, Clone)]
struct Net {
    frames: usize,
    loss: f64,
    jitter_ms: u64,
    duplicate: f64,
    seq0: u16,
    ts0: u32,
    ssrc_change: Option<usize>,
    phase_ms: u64,
    max_delay_ms: u64,
    seed: u64,
}

fn nets() -> impl Strategy<Value = Net> {
    (
        50usize..400,
        0.0f64..0.2,
        0u64..=100,
        0.0f64..0.1,
        prop_oneof![any::<u16>(), 65400u16..],
        prop_oneof![any::<u32>(), (u32::MAX - 20_000)..],
        prop::option::of(10usize..300),
        0u64..20,
        prop_oneof![Just(200u64), 100u64..=200],
        any::<u64>(),
    )
        .prop_map(
            |(frames, loss, jitter_ms, duplicate, seq0, ts0, ssrc_change, phase_ms, max_delay_ms, seed)| {
                Net {
                    frames,
                    loss,
                    jitter_ms,
                    duplicate,
                    seq0,
                    ts0,
                    ssrc_change: ssrc_change.filter(|&c| c < frames),
                    phase_ms,
                    max_delay_ms,
                    seed,
                }
            },
        )
}

/// Small deterministic generator (xorshift64*), seeded by proptest.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Frame `k` carries its number in the last two samples (two base-100 digits each coded
/// 0x80 + digit, which survive decode/encode); the rest is silence.
fn payload(k: usize) -> [u8; 160] {
    let mut p = [0xFFu8; 160];
    p[158] = 0x80 + (k / 100) as u8;
    p[159] = 0x80 + (k % 100) as u8;
    p
}

fn frame_number(samples: &[i16]) -> usize {
    let digit = |s: i16| usize::from(ulaw_encode(s) - 0x80);
    digit(samples[158]) * 100 + digit(samples[159])
}

const MS20: Duration = Duration::from_millis(20);

fn run(net: &Net) -> Result<(), TestCaseError> {
    let t0 = Instant::now();
    let mut rng = Rng(net.seed | 1);
    let change = net.ssrc_change.unwrap_or(usize::MAX);
    let segment_of = |k: usize| usize::from(k >= change);
    let local = |k: usize| if k >= change { k - change } else { k };
    let ts_base = [net.ts0, net.ts0.wrapping_add(0x8000_0000)];
    let seq_base = [net.seq0, net.seq0.wrapping_add(20_000)];

    // Arrivals: (time, frame).
    let mut arrivals: Vec<(Duration, usize)> = Vec::new();
    let mut lost = vec![false; net.frames];
    for (k, is_lost) in lost.iter_mut().enumerate() {
        let sent = MS20 * k as u32;
        if rng.unit() < net.loss {
            *is_lost = true;
            continue;
        }
        let copies = if rng.unit() < net.duplicate { 2 } else { 1 };
        for _ in 0..copies {
            let delay = Duration::from_millis(rng.next() % (net.jitter_ms + 1));
            arrivals.push((sent + delay, k));
        }
    }
    arrivals.sort();
    let mut first_arrival: HashMap<usize, Duration> = HashMap::new();
    for &(at, k) in &arrivals {
        first_arrival.entry(k).or_insert(at);
    }

    let config =
        JitterConfig { max_delay: Duration::from_millis(net.max_delay_ms), ..JitterConfig::default() };
    let max_delay = config.max_delay;
    let mut jb = JitterBuffer::new(config);
    let mut next = 0;
    let mut played: Vec<usize> = Vec::new();
    // Output timeline per segment: (local frame index, kind).
    let mut timeline: [Vec<(usize, FrameKind)>; 2] = [Vec::new(), Vec::new()];
    let mut concealed_frames = 0u64;
    let mut stale = 0usize;
    let pops = net.frames + (net.jitter_ms as usize) / 20 + 15;
    for tick in 0..pops {
        let pop_at = MS20 * tick as u32 + Duration::from_millis(net.phase_ms);
        while let Some(&(at, k)) = arrivals.get(next) {
            if at > pop_at {
                break;
            }
            let seg = segment_of(k);
            let j = local(k);
            let body = payload(k);
            let header = RtpHeader {
                marker: j == 0,
                payload_type: 0,
                sequence: seq_base[seg].wrapping_add(j as u16),
                timestamp: ts_base[seg].wrapping_add(160 * j as u32),
                ssrc: 0x1000 + seg as u32,
            };
            let r = jb.push(t0 + at, &RtpPacket::new(header, &body));
            if r == Pushed::StaleSource {
                stale += 1;
            }
            next += 1;
        }
        let frame = jb.pop(t0 + pop_at);
        prop_assert_eq!(frame.samples.len(), 160);
        let kind = frame.kind;
        // Which sender frame does this timestamp belong to?
        let place = (0..2).find_map(|seg| {
            let j = frame.timestamp.wrapping_sub(ts_base[seg]) / 160;
            let k = if seg == 0 { j as usize } else { change.saturating_add(j as usize) };
            let in_segment =
                (seg == 0 && (j as usize) < net.frames.min(change)) || (seg == 1 && k < net.frames);
            (frame.timestamp.wrapping_sub(ts_base[seg]).is_multiple_of(160) && in_segment)
                .then_some((seg, j as usize, k))
        });
        match kind {
            FrameKind::Audio => {
                let k = frame_number(frame.samples);
                let arrived = first_arrival.get(&k).copied();
                prop_assert!(arrived.is_some(), "played frame {} never arrived", k);
                let waited = pop_at - arrived.unwrap_or_default();
                prop_assert!(waited <= max_delay, "frame {} waited {:?} > {:?}", k, waited, max_delay);
                prop_assert_eq!(place.map(|p| p.2), Some(k), "timestamp of frame {}", k);
                played.push(k);
                if let Some((seg, j, _)) = place {
                    timeline[seg].push((j, kind));
                }
            }
            FrameKind::Concealed => {
                concealed_frames += 1;
                if let Some((seg, j, k)) = place {
                    let in_time = first_arrival.get(&k).is_some_and(|&at| at <= pop_at);
                    prop_assert!(!in_time || seg != segment_of(k), "frame {} concealed though it arrived", k);
                    timeline[seg].push((j, kind));
                }
            }
            FrameKind::Stretched | FrameKind::Silence => {}
        }
    }
    let stats = *jb.stats();
    // Steady cadence and none twice: played frames strictly increase.
    for pair in played.windows(2) {
        prop_assert!(pair[0] < pair[1], "frame order {:?}", pair);
    }
    prop_assert_eq!(stats.concealed, concealed_frames);
    // Every frame between the first and last played of a segment was played, concealed,
    // or skipped over by the play position (counted as skipped/discarded).
    let mut jumped = 0u64;
    for line in &timeline {
        let (Some(first), Some(last)) = (
            line.iter().position(|e| e.1 == FrameKind::Audio),
            line.iter().rposition(|e| e.1 == FrameKind::Audio),
        ) else {
            continue;
        };
        for pair in line[first..=last].windows(2) {
            prop_assert!(pair[1].0 > pair[0].0, "timeline goes back {:?}", pair);
            jumped += (pair[1].0 - pair[0].0 - 1) as u64;
        }
    }
    prop_assert!(jumped <= stats.skipped + stats.discarded, "jumped {} > {:?}", jumped, stats);
    // RFC 3550 loss: network losses, give or take those at the edges of each stream and
    // stragglers of the old SSRC.
    let network_lost = lost.iter().filter(|&&l| l).count() as u64;
    prop_assert!(stats.lost <= network_lost + stale as u64, "lost {:?} vs {}", stats, network_lost);
    let edges = (net.frames / 10 + 10) as u64;
    prop_assert!(stats.lost + edges >= network_lost, "lost {:?} vs {}", stats, network_lost);
    let segments_heard =
        (0..2).filter(|&seg| arrivals.iter().any(|&(_, k)| segment_of(k) == seg)).count() as u64;
    prop_assert!(stats.restarts >= segments_heard);
    prop_assert!(stats.delay <= max_delay);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn jitter_buffer_under_a_simulated_network(net in nets()) {
        run(&net)?;
    }
}

#[test]
fn worst_case_network_once() {
    let net = Net {
        frames: 399,
        loss: 0.2,
        jitter_ms: 100,
        duplicate: 0.1,
        seq0: 65500,
        ts0: u32::MAX - 5000,
        ssrc_change: Some(200),
        phase_ms: 7,
        max_delay_ms: 100,
        seed: 42,
    };
    run(&net).expect("properties hold");
    assert_eq!(ulaw_decode(0xFF), 0);
}
