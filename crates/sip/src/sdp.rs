//! SDP (RFC 4566/8866) as a telephone needs it: reading an offer or answer into a
//! small model (origin, connection address, audio/other m-lines, rtpmap, fmtp,
//! direction, ptime) and writing our own. Hostile input — missing `c=`, absurd
//! ports, unknown payloads, huge bodies — is an error value, never a panic.

use std::fmt::Write as _;
use std::net::IpAddr;

/// Bodies larger than this are refused before parsing.
pub const MAX_SDP_BYTES: usize = 16 * 1024;
const MAX_MEDIA: usize = 16;
const MAX_FORMATS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP body of {0} bytes is larger than {MAX_SDP_BYTES}")]
    TooLarge(usize),
    #[error("SDP is not UTF-8 text")]
    NotText,
    #[error("SDP line {line}: {why}")]
    Line { line: usize, why: &'static str },
    #[error("SDP has no v=0 line first")]
    NoVersion,
    #[error("SDP has too many m= lines or formats")]
    TooMany,
}

/// Media direction (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction to answer an offered one with, when we could do both ways.
    pub fn answer_to(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    pub fn we_send(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    pub fn we_receive(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// One `a=rtpmap` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub pt: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

/// One m= section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    pub kind: String,
    pub port: u16,
    pub proto: String,
    /// Formats in offer order (payload types for RTP profiles; others kept as text).
    pub formats: Vec<String>,
    pub connection: Option<IpAddr>,
    pub rtpmaps: Vec<RtpMap>,
    pub fmtps: Vec<(u8, String)>,
    pub direction: Option<Direction>,
    pub ptime: Option<u32>,
    pub rtcp_mux: bool,
}

impl MediaDescription {
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.pt == pt)
    }

    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.fmtps.iter().find(|(p, _)| *p == pt).map(|(_, v)| v.as_str())
    }

    /// Payload types as numbers, skipping anything that is not one.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| f.parse::<u8>().ok().filter(|pt| *pt < 128))
    }
}

/// A whole session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin_session_id: String,
    pub origin_version: u64,
    pub connection: Option<IpAddr>,
    pub direction: Option<Direction>,
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
        if body.len() > MAX_SDP_BYTES {
            return Err(SdpError::TooLarge(body.len()));
        }
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotText)?;
        let mut lines =
            text.split('\n').map(|l| l.trim_end_matches('\r')).enumerate().filter(|(_, l)| !l.is_empty());
        match lines.next() {
            Some((_, "v=0")) => {}
            _ => return Err(SdpError::NoVersion),
        }
        let mut sd = SessionDescription {
            origin_session_id: String::new(),
            origin_version: 0,
            connection: None,
            direction: None,
            media: Vec::new(),
        };
        for (i, line) in lines {
            let n = i + 1;
            let bad = |why| SdpError::Line { line: n, why };
            // RFC 8866 §9: no NUL, CR or LF inside a line (a bare CR would end a
            // line for some readers of an answer that copies it).
            if line.contains(['\0', '\r']) {
                return Err(bad("a NUL or CR inside the line"));
            }
            let (kind, value) = line.split_once('=').ok_or(bad("not type=value"))?;
            match kind {
                "o" => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    if f.len() != 6 {
                        return Err(bad("o= needs 6 fields"));
                    }
                    sd.origin_session_id = f[1].to_string();
                    sd.origin_version = f[2].parse().map_err(|_| bad("o= version is not a number"))?;
                }
                "c" => {
                    let addr = parse_connection(value).ok_or(bad("c= is not IN IP4/IP6 <address>"))?;
                    match sd.media.last_mut() {
                        Some(m) => m.connection = Some(addr),
                        None => sd.connection = Some(addr),
                    }
                }
                "m" => {
                    if sd.media.len() >= MAX_MEDIA {
                        return Err(SdpError::TooMany);
                    }
                    let mut f = value.split_whitespace();
                    let kind = f.next().ok_or(bad("m= has no media type"))?.to_string();
                    let port_field = f.next().ok_or(bad("m= has no port"))?;
                    let port_text = port_field.split('/').next().unwrap_or(port_field);
                    let port: u16 = port_text.parse().map_err(|_| bad("m= port is not a number"))?;
                    let proto = f.next().ok_or(bad("m= has no protocol"))?.to_string();
                    let formats: Vec<String> = f.map(str::to_string).collect();
                    if formats.len() > MAX_FORMATS {
                        return Err(SdpError::TooMany);
                    }
                    // An answer copies these back (a refused m= line): visible ASCII only.
                    let visible = |t: &str| t.bytes().all(|b| b.is_ascii_graphic());
                    if !visible(&kind) || !visible(&proto) || !formats.iter().all(|t| visible(t)) {
                        return Err(bad("m= fields must be visible ASCII"));
                    }
                    sd.media.push(MediaDescription {
                        kind,
                        port,
                        proto,
                        formats,
                        connection: None,
                        rtpmaps: Vec::new(),
                        fmtps: Vec::new(),
                        direction: None,
                        ptime: None,
                        rtcp_mux: false,
                    });
                }
                "a" => {
                    let (name, arg) = value.split_once(':').unwrap_or((value, ""));
                    let dir = match name {
                        "sendrecv" => Some(Direction::SendRecv),
                        "sendonly" => Some(Direction::SendOnly),
                        "recvonly" => Some(Direction::RecvOnly),
                        "inactive" => Some(Direction::Inactive),
                        _ => None,
                    };
                    let Some(m) = sd.media.last_mut() else {
                        if dir.is_some() {
                            sd.direction = dir;
                        }
                        continue;
                    };
                    if dir.is_some() {
                        m.direction = dir;
                        continue;
                    }
                    match name {
                        "rtpmap" => {
                            if let Some(map) = parse_rtpmap(arg) {
                                if m.rtpmaps.len() < MAX_FORMATS {
                                    m.rtpmaps.push(map);
                                }
                            }
                        }
                        "fmtp" => {
                            if let Some((pt, params)) = arg.split_once(' ') {
                                if let Ok(pt) = pt.parse::<u8>() {
                                    if m.fmtps.len() < MAX_FORMATS {
                                        m.fmtps.push((pt, params.trim().to_string()));
                                    }
                                }
                            }
                        }
                        "ptime" => m.ptime = arg.trim().parse().ok().filter(|p| (1..=1000).contains(p)),
                        "rtcp-mux" => m.rtcp_mux = true,
                        _ => {}
                    }
                }
                _ if kind.len() == 1 => {}
                _ => return Err(bad("type is not one letter")),
            }
        }
        Ok(sd)
    }

    /// The connection address in force for media `m`.
    pub fn connection_for(&self, m: &MediaDescription) -> Option<IpAddr> {
        m.connection.or(self.connection)
    }

    /// The direction in force for media `m` (media level wins, default sendrecv).
    pub fn direction_for(&self, m: &MediaDescription) -> Direction {
        m.direction.or(self.direction).unwrap_or_default()
    }
}

