//! SDP reading and writing, including what hostile peers send.

use super::*;

/// What Asterisk offers a registered extension (asterisk-behaviour.md).
pub(crate) const ASTERISK_OFFER: &str = "v=0\r\n\
o=- 1234 1234 IN IP4 127.0.0.1\r\n\
s=Asterisk\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 16000 RTP/AVP 0 8 9 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=sendrecv\r\n";

#[test]
fn reads_an_asterisk_offer() {
    let sd = SessionDescription::parse(ASTERISK_OFFER.as_bytes()).expect("parses");
    assert_eq!(sd.origin_version, 1234);
    assert_eq!(sd.media.len(), 1);
    let m = &sd.media[0];
    assert_eq!((m.kind.as_str(), m.port, m.proto.as_str()), ("audio", 16000, "RTP/AVP"));
    assert_eq!(m.payload_types().collect::<Vec<_>>(), vec![0, 8, 9, 101]);
    assert_eq!(m.rtpmap(101).map(|r| r.encoding.as_str()), Some("telephone-event"));
    assert_eq!(m.fmtp(101), Some("0-16"));
    assert_eq!(m.ptime, Some(20));
    assert_eq!(sd.connection_for(m), Some("127.0.0.1".parse().expect("ip")));
    assert_eq!(sd.direction_for(m), Direction::SendRecv);
}

#[test]
fn media_level_connection_and_direction_win() {
    let text = "v=0\no=- 1 2 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\na=sendonly\nt=0 0\n\
                m=audio 4000 RTP/AVP 8\nc=IN IP4 127.0.0.2\na=inactive\n";
    let sd = SessionDescription::parse(text.as_bytes()).expect("bare LF is tolerated");
    let m = &sd.media[0];
    assert_eq!(sd.connection_for(m), Some("127.0.0.2".parse().expect("ip")));
    assert_eq!(sd.direction_for(m), Direction::Inactive);
    let text = text.replace("a=inactive\n", "");
    let sd = SessionDescription::parse(text.as_bytes()).expect("parses");
    assert_eq!(sd.direction_for(&sd.media[0]), Direction::SendOnly, "session level applies");
}

#[test]
fn hostile_sdp_is_an_error_not_a_panic() {
    let big = format!("v=0\r\n{}", "a=x\r\n".repeat(MAX_SDP_BYTES));
    assert!(matches!(SessionDescription::parse(big.as_bytes()), Err(SdpError::TooLarge(_))));
    assert_eq!(SessionDescription::parse(b"o=- 1 1 IN IP4 1.2.3.4\r\n"), Err(SdpError::NoVersion));
    assert_eq!(SessionDescription::parse(&[0xff, 0x00]), Err(SdpError::NotText));
    assert!(SessionDescription::parse(b"v=0\r\nm=audio 99999 RTP/AVP 0\r\n").is_err());
    assert!(SessionDescription::parse(b"v=0\r\nc=IN IP4 not-an-ip\r\n").is_err());
    assert!(SessionDescription::parse(b"v=0\r\nc=IN IP6 127.0.0.1\r\n").is_err());
    assert!(SessionDescription::parse(b"v=0\r\nno equals sign\r\n").is_err());
    let many = format!("v=0\r\n{}", "m=audio 1 RTP/AVP 0\r\n".repeat(MAX_MEDIA + 1));
    assert_eq!(SessionDescription::parse(many.as_bytes()), Err(SdpError::TooMany));
    // Unknown attributes, payloads and rtpmap junk are skipped, not fatal.
    let sd = SessionDescription::parse(
        b"v=0\r\nm=audio 5000 RTP/AVP 0 200 abc\r\na=rtpmap:0\r\na=rtpmap:x y\r\na=ptime:0\r\na=foo:bar\r\n",
    )
    .expect("lenient");
    assert_eq!(sd.media[0].payload_types().collect::<Vec<_>>(), vec![0]);
    assert!(sd.media[0].rtpmaps.is_empty());
    assert_eq!(sd.media[0].ptime, None);
    assert_eq!(sd.connection_for(&sd.media[0]), None, "missing c= is reported as None");
}

