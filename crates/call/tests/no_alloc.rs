//! A talking call's per-frame path allocates nothing: datagram in, tick (jitter
//! buffer → agent frame, pacer → packet), agent audio in, packet and actions out —
//! counted by the `allocation-counter` crate's global allocator over 10 s of call.

mod harness;

use harness::*;
use std::time::Duration;
use voice_ua_agent::AgentEvent;
use voice_ua_media::{Law, RtpHeader};

#[test]
fn a_talking_call_allocates_nothing_per_frame() {
    let mut p = Pair::new();
    p.run_until(Duration::from_secs(1));
    assert!(p.core.ending().is_none());
    let speech = agent_speech(20);
    let Some(AgentEvent::Audio(frame)) = speech.first().cloned() else { panic!("a frame") };
    let from = PBX_RTP.parse().expect("addr");
    let mut rtp = [0u8; 172];
    let mut out = [0u8; 1500];
    let mut now = p.now;
    let mut sent = 0u32;
    let mut to_agent = 0u32;
    let info = allocation_counter::measure(|| {
        for k in 0..500u16 {
            now += FRAME;
            let payload = [Law::Ulaw.encode((k as i16).wrapping_mul(37)); 160];
            let h = RtpHeader {
                marker: false,
                payload_type: 0,
                sequence: 1000 + k,
                timestamp: 160 * u32::from(k),
                ssrc: 7,
            };
            if let Ok(n) = h.write_packet(&payload, &mut rtp) {
                p.core.handle_datagram(now, from, &rtp[..n]);
            }
            p.core.handle_agent_event(now, AgentEvent::Audio(frame));
            p.core.handle_timeout(now);
            while p.core.poll_transmit(&mut out).is_some() {
                sent += 1;
            }
            while let Some(a) = p.core.poll_action() {
                to_agent += u32::from(matches!(a, voice_ua_call::Action::ToAgent(_)));
            }
        }
    });
    assert_eq!((sent, to_agent), (500, 500), "one packet and one agent frame per tick");
    assert_eq!(info.count_total, 0, "allocations on the per-frame path: {info:?}");
}
