//! Strict RTP latching end to end: once a call's media flows, a single packet from a new
//! port, garbage, or a payload type that was not negotiated never moves where voice-ua
//! sends; a sustained new source (four valid packets in a row, one SSRC) does.

mod common;

use common::{free_udp, Call};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// A valid PCMU packet of silence from `ssrc`.
fn packet(pt: u8, seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xff; 160]);
    p
}

/// Packets voice-ua sends to `socket` within `wait`.
fn count_rtp(socket: &UdpSocket, wait: Duration) -> usize {
    socket.set_read_timeout(Some(Duration::from_millis(5))).expect("timeout");
    let until = Instant::now() + wait;
    let mut n = 0;
    let mut b = [0u8; 1500];
    while Instant::now() < until {
        if let Ok((len, _)) = socket.recv_from(&mut b) {
            if len >= 12 && b[0] >> 6 == 2 {
                n += 1;
            }
        }
    }
    n
}

/// The SDP's socket keeps talking for `n` packets while `also` runs before each one.
fn talk_with(call: &Call, first_seq: u16, n: u16, mut also: impl FnMut(u16)) {
    let start = Instant::now();
    let mut got = Vec::new();
    for i in 0..n {
        also(i);
        let seq = first_seq.wrapping_add(i);
        call.media.send_to(&packet(0, seq, 0x1234_5678), call.ua_rtp).expect("rtp");
        let due = start + Duration::from_millis(20 * (u64::from(i) + 1));
        call.drain_rtp(&mut got, due.saturating_duration_since(Instant::now()));
    }
}

#[test]
fn only_a_sustained_valid_source_moves_the_media() {
    let call = Call::start("latching", "", &[]);
    let mut got = Vec::new();
    call.talk_silence(0, 10, &mut got);
    assert!(!got.is_empty(), "voice-ua sends to the SDP address");

    // One valid packet from a new port of the same IP, with a new SSRC.
    let stray = free_udp();
    stray.send_to(&packet(0, 5000, 0xBAD0_0001), call.ua_rtp).expect("send");
    // Garbage and a payload type that was not negotiated (CN, 13), from another port.
    let junk = free_udp();
    talk_with(&call, 10, 15, |i| {
        let mut bad_version = packet(0, 6000 + i, 0xBAD0_0002);
        bad_version[0] = 0x40;
        junk.send_to(&bad_version, call.ua_rtp).expect("send");
        junk.send_to(&[0x80, 0x00, 0x01], call.ua_rtp).expect("send");
        junk.send_to(&packet(13, 7000 + i, 0xBAD0_0003), call.ua_rtp).expect("send");
    });
    assert_eq!(count_rtp(&stray, Duration::from_millis(200)), 0, "one packet moved the media");
    assert_eq!(count_rtp(&junk, Duration::from_millis(50)), 0, "garbage moved the media");
    let before = call.media.local_addr().expect("addr");
    let mut got = Vec::new();
    call.drain_rtp(&mut got, Duration::from_millis(100));
    assert!(got.len() >= 3, "voice-ua still sends to {before}: {}", got.len());

    // Three in a row from a new source, then one from the current one: no move either.
    let mover = free_udp();
    for seq in 100..103 {
        mover.send_to(&packet(0, seq, 0x0000_0042), call.ua_rtp).expect("send");
    }
    call.media.send_to(&packet(0, 30, 0x1234_5678), call.ua_rtp).expect("rtp");
    mover.send_to(&packet(0, 103, 0x0000_0042), call.ua_rtp).expect("send");
    assert_eq!(count_rtp(&mover, Duration::from_millis(150)), 0, "an interrupted run moved the media");

    // The media really moves (the PBX re-bridged the call): four in a row move it.
    for seq in 200..204 {
        mover.send_to(&packet(0, seq, 0x0000_0042), call.ua_rtp).expect("send");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        count_rtp(&mover, Duration::from_millis(200)) >= 3,
        "a sustained new source did not move the media"
    );
    let (status, _) = call.stop();
    assert!(status.success(), "{status:?}");
}

#[test]
fn an_oversized_datagram_is_not_rtp_even_cut_to_the_buffer() {
    let call = Call::start("latching-oversize", "", &[]);
    // Before any media: the first valid packet from the SDP's IP would latch its port.
    // 1,600 bytes with a valid header is no packet we negotiated: it must not count.
    let big = free_udp();
    let mut p = packet(0, 1, 0x0000_0077);
    p.resize(1600, 0xff);
    for _ in 0..3 {
        big.send_to(&p, call.ua_rtp).expect("send");
    }
    assert_eq!(count_rtp(&big, Duration::from_millis(300)), 0, "an oversized datagram moved the media");
    let mut got = Vec::new();
    call.talk_silence(0, 10, &mut got);
    assert!(!got.is_empty(), "voice-ua sends to the SDP address");
    let (status, _) = call.stop();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_reinvite_moves_the_media_at_once() {
    let mut call = Call::start("latching-reinvite", "", &[]);
    let mut got = Vec::new();
    call.talk_silence(0, 10, &mut got);
    assert!(!got.is_empty(), "voice-ua sends to the SDP address");

    // The PBX moves the media to another port (another socket) by re-INVITE.
    let moved = free_udp();
    let port = moved.local_addr().expect("addr").port();
    let sdp = format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n"
    );
    let cseq = call.next_cseq();
    let contact = format!("Contact: <sip:2001@{}>\r\nContent-Type: application/sdp\r\n", call.pbx_addr);
    call.send(&call.in_dialog("INVITE", cseq, &contact, &sdp));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "no 200 OK to the re-INVITE");
        if let Some(m) = call.recv(Duration::from_millis(100)) {
            if m.starts_with("SIP/2.0 200") && m.contains(&format!("{cseq} INVITE")) {
                break;
            }
        }
    }
    call.send(&call.in_dialog("ACK", cseq, "", ""));
    // At once: before the new address has sent anything.
    assert!(count_rtp(&moved, Duration::from_millis(300)) >= 5, "the media did not follow the re-INVITE");
    // What reached the old address before the switch does not count.
    let _ = count_rtp(&call.media, Duration::from_millis(10));
    // And its packets are the call's media now; the old address's are not.
    for seq in 0..20 {
        moved.send_to(&packet(0, 100 + seq, 0x0000_0099), call.ua_rtp).expect("send");
        call.media.send_to(&packet(0, 500 + seq, 0x1234_5678), call.ua_rtp).expect("send");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(count_rtp(&call.media, Duration::from_millis(200)), 0, "the old address took the media back");
    let (status, _) = call.stop();
    assert!(status.success(), "{status:?}");
}
