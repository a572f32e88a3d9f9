//! Evaluation of the `rtp-rs` crate against our parser (docs/dependencies.md): on the same
//! inputs, valid or malformed, both must accept and reject alike and read the same fields.

use proptest::prelude::*;
use voice_ua_media::rtp::{RtpPacket, MAX_PACKET_LEN};

/// Byte strings that are mostly RTP-shaped (version 2, random flags/CC), so both parsers
/// get past the first checks and the interesting paths (CSRC, extension, padding) run.
fn datagrams() -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), prop::collection::vec(any::<u8>(), 0..120)).prop_map(|(rtp_shaped, mut bytes)| {
        if rtp_shaped {
            if let Some(first) = bytes.first_mut() {
                *first = 0x80 | (*first & 0x3F);
                // Keep CSRC counts small often enough that packets can be complete.
                if *first & 0x0F > 3 {
                    *first &= 0xF3;
                }
            }
        }
        bytes
    })
}

fn compare(bytes: &[u8]) {
    let ours = RtpPacket::parse(bytes);
    let theirs = rtp_rs::RtpReader::new(bytes);
    match (ours, theirs) {
        (Ok(p), Ok(r)) => {
            assert_eq!(p.header.marker, r.mark());
            assert_eq!(p.header.payload_type, r.payload_type());
            assert_eq!(p.header.sequence, u16::from(r.sequence_number()));
            assert_eq!(p.header.timestamp, r.timestamp());
            assert_eq!(p.header.ssrc, r.ssrc());
            assert_eq!(p.csrcs().collect::<Vec<_>>(), r.csrc().collect::<Vec<_>>());
            assert_eq!(p.extension().map(|e| (e.profile, e.data)), r.extension());
            assert_eq!(p.payload(), r.payload());
            assert_eq!(p.padding_len(), usize::from(r.padding().unwrap_or(0)));
        }
        (Err(_), Err(_)) => {}
        (ours, theirs) => panic!("parsers disagree on {bytes:02x?}: ours {ours:?}, rtp-rs {theirs:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]
    #[test]
    fn rtp_rs_and_ours_agree(bytes in datagrams()) {
        compare(&bytes);
    }
}

#[test]
fn oversize_is_where_they_differ_by_design() {
    // rtp-rs has no size limit; ours rejects anything above an Ethernet MTU.
    let mut big = vec![0u8; MAX_PACKET_LEN + 1];
    big[0] = 0x80;
    assert!(RtpPacket::parse(&big).is_err());
    assert!(rtp_rs::RtpReader::new(&big).is_ok());
}
