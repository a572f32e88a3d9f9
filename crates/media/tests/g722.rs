//! G.722 codec properties over arbitrary input: decoding any bytes and encoding any
//! samples never panics and stays within bounds; the per-frame encode and decode
//! allocate nothing. And G.722 through the pacer and the jitter buffer: 160 timestamp
//! units per 20 ms packet, 320-sample frames out, reordered packets decoded in order,
//! a loss concealed at 16 kHz, a flush that keeps the far end's decoder in step.
//! (Bit-exactness with the reference implementations is checked in the interop ring,
//! tests/interop/g722.rs.)

use std::time::{Duration, Instant};

use proptest::prelude::*;
use voice_ua_media::g722::{G722Decoder, G722Encoder, FRAME_BYTES, FRAME_SAMPLES};
use voice_ua_media::jitter::{FrameKind, JitterBuffer, JitterConfig};
use voice_ua_media::pacer::{Pacer, PacerConfig, TransmitKind, PACKET_LEN};
use voice_ua_media::rtp::RtpPacket;
use voice_ua_media::AudioCodec;

const MS20: Duration = Duration::from_millis(20);

/// A wideband test signal: 300 Hz and 5 kHz.
fn signal(n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = i as f64 / 16_000.0;
            let tau = 2.0 * std::f64::consts::PI;
            (6000.0 * (tau * 300.0 * t).sin() + 3000.0 * (tau * 5000.0 * t).sin()) as i16
        })
        .collect()
}

/// The packets a G.722 pacer sends for `pcm` pushed at once, one per 20 ms.
fn packets(pcm: &[i16], frames: u32, t0: Instant) -> Vec<Vec<u8>> {
    let mut pacer = Pacer::new(PacerConfig::for_codec(AudioCodec::G722, 42, 1000, 5000), t0);
    assert_eq!(pacer.push_linear(pcm), pcm.len());
    let mut out = [0u8; PACKET_LEN];
    (0..frames)
        .map(|k| {
            let tx = pacer.poll_transmit(t0 + MS20 * k, &mut out).expect("a packet is due");
            assert_eq!(tx.len, PACKET_LEN);
            out[..tx.len].to_vec()
        })
        .collect()
}

proptest! {
    #[test]
    fn decoding_any_bytes_never_panics(codes in prop::collection::vec(any::<u8>(), 0..2000), out_len in 0usize..5000) {
        let mut dec = G722Decoder::new();
        let mut out = vec![0i16; out_len];
        let n = dec.decode(&codes, &mut out);
        prop_assert_eq!(n, 2 * codes.len().min(out_len / 2));
        // The state stays usable: a second pass decodes the same count.
        prop_assert_eq!(dec.decode(&codes, &mut out), n);
    }

    #[test]
    fn encoding_any_samples_never_panics(pcm in prop::collection::vec(any::<i16>(), 0..4000), out_len in 0usize..3000) {
        let mut enc = G722Encoder::new();
        let mut out = vec![0u8; out_len];
        let n = enc.encode(&pcm, &mut out);
        prop_assert_eq!(n, (pcm.len() / 2).min(out_len));
        let mut back = vec![0i16; 2 * n];
        prop_assert_eq!(G722Decoder::new().decode(&out[..n], &mut back), 2 * n);
    }
}

#[test]
fn per_frame_encode_and_decode_do_not_allocate() {
    let mut enc = G722Encoder::new();
    let mut dec = G722Decoder::new();
    let pcm: Vec<i16> = (0..FRAME_SAMPLES).map(|i| ((i * 977) % 20_000) as i16 - 10_000).collect();
    let mut codes = [0u8; FRAME_BYTES];
    let mut out = [0i16; FRAME_SAMPLES];
    let info = allocation_counter::measure(|| {
        for _ in 0..500 {
            assert_eq!(enc.encode(&pcm, &mut codes), FRAME_BYTES);
            assert_eq!(dec.decode(&codes, &mut out), FRAME_SAMPLES);
        }
    });
    assert_eq!(info.count_total, 0, "{} allocations", info.count_total);
}

