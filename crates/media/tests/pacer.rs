//! Pacer behaviour in virtual time: cadence, continuity, marker bits, silence, barge-in,
//! late ticks without drift, and the full-queue policies.

use std::time::{Duration, Instant};

use voice_ua_media::g711::Law;
use voice_ua_media::pacer::{Overflow, Pacer, PacerConfig, Transmit, TransmitKind, PACKET_LEN};
use voice_ua_media::rtp::RtpPacket;
use voice_ua_media::rtp::HEADER_LEN;

const MS20: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, PartialEq)]
struct Sent {
    marker: bool,
    seq: u16,
    ts: u32,
    payload: Vec<u8>,
}

fn drain(p: &mut Pacer, now: Instant) -> Vec<Sent> {
    let mut out = Vec::new();
    let mut buf = [0u8; PACKET_LEN];
    while let Some(tx) = p.poll_transmit(now, &mut buf) {
        let pkt = RtpPacket::parse(&buf[..tx.len]).expect("valid RTP");
        assert_eq!(pkt.header.ssrc, 77);
        assert_eq!((tx.marker, tx.payload_type), (pkt.header.marker, pkt.header.payload_type));
        assert_eq!(pkt.payload().len(), 160);
        out.push(Sent {
            marker: pkt.header.marker,
            seq: pkt.header.sequence,
            ts: pkt.header.timestamp,
            payload: pkt.payload().to_vec(),
        });
    }
    out
}

fn pacer(t0: Instant) -> Pacer {
    Pacer::new(PacerConfig::new(Law::Ulaw, 77, 65534, u32::MAX - 160), t0)
}

#[test]
fn one_frame_per_tick_continuous_and_silent_when_empty() {
    let t0 = Instant::now();
    let mut p = pacer(t0);
    let mut all = Vec::new();
    for tick in 0..10u32 {
        let sent = drain(&mut p, t0 + MS20 * tick + Duration::from_micros(300));
        assert_eq!(sent.len(), 1, "tick {tick}");
        all.extend(sent);
    }
    for pair in all.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq.wrapping_add(1));
        assert_eq!(pair[1].ts, pair[0].ts.wrapping_add(160));
    }
    assert!(all.iter().all(|s| !s.marker && s.payload.iter().all(|&c| c == 0xFF)));
    assert_eq!(p.stats().silence, 10);
    // Not due yet: nothing.
    assert!(drain(&mut p, t0 + MS20 * 10 - Duration::from_millis(1)).is_empty());
    assert_eq!(p.poll_timeout(), t0 + MS20 * 10);
}

#[test]
fn chunks_of_any_size_come_out_in_frames_with_a_marker_per_talkspurt() {
    let t0 = Instant::now();
    let mut p = pacer(t0);
    // 3.5 frames pushed in odd-sized chunks, faster than real time.
    let audio: Vec<i16> = (0..560).map(|i| (i * 37 % 2000) as i16 - 1000).collect();
    for chunk in audio.chunks(77) {
        assert_eq!(p.push_linear(chunk), chunk.len());
    }
    assert_eq!(p.queued(), Duration::from_millis(70));
    let mut sent = Vec::new();
    for tick in 0..6u32 {
        sent.extend(drain(&mut p, t0 + MS20 * tick));
    }
    let markers: Vec<bool> = sent.iter().map(|s| s.marker).collect();
    assert_eq!(markers, vec![true, false, false, false, false, false]);
    let expected: Vec<u8> = audio.iter().map(|&x| Law::Ulaw.encode(x)).collect();
    let got: Vec<u8> = sent.iter().flat_map(|s| s.payload.clone()).collect();
    assert_eq!(&got[..560], &expected[..]);
    assert!(got[560..].iter().all(|&c| c == 0xFF));
    assert_eq!(p.stats().underruns, 1);
    // A new talkspurt gets a new marker.
    p.push_encoded(&[0x10; 160]);
    let next = drain(&mut p, t0 + MS20 * 6);
    assert!(next[0].marker);
}

