//! Jitter buffer scenarios in virtual time: reordering, duplicates, loss, lateness, wrap,
//! SSRC changes, timestamp jumps, talkspurts, adaptation and statistics.

use std::time::{Duration, Instant};

use voice_ua_media::g711::{ulaw_decode, ulaw_encode};
use voice_ua_media::jitter::{FrameKind, JitterBuffer, JitterConfig, Pushed};
use voice_ua_media::rtp::{RtpHeader, RtpPacket};

const MS20: Duration = Duration::from_millis(20);

/// A 20 ms μ-law payload whose samples all encode `tag` (distinct per frame).
fn payload(tag: u8) -> [u8; 160] {
    [0x80 | (tag % 100); 160]
}

fn tag_of(samples: &[i16]) -> u8 {
    ulaw_encode(samples[159]) & 0x7F
}

struct Stream {
    ssrc: u32,
    seq: u16,
    ts: u32,
}

impl Stream {
    fn header(&self, k: u16, marker: bool) -> RtpHeader {
        RtpHeader {
            marker,
            payload_type: 0,
            sequence: self.seq.wrapping_add(k),
            timestamp: self.ts.wrapping_add(u32::from(k) * 160),
            ssrc: self.ssrc,
        }
    }
}

fn push(jb: &mut JitterBuffer, now: Instant, s: &Stream, k: u16) -> Pushed {
    let body = payload(k as u8);
    jb.push(now, &RtpPacket::new(s.header(k, k == 0), &body))
}

/// Pop and return (kind, tag).
fn pop(jb: &mut JitterBuffer, now: Instant) -> (FrameKind, u8) {
    let f = jb.pop(now);
    assert_eq!(f.samples.len(), 160);
    (f.kind, tag_of(f.samples))
}

fn stream() -> Stream {
    Stream { ssrc: 0xCAFE, seq: 1000, ts: 50_000 }
}

#[test]
fn in_order_stream_plays_after_the_start_delay() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let s = stream();
    assert_eq!(pop(&mut jb, t0).0, FrameKind::Silence);
    let mut kinds = Vec::new();
    for k in 0..10u16 {
        let now = t0 + MS20 * u32::from(k) + Duration::from_millis(5);
        let expect = if k == 0 { Pushed::Restarted } else { Pushed::Accepted };
        assert_eq!(push(&mut jb, now, &s, k), expect);
        kinds.push(pop(&mut jb, t0 + MS20 * (u32::from(k) + 1)));
    }
    assert_eq!(kinds[0].0, FrameKind::Silence);
    assert_eq!(kinds[1].0, FrameKind::Silence);
    for (i, (kind, tag)) in kinds[2..].iter().enumerate() {
        assert_eq!(*kind, FrameKind::Audio);
        assert_eq!(usize::from(*tag), i);
    }
    let st = jb.stats();
    assert_eq!((st.received, st.lost, st.concealed, st.late), (10, 0, 0, 0));
    assert_eq!(ulaw_decode(payload(3)[0]), ulaw_decode(0x83));
}

#[test]
fn reorders_and_drops_duplicates() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let s = stream();
    let order = [0u16, 2, 1, 1, 3, 5, 4, 2];
    let mut results = Vec::new();
    for (i, &k) in order.iter().enumerate() {
        results.push(push(&mut jb, t0 + Duration::from_millis(i as u64), &s, k));
    }
    assert_eq!(results[3], Pushed::Duplicate);
    assert_eq!(results[7], Pushed::Duplicate);
    let mut tags = Vec::new();
    for i in 0..10u32 {
        let (kind, tag) = pop(&mut jb, t0 + MS20 * (i + 1));
        if kind == FrameKind::Audio {
            tags.push(tag);
        }
    }
    assert_eq!(tags, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(jb.stats().duplicate, 2);
    assert_eq!(jb.stats().lost, 0);
}

#[test]
fn conceals_and_counts_a_lost_frame() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let s = stream();
    let mut kinds = Vec::new();
    for k in 0..8u16 {
        if k != 4 {
            push(&mut jb, t0 + MS20 * u32::from(k), &s, k);
        }
        kinds.push(pop(&mut jb, t0 + MS20 * u32::from(k) + Duration::from_millis(1)).0);
    }
    assert_eq!(kinds.iter().filter(|k| **k == FrameKind::Concealed).count(), 1);
    assert_eq!(kinds[6], FrameKind::Concealed);
    assert_eq!(jb.stats().concealed, 1);
    assert_eq!(jb.stats().lost, 1);
}

