//! RTP: parse, re-encode, parse again and compare; then feed the packet through a jitter
//! buffer (which must never panic on what the network sends).
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use voice_ua_media::jitter::{JitterBuffer, JitterConfig};
use voice_ua_media::rtp::RtpPacket;

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = RtpPacket::parse(data) else {
        return;
    };
    let mut out = vec![0u8; packet.encoded_len()];
    let n = packet.write(&mut out).expect("a parsed packet re-encodes");
    let again = RtpPacket::parse(&out[..n]).expect("a re-encoded packet parses");
    assert_eq!(packet, again);

    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::default());
    jb.push(t0, &packet);
    let _ = jb.pop(t0 + Duration::from_millis(20));
    jb.push(t0 + Duration::from_millis(25), &again);
    for i in 2..6 {
        let frame = jb.pop(t0 + Duration::from_millis(20 * i));
        assert_eq!(frame.samples.len(), 160);
    }
});
