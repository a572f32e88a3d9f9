//! A fake PBX and caller for the binary's end-to-end tests: starts `voice-ua` with a
//! config, answers its REGISTER, places a PCMU call to it and hands back the sockets,
//! plus small helpers to read SIP and build RTP by hand. Loopback only.
#![allow(dead_code)]

pub mod agent;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A response to `req` with `status`, copying the transaction headers.
pub fn reply(req: &str, status: &str, extra: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        out.push_str(&format!("{name}: {}\r\n", header(req, name).unwrap_or("")));
    }
    out.push_str(&format!("{extra}Content-Length: 0\r\n\r\n"));
    out
}

pub fn free_udp() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").expect("bind")
}

/// μ-law (G.711) of one sample, for test signals.
pub fn ulaw(x: i16) -> u8 {
    let sign = if x < 0 { 0x80u8 } else { 0 };
    let mag = (i32::from(x).abs().min(32635) + 132) as u32;
    let exp = (31 - mag.leading_zeros()).saturating_sub(7).min(7);
    let mantissa = (mag >> (exp + 3)) & 0x0f;
    !(sign | (exp << 4) as u8 | mantissa as u8)
}

/// The PCMU offer's formats (the m-line's tail, then its rtpmap).
const PCMU_FORMATS: &str = "0 101\r\na=rtpmap:0 PCMU/8000";
/// The G.722 offer's formats.
const G722_FORMATS: &str = "9 101\r\na=rtpmap:9 G722/8000";

