//! RFC 4733 against real captures (the pcaps Debian's sip-tester ships) and the pacer's
//! DTMF sending round-tripped through the receiver.

use std::path::Path;
use std::time::{Duration, Instant};

use voice_ua_media::dtmf::{DtmfEvent, DtmfReceiver, TelephoneEvent};
use voice_ua_media::g711::Law;
use voice_ua_media::pacer::{Pacer, PacerConfig, PACKET_LEN};
use voice_ua_media::rtp::RtpPacket;

const CAPTURES: &str = "/usr/share/sip-tester";

/// UDP payloads of a classic pcap file (Ethernet or Linux cooked capture, IPv4/UDP).
fn udp_payloads(file: &[u8]) -> Vec<Vec<u8>> {
    let magic = file.get(..4).expect("pcap header");
    let little = match magic {
        [0xD4, 0xC3, 0xB2, 0xA1] | [0x4D, 0x3C, 0xB2, 0xA1] => true,
        [0xA1, 0xB2, 0xC3, 0xD4] | [0xA1, 0xB2, 0x3C, 0x4D] => false,
        _ => panic!("not a pcap file"),
    };
    let u32_at = |b: &[u8], at: usize| {
        let w: [u8; 4] = b[at..at + 4].try_into().expect("4 bytes");
        if little {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let link = u32_at(file, 20);
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= file.len() {
        let captured = u32_at(file, at + 8) as usize;
        let frame = &file[at + 16..(at + 16 + captured).min(file.len())];
        at += 16 + captured;
        let (ethertype, ip) = match link {
            1 => (u16::from_be_bytes([frame[12], frame[13]]), &frame[14..]),
            113 => (u16::from_be_bytes([frame[14], frame[15]]), &frame[16..]),
            other => panic!("unsupported link type {other}"),
        };
        if ethertype != 0x0800 || ip[9] != 17 {
            continue;
        }
        let udp = &ip[usize::from(ip[0] & 0x0F) * 4..];
        let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        out.push(udp[8..len.min(udp.len())].to_vec());
    }
    out
}

fn digits_in(path: &Path) -> (String, Vec<Duration>) {
    let file = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rx = DtmfReceiver::new(101);
    let mut digits = String::new();
    let mut durations = Vec::new();
    for datagram in udp_payloads(&file) {
        let Ok(packet) = RtpPacket::parse(&datagram) else {
            continue;
        };
        match rx.handle(&packet) {
            Some(DtmfEvent::Pressed { digit }) => digits.push(digit),
            Some(DtmfEvent::Released { duration, .. }) => durations.push(duration),
            None => {}
        }
    }
    (digits, durations)
}

#[test]
fn sip_tester_captures_hold_exactly_their_digits() {
    let dir = Path::new(CAPTURES);
    assert!(
        dir.is_dir(),
        "{CAPTURES} missing: install Debian's sip-tester package (apt-get install sip-tester)"
    );
    let cases = [
        ("0", "0"),
        ("1", "1"),
        ("2", "2"),
        ("3", "3"),
        ("4", "4"),
        ("5", "5"),
        ("6", "6"),
        ("7", "7"),
        ("8", "8"),
        ("9", "9"),
        ("star", "*"),
        ("pound", "#"),
    ];
    for (name, expected) in cases {
        let (digits, durations) = digits_in(&dir.join(format!("dtmf_2833_{name}.pcap")));
        assert_eq!(digits, expected, "dtmf_2833_{name}.pcap");
        assert_eq!(durations.len(), 1, "one release in dtmf_2833_{name}.pcap");
    }
    let (none, _) = digits_in(&dir.join("g711a.pcap"));
    assert_eq!(none, "", "g711a.pcap has no telephone-events");
}

#[test]
fn a_capture_without_markers_still_yields_one_digit() {
    let file = std::fs::read(Path::new(CAPTURES).join("dtmf_2833_7.pcap")).expect("capture");
    let mut rx = DtmfReceiver::new(101);
    let mut pressed = 0;
    for mut datagram in udp_payloads(&file) {
        if datagram.len() > 1 {
            datagram[1] &= 0x7F; // strip the marker bit
        }
        if let Ok(packet) = RtpPacket::parse(&datagram) {
            if let Some(DtmfEvent::Pressed { digit }) = rx.handle(&packet) {
                assert_eq!(digit, '7');
                pressed += 1;
            }
        }
    }
    assert_eq!(pressed, 1);
}

#[test]
fn pacer_sends_dtmf_that_the_receiver_reads_back() {
    let t0 = Instant::now();
    let mut pacer = Pacer::new(PacerConfig::new(Law::Ulaw, 5, 100, 8000), t0);
    pacer.push_encoded(&[0x22; 160 * 20]);
    pacer.send_dtmf('4', Duration::from_millis(60)).expect("digit");
    pacer.send_dtmf('#', Duration::from_millis(40)).expect("digit");
    assert!(pacer.send_dtmf('x', Duration::from_millis(40)).is_err());
    let mut rx = DtmfReceiver::new(101);
    let mut buf = [0u8; PACKET_LEN];
    let mut digits = String::new();
    let mut events: Vec<(bool, u16, u32, TelephoneEvent)> = Vec::new();
    let mut seqs = Vec::new();
    let mut audio_markers = Vec::new();
    for tick in 0..20u32 {
        let now = t0 + Duration::from_millis(20) * tick;
        let tx = pacer.poll_transmit(now, &mut buf).expect("one packet per tick");
        let packet = RtpPacket::parse(&buf[..tx.len]).expect("valid");
        seqs.push(packet.header.sequence);
        if packet.header.payload_type == 101 {
            let ev = TelephoneEvent::parse(packet.payload()).expect("event");
            events.push((packet.header.marker, packet.header.sequence, packet.header.timestamp, ev));
            if let Some(DtmfEvent::Pressed { digit }) = rx.handle(&packet) {
                digits.push(digit);
            }
        } else {
            audio_markers.push(packet.header.marker);
        }
    }
    assert_eq!(digits, "4#");
    // '4': 3 packets + 3 ends; '#': 2 packets + 3 ends.
    assert_eq!(events.len(), 11);
    let four = &events[..6];
    assert!(four[0].0 && four[1..].iter().all(|e| !e.0));
    assert!(four.iter().all(|e| e.2 == four[0].2), "timestamp constant within the event");
    let durations: Vec<u16> = four.iter().map(|e| e.3.duration).collect();
    assert_eq!(durations, vec![160, 320, 480, 480, 480, 480]);
    assert_eq!(four.iter().filter(|e| e.3.end).count(), 3);
    assert!(events[6].0, "marker on the next event's first packet");
    assert_ne!(events[6].2, four[0].2);
    // Sequence numbers continuous across audio and events; audio resumes with a marker.
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    assert_eq!(audio_markers.first(), Some(&true));
}
