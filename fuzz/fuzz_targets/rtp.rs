//! RTP: parse, re-encode, parse again and compare; then feed the packet through a G.711
//! and a G.722 jitter buffer (which must never panic on what the network sends; the G.722
//! one decodes whatever codes arrive).
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use voice_ua_media::jitter::{JitterBuffer, JitterConfig};
use voice_ua_media::rtp::RtpPacket;
use voice_ua_media::AudioCodec;

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = RtpPacket::parse(data) else {
        return;
    };
    let mut out = vec![0u8; packet.encoded_len()];
    let n = packet.write(&mut out).expect("a parsed packet re-encodes");
    let again = RtpPacket::parse(&out[..n]).expect("a re-encoded packet parses");
    assert_eq!(packet, again);

    let t0 = Instant::now();
    for (codec, len) in [(AudioCodec::G711(voice_ua_media::Law::Ulaw), 160), (AudioCodec::G722, 320)] {
        let mut jb = JitterBuffer::with_codec(JitterConfig::default(), codec);
        jb.push(t0, &packet);
        let _ = jb.pop(t0 + Duration::from_millis(20));
        jb.push(t0 + Duration::from_millis(25), &again);
        for i in 2..6 {
            let frame = jb.pop(t0 + Duration::from_millis(20 * i));
            assert_eq!(frame.samples.len(), len);
        }
    }
});