/// The one packet due at `now`, checked against its own header bytes.
fn transmit_at(p: &mut Pacer, now: Instant) -> Transmit {
    let mut buf = [0u8; PACKET_LEN];
    let tx = p.poll_transmit(now, &mut buf).expect("a packet is due");
    let pkt = RtpPacket::parse(&buf[..tx.len]).expect("valid RTP");
    assert_eq!((tx.marker, tx.payload_type), (pkt.header.marker, pkt.header.payload_type));
    tx
}

#[test]
fn each_packet_says_what_it_carries() {
    let t0 = Instant::now();
    let mut p = pacer(t0);
    let audio = |marker| Transmit { len: PACKET_LEN, marker, payload_type: 0, kind: TransmitKind::Audio };
    let silence = Transmit { len: PACKET_LEN, marker: false, payload_type: 0, kind: TransmitKind::Silence };
    assert_eq!(transmit_at(&mut p, t0), silence);
    // A talkspurt of 1.25 frames: marked first packet, then the short one, then silence.
    p.push_encoded(&[0x10; 200]);
    assert_eq!(transmit_at(&mut p, t0 + MS20), audio(true));
    assert_eq!(transmit_at(&mut p, t0 + MS20 * 2), audio(false));
    assert_eq!(transmit_at(&mut p, t0 + MS20 * 3), silence);
    // A digit goes before queued audio; the audio after it is a new talkspurt.
    p.push_encoded(&[0x20; 320]);
    p.send_dtmf('5', Duration::from_millis(60)).expect("digit");
    let dtmf = |marker| Transmit { len: HEADER_LEN + 4, marker, payload_type: 101, kind: TransmitKind::Dtmf };
    assert_eq!(transmit_at(&mut p, t0 + MS20 * 4), dtmf(true));
    let mut tick = 5;
    let mut after = transmit_at(&mut p, t0 + MS20 * tick);
    while after.kind == TransmitKind::Dtmf {
        assert_eq!(after, dtmf(false));
        tick += 1;
        assert!(tick < 20, "the event never ended");
        after = transmit_at(&mut p, t0 + MS20 * tick);
    }
    assert!(tick >= 7, "a 60 ms event lasts at least three packets, ended at tick {tick}");
    assert_eq!(after, audio(true));
    assert_eq!(transmit_at(&mut p, t0 + MS20 * (tick + 1)), audio(false));
    assert_eq!(transmit_at(&mut p, t0 + MS20 * (tick + 2)), silence);
}

#[test]
fn flush_makes_the_very_next_frame_silence() {
    let t0 = Instant::now();
    let mut p = pacer(t0);
    p.push_encoded(&[0x20; 1600]);
    let first = drain(&mut p, t0);
    assert_eq!(first[0].payload, vec![0x20; 160]);
    p.flush();
    assert_eq!(p.queued_samples(), 0);
    assert_eq!(p.stats().flushed_samples, 1440);
    let next = drain(&mut p, t0 + MS20);
    assert_eq!(next.len(), 1);
    assert!(next[0].payload.iter().all(|&c| c == 0xFF));
    assert_eq!(next[0].seq, first[0].seq.wrapping_add(1), "no RTP gap");
    p.push_encoded(&[0x30; 160]);
    assert!(drain(&mut p, t0 + MS20 * 2)[0].marker);
}

#[test]
fn a_late_tick_sends_what_is_due_without_drift() {
    let t0 = Instant::now();
    let mut p = pacer(t0);
    p.push_encoded(&[0x40; 160 * 100]);
    let mut sent = 0;
    let mut latest = Duration::ZERO;
    // Ticks with jitter; one 70 ms late. After every tick exactly the frames due by the
    // latest time seen have been sent: never ahead of the clock, never behind it.
    for tick in 0..50u32 {
        let late = if tick == 20 { 70 } else { tick % 3 };
        let at = MS20 * tick + Duration::from_millis(u64::from(late));
        latest = latest.max(at);
        sent += drain(&mut p, t0 + at).len();
        let due = (latest.as_millis() / 20) as usize + 1;
        assert_eq!(sent, due, "tick {tick}");
    }
    assert_eq!(sent, 50);
    assert_eq!(p.poll_timeout(), t0 + MS20 * 50);
    assert_eq!(p.stats().skipped_frames, 0);
}