fn parse_connection(v: &str) -> Option<IpAddr> {
    let mut f = v.split_whitespace();
    if f.next()? != "IN" {
        return None;
    }
    let family = f.next()?;
    let addr = f.next()?.split('/').next()?;
    let ip: IpAddr = addr.parse().ok()?;
    match (family, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Some(ip),
        _ => None,
    }
}

fn parse_rtpmap(arg: &str) -> Option<RtpMap> {
    let (pt, rest) = arg.split_once(' ')?;
    let pt: u8 = pt.parse().ok().filter(|p| *p < 128)?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next()?.to_string();
    let clock_rate: u32 = parts.next()?.parse().ok().filter(|r| *r > 0)?;
    let channels = parts.next().and_then(|c| c.parse().ok());
    Some(RtpMap { pt, encoding, clock_rate, channels })
}

/// What we put in our own SDP (offer or answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSdp {
    pub session_id: u64,
    pub version: u64,
    pub addr: IpAddr,
    pub port: u16,
    /// (payload type, encoding, clock rate, fmtp)
    pub formats: Vec<(u8, &'static str, u32, Option<String>)>,
    pub direction: Direction,
    pub ptime: u32,
}

impl LocalSdp {
    pub fn render(&self) -> String {
        let fam = if self.addr.is_ipv4() { "IP4" } else { "IP6" };
        let mut s = format!(
            "v=0\r\no=voice-ua {} {} IN {fam} {}\r\ns=voice-ua\r\nc=IN {fam} {}\r\nt=0 0\r\nm=audio {} RTP/AVP",
            self.session_id, self.version, self.addr, self.addr, self.port
        );
        for (pt, ..) in &self.formats {
            let _ = write!(s, " {pt}");
        }
        s.push_str("\r\n");
        for (pt, enc, rate, fmtp) in &self.formats {
            let _ = write!(s, "a=rtpmap:{pt} {enc}/{rate}\r\n");
            if let Some(f) = fmtp {
                let _ = write!(s, "a=fmtp:{pt} {f}\r\n");
            }
        }
        let _ = write!(s, "a=ptime:{}\r\na={}\r\n", self.ptime, self.direction.as_str());
        s
    }
}

#[cfg(test)]
#[path = "sdp_tests.rs"]
mod tests;