#[test]
fn renders_what_it_reads() {
    let local = LocalSdp {
        session_id: 42,
        version: 3,
        addr: "127.0.0.1".parse().expect("ip"),
        port: 10002,
        formats: vec![(0, "PCMU", 8000, None), (101, "telephone-event", 8000, Some("0-16".into()))],
        direction: Direction::RecvOnly,
        ptime: 20,
    };
    let text = local.render();
    assert!(text.starts_with("v=0\r\no=voice-ua 42 3 IN IP4 127.0.0.1\r\n"));
    let sd = SessionDescription::parse(text.as_bytes()).expect("our own SDP parses");
    let m = &sd.media[0];
    assert_eq!(m.port, 10002);
    assert_eq!(m.payload_types().collect::<Vec<_>>(), vec![0, 101]);
    assert_eq!(m.fmtp(101), Some("0-16"));
    assert_eq!(sd.direction_for(m), Direction::RecvOnly);
    assert_eq!(sd.origin_version, 3);
}

#[test]
fn direction_answers_follow_rfc3264() {
    assert_eq!(Direction::SendOnly.answer_to(), Direction::RecvOnly);
    assert_eq!(Direction::RecvOnly.answer_to(), Direction::SendOnly);
    assert_eq!(Direction::Inactive.answer_to(), Direction::Inactive);
    assert_eq!(Direction::SendRecv.answer_to(), Direction::SendRecv);
    assert!(!Direction::RecvOnly.we_send() && Direction::RecvOnly.we_receive());
}

#[test]
fn control_characters_an_answer_would_copy_are_refused() {
    let with = |line: &str| ASTERISK_OFFER.replace("a=sendrecv\r\n", &format!("{line}\r\na=sendrecv\r\n"));
    for line in
        ["m=video 0 RTP/AVP\u{1} 31", "m=video\u{7f} 0 RTP/AVP 31", "m=video 0 RTP/AVP 3\u{0}1", "s=a\rb"]
    {
        assert!(
            matches!(SessionDescription::parse(with(line).as_bytes()), Err(SdpError::Line { .. })),
            "{line:?}"
        );
    }
    assert!(SessionDescription::parse(with("m=video 0 RTP/AVP 31").as_bytes()).is_ok());
}

/// Our own SDP as a peer reads it.
fn local(
    addr: IpAddr,
    port: u16,
    formats: Vec<(u8, &'static str, u32, Option<String>)>,
    d: Direction,
) -> LocalSdp {
    LocalSdp { session_id: 42, version: 7, addr, port, formats, direction: d, ptime: 20 }
}

proptest::proptest! {
    #[test]
    fn what_we_render_reads_back(
        v4 in proptest::bool::ANY, a in proptest::num::u32::ANY, port in 1u16..=65535,
        pts in proptest::collection::btree_set(0u8..128, 1..6), fmtp in "[!-~]{1,12}",
        d in proptest::sample::select(vec![Direction::SendRecv, Direction::SendOnly, Direction::RecvOnly, Direction::Inactive]),
    ) {
        let addr: IpAddr = if v4 { std::net::Ipv4Addr::from(a).into() } else { std::net::Ipv6Addr::from(u128::from(a) << 64 | 1).into() };
        let formats: Vec<_> = pts.iter().map(|pt| (*pt, "PCMU", 8000, Some(fmtp.clone()))).collect();
        let sd = SessionDescription::parse(local(addr, port, formats, d).render().as_bytes()).expect("ours parses");
        proptest::prop_assert_eq!(sd.origin_version, 7);
        proptest::prop_assert_eq!(sd.connection, Some(addr));
        let m = &sd.media[0];
        proptest::prop_assert_eq!(m.port, port);
        proptest::prop_assert_eq!(m.payload_types().collect::<Vec<_>>(), pts.iter().copied().collect::<Vec<_>>());
        for pt in &pts {
            proptest::prop_assert_eq!(m.fmtp(*pt), Some(fmtp.as_str()));
            proptest::prop_assert_eq!(m.rtpmap(*pt).map(|r| (r.encoding.as_str(), r.clock_rate)), Some(("PCMU", 8000)));
        }
        proptest::prop_assert_eq!(sd.direction_for(m), d);
    }

    #[test]
    fn parse_never_panics(lines in proptest::collection::vec("[a-z]=[ -~]{0,40}", 0..30)) {
        let text = format!("v=0\r\n{}", lines.join("\r\n"));
        let _ = SessionDescription::parse(text.as_bytes());
    }

    #[test]
    fn parse_never_panics_on_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        let mut b = b"v=0\r\n".to_vec();
        b.extend(bytes);
        let _ = SessionDescription::parse(&b);
    }
}