#[test]
fn a_very_late_tick_is_capped_and_timestamps_follow_the_clock() {
    let t0 = Instant::now();
    let mut p = pacer(t0);
    let first = drain(&mut p, t0);
    let burst = drain(&mut p, t0 + Duration::from_secs(2));
    assert_eq!(burst.len(), 10);
    assert_eq!(p.stats().skipped_frames, 90);
    // Sequence numbers stay continuous; the timestamp matches the 2 s that passed.
    assert_eq!(burst[0].seq, first[0].seq.wrapping_add(1));
    let last = burst.last().expect("burst");
    assert_eq!(last.ts, first[0].ts.wrapping_add(100 * 160));
    assert_eq!(p.poll_timeout(), t0 + MS20 * 101);
}

#[test]
fn full_queue_rejects_or_drops_oldest() {
    let t0 = Instant::now();
    let mut config = PacerConfig::new(Law::Alaw, 77, 0, 0);
    config.max_queue = Duration::from_millis(40);
    let mut p = Pacer::new(config, t0);
    assert_eq!(p.push_encoded(&[1; 200]), 200);
    assert_eq!(p.push_encoded(&[2; 200]), 120);
    assert_eq!(p.stats().overflow_samples, 80);

    config.overflow = Overflow::DropOldest;
    let mut p = Pacer::new(config, t0);
    p.push_encoded(&[1; 200]);
    assert_eq!(p.push_encoded(&[2; 200]), 200);
    assert_eq!(p.queued_samples(), 320);
    let sent = drain(&mut p, t0);
    assert_eq!(&sent[0].payload[..120], &[1; 120][..]);
    assert_eq!(&sent[0].payload[120..], &[2; 40][..]);
    assert_eq!(p.push_encoded(&[3; 1000]), 320);
    let sent = drain(&mut p, t0 + MS20);
    assert_eq!(sent[0].payload, vec![3; 160]);
}

#[test]
fn small_output_buffer_is_refused() {
    let t0 = Instant::now();
    let mut p = pacer(t0);
    let mut small = [0u8; 100];
    assert_eq!(p.poll_transmit(t0, &mut small), None);
}

#[test]
fn the_queue_grows_on_demand_up_to_max_queue_and_keeps_order() {
    let start = Instant::now();
    let mut config = PacerConfig::new(Law::Ulaw, 7, 0, 0);
    config.max_queue = Duration::from_secs(10);
    let mut pacer = Pacer::new(config, start);
    let audio: Vec<u8> = (0..48_000u32).map(|i| (i % 200) as u8 + 20).collect();
    // 5 s in one push is more than the first 2 s ring: it grows and takes it all.
    assert_eq!(pacer.push_encoded(&audio[..40_000]), 40_000);
    assert_eq!(pacer.push_encoded(&audio[40_000..]), 8_000);
    // Beyond 10 s the overflow policy (reject) applies.
    assert_eq!(pacer.push_encoded(&[0x55; 40_000]), 32_000);
    assert_eq!(pacer.stats().overflow_samples, 8_000);
    let mut out = [0u8; 400];
    let mut sent = Vec::new();
    for n in 0..300u64 {
        let now = start + Duration::from_millis(20 * n);
        while let Some(tx) = pacer.poll_transmit(now, &mut out) {
            sent.extend_from_slice(&out[12..tx.len]);
        }
    }
    assert_eq!(&sent[..48_000], &audio[..], "queued audio leaves in order across the growth");
}