#[test]
fn the_pacer_sends_g722_on_the_8_khz_rtp_clock() {
    let t0 = Instant::now();
    let pcm = signal(10 * FRAME_SAMPLES);
    let sent = packets(&pcm, 12, t0);
    let mut codes = Vec::new();
    for (k, bytes) in sent.iter().enumerate() {
        let p = RtpPacket::parse(bytes).expect("valid RTP");
        assert_eq!(p.header.payload_type, 9);
        assert_eq!(p.header.timestamp, 5000 + 160 * k as u32, "RFC 3551: 160 units per 20 ms");
        assert_eq!(p.header.sequence, 1000 + k as u16);
        assert_eq!(p.header.marker, k == 0);
        assert_eq!(p.payload().len(), FRAME_BYTES);
        codes.extend_from_slice(p.payload());
    }
    // Exactly what one encoder makes of the audio followed by silence.
    let mut expected_pcm = pcm.clone();
    expected_pcm.resize(12 * FRAME_SAMPLES, 0);
    let mut expected = vec![0u8; 12 * FRAME_BYTES];
    G722Encoder::new().encode(&expected_pcm, &mut expected);
    assert_eq!(codes, expected);
}

#[test]
fn the_jitter_buffer_decodes_reordered_g722_in_order() {
    let t0 = Instant::now();
    let pcm = signal(30 * FRAME_SAMPLES);
    let sent = packets(&pcm, 30, t0);
    // The reference: every packet decoded in order by one decoder.
    let mut reference = vec![0i16; 30 * FRAME_SAMPLES];
    let mut dec = G722Decoder::new();
    for (k, bytes) in sent.iter().enumerate() {
        let p = RtpPacket::parse(bytes).expect("valid RTP");
        dec.decode(p.payload(), &mut reference[k * FRAME_SAMPLES..]);
    }
    let mut jb = JitterBuffer::with_codec(JitterConfig::default(), AudioCodec::G722);
    // Packets 5 and 6, and 11 and 12, swapped in flight.
    let order: Vec<usize> = (0..30)
        .map(|k| match k {
            5 => 6,
            6 => 5,
            11 => 12,
            12 => 11,
            k => k,
        })
        .collect();
    let mut played = Vec::new();
    for (tick, &k) in order.iter().enumerate() {
        let now = t0 + MS20 * tick as u32;
        let p = RtpPacket::parse(&sent[k]).expect("valid RTP");
        jb.push(now, &p);
        let frame = jb.pop(now + Duration::from_millis(5));
        assert_eq!(frame.samples.len(), FRAME_SAMPLES);
        if frame.kind == FrameKind::Audio {
            played.extend_from_slice(frame.samples);
        }
    }
    assert!(played.len() >= 20 * FRAME_SAMPLES, "{} samples played", played.len());
    assert_eq!(&played[..], &reference[..played.len()], "bit-exact with in-order decoding");
    assert_eq!(jb.stats().concealed, 0);
}

#[test]
fn a_lost_g722_packet_is_concealed_and_decoding_goes_on() {
    let t0 = Instant::now();
    let pcm = signal(40 * FRAME_SAMPLES);
    let sent = packets(&pcm, 40, t0);
    let mut jb = JitterBuffer::with_codec(JitterConfig::default(), AudioCodec::G722);
    let mut kinds = Vec::new();
    let mut last = Vec::new();
    for (k, bytes) in sent.iter().enumerate() {
        let now = t0 + MS20 * k as u32;
        if k != 10 {
            jb.push(now, &RtpPacket::parse(bytes).expect("valid RTP"));
        }
        let frame = jb.pop(now + Duration::from_millis(5));
        kinds.push(frame.kind);
        if frame.kind == FrameKind::Concealed {
            // 16 kHz concealment continues the signal: not silence.
            let peak = frame.samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
            assert!(peak > 2000, "concealed frame peak {peak}");
        }
        last = frame.samples.to_vec();
    }
    assert_eq!(kinds.iter().filter(|k| **k == FrameKind::Concealed).count(), 1);
    assert_eq!(jb.stats().concealed, 1);
    // 500 ms later the decoder is back on the signal: the last frame's level matches the
    // input's (9.5 dB-ish power of the two tones).
    let power = |x: &[i16]| x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64;
    let ratio = power(&last) / power(&pcm[..FRAME_SAMPLES * 4]);
    assert!((0.7..1.4).contains(&ratio), "level ratio {ratio:.2}");
}