#[test]
fn late_packet_is_dropped_and_the_delay_grows() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let s = stream();
    let before = jb.stats().delay;
    let mut kinds = Vec::new();
    for k in 0..12u16 {
        let now = t0 + MS20 * u32::from(k);
        if k != 4 {
            push(&mut jb, now, &s, k);
        }
        if k == 7 {
            assert_eq!(push(&mut jb, now, &s, 4), Pushed::Late);
        }
        kinds.push(pop(&mut jb, now + Duration::from_millis(1)).0);
    }
    assert_eq!(jb.stats().late, 1);
    assert_eq!(jb.stats().lost, 0, "late packets count as received (RFC 3550)");
    assert!(jb.stats().delay > before);
    assert_eq!(jb.stats().stretched, 1);
    assert!(kinds.contains(&FrameKind::Stretched));
}

#[test]
fn sequence_and_timestamp_wrap_are_seamless() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let s = Stream { ssrc: 1, seq: 65530, ts: u32::MAX - 800 };
    let mut audio = 0;
    for k in 0..20u16 {
        let now = t0 + MS20 * u32::from(k);
        assert_ne!(push(&mut jb, now, &s, k), Pushed::Late);
        if pop(&mut jb, now + Duration::from_millis(1)).0 == FrameKind::Audio {
            audio += 1;
        }
    }
    assert_eq!(audio, 18);
    let st = jb.stats();
    assert_eq!((st.lost, st.concealed, st.restarts), (0, 0, 1));
}

#[test]
fn new_ssrc_restarts_cleanly_and_old_stragglers_are_dropped() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let a = stream();
    let b = Stream { ssrc: 0xBEEF, seq: 7, ts: 3_000_000_000 };
    for k in 0..5u16 {
        push(&mut jb, t0 + MS20 * u32::from(k), &a, k);
        pop(&mut jb, t0 + MS20 * u32::from(k) + Duration::from_millis(1));
    }
    let t1 = t0 + MS20 * 5;
    assert_eq!(push(&mut jb, t1, &b, 0), Pushed::Restarted);
    assert_eq!(push(&mut jb, t1, &a, 5), Pushed::StaleSource);
    let mut tags = Vec::new();
    for k in 1..8u16 {
        let now = t1 + MS20 * u32::from(k);
        assert_eq!(push(&mut jb, now, &b, k), Pushed::Accepted);
        let (kind, tag) = pop(&mut jb, now + Duration::from_millis(1));
        if kind == FrameKind::Audio {
            tags.push(tag);
        }
    }
    assert_eq!(&tags[..4], &[0, 1, 2, 3]);
    let st = jb.stats();
    assert_eq!(st.restarts, 2);
    assert_eq!(st.lost, 0);
    assert_eq!(st.concealed, 0);
}

#[test]
fn timestamp_jump_with_the_same_ssrc_restarts() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut s = stream();
    for k in 0..5u16 {
        push(&mut jb, t0 + MS20 * u32::from(k), &s, k);
        pop(&mut jb, t0 + MS20 * u32::from(k) + Duration::from_millis(1));
    }
    s.ts = s.ts.wrapping_add(800_000);
    assert_eq!(push(&mut jb, t0 + MS20 * 5, &s, 5), Pushed::Restarted);
    assert_eq!(push(&mut jb, t0 + MS20 * 6, &s, 6), Pushed::Accepted);
}

#[test]
fn talkspurt_after_silence_resyncs_on_the_marker() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let s = stream();
    for k in 0..5u16 {
        push(&mut jb, t0 + MS20 * u32::from(k), &s, k);
        pop(&mut jb, t0 + MS20 * u32::from(k) + Duration::from_millis(1));
    }
    // Silence suppression: 300 ms without packets, then a new talkspurt whose timestamps
    // continued while the sender was silent, arriving 30 ms later than expected.
    for k in 5..20u32 {
        pop(&mut jb, t0 + MS20 * k + Duration::from_millis(1));
    }
    let now = t0 + MS20 * 20 + Duration::from_millis(30);
    let body = payload(20);
    let pushed = jb.push(now, &RtpPacket::new(s.header(20, true), &body));
    assert_eq!(pushed, Pushed::Restarted);
}

