//! A G.722 call in virtual time: the offer is answered with G.722, the agent opens in
//! linear16 at 16 kHz and gets 640-byte frames that carry the caller's 5 kHz tone (which
//! no G.711 call can carry), what the agent sends reaches the PBX as G.722 on the 8 kHz
//! RTP clock and decodes (with our decoder, as the PBX's would) to the agent's tones,
//! the recording is 8 kHz, a mid-call switch to G.711 is refused, and the fallback
//! prompt plays in G.722.

mod harness;

use harness::*;
use std::time::Duration;
use voice_ua_agent::{AgentError, AgentEvent, AudioFormat, AudioFrame, CallInput};
use voice_ua_call::{Action, CallSettings, Fallback, Signal};
use voice_ua_media::{G722Decoder, G722Encoder};
use voice_ua_sip::negotiate::Codec;
use voice_ua_sip::session_timer::TimerRequest;

/// A G.722 + PCMU offer (G.722 first), with telephone-event.
fn wideband_offer() -> Vec<u8> {
    b"v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
      m=audio 40000 RTP/AVP 9 0 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\n\
      a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
        .to_vec()
}

fn wideband_settings() -> CallSettings {
    CallSettings { codecs: vec![Codec::G722, Codec::Pcmu, Codec::Pcma], ..settings() }
}

fn wideband_pair(settings: CallSettings) -> Pair {
    let script = PbxScript { stream: Some(Sound::Wideband), ..PbxScript::default() };
    let mut p = Pair::with(settings, script, Some(wideband_offer()), TimerRequest::default());
    p.pbx.g722 = Some(G722Encoder::new());
    p
}

/// Power of `x` at `freq` (Goertzel), normalised by the length.
fn power_at(x: &[i16], rate: f64, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / rate;
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s = f64::from(v) + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2) / (x.len() as f64).powi(2)
}

fn db(ratio: f64) -> f64 {
    10.0 * ratio.max(1e-12).log10()
}

/// Linear16 LE frames of 1 kHz + 5 kHz at 16 kHz, `n` frames of 20 ms.
fn agent_tones(n: usize) -> Vec<AudioFrame> {
    (0..n)
        .map(|k| {
            let bytes: Vec<u8> = (0..320)
                .flat_map(|i| {
                    let t = (k * 320 + i) as f64 / 16_000.0;
                    let tau = 2.0 * std::f64::consts::PI;
                    let x = (tau * 1000.0 * t).sin() * 5000.0 + (tau * 5000.0 * t).sin() * 5000.0;
                    (x as i16).to_le_bytes()
                })
                .collect();
            AudioFrame::new(&bytes).expect("640 bytes fit a frame")
        })
        .collect()
}

