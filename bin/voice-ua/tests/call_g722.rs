//! A G.722 call through the whole binary against the fake PBX (ring 2): the offer is
//! answered with G.722, the caller's wideband audio (1 kHz and 5 kHz, the second beyond
//! G.711's band) goes through the jitter buffer to the echo agent as linear16 at 16 kHz
//! and comes back G.722-encoded on the 8 kHz RTP clock; decoded as a phone would, the
//! echo keeps its 5 kHz tone.

mod common;

use common::{rtp, Call};
use std::time::{Duration, Instant};
use voice_ua_media::{G722Decoder, G722Encoder};

/// Amplitude of `freq` in `x` (Goertzel).
fn amplitude(x: &[i16], freq: f64) -> f64 {
    let k = 2.0 * (2.0 * std::f64::consts::PI * freq / 16_000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s0 = f64::from(v) + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    2.0 * (s1 * s1 + s2 * s2 - k * s1 * s2).max(0.0).sqrt() / x.len() as f64
}

#[test]
fn a_g722_call_carries_wideband_audio_both_ways() {
    let call = Call::start_g722("call-g722", "[calls]\ncodecs = [\"G722\", \"PCMU\"]\n");
    let (media, ua_rtp) = (&call.media, call.ua_rtp);
    // 1 s of 1 kHz + 5 kHz at 16 kHz, then silence, encoded as one phone's stream.
    let mut encoder = G722Encoder::new();
    let mut got = Vec::new();
    let start = Instant::now();
    for n in 0..200u32 {
        let pcm: Vec<i16> = (0..320)
            .map(|i| {
                if n >= 50 {
                    return 0;
                }
                let t = f64::from(n * 320 + i) / 16_000.0;
                let tau = 2.0 * std::f64::consts::PI;
                (6000.0 * (tau * 1000.0 * t).sin() + 6000.0 * (tau * 5000.0 * t).sin()) as i16
            })
            .collect();
        let mut payload = [0u8; 160];
        encoder.encode(&pcm, &mut payload);
        media.send_to(&rtp(9, n as u16, n * 160, n == 0, &payload), ua_rtp).expect("rtp");
        let due = start + Duration::from_millis(20 * (u64::from(n) + 1));
        call.drain_rtp(&mut got, due.saturating_duration_since(Instant::now()));
    }
    call.send(&call.in_dialog("BYE", 2, "", ""));
    let bye_ok = call.recv(Duration::from_secs(5)).expect("an answer to BYE");
    assert!(bye_ok.starts_with("SIP/2.0 200"), "{bye_ok}");
    std::thread::sleep(Duration::from_millis(300));
    let (status, logs) = call.stop();
    assert!(status.success(), "exit status {status:?}");

    assert!(got.len() >= 180, "about one packet per 20 ms: got {}", got.len());
    for w in got.windows(2) {
        assert_eq!(w[1].1, w[0].1.wrapping_add(160), "timestamps +160 per 20 ms (8 kHz RTP clock)");
    }
    // Decode every packet in order, as the phone does, and find the echo.
    let mut decoder = G722Decoder::new();
    let mut heard = Vec::new();
    for (_, _, _, payload) in &got {
        let mut pcm = [0i16; 320];
        decoder.decode(payload, &mut pcm);
        heard.extend_from_slice(&pcm);
    }
    let loud: Vec<&[i16]> = heard.chunks_exact(320).filter(|f| amplitude(f, 1000.0) > 3000.0).collect();
    assert!(loud.len() >= 40, "the 1 s echo came back: {} loud frames", loud.len());
    let (a1, a5): (f64, f64) =
        loud.iter().fold((0.0, 0.0), |(a, b), f| (a + amplitude(f, 1000.0), b + amplitude(f, 5000.0)));
    let ratio_db = 20.0 * (a5 / a1).log10();
    assert!(ratio_db.abs() < 3.0, "5 kHz vs 1 kHz in the echo: {ratio_db:.1} dB (sent 0 dB)");

    let summary = logs.iter().find(|l| l.contains("call ended: ")).expect("summary line");
    let v: serde_json::Value = serde_json::from_str(summary).expect("json");
    assert_eq!(v["fields"]["codec"], "G722", "{summary}");
}