#[test]
fn a_g722_flush_keeps_the_far_end_decoder_in_step() {
    let t0 = Instant::now();
    let mut pacer = Pacer::new(PacerConfig::for_codec(AudioCodec::G722, 1, 0, 0), t0);
    let pcm = signal(20 * FRAME_SAMPLES);
    pacer.push_linear(&pcm);
    let mut out = [0u8; PACKET_LEN];
    let mut far = G722Decoder::new();
    let mut heard = Vec::new();
    let mut mirror = G722Encoder::new();
    let mut expected_codes = Vec::new();
    for k in 0..10u32 {
        if k == 4 {
            pacer.flush();
            assert_eq!(pacer.stats().flushed_samples, 16 * FRAME_SAMPLES as u64);
        }
        let tx = pacer.poll_transmit(t0 + MS20 * k, &mut out).expect("due");
        assert_eq!(tx.kind, if k < 4 { TransmitKind::Audio } else { TransmitKind::Silence });
        let p = RtpPacket::parse(&out[..tx.len]).expect("valid RTP");
        let mut frame = [0i16; FRAME_SAMPLES];
        far.decode(p.payload(), &mut frame);
        heard.extend_from_slice(&frame);
        expected_codes.extend_from_slice(p.payload());
    }
    // The packets are what one encoder makes of the 4 frames sent, then silence: the
    // flushed audio never touched the encoder.
    let mut sent_pcm = pcm[..4 * FRAME_SAMPLES].to_vec();
    sent_pcm.resize(10 * FRAME_SAMPLES, 0);
    let mut codes = vec![0u8; 10 * FRAME_BYTES];
    mirror.encode(&sent_pcm, &mut codes);
    assert_eq!(codes, expected_codes);
    // And the far end hears silence settle after the flush.
    let tail = &heard[9 * FRAME_SAMPLES..];
    assert!(tail.iter().all(|s| s.abs() < 50), "silence after the flush");
}

#[test]
fn g722_jitter_and_pacer_do_not_allocate_per_frame() {
    let t0 = Instant::now();
    let pcm = signal(FRAME_SAMPLES);
    let sent = packets(&signal(40 * FRAME_SAMPLES), 40, t0);
    let mut jb = JitterBuffer::with_codec(JitterConfig::default(), AudioCodec::G722);
    let mut pacer = Pacer::new(PacerConfig::for_codec(AudioCodec::G722, 1, 0, 0), t0);
    let mut out = [0u8; PACKET_LEN];
    let info = allocation_counter::measure(|| {
        for k in 0..400u32 {
            let now = t0 + MS20 * k;
            if k % 9 != 4 {
                let bytes = &sent[(k % 40) as usize];
                if let Ok(p) = RtpPacket::parse(bytes) {
                    let mut header = p.header;
                    header.sequence = k as u16;
                    header.timestamp = k.wrapping_mul(160);
                    jb.push(now, &RtpPacket::new(header, p.payload()));
                }
            }
            let frame = jb.pop(now + Duration::from_millis(3));
            assert_eq!(frame.samples.len(), FRAME_SAMPLES);
            pacer.push_linear(&pcm);
            if k % 100 == 50 {
                pacer.flush();
            }
            while pacer.poll_transmit(now, &mut out).is_some() {}
        }
    });
    assert_eq!(info.count_total, 0, "{} allocations", info.count_total);
    assert!(jb.stats().concealed > 0);
}

#[test]
fn the_hold_tone_goes_through_the_g722_encoder_at_16_khz() {
    let t0 = Instant::now();
    let mut pacer = Pacer::new(PacerConfig::for_codec(AudioCodec::G722, 1, 0, 0), t0);
    pacer.set_hold_tone(true);
    let mut out = [0u8; PACKET_LEN];
    let mut far = G722Decoder::new();
    let mut heard = Vec::new();
    for k in 0..10u32 {
        let tx = pacer.poll_transmit(t0 + MS20 * k, &mut out).expect("due");
        assert_eq!(tx.kind, TransmitKind::HoldTone);
        let p = RtpPacket::parse(&out[..tx.len]).expect("valid RTP");
        let mut frame = [0i16; FRAME_SAMPLES];
        far.decode(p.payload(), &mut frame);
        heard.extend_from_slice(&frame);
    }
    // The first 200 ms are the 425 Hz beep: its period (37.6 samples at 16 kHz) shows
    // as zero crossings, about 2 × 425 per second.
    let beep = &heard[800..3000];
    let crossings = beep.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    let per_second = crossings as f64 * 16_000.0 / beep.len() as f64;
    assert!((per_second - 850.0).abs() < 40.0, "{per_second:.0} crossings per second");
    assert_eq!(pacer.stats().hold_tone, 10);
}
