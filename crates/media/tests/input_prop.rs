//! Property tests: nothing a peer (or the agent) sends makes the media core panic. RTP
//! parse of arbitrary bytes, RFC 4733 events and the DTMF receiver on arbitrary
//! payloads, the jitter buffer fed arbitrary sequence numbers, timestamps, SSRCs, sizes
//! and arrival times (every pop still 160 samples), and the pacer under arbitrary
//! pushes, flushes, digits and clock jumps. Overflow checks are on in test builds, so
//! an arithmetic overflow fails here too.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use voice_ua_media::dtmf::{DtmfReceiver, TelephoneEvent};
use voice_ua_media::jitter::{JitterBuffer, JitterConfig};
use voice_ua_media::pacer::{Pacer, PacerConfig, PACKET_LEN};
use voice_ua_media::rtp::{Extension, RtpHeader, RtpPacket, HEADER_LEN, MAX_PACKET_LEN};
use voice_ua_media::{AudioCodec, Law};

fn header() -> impl Strategy<Value = RtpHeader> {
    (any::<bool>(), 0u8..128, any::<u16>(), any::<u32>(), any::<u32>()).prop_map(
        |(marker, payload_type, sequence, timestamp, ssrc)| RtpHeader {
            marker,
            payload_type,
            sequence,
            timestamp,
            ssrc,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn rtp_parse_of_arbitrary_bytes_is_consistent(buf in prop::collection::vec(any::<u8>(), 0..1600)) {
        let Ok(p) = RtpPacket::parse(&buf) else { return Ok(()) };
        prop_assert!(buf.len() <= MAX_PACKET_LEN);
        prop_assert_eq!(buf[0] >> 6, 2);
        // Every byte is accounted for: header, CSRCs, extension, payload, padding.
        prop_assert_eq!(p.encoded_len(), buf.len());
        let payload = p.payload();
        let offset = payload.as_ptr() as usize - buf.as_ptr() as usize;
        prop_assert!(offset >= HEADER_LEN && offset + payload.len() <= buf.len());
        // Written back (padding bytes zeroed), it parses to the same packet.
        let mut out = vec![0u8; buf.len()];
        let n = p.write(&mut out).expect("fits");
        prop_assert_eq!(n, buf.len());
        prop_assert_eq!(RtpPacket::parse(&out[..n]), Ok(p));
    }

    #[test]
    fn rtp_built_packets_round_trip(
        header in header(),
        csrcs in prop::collection::vec(any::<u8>(), 0..16).prop_map(|v| v.into_iter().flat_map(|b| [b; 4]).collect::<Vec<u8>>()),
        extension in prop::option::of((any::<u16>(), prop::collection::vec(any::<u8>(), 0..8).prop_map(|v| v.into_iter().flat_map(|b| [b; 4]).collect::<Vec<u8>>()))),
        payload in prop::collection::vec(any::<u8>(), 0..400),
        padding in any::<u8>(),
    ) {
        let mut p = RtpPacket::new(header, &payload).with_csrc_bytes(&csrcs).expect("csrcs");
        if let Some((profile, data)) = extension.as_ref() {
            p = p.with_extension(Extension { profile: *profile, data }).expect("extension");
        }
        let p = p.with_padding(padding);
        let mut out = [0u8; 1500];
        let n = p.write(&mut out).expect("fits");
        prop_assert_eq!(n, p.encoded_len());
        prop_assert_eq!(RtpPacket::parse(&out[..n]), Ok(p));
        // Any cut into the header, CSRCs or extension is an error, never a panic.
        let fixed = HEADER_LEN + csrcs.len() + extension.as_ref().map_or(0, |(_, d)| 4 + d.len());
        for len in 0..fixed {
            prop_assert!(RtpPacket::parse(&out[..len]).is_err(), "cut at {}", len);
        }
    }

    #[test]
    fn telephone_events_parse_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..12)) {
        match TelephoneEvent::parse(&bytes) {
            Ok(ev) => {
                prop_assert!(bytes.len() >= 4);
                // The reserved R bit is the only thing not carried.
                prop_assert_eq!(ev.to_bytes(), [bytes[0], bytes[1] & !0x40, bytes[2], bytes[3]]);
                prop_assert_eq!(ev.digit().is_some(), bytes[0] < 16);
            }
            Err(_) => prop_assert!(bytes.len() < 4),
        }
    }

    #[test]
    fn the_dtmf_receiver_takes_any_packets(
        packets in prop::collection::vec((0u32..3, 0u32..4, prop::collection::vec(any::<u8>(), 0..8), prop::sample::select(vec![101u8, 0, 96])), 0..200),
    ) {
        let mut rx = DtmfReceiver::new(101);
        for (ssrc, ts, payload, pt) in &packets {
            let h = RtpHeader { marker: false, payload_type: *pt, sequence: 0, timestamp: *ts, ssrc: *ssrc };
            if let Some(ev) = rx.handle(&RtpPacket::new(h, payload)) {
                let digit = match ev {
                    voice_ua_media::DtmfEvent::Pressed { digit } | voice_ua_media::DtmfEvent::Released { digit, .. } => digit,
                };
                prop_assert!("0123456789*#ABCD".contains(digit));
                prop_assert_eq!(*pt, 101);
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    Packet { header: RtpHeader, len: usize, after_ms: u64 },
    Pop { after_ms: u64 },
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let packet = (
        header(),
        prop::sample::select(vec![0u8, 8, 9, 13, 101]),
        0u32..3,
        prop_oneof![Just(160usize), 0usize..1489],
        prop_oneof![0u64..40, 0u64..5000],
    )
        .prop_map(|(mut header, pt, ssrc, len, after_ms)| {
            header.payload_type = pt;
            header.ssrc = ssrc;
            Step::Packet { header, len, after_ms }
        });
    let pop = prop_oneof![Just(20u64), 0u64..3000].prop_map(|after_ms| Step::Pop { after_ms });
    prop::collection::vec(prop_oneof![packet, pop], 0..400)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn the_jitter_buffer_takes_any_packets_and_always_pops_one_frame(
        steps in steps(),
        start_ms in 0u64..400,
        min_ms in 0u64..400,
        max_ms in 0u64..3000,
        near in any::<bool>(),
        g722 in any::<bool>(),
    ) {
        let codec = if g722 { AudioCodec::G722 } else { AudioCodec::G711(Law::Ulaw) };
        let frame = codec.frame_samples();
        let config = JitterConfig {
            start_delay: Duration::from_millis(start_ms),
            min_delay: Duration::from_millis(min_ms),
            max_delay: Duration::from_millis(max_ms),
        };
        let mut jb = JitterBuffer::with_codec(config, codec);
        let mut payload = [0x55u8; 1488];
        // Varied codes, so G.722's decoder sees more than one value.
        for (i, b) in payload.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(151);
        }
        let mut now = Instant::now();
        let (mut seq, mut ts) = (0u16, 0u32);
        for step in &steps {
            match step {
                Step::Packet { header, len, after_ms } => {
                    now += Duration::from_millis(*after_ms);
                    let mut h = *header;
                    if near {
                        // A mostly well-behaved stream: numbers near the previous ones.
                        seq = seq.wrapping_add(h.sequence % 7).wrapping_sub(2);
                        ts = ts.wrapping_add(h.timestamp % 1000).wrapping_sub(300);
                        h.sequence = seq;
                        h.timestamp = ts;
                    }
                    let _ = jb.push(now, &RtpPacket::new(h, &payload[..*len]));
                }
                Step::Pop { after_ms } => {
                    now += Duration::from_millis(*after_ms);
                    prop_assert_eq!(jb.pop(now).samples.len(), frame);
                }
            }
        }
        prop_assert_eq!(jb.pop(now).samples.len(), frame);
    }
}

#[derive(Debug, Clone)]
enum PacerStep {
    Linear(usize),
    Encoded(usize),
    Flush,
    Digit(char, u64),
    Poll(u64),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn the_pacer_takes_any_input_and_numbers_every_packet(
        steps in prop::collection::vec(prop_oneof![
            (0usize..20_000).prop_map(PacerStep::Linear),
            (0usize..20_000).prop_map(PacerStep::Encoded),
            Just(PacerStep::Flush),
            (any::<char>(), 0u64..20_000).prop_map(|(c, ms)| PacerStep::Digit(c, ms)),
            prop_oneof![Just(20u64), 0u64..100_000].prop_map(PacerStep::Poll),
        ], 0..200),
        seq0 in any::<u16>(),
        ts0 in any::<u32>(),
        max_queue_ms in 0u64..60_000,
        g722 in any::<bool>(),
    ) {
        let start = Instant::now();
        let codec = if g722 { AudioCodec::G722 } else { AudioCodec::G711(Law::Ulaw) };
        let mut config = PacerConfig::for_codec(codec, 7, seq0, ts0);
        config.max_queue = Duration::from_millis(max_queue_ms);
        let mut pacer = Pacer::new(config, start);
        let pcm = vec![1000i16; 20_000];
        let codes = vec![0x55u8; 20_000];
        let mut now = start;
        let mut expected_seq = seq0;
        let mut out = [0u8; 1500];
        for step in &steps {
            match step {
                PacerStep::Linear(n) => { pacer.push_linear(&pcm[..*n]); }
                PacerStep::Encoded(n) => { pacer.push_encoded(&codes[..*n]); }
                PacerStep::Flush => pacer.flush(),
                PacerStep::Digit(c, ms) => { let _ = pacer.send_dtmf(*c, Duration::from_millis(*ms)); }
                PacerStep::Poll(ms) => {
                    now += Duration::from_millis(*ms);
                    while let Some(tx) = pacer.poll_transmit(now, &mut out) {
                        let len = tx.len;
                        prop_assert!(len == PACKET_LEN || len == HEADER_LEN + 4, "length {}", len);
                        let p = RtpPacket::parse(&out[..len]).expect("valid RTP");
                        prop_assert_eq!(p.header.marker, tx.marker);
                        prop_assert_eq!(p.header.payload_type, tx.payload_type);
                        prop_assert_eq!(p.header.sequence, expected_seq);
                        expected_seq = expected_seq.wrapping_add(1);
                    }
                    prop_assert!(pacer.poll_timeout() > now);
                }
            }
        }
    }
}
