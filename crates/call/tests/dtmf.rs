//! DTMF both ways, in virtual time: RFC 4733 telephone-events and SIP INFO digits from
//! the caller reach the agent once each, at the first packet; the agent's digits go out
//! as telephone-events (PT 101, 100 ms each) while its audio waits.

mod harness;

use harness::*;
use std::time::Duration;
use voice_ua_agent::AgentEvent;
use voice_ua_call::{Observation, Signal};
use voice_ua_media::{RtpHeader, TelephoneEvent};

/// One telephone-event packet from the PBX (its stream's SSRC).
fn event(seq: u16, ts: u32, code: u8, end: bool, duration: u16, marker: bool) -> Input {
    let header = RtpHeader { marker, payload_type: 101, sequence: seq, timestamp: ts, ssrc: 0x1234_5678 };
    let payload = TelephoneEvent { event: code, end, volume: 10, duration }.to_bytes();
    let mut buf = [0u8; 16];
    let len = header.write_packet(&payload, &mut buf).expect("packet");
    Input::Datagram(PBX_RTP.parse().expect("addr"), buf[..len].to_vec())
}

#[test]
fn a_telephone_event_is_one_digit_at_its_first_packet() {
    let mut p = Pair::new();
    // Key 5 held for 60 ms: three packets with the event's timestamp, the end bit on
    // the last, then the end packet twice more (RFC 4733's repeated ends).
    p.at(1005 * MS, event(500, 80_000, 5, false, 160, true));
    p.at(1025 * MS, event(501, 80_000, 5, false, 320, false));
    p.at(1045 * MS, event(502, 80_000, 5, true, 480, false));
    p.at(1046 * MS, event(503, 80_000, 5, true, 480, false));
    p.at(1047 * MS, event(504, 80_000, 5, true, 480, false));
    // Then # (event 11), a new timestamp, whose start was lost: its end still counts once.
    p.at(1505 * MS, event(510, 84_000, 11, true, 800, false));
    p.at(1506 * MS, event(511, 84_000, 11, true, 800, false));
    p.run_until(Duration::from_secs(2));
    assert_eq!(p.digits_to_agent_at(), vec![(1005 * MS, '5'), (1505 * MS, '#')]);
}

#[test]
fn a_sip_info_digit_reaches_the_agent_at_once() {
    let mut p = Pair::new();
    p.at(1234 * MS, Input::Signal(Signal::Digit('7')));
    p.at(1500 * MS, Input::Signal(Signal::Digit('*')));
    p.run_until(Duration::from_secs(2));
    assert_eq!(p.digits_to_agent_at(), vec![(1234 * MS, '7'), (1500 * MS, '*')]);
}

#[test]
fn the_agent_s_digits_go_out_as_telephone_events_while_its_audio_waits() {
    let mut p = Pair::new();
    // A reply plays from the 1000 ms tick; at 1010 ms the agent sends "12#".
    p.agent_says(1000 * MS, 1000);
    p.at(1010 * MS, Input::Agent(AgentEvent::SendDigits("12#".into())));
    p.run_until(Duration::from_secs(3));

    // 100 ms a digit: 5 packets of growing duration (160 … 800), then 3 end packets
    // with the final duration: 8 packets, 160 ms. Three digits from the 1020 ms tick:
    // 24 packets, 1020 … 1480 ms, one per tick.
    let events: Vec<_> = p.pbx.heard.iter().filter(|h| h.header.payload_type == 101).collect();
    assert_eq!(events.len(), 24);
    assert_eq!(events[0].at - p.t0, 1020 * MS);
    assert_eq!(events[23].at - p.t0, 1480 * MS);
    for (i, h) in events.iter().enumerate() {
        assert_eq!(h.at - p.t0, 1020 * MS + FRAME * i as u32);
    }
    for (digit, packets) in [1u8, 2, 11].into_iter().zip(events.chunks(8)) {
        let parsed: Vec<TelephoneEvent> =
            packets.iter().map(|h| TelephoneEvent::parse(&h.payload).expect("event")).collect();
        assert!(parsed.iter().all(|e| e.event == digit), "{parsed:?}");
        let durations: Vec<u16> = parsed.iter().map(|e| e.duration).collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800, 800]);
        let ends: Vec<bool> = parsed.iter().map(|e| e.end).collect();
        assert_eq!(ends, [false, false, false, false, false, true, true, true]);
        let markers: Vec<bool> = packets.iter().map(|h| h.header.marker).collect();
        assert_eq!(markers, [true, false, false, false, false, false, false, false]);
        // One event, one timestamp: the one of its first packet.
        assert!(packets.iter().all(|h| h.header.timestamp == packets[0].header.timestamp));
    }
    // The audio paused meanwhile: one packet at 1000 ms, then from 1500 ms the rest
    // (980 ms, 49 packets: 1500 … 2460 ms) as a new talkspurt.
    assert!(p.heard_between(1020 * MS, 1500 * MS).all(|h| h.header.payload_type == 101));
    let audio: Vec<_> = p.pbx.heard.iter().filter(|h| h.loud()).collect();
    assert_eq!(audio.len(), 50);
    assert_eq!(audio[0].at - p.t0, 1000 * MS);
    assert_eq!(audio[1].at - p.t0, 1500 * MS);
    assert!(audio[1].header.marker);
    assert_eq!(audio[49].at - p.t0, 2460 * MS);
    // Sequence numbers run on through the events.
    for w in p.pbx.heard.windows(2) {
        assert_eq!(w[1].header.sequence, w[0].header.sequence.wrapping_add(1));
    }
    let tools = p.observed_where(|o| matches!(o, Observation::Tool { .. }));
    assert!(
        matches!(tools.as_slice(), [(t, Observation::Tool { name, result: "ok" })] if *t == 1010 * MS && name == "dtmf")
    );
}

#[test]
fn a_digit_that_is_no_dtmf_key_is_an_error_and_the_others_still_go() {
    let mut p = Pair::new();
    p.at(1010 * MS, Input::Agent(AgentEvent::SendDigits("1x".into())));
    p.run_until(Duration::from_secs(2));
    // '1' goes (8 packets); 'x' is no key.
    assert_eq!(p.pbx.heard.iter().filter(|h| h.header.payload_type == 101).count(), 8);
    let tools = p.observed_where(|o| matches!(o, Observation::Tool { .. }));
    assert!(matches!(tools.as_slice(), [(_, Observation::Tool { name, result: "error" })] if name == "dtmf"));
}
