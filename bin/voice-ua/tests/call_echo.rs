//! The whole binary against a fake PBX written here (ring 2): registration, an
//! incoming call with SDP, RTP both ways through the jitter buffer, the echo agent
//! and the pacer, an RFC 4733 digit, and the caller's BYE — then the summary line.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn reply_ok(req: &str) -> String {
    let mut out = "SIP/2.0 200 OK\r\n".to_string();
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        out.push_str(&format!("{name}: {}\r\n", header(req, name).unwrap_or("")));
    }
    out.push_str("Contact: <sip:9000@127.0.0.1>;expires=300\r\nContent-Length: 0\r\n\r\n");
    out
}

fn free_udp() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").expect("bind")
}

/// μ-law (G.711) of one sample, for the test signal: any valid codes will do, since
/// the echo must hand back exactly the bytes it received.
fn ulaw(x: i16) -> u8 {
    let sign = if x < 0 { 0x80u8 } else { 0 };
    let mag = (i32::from(x).abs().min(32635) + 132) as u32;
    let exp = (31 - mag.leading_zeros()).saturating_sub(7).min(7);
    let mantissa = (mag >> (exp + 3)) & 0x0f;
    !(sign | (exp << 4) as u8 | mantissa as u8)
}

fn rtp(pt: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

#[test]
fn a_call_is_answered_and_the_caller_hears_themselves() {
    let pbx = free_udp();
    pbx.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let pbx_addr = pbx.local_addr().expect("addr");
    let sip_port = free_udp().local_addr().expect("a").port();
    let rtp_first = 31000 + (std::process::id() % 500) as u16 * 2 * 8;
    let dir = std::env::temp_dir().join(format!("voice-ua-call-echo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("v.toml");
    std::fs::write(&cfg, format!("[calls]\nrtp_ports = \"{}-{}\"\n", rtp_first, rtp_first + 14))
        .expect("cfg");
    let mut ua = Command::new(env!("CARGO_BIN_EXE_voice-ua"))
        .args(["--log-format", "json", "--config", cfg.to_str().expect("utf8"), "register", "--ext", "9000"])
        .args(["--pbx", &pbx_addr.to_string(), "--bind", &format!("127.0.0.1:{sip_port}")])
        .env("VOICE_UA_SIP_PASSWORD", "pw")
        .env("RUST_LOG", "info")
        .current_dir(&dir)
        .stderr(Stdio::piped())
        .spawn()
        .expect("voice-ua starts");
    let (log_tx, log_rx) = mpsc::channel::<String>();
    let stderr = ua.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = log_tx.send(line);
        }
    });
    let ua_sip: SocketAddr = format!("127.0.0.1:{sip_port}").parse().expect("addr");
    let mut buf = vec![0u8; 65536];
    let recv = |pbx: &UdpSocket, buf: &mut Vec<u8>| -> Option<String> {
        let (n, _) = pbx.recv_from(buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    };

    // REGISTER → 200.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "no REGISTER");
        if let Some(m) = recv(&pbx, &mut buf) {
            if m.starts_with("REGISTER") {
                pbx.send_to(reply_ok(&m).as_bytes(), ua_sip).expect("send");
                break;
            }
        }
    }

    // INVITE with PCMU and telephone-event.
    let media = free_udp();
    media.set_read_timeout(Some(Duration::from_millis(5))).expect("timeout");
    let media_port = media.local_addr().expect("a").port();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {media_port} RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n"
    );
    let invite = format!(
        "INVITE sip:9000@127.0.0.1:{sip_port} SIP/2.0\r\nVia: SIP/2.0/UDP {pbx_addr};branch=z9hG4bKinv1\r\n\
         From: \"Gate\" <sip:2001@127.0.0.1>;tag=gate\r\nTo: <sip:9000@127.0.0.1>\r\nCall-ID: echo-1@pbx\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:2001@{pbx_addr}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    pbx.send_to(invite.as_bytes(), ua_sip).expect("send");
    let ok = loop {
        assert!(Instant::now() < deadline + Duration::from_secs(5), "no 200 OK");
        if let Some(m) = recv(&pbx, &mut buf) {
            if m.starts_with("SIP/2.0 200") && m.contains("INVITE") {
                break m;
            }
        }
    };
    let answer = ok.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let m_line = answer.lines().find(|l| l.starts_with("m=audio ")).expect("m=audio");
    assert!(m_line.ends_with("RTP/AVP 0 101"), "{m_line}");
    let ua_rtp_port: u16 = m_line.split(' ').nth(1).and_then(|p| p.parse().ok()).expect("port");
    assert!((rtp_first..=rtp_first + 14).contains(&ua_rtp_port) && ua_rtp_port % 2 == 0, "{ua_rtp_port}");
    let to = header(&ok, "To").expect("To").to_string();
    let ack = format!(
        "ACK sip:9000@127.0.0.1:{sip_port} SIP/2.0\r\nVia: SIP/2.0/UDP {pbx_addr};branch=z9hG4bKack1\r\n\
         From: \"Gate\" <sip:2001@127.0.0.1>;tag=gate\r\nTo: {to}\r\nCall-ID: echo-1@pbx\r\nCSeq: 1 ACK\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    pbx.send_to(ack.as_bytes(), ua_sip).expect("ack");

    // 1 s of a 440 Hz "utterance", then silence, at real-time pace; collect what comes back.
    let ua_rtp: SocketAddr = format!("127.0.0.1:{ua_rtp_port}").parse().expect("addr");
    let tone: Vec<u8> = (0..8000)
        .map(|i| ulaw((8000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 8000.0).sin()) as i16))
        .collect();
    let silence = [0xffu8; 160];
    let mut got: Vec<(u16, u32, bool, Vec<u8>)> = Vec::new();
    let start = Instant::now();
    let mut dtmf_sent = false;
    for n in 0..200u32 {
        let payload: &[u8] =
            if n < 50 { &tone[(n as usize) * 160..(n as usize + 1) * 160] } else { &silence };
        media.send_to(&rtp(0, n as u16, n * 160, n == 0, payload), ua_rtp).expect("rtp");
        if n == 150 && !dtmf_sent {
            // Digit 5: start, then three end packets (RFC 4733).
            for (i, end) in [(0u16, false), (1, false), (2, true), (3, true), (4, true)] {
                let dur: u16 = 160 * (i + 1);
                let ev = [5u8, if end { 0x80 | 10 } else { 10 }, (dur >> 8) as u8, dur as u8];
                media.send_to(&rtp(101, 1000 + i, 150 * 160, i == 0, &ev), ua_rtp).expect("dtmf");
            }
            dtmf_sent = true;
        }
        while start.elapsed() < Duration::from_millis(20 * (u64::from(n) + 1)) {
            let mut b = [0u8; 1500];
            if let Ok((len, from)) = media.recv_from(&mut b) {
                assert_eq!(from, ua_rtp, "symmetric RTP: sent from the advertised port");
                if len >= 12 {
                    got.push((
                        u16::from_be_bytes([b[2], b[3]]),
                        u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                        b[1] & 0x80 != 0,
                        b[12..len].to_vec(),
                    ));
                }
            }
        }
    }

    // The caller hangs up.
    let bye = format!(
        "BYE sip:9000@127.0.0.1:{sip_port} SIP/2.0\r\nVia: SIP/2.0/UDP {pbx_addr};branch=z9hG4bKbye1\r\n\
         From: \"Gate\" <sip:2001@127.0.0.1>;tag=gate\r\nTo: {to}\r\nCall-ID: echo-1@pbx\r\nCSeq: 2 BYE\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    pbx.send_to(bye.as_bytes(), ua_sip).expect("bye");
    let bye_ok = loop {
        if let Some(m) = recv(&pbx, &mut buf) {
            if m.contains("CSeq: 2 BYE") {
                break m;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(12), "no answer to BYE");
    };
    assert!(bye_ok.starts_with("SIP/2.0 200"), "{bye_ok}");
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill").args(["-TERM", &ua.id().to_string()]).status();
    let status = ua.wait().expect("exit");
    assert!(status.success(), "exit status {status:?}");
    let logs: Vec<String> = log_rx.try_iter().collect();

    // RTP out: continuous (one packet per 20 ms, +1 sequence, +160 timestamp).
    assert!(got.len() >= 180, "about one packet per 20 ms: got {}", got.len());
    let gaps = got
        .windows(2)
        .filter(|w| w[1].0 != w[0].0.wrapping_add(1) || w[1].1 != w[0].1.wrapping_add(160))
        .count();
    assert_eq!(gaps, 0, "sequence and timestamp continuous");
    // The echo: after the pause, the tone comes back byte for byte.
    let tone_packets: Vec<usize> = got
        .iter()
        .enumerate()
        .filter(|(_, p)| tone.chunks(160).any(|t| t == p.3.as_slice()))
        .map(|(i, _)| i)
        .collect();
    assert!(
        tone_packets.len() >= 40,
        "the caller's 50 tone packets played back: {} found",
        tone_packets.len()
    );
    let first = tone_packets[0];
    assert!(first >= 50, "played back only after the caller paused (packet {first})");
    let markers: Vec<usize> = got.iter().enumerate().filter(|(_, p)| p.2).map(|(i, _)| i).collect();
    // The echo talkspurt starts up to 4 frames (the echo agent's pre-roll) before the
    // first tone packet, and its first packet carries the marker bit.
    assert!(
        markers.iter().any(|m| *m <= first && first - m <= 4),
        "marker bit at the start of the echo talkspurt (markers at {markers:?}, first tone packet {first})"
    );

    let line = |needle: &str| logs.iter().find(|l| l.contains(needle)).cloned();
    let digit = line("caller pressed a key").expect("digit logged");
    assert!(digit.contains("\"digit\":\"5\""), "{digit}");
    assert_eq!(
        logs.iter().filter(|l| l.contains("caller pressed a key")).count(),
        1,
        "one press, reported once"
    );
    let summary = line("call ended: ").expect("summary line");
    let v: serde_json::Value = serde_json::from_str(&summary).expect("json");
    let f = &v["fields"];
    assert_eq!(f["codec"], "PCMU");
    assert!(f["packets_in"].as_u64().unwrap_or(0) >= 190, "{summary}");
    assert!(f["packets_out"].as_u64().unwrap_or(0) >= 180, "{summary}");
    assert_eq!(f["hung_up_by"], "caller", "{summary}");
    assert!(v["spans"].to_string().contains("echo-1@pbx"), "the call's span carries its id: {summary}");
    let _ = std::fs::remove_dir_all(dir);
}
