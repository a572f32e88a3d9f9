//! The per-frame paths allocate nothing in steady state: a counting global allocator
//! watches jitter push/pop (with loss and reordering), pacer push/tick/DTMF/flush,
//! G.711 and resampling after set-up (among them 22.05 kHz TTS audio to 8 kHz), and the
//! endpointer through speech, barge-in, turn ends, keys and resets, and the echo
//! canceller through delay search, adaptation, double talk and idle frames (counted by
//! the `allocation-counter` crate's global allocator).

use std::time::{Duration, Instant};

use voice_ua_media::aec::echo_path::{EchoLine, EchoSettings, Talker};
use voice_ua_media::endpoint::{EndpointEvent, EndpointSettings, Endpointer};
use voice_ua_media::g711::Law;
use voice_ua_media::jitter::{JitterBuffer, JitterConfig};
use voice_ua_media::pacer::{Pacer, PacerConfig, PACKET_LEN};
use voice_ua_media::resample::Resampler;
use voice_ua_media::rtp::{RtpHeader, RtpPacket};

#[test]
fn hot_paths_do_not_allocate() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut pacer = Pacer::new(PacerConfig::new(Law::Ulaw, 1, 0, 0), t0);
    let mut up = Resampler::new(8000, 16000).expect("rate");
    let mut down = Resampler::new(24000, 8000).expect("rate");
    let mut piper = Resampler::new(22050, 8000).expect("rate");
    let pcm22 = [100i16; 441];
    let payload = [0x55u8; 160];
    let pcm24 = [100i16; 480];
    let mut pcm8 = [0i16; 160];
    let mut pcm16 = [0i16; 320];
    let mut out = [0u8; PACKET_LEN];
    let info = allocation_counter::measure(|| {
        for k in 0..2000u32 {
            let now = t0 + Duration::from_millis(20) * k;
            // Every 7th packet lost, every 5th swapped with its successor.
            if k % 7 != 3 {
                let seq = if k % 5 == 0 {
                    k + 1
                } else if k % 5 == 1 {
                    k - 1
                } else {
                    k
                };
                let header = RtpHeader {
                    marker: k == 0,
                    payload_type: 0,
                    sequence: seq as u16,
                    timestamp: seq.wrapping_mul(160),
                    ssrc: 1 + k / 1000,
                };
                jb.push(now, &RtpPacket::new(header, &payload));
            }
            let frame = jb.pop(now + Duration::from_millis(3));
            up.process(frame.samples, &mut pcm16);
            down.process(&pcm24, &mut pcm8);
            assert_eq!(piper.process(&pcm22, &mut pcm8), 160);
            pacer.push_linear(&pcm8);
            if k % 100 == 50 {
                pacer.flush();
                pacer.send_dtmf('5', Duration::from_millis(60)).expect("digit");
            }
            while pacer.poll_transmit(now, &mut out).is_some() {}
        }
    });
    let allocations = info.count_total;
    assert_eq!(allocations, 0, "{allocations} allocations on the per-frame path");
    assert!(jb.stats().concealed > 0 && jb.stats().restarts == 2);
}

#[test]
fn the_endpointer_does_not_allocate_per_frame() {
    for rate in [8000u32, 16000] {
        let mut ep = Endpointer::new(EndpointSettings::default(), rate).expect("valid");
        let n = rate as usize / 50;
        let loud: Vec<i16> = (0..n).map(|i| if i % 2 == 0 { 6000 } else { -6000 }).collect();
        let quiet = vec![3i16; n];
        let mut reasons = [0u32; 3];
        let mut barge_ins = 0;
        let mut utterance_samples = 0;
        let mut count = |e: EndpointEvent, ep: &Endpointer| match e {
            EndpointEvent::TurnEnded { reason, .. } => {
                reasons[reason as usize] += 1;
                utterance_samples += ep.utterance().len();
            }
            EndpointEvent::BargeIn => barge_ins += 1,
            _ => {}
        };
        let info = allocation_counter::measure(|| {
            // Each cycle: 1.2 s of speech and 1 s quiet (playing in odd cycles), a 16 s
            // monologue with short pauses (ends by length), a key mid-speech, a reset
            // mid-speech.
            for cycle in 0..6u32 {
                let playing = cycle % 2 == 1;
                for k in 0..110 {
                    let e = ep.push(if k < 60 { &loud } else { &quiet }, playing);
                    count(e, &ep);
                }
                for k in 0..800 {
                    let e = ep.push(if k % 13 < 10 { &loud } else { &quiet }, false);
                    count(e, &ep);
                }
                for _ in 0..50 {
                    let e = ep.push(&quiet, false);
                    count(e, &ep);
                }
                for _ in 0..20 {
                    ep.push(&loud, false);
                }
                if let Some(e) = ep.end_turn_now() {
                    count(e, &ep);
                }
                for _ in 0..20 {
                    ep.push(&loud, playing);
                }
                ep.reset();
                for _ in 0..50 {
                    ep.push(&quiet, playing);
                }
            }
        });
        assert_eq!(info.count_total, 0, "{} allocations at {rate} Hz", info.count_total);
        // Silence ends the first utterance and the monologue's remainder; length and key one each.
        assert_eq!(reasons, [12, 6, 6], "silence, max length, key");
        assert_eq!(barge_ins, 3);
        assert!(utterance_samples > 0);
    }
}

#[test]
fn the_echo_canceller_does_not_allocate_per_frame() {
    for rate in [8000u32, 16000] {
        let n = rate as usize / 50;
        let mut aec = voice_ua_media::EchoCanceller::new(rate).expect("rate");
        let mut detector = voice_ua_media::SpeechOverEcho::new();
        // The signals are made before counting: 6 s of playback with its echo, the
        // caller talking over the last 2 s, then 2 s with nothing sent.
        let mut far_talker = Talker::new(rate, -18.0, 1);
        let mut caller = Talker::new(rate, -22.0, 2);
        let mut line =
            EchoLine::new(EchoSettings { rate, delay_ms: 90, atten_db: 10.0, noise_dbfs: -50.0, seed: 3 });
        let frames = 400;
        let mut far = vec![0i16; frames * n];
        let mut near = vec![0i16; frames * n];
        let mut echo = vec![0i16; n];
        for k in 0..frames {
            let f = &mut far[k * n..(k + 1) * n];
            if k < 300 {
                far_talker.fill(f);
            }
            let talk = if (200..300).contains(&k) { caller.take(n) } else { Vec::new() };
            line.frame(f, &talk, &mut echo, &mut near[k * n..(k + 1) * n]);
        }
        let mut speech = 0;
        let info = allocation_counter::measure(|| {
            for k in 0..frames {
                let out = &mut near[k * n..(k + 1) * n];
                aec.process(&far[k * n..(k + 1) * n], out);
                speech += usize::from(detector.push(out, aec.echo_bound_dbfs()));
            }
        });
        assert_eq!(info.count_total, 0, "{} allocations at {rate} Hz", info.count_total);
        assert!(aec.delay_estimate().is_some(), "the canceller ran, not just passed frames");
        assert!(speech > 20, "the caller was heard over the echo ({speech} frames)");
    }
}