pub fn rtp(pt: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// One RTP packet voice-ua sent: (sequence, timestamp, marker, payload).
pub type Received = (u16, u32, bool, Vec<u8>);

/// One RTP packet voice-ua sent and the instant the fake PBX received it.
pub type Arrival = (Instant, Received);

/// One 20 ms μ-law frame of a 440 Hz tone at about -12 dBFS: the caller's voice.
pub fn caller_tone() -> [u8; 160] {
    let mut tone = [0u8; 160];
    for (k, b) in tone.iter_mut().enumerate() {
        let x = (std::f64::consts::TAU * 440.0 * k as f64 / 8000.0).sin() * 8000.0;
        *b = ulaw(x as i16);
    }
    tone
}

/// voice-ua registered with the fake PBX and in a call with the fake caller.
pub struct Call {
    pub ua: Child,
    pub logs: mpsc::Receiver<String>,
    pub pbx: UdpSocket,
    pub pbx_addr: SocketAddr,
    pub ua_sip: SocketAddr,
    pub media: UdpSocket,
    pub ua_rtp: SocketAddr,
    pub to: String,
    pub call_id: String,
    pub dir: PathBuf,
    pub rtp_ports: (u16, u16),
    next_cseq: u32,
}

impl Call {
    /// Start voice-ua with `config` (plus an `[calls] rtp_ports` line it adds),
    /// register it, call it with a PCMU offer and ACK the 200.
    pub fn start(name: &str, config: &str, env: &[(&str, &str)]) -> Call {
        Call::start_with_invite_headers(name, config, env, "")
    }

    /// [`start`](Self::start), with `invite_headers` (whole lines, each ending in CRLF)
    /// added to the INVITE.
    pub fn start_with_invite_headers(
        name: &str,
        config: &str,
        env: &[(&str, &str)],
        invite_headers: &str,
    ) -> Call {
        let mut call = Call::launch(name, config, env);
        call.invite(invite_headers);
        call
    }

    /// [`start`](Self::start) with a G.722-only offer (payload type 9, `G722/8000`), for a
    /// `config` whose `calls.codecs` lists G722.
    #[allow(dead_code)]
    pub fn start_g722(name: &str, config: &str) -> Call {
        let mut call = Call::launch(name, config, &[]);
        call.invite_with("", G722_FORMATS, "RTP/AVP 9 101");
        call
    }

    /// Start voice-ua with `config` and answer its REGISTER; no call yet.
    pub fn launch(name: &str, config: &str, env: &[(&str, &str)]) -> Call {
        let pbx = free_udp();
        pbx.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
        let pbx_addr = pbx.local_addr().expect("addr");
        let sip_port = free_udp().local_addr().expect("a").port();
        let salt = std::process::id() % 400 + name.len() as u32 * 7;
        let rtp_first = 30000 + (salt as u16 % 800) * 16;
        let dir = std::env::temp_dir().join(format!("voice-ua-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let cfg = dir.join("v.toml");
        let config = if config.contains("[calls]") {
            config.replacen("[calls]", &format!("[calls]\nrtp_ports = \"{rtp_first}-{}\"", rtp_first + 14), 1)
        } else {
            format!("{config}\n[calls]\nrtp_ports = \"{rtp_first}-{}\"\n", rtp_first + 14)
        };
        // Tests run in parallel: no monitoring listener unless the test asks for one.
        let config =
            if config.contains("[http]") { config } else { format!("{config}\n[http]\nlisten = \"\"\n") };
        std::fs::write(&cfg, config).expect("cfg");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_voice-ua"));
        cmd.args([
            "--log-format",
            "json",
            "--config",
            cfg.to_str().expect("utf8"),
            "register",
            "--ext",
            "9000",
        ])
        .args(["--pbx", &pbx_addr.to_string(), "--bind", &format!("127.0.0.1:{sip_port}")])
        .env("VOICE_UA_SIP_PASSWORD", "pw")
        .env("RUST_LOG", "info")
        .env_remove("DEEPGRAM_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut ua = cmd.spawn().expect("voice-ua starts");
        let (log_tx, logs) = mpsc::channel::<String>();
        let stderr = ua.stderr.take().expect("stderr");
        // stdout too: whatever the process prints anywhere is in `logs`.
        let stdout = ua.stdout.take().expect("stdout");
        let out_tx = log_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = out_tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = log_tx.send(line);
            }
        });
        let ua_sip: SocketAddr = format!("127.0.0.1:{sip_port}").parse().expect("addr");
        let media = free_udp();
        media.set_read_timeout(Some(Duration::from_millis(5))).expect("timeout");
        let call = Call {
            ua,
            logs,
            pbx,
            pbx_addr,
            ua_sip,
            media,
            ua_rtp: ua_sip,
            to: String::new(),
            call_id: format!("{name}-1@pbx"),
            dir,
            rtp_ports: (rtp_first, rtp_first + 14),
            next_cseq: 2,
        };
        let reg = call.wait_request("REGISTER", Duration::from_secs(5));
        call.send(&reply(&reg, "200 OK", "Contact: <sip:9000@127.0.0.1>;expires=300\r\n"));
        call
    }

    pub fn send(&self, text: &str) {
        self.pbx.send_to(text.as_bytes(), self.ua_sip).expect("send");
    }

    /// The next SIP message from voice-ua, within `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            if let Ok((n, _)) = self.pbx.recv_from(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                if !m.trim().is_empty() {
                    return Some(m);
                }
            }
        }
        None
    }

    /// Wait for a request with this method (answering REGISTER refreshes meanwhile).
    pub fn wait_request(&self, method: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(m) = self.recv(Duration::from_millis(100)) {
                if m.starts_with(&format!("{method} ")) {
                    return m;
                }
                if m.starts_with("REGISTER ") {
                    self.send(&reply(&m, "200 OK", ""));
                }
            }
        }
        panic!("no {method} from voice-ua within {timeout:?}");
    }

    /// The PCMU INVITE for this call, with `extra` header lines.
    pub fn invite_request(&self, extra: &str) -> String {
        self.invite_request_with(extra, PCMU_FORMATS)
    }

    /// The INVITE for this call offering `formats` (the m-line's formats and their
    /// rtpmap lines), with `extra` header lines.
    fn invite_request_with(&self, extra: &str, formats: &str) -> String {
        let media_port = self.media.local_addr().expect("a").port();
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {media_port} RTP/AVP {formats}\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n"
        );
        let (pbx, ua) = (self.pbx_addr, self.ua_sip);
        format!(
            "INVITE sip:9000@{ua} SIP/2.0\r\nVia: SIP/2.0/UDP {pbx};branch=z9hG4bKinv1\r\n\
             From: \"Gate\" <sip:2001@127.0.0.1>;tag=gate\r\nTo: <sip:9000@127.0.0.1>\r\nCall-ID: {}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:2001@{pbx}>\r\nMax-Forwards: 70\r\n{extra}Content-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            self.call_id,
            sdp.len()
        )
    }

    fn invite(&mut self, extra: &str) {
        self.invite_with(extra, PCMU_FORMATS, "RTP/AVP 0 101");
    }

    /// Send the INVITE offering `formats`; the answer's m-line must end in `expected`.
    fn invite_with(&mut self, extra: &str, formats: &str, expected: &str) {
        self.send(&self.invite_request_with(extra, formats));
        let deadline = Instant::now() + Duration::from_secs(5);
        let ok = loop {
            assert!(Instant::now() < deadline, "no 200 OK to the INVITE");
            if let Some(m) = self.recv(Duration::from_millis(100)) {
                if m.starts_with("SIP/2.0 200") && m.contains(" INVITE") {
                    break m;
                }
            }
        };
        let answer = ok.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let m_line = answer.lines().find(|l| l.starts_with("m=audio ")).expect("m=audio");
        assert!(m_line.ends_with(expected), "{m_line}");
        let port: u16 = m_line.split(' ').nth(1).and_then(|p| p.parse().ok()).expect("port");
        assert!((self.rtp_ports.0..=self.rtp_ports.1).contains(&port) && port.is_multiple_of(2), "{port}");
        self.ua_rtp = format!("127.0.0.1:{port}").parse().expect("addr");
        self.to = header(&ok, "To").expect("To").to_string();
        let ack = self.in_dialog("ACK", 1, "", "");
        self.send(&ack);
    }

    /// A request inside the call's dialog, from the caller.
    pub fn in_dialog(&self, method: &str, cseq: u32, extra: &str, body: &str) -> String {
        format!(
            "{method} sip:9000@{} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK{method}{cseq}\r\n\
             From: \"Gate\" <sip:2001@127.0.0.1>;tag=gate\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
             Max-Forwards: 70\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            self.ua_sip,
            self.pbx_addr,
            self.to,
            self.call_id,
            body.len()
        )
    }

    pub fn next_cseq(&mut self) -> u32 {
        self.next_cseq += 1;
        self.next_cseq
    }

    /// Receive whatever RTP voice-ua sent, for up to `wait`.
    pub fn drain_rtp(&self, into: &mut Vec<Received>, wait: Duration) {
        let until = Instant::now() + wait;
        loop {
            if let Some(packet) = self.recv_rtp(until) {
                into.push(packet);
            }
            if Instant::now() >= until {
                return;
            }
        }
    }

    /// [`drain_rtp`](Self::drain_rtp), with the instant each packet arrived (taken as the
    /// receive returns).
    pub fn drain_rtp_timed(&self, into: &mut Vec<Arrival>, wait: Duration) {
        let until = Instant::now() + wait;
        loop {
            if let Some(packet) = self.recv_rtp(until) {
                into.push((Instant::now(), packet));
            }
            if Instant::now() >= until {
                return;
            }
        }
    }

    /// One RTP packet from voice-ua, if one comes within 1 to 5 ms (as near `until` as
    /// that allows; the media socket's read timeout stays within that range).
    fn recv_rtp(&self, until: Instant) -> Option<Received> {
        let wait = until.saturating_duration_since(Instant::now());
        let _ =
            self.media.set_read_timeout(Some(wait.clamp(Duration::from_millis(1), Duration::from_millis(5))));
        let mut b = [0u8; 1500];
        let (len, from) = self.media.recv_from(&mut b).ok()?;
        assert_eq!(from, self.ua_rtp, "symmetric RTP: sent from the advertised port");
        (len >= 12).then(|| {
            (
                u16::from_be_bytes([b[2], b[3]]),
                u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                b[1] & 0x80 != 0,
                b[12..len].to_vec(),
            )
        })
    }

    /// Send one PCMU packet to voice-ua: sequence number `seq`, timestamp `seq` × 160.
    pub fn send_frame(&self, seq: u16, marker: bool, payload: &[u8]) {
        self.media.send_to(&rtp(0, seq, u32::from(seq) * 160, marker, payload), self.ua_rtp).expect("rtp");
    }

    /// Send `n` packets of μ-law silence at real-time pace, collecting what comes back.
    pub fn talk_silence(&self, first_seq: u16, n: u32, into: &mut Vec<Received>) {
        self.talk(first_seq, n, into, |_| false);
    }

    /// Send `n` μ-law packets at real-time pace, collecting what comes back: packet `i`
    /// (counted from 0) carries a 440 Hz tone at about -12 dBFS when `loud(i)`, else silence.
    pub fn talk(&self, first_seq: u16, n: u32, into: &mut Vec<Received>, loud: impl Fn(u32) -> bool) {
        let start = Instant::now();
        let tone = caller_tone();
        for i in 0..n {
            let seq = first_seq.wrapping_add(i as u16);
            let payload = if loud(i) { &tone } else { &[0xff; 160] };
            self.send_frame(seq, i == 0, payload);
            let due = start + Duration::from_millis(20 * (u64::from(i) + 1));
            self.drain_rtp(into, due.saturating_duration_since(Instant::now()));
        }
    }

    /// SIGTERM, wait for the exit, and return every log line.
    pub fn stop(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let _ = Command::new("kill").args(["-TERM", &self.ua.id().to_string()]).status();
        let status = self.ua.wait().expect("exit");
        let logs = self.logs.try_iter().collect();
        let _ = std::fs::remove_dir_all(&self.dir);
        (status, logs)
    }
}