#[test]
fn a_g722_offer_is_answered_with_g722_and_the_agent_gets_linear16_at_16_khz() {
    let mut p = wideband_pair(wideband_settings());
    p.run_until(Duration::from_secs(2));
    let (_, answer) = p.action(|a| matches!(a, Action::Answer { .. })).expect("answered");
    let Action::Answer { sdp, .. } = answer else { unreachable!() };
    assert!(sdp.contains("m=audio 30000 RTP/AVP 9 101"), "{sdp}");
    assert!(sdp.contains("a=rtpmap:9 G722/8000"), "the RFC 3551 clock rate: {sdp}");
    let (_, open) = p.action(|a| matches!(a, Action::OpenAgent { .. })).expect("agent opened");
    assert!(matches!(open, Action::OpenAgent { format: AudioFormat::Linear16 { rate_hz: 16_000 } }));
    assert!(matches!(
        p.action(|a| matches!(a, Action::Answered { .. })),
        Some((_, Action::Answered { codec: Codec::G722 }))
    ));

    // The caller's audio reaches the agent as 640-byte frames carrying both tones.
    let frames: Vec<&AudioFrame> = p
        .agent
        .inputs
        .iter()
        .filter_map(|(_, i)| match i {
            CallInput::Audio(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), 88);
    assert!(frames.iter().all(|f| f.as_bytes().len() == 640));
    let pcm: Vec<i16> = frames[20..]
        .iter()
        .flat_map(|f| {
            f.as_bytes().chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect::<Vec<_>>()
        })
        .collect();
    let (p1k, p5k, p3k) =
        (power_at(&pcm, 16e3, 1000.0), power_at(&pcm, 16e3, 5000.0), power_at(&pcm, 16e3, 3000.0));
    // Both tones at 6000 peak: power (6000/2)^2 each; through G.722 within 2 dB.
    let expected = (6000.0f64 / 2.0).powi(2);
    assert!(db(p1k / expected).abs() < 2.0, "1 kHz at {:.1} dB", db(p1k / expected));
    assert!(db(p5k / expected).abs() < 2.0, "5 kHz at {:.1} dB", db(p5k / expected));
    assert!(db(p5k / p3k) > 30.0, "5 kHz is a tone, not noise: {:.1} dB over 3 kHz", db(p5k / p3k));
    // The recording stays 8 kHz: 160 samples per tick.
    assert_eq!(p.caller_pcm.len(), 88 * 160);
}

#[test]
fn the_agents_wideband_audio_reaches_the_pbx_as_g722_and_decodes_to_it() {
    let mut p = wideband_pair(wideband_settings());
    for (k, frame) in agent_tones(50).into_iter().enumerate() {
        p.at(500 * MS + k as u32 * MS, Input::Agent(AgentEvent::Audio(frame)));
    }
    p.run_until(Duration::from_secs(3));
    let heard: Vec<&Heard> = p.pbx.heard.iter().collect();
    assert!(heard.iter().all(|h| h.header.payload_type == 9 && h.payload.len() == 160));
    for w in heard.windows(2) {
        assert_eq!(w[1].header.timestamp, w[0].header.timestamp.wrapping_add(160), "8 kHz RTP clock");
    }
    // The PBX decodes every packet in order, as a phone would.
    let mut dec = G722Decoder::new();
    let mut decoded = Vec::new();
    for h in &heard {
        let mut pcm = [0i16; 320];
        dec.decode(&h.payload, &mut pcm);
        decoded.extend_from_slice(&pcm);
    }
    // The agent's second of audio starts with the marked packet.
    let start = heard.iter().position(|h| h.header.marker).expect("a talkspurt");
    let talk = &decoded[(start + 5) * 320..(start + 45) * 320];
    let expected = (5000.0f64 / 2.0).powi(2);
    let (p1k, p5k) = (power_at(talk, 16e3, 1000.0), power_at(talk, 16e3, 5000.0));
    assert!(db(p1k / expected).abs() < 2.0, "1 kHz at {:.1} dB", db(p1k / expected));
    assert!(db(p5k / expected).abs() < 2.0, "5 kHz at {:.1} dB", db(p5k / expected));
    // Before it: silence.
    let before = &decoded[..start * 320];
    assert!(before.iter().all(|s| s.abs() < 50), "silence before the agent spoke");
    // The recording (8 kHz) has the 1 kHz tone of what the caller heard; 5 kHz is
    // above its band.
    let rec_start = (start + 5) * 160;
    let rec = &p.heard_pcm[rec_start..rec_start + 40 * 160];
    let r1k = power_at(rec, 8e3, 1000.0);
    assert!(db(r1k / expected).abs() < 2.0, "recorded 1 kHz at {:.1} dB", db(r1k / expected));
}

#[test]
fn a_re_offer_that_would_switch_a_g722_call_to_g711_is_refused() {
    let mut p = wideband_pair(wideband_settings());
    let pcmu_only = b"v=0\r\no=pbx 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                      m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
        .to_vec();
    p.at(1010 * MS, Input::Signal(Signal::Offer { sdp: pcmu_only }));
    // The same codec again (a session refresh) is fine.
    p.at(1510 * MS, Input::Signal(Signal::Offer { sdp: wideband_offer() }));
    p.run_until(Duration::from_secs(2));
    let answers = p.actions_where(|a| matches!(a, Action::AnswerOffer { .. } | Action::RejectOffer { .. }));
    assert!(
        matches!(
            answers.as_slice(),
            [(_, Action::RejectOffer { status: 488 }), (_, Action::AnswerOffer { .. })]
        ),
        "{answers:?}"
    );
    assert!(p.pbx.heard.iter().all(|h| h.header.payload_type == 9), "G.722 throughout");
    assert!(p.core.ending().is_none());
}

#[test]
fn the_fallback_prompt_plays_in_g722() {
    // 0.5 s of a 1 kHz μ-law tone as the prompt.
    let ulaw: Vec<u8> = (0..4000)
        .map(|i| {
            let x = (2.0 * std::f64::consts::PI * 1000.0 * f64::from(i) / 8000.0).sin() * 8000.0;
            voice_ua_media::Law::Ulaw.encode(x as i16)
        })
        .collect();
    let settings = CallSettings { fallback: Fallback { ulaw, transfer: None }, ..wideband_settings() };
    let mut p = wideband_pair(settings);
    p.agent.open_after = None;
    p.at(260 * MS, Input::AgentFailed(AgentError::Closed { side: "agent" }));
    p.run_until(Duration::from_secs(2));
    let mut dec = G722Decoder::new();
    let mut decoded = Vec::new();
    for h in &p.pbx.heard {
        assert_eq!(h.header.payload_type, 9);
        let mut pcm = [0i16; 320];
        dec.decode(&h.payload, &mut pcm);
        decoded.extend_from_slice(&pcm);
    }
    let prompt = &decoded[5 * 320..20 * 320];
    let expected = (8000.0f64 / 2.0).powi(2);
    let p1k = power_at(prompt, 16e3, 1000.0);
    assert!(db(p1k / expected).abs() < 2.0, "prompt's 1 kHz at {:.1} dB", db(p1k / expected));
    // The prompt over, the call ends.
    assert!(p.core.ending().is_some());
}

#[test]
fn a_talking_g722_call_allocates_nothing_per_frame() {
    let mut p = wideband_pair(wideband_settings());
    p.pbx.script.stream = None;
    p.run_until(Duration::from_secs(1));
    assert!(p.core.ending().is_none());
    let frame = agent_tones(1)[0];
    let from = PBX_RTP.parse().expect("addr");
    let mut enc = G722Encoder::new();
    let pcm: Vec<i16> = (0..320).map(|i| ((i * 613) % 12_000) as i16 - 6000).collect();
    let mut rtp = [0u8; 172];
    let mut out = [0u8; 1500];
    let mut now = p.now;
    let (mut sent, mut to_agent) = (0u32, 0u32);
    let info = allocation_counter::measure(|| {
        for k in 0..500u16 {
            now += FRAME;
            let mut payload = [0u8; 160];
            enc.encode(&pcm, &mut payload);
            let h = voice_ua_media::RtpHeader {
                marker: false,
                payload_type: 9,
                sequence: 1000 + k,
                timestamp: 160 * u32::from(k),
                ssrc: 7,
            };
            // Every 13th packet lost: concealment at 16 kHz on the path too.
            if k % 13 != 6 {
                if let Ok(n) = h.write_packet(&payload, &mut rtp) {
                    p.core.handle_datagram(now, from, &rtp[..n]);
                }
            }
            p.core.handle_agent_event(now, AgentEvent::Audio(frame));
            p.core.handle_timeout(now);
            while p.core.poll_transmit(&mut out).is_some() {
                sent += 1;
            }
            while let Some(a) = p.core.poll_action() {
                to_agent +=
                    u32::from(matches!(a, Action::ToAgent(CallInput::Audio(f)) if f.as_bytes().len() == 640));
            }
            // The recording's 8 kHz frames, as the driver takes them.
            let _ = p.core.take_heard();
        }
    });
    assert_eq!((sent, to_agent), (500, 500), "one packet and one 640-byte agent frame per tick");
    assert_eq!(info.count_total, 0, "allocations on the per-frame path: {info:?}");
    assert!(p.core.media_stats().concealed > 0);
}