#[test]
fn stalled_stream_goes_silent_without_counting_and_restarts() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let s = stream();
    for k in 0..5u16 {
        push(&mut jb, t0 + MS20 * u32::from(k), &s, k);
        pop(&mut jb, t0 + MS20 * u32::from(k) + Duration::from_millis(1));
    }
    let mut silent = 0;
    for k in 5..200u32 {
        if pop(&mut jb, t0 + MS20 * k).0 == FrameKind::Silence {
            silent += 1;
        }
    }
    assert!(silent > 100);
    assert!(jb.stats().concealed <= 52);
    assert_eq!(push(&mut jb, t0 + MS20 * 200, &s, 200), Pushed::Restarted);
}

#[test]
fn adapts_down_on_a_clean_network_and_never_below_min() {
    let t0 = Instant::now();
    let config = JitterConfig { start_delay: Duration::from_millis(100), ..JitterConfig::default() };
    let mut jb = JitterBuffer::new(config);
    let s = stream();
    for k in 0..1000u16 {
        let now = t0 + MS20 * u32::from(k);
        push(&mut jb, now, &s, k);
        pop(&mut jb, now + Duration::from_millis(1));
    }
    assert_eq!(jb.stats().delay, Duration::from_millis(20));
    assert_eq!(jb.stats().concealed, 0);
    assert!(jb.stats().discarded + jb.stats().skipped >= 4);
}

#[test]
fn adapts_up_under_jitter_and_reports_it() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let s = stream();
    // Every 5th packet is 70 ms late; events are replayed in arrival order.
    let mut arrivals: Vec<(Duration, u16)> = (0..500u16)
        .map(|k| {
            let extra = if k % 5 == 4 { 70 } else { 0 };
            (MS20 * u32::from(k) + Duration::from_millis(extra), k)
        })
        .collect();
    arrivals.sort();
    let mut next = 0;
    let mut late = 0;
    for tick in 0..500u32 {
        let pop_at = MS20 * tick + Duration::from_millis(10);
        while let Some(&(at, k)) = arrivals.get(next) {
            if at > pop_at {
                break;
            }
            let r = push(&mut jb, t0 + at, &s, k);
            if r == Pushed::Late {
                late += 1;
            }
            next += 1;
        }
        pop(&mut jb, t0 + pop_at);
    }
    assert!(late <= 4, "{late} late");
    // 70 ms late + 10 ms pop phase: 60 ms of delay is just enough.
    assert!(jb.stats().delay >= Duration::from_millis(60), "{:?}", jb.stats());
    assert!(jb.stats().concealed <= 4, "{:?}", jb.stats());
    assert!(jb.stats().delay <= Duration::from_millis(120), "{:?}", jb.stats());
    assert!(jb.jitter() > Duration::from_millis(5), "{:?}", jb.jitter());
}

#[test]
fn ignores_other_payload_types_and_empty_packets() {
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let now = Instant::now();
    let mut h = stream().header(0, false);
    h.payload_type = 101;
    assert_eq!(jb.push(now, &RtpPacket::new(h, &[1, 2, 3, 4])), Pushed::Ignored);
    h.payload_type = 8;
    assert_eq!(jb.push(now, &RtpPacket::new(h, &[])), Pushed::Ignored);
    assert_eq!(jb.stats().ignored, 2);
    // A-law is accepted too (codec change by re-INVITE needs no new buffer).
    assert_eq!(jb.push(now, &RtpPacket::new(h, &[0xD5; 160])), Pushed::Restarted);
}

#[test]
fn thirty_ms_packets_play_without_gaps() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut kinds = Vec::new();
    let mut next_push = 0u32;
    for tick in 0..60u32 {
        let now = t0 + MS20 * tick;
        while next_push * 30 <= tick * 20 {
            let h = RtpHeader {
                marker: next_push == 0,
                payload_type: 0,
                sequence: next_push as u16,
                timestamp: next_push * 240,
                ssrc: 5,
            };
            jb.push(now, &RtpPacket::new(h, &[0x90; 240]));
            next_push += 1;
        }
        kinds.push(jb.pop(now + Duration::from_millis(1)).kind);
    }
    assert!(kinds[3..].iter().all(|k| *k == FrameKind::Audio), "{kinds:?}");
}