/// How many of `got`'s payloads are exactly one of `chunks`.
pub fn exact_matches(got: &[Received], chunks: &[&[u8]]) -> usize {
    got.iter().filter(|p| chunks.contains(&p.3.as_slice())).count()
}

/// GET `path` over HTTP/1.1: (status code, body).
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    if path == "/metrics" {
        assert!(head.contains("Content-Type: text/plain; version=0.0.4"), "{head}");
    }
    Some((code, body.to_string()))
}

/// The value of one sample line (`name{labels} value`) of the exposition.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The newest call record in `db` once it is finished (the writer thread writes it
/// shortly after the call ends).
pub fn finished_record(db: &std::path::Path) -> voice_ua_records::CallRecord {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let newest = voice_ua_records::RecordStore::open_read_only(db)
            .ok()
            .and_then(|s| s.last(1).ok())
            .and_then(|mut v| v.pop());
        match newest {
            Some(r) if r.outcome != voice_ua_records::CallOutcome::InProgress => return r,
            other => assert!(std::time::Instant::now() < deadline, "no finished record in {db:?}: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Answer voice-ua's REFER (within `wait`) with 202 and a NOTIFY 200, then the BYE that
/// follows; the REFER and the BYE.
pub fn complete_transfer(call: &mut Call, wait: Duration) -> (String, String) {
    let refer = call.wait_request("REFER", wait);
    call.send(&reply(&refer, "202 Accepted", ""));
    let cseq = call.next_cseq();
    call.send(&call.in_dialog(
        "NOTIFY",
        cseq,
        "Event: refer\r\nSubscription-State: terminated;reason=noresource\r\nContent-Type: message/sipfrag\r\n",
        "SIP/2.0 200 OK\r\n",
    ));
    let bye = call.wait_request("BYE", Duration::from_secs(4));
    call.send(&reply(&bye, "200 OK", ""));
    (refer, bye)
}
