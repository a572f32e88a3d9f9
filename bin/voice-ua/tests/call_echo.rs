//! The whole binary against a fake PBX written here (ring 2): registration, an
//! incoming call with SDP, RTP both ways through the jitter buffer, the echo agent
//! and the pacer, an RFC 4733 digit, and the caller's BYE — then the summary line.

mod common;

use common::{rtp, ulaw, Call};
use std::time::{Duration, Instant};

#[test]
fn a_call_is_answered_and_the_caller_hears_themselves() {
    let call = Call::start("call-echo", "", &[]);
    let (media, ua_rtp) = (&call.media, call.ua_rtp);

    // 1 s of a 440 Hz "utterance", then silence, at real-time pace; collect what comes back.
    let tone: Vec<u8> = (0..8000)
        .map(|i| ulaw((8000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 8000.0).sin()) as i16))
        .collect();
    let silence = [0xffu8; 160];
    let mut got: Vec<(u16, u32, bool, Vec<u8>)> = Vec::new();
    let start = Instant::now();
    let mut dtmf_sent = false;
    for n in 0..200u32 {
        let payload: &[u8] =
            if n < 50 { &tone[(n as usize) * 160..(n as usize + 1) * 160] } else { &silence };
        media.send_to(&rtp(0, n as u16, n * 160, n == 0, payload), ua_rtp).expect("rtp");
        if n == 150 && !dtmf_sent {
            // Digit 5: start, then three end packets (RFC 4733).
            for (i, end) in [(0u16, false), (1, false), (2, true), (3, true), (4, true)] {
                let dur: u16 = 160 * (i + 1);
                let ev = [5u8, if end { 0x80 | 10 } else { 10 }, (dur >> 8) as u8, dur as u8];
                media.send_to(&rtp(101, 1000 + i, 150 * 160, i == 0, &ev), ua_rtp).expect("dtmf");
            }
            dtmf_sent = true;
        }
        let due = start + Duration::from_millis(20 * (u64::from(n) + 1));
        call.drain_rtp(&mut got, due.saturating_duration_since(Instant::now()));
    }

    // The caller hangs up.
    call.send(&call.in_dialog("BYE", 2, "", ""));
    let bye_ok = call.recv(Duration::from_secs(5)).expect("an answer to BYE");
    assert!(bye_ok.starts_with("SIP/2.0 200") && bye_ok.contains("CSeq: 2 BYE"), "{bye_ok}");
    std::thread::sleep(Duration::from_millis(300));
    let (status, logs) = call.stop();
    assert!(status.success(), "exit status {status:?}");

    // RTP out: continuous (one packet per 20 ms, +1 sequence, +160 timestamp).
    assert!(got.len() >= 180, "about one packet per 20 ms: got {}", got.len());
    let gaps = got
        .windows(2)
        .filter(|w| w[1].0 != w[0].0.wrapping_add(1) || w[1].1 != w[0].1.wrapping_add(160))
        .count();
    assert_eq!(gaps, 0, "sequence and timestamp continuous");
    // The echo: after the pause, the tone comes back byte for byte.
    let tone_packets: Vec<usize> = got
        .iter()
        .enumerate()
        .filter(|(_, p)| tone.chunks(160).any(|t| t == p.3.as_slice()))
        .map(|(i, _)| i)
        .collect();
    assert!(
        tone_packets.len() >= 40,
        "the caller's 50 tone packets played back: {} found",
        tone_packets.len()
    );
    let first = tone_packets[0];
    assert!(first >= 50, "played back only after the caller paused (packet {first})");
    let markers: Vec<usize> = got.iter().enumerate().filter(|(_, p)| p.2).map(|(i, _)| i).collect();
    // The echo talkspurt starts up to 4 frames (the echo agent's pre-roll) before the
    // first tone packet, and its first packet carries the marker bit.
    assert!(
        markers.iter().any(|m| *m <= first && first - m <= 4),
        "marker bit at the start of the echo talkspurt (markers at {markers:?}, first tone packet {first})"
    );

    let line = |needle: &str| logs.iter().find(|l| l.contains(needle)).cloned();
    let digit = line("caller pressed a key").expect("the key press logged");
    // Which key stays out of the log (a PIN, a card number): `[log] transcripts` is off.
    assert!(!digit.contains("\"digit\""), "{digit}");
    assert_eq!(
        logs.iter().filter(|l| l.contains("caller pressed a key")).count(),
        1,
        "one press, reported once"
    );
    let summary = line("call ended: ").expect("summary line");
    let v: serde_json::Value = serde_json::from_str(&summary).expect("json");
    let f = &v["fields"];
    assert_eq!(f["codec"], "PCMU");
    assert!(f["packets_in"].as_u64().unwrap_or(0) >= 190, "{summary}");
    assert!(f["packets_out"].as_u64().unwrap_or(0) >= 180, "{summary}");
    assert_eq!(f["hung_up_by"], "caller", "{summary}");
    assert!(v["spans"].to_string().contains("call-echo-1@pbx"), "the call's span carries its id: {summary}");
}
