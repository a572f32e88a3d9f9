//! Property tests of strict RTP latching: whatever packets arrive, from whatever
//! addresses, the media never moves to a stranger's IP, never on a foreign payload type,
//! and (once established) only after a sustained run from the new source.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use voice_ua_media::rtp::RtpHeader;
use voice_ua_media::source::SUSTAIN;
use voice_ua_media::{PayloadTypes, SourceFilter, SourceVerdict};

const PTS: PayloadTypes = PayloadTypes { audio: 0, telephone_event: Some(101) };

/// Senders: the SDP address, other ports of its IP, the PBX, and a stranger (127.0.0.3).
fn sender(i: u8) -> SocketAddr {
    let s = match i % 6 {
        0 => "127.0.0.1:10000",
        1 => "127.0.0.1:10002",
        2 => "127.0.0.1:10004",
        3 => "127.0.0.2:5000",
        4 => "127.0.0.3:10000",
        _ => "127.0.0.3:10002",
    };
    s.parse().expect("address")
}

#[derive(Debug, Clone)]
struct Arrival {
    from: u8,
    ssrc: u32,
    sequence: u16,
    payload_type: u8,
    after_ms: u64,
}

fn arrivals() -> impl Strategy<Value = Vec<Arrival>> {
    prop::collection::vec(
        (0u8..6, 0u32..3, any::<u16>(), prop::sample::select(vec![0u8, 8, 13, 101, 127]), 0u64..700)
            .prop_map(|(from, ssrc, sequence, payload_type, after_ms)| Arrival {
                from,
                ssrc,
                sequence,
                payload_type,
                after_ms,
            }),
        0..300,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn media_never_moves_to_a_stranger_nor_on_one_packet(arrivals in arrivals(), sequential in any::<bool>()) {
        let sdp: SocketAddr = "127.0.0.1:10000".parse().expect("address");
        let pbx: IpAddr = "127.0.0.2".parse().expect("ip");
        let stranger: IpAddr = "127.0.0.3".parse().expect("ip");
        let mut f = SourceFilter::new(sdp, &[pbx], PTS);
        let mut now = Instant::now();
        let mut established = false;
        let mut history: Vec<(SocketAddr, u32)> = Vec::new();
        for (i, a) in arrivals.iter().enumerate() {
            now += Duration::from_millis(a.after_ms);
            let from = sender(a.from);
            // Half the cases send sequential numbers, so sustained runs actually happen.
            let sequence = if sequential { i as u16 } else { a.sequence };
            let header = RtpHeader { marker: false, payload_type: a.payload_type, sequence, timestamp: 0, ssrc: a.ssrc };
            let before = f.remote();
            let v = f.check(now, from, &header);
            if from.ip() == stranger || !matches!(a.payload_type, 0 | 101) {
                prop_assert_eq!(v, SourceVerdict::Reject);
            }
            match v {
                SourceVerdict::Accept => {
                    prop_assert_eq!(from, before);
                    established = true;
                }
                SourceVerdict::Latched(to) => {
                    prop_assert_eq!(to, from);
                    prop_assert_ne!(to, before);
                    if established || from.ip() != sdp.ip() {
                        // A sustained run: the packets just before came from here, same SSRC.
                        let run = SUSTAIN as usize - 1;
                        prop_assert!(history.len() >= run);
                        prop_assert!(history[history.len() - run..].iter().all(|&(f, s)| f == from && s == a.ssrc));
                    }
                    established = true;
                }
                SourceVerdict::Reject => prop_assert_eq!(f.remote(), before),
            }
            prop_assert_ne!(f.remote().ip(), stranger);
            if matches!(a.payload_type, 0 | 101) && from.ip() != stranger {
                history.push((from, a.ssrc));
            }
        }
    }
}
