//! RFC 4733: parse a telephone-event payload, re-encode, parse again and compare; and run
//! the bytes as an RTP packet through the DTMF receiver.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voice_ua_media::dtmf::{DtmfReceiver, TelephoneEvent};
use voice_ua_media::rtp::RtpPacket;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = TelephoneEvent::parse(data) {
        let bytes = event.to_bytes();
        let again = TelephoneEvent::parse(&bytes).expect("re-encoded event parses");
        assert_eq!(event, again);
        assert_eq!(again.to_bytes(), bytes);
    }
    if let Ok(packet) = RtpPacket::parse(data) {
        let mut rx = DtmfReceiver::new(packet.header.payload_type);
        let first = rx.handle(&packet);
        // The same packet again never reports a new key press.
        let second = rx.handle(&packet);
        if first.is_some() {
            assert!(!matches!(second, Some(voice_ua_media::DtmfEvent::Pressed { .. })));
        }
    }
});
