//! RFC 3264 offer/answer for one call's audio: pick the codec from our preference
//! list, add telephone-event when offered, answer hold (`sendonly` → `recvonly`,
//! `inactive`), follow a new remote address or codec in a re-offer, and keep our
//! o= version honest (it grows only when our SDP changes, so a session refresh gets
//! the very same answer back). Sans-IO: bytes in, a `MediaPlan` and SDP text out.

use crate::sdp::{Direction, MediaDescription, SdpError, SessionDescription};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// A codec voice-ua can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Pcmu,
    Pcma,
    G722,
}

impl Codec {
    pub fn encoding(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
        }
    }

    pub fn static_pt(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
            Codec::G722 => 9,
        }
    }

    /// RTP clock rate as written in SDP (G.722 keeps 8000 for history, RFC 3551 §4.5.2).
    pub fn rtp_clock(self) -> u32 {
        8000
    }

    pub fn parse(name: &str) -> Option<Codec> {
        match name.to_ascii_uppercase().as_str() {
            "PCMU" => Some(Codec::Pcmu),
            "PCMA" => Some(Codec::Pcma),
            "G722" => Some(Codec::G722),
            _ => None,
        }
    }

    /// The payload type `m` uses for this codec, if it offers it.
    fn find_in(self, m: &MediaDescription) -> Option<u8> {
        m.payload_types().find(|&pt| match m.rtpmap(pt) {
            Some(map) => Codec::parse(&map.encoding) == Some(self) && map.clock_rate == self.rtp_clock(),
            None => pt == self.static_pt(),
        })
    }
}

/// What the media layer should do after a negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPlan {
    /// Where to send RTP; None while the peer asked us not to send (hold, port 0).
    pub remote: Option<SocketAddr>,
    pub codec: Codec,
    pub pt: u8,
    /// RFC 4733 telephone-event payload type, when both sides have it.
    pub dtmf_pt: Option<u8>,
    /// Our direction.
    pub direction: Direction,
    pub ptime: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error("unreadable SDP: {0}")]
    Sdp(#[from] SdpError),
    #[error("the offer has no usable audio stream")]
    NoAudio,
    #[error("no codec in common (offered: {offered}; voice-ua takes {ours})")]
    NoCommonCodec { offered: String, ours: String },
    #[error("the audio stream has no connection address (c=)")]
    NoConnection,
    #[error("the answer does not match our offer")]
    AnswerMismatch,
}

impl NegotiationError {
    /// The SIP status to refuse the offer with.
    pub fn status(&self) -> u16 {
        match self {
            NegotiationError::Sdp(_) => 400,
            _ => 488,
        }
    }
}

/// One call's offer/answer state.
#[derive(Debug, Clone)]
pub struct OfferAnswer {
    prefs: Vec<Codec>,
    local_addr: IpAddr,
    local_port: u16,
    session_id: u64,
    version: u64,
    last_body: Option<String>,
    current: Option<MediaPlan>,
    /// The payload type we use for telephone-event in our own offers.
    dtmf_pt: u8,
}

const PTIME: u32 = 20;

impl OfferAnswer {
    pub fn new(prefs: Vec<Codec>, local: SocketAddr, session_id: u64) -> OfferAnswer {
        OfferAnswer {
            prefs,
            local_addr: local.ip(),
            local_port: local.port(),
            session_id,
            version: session_id,
            last_body: None,
            current: None,
            dtmf_pt: 101,
        }
    }

    pub fn current(&self) -> Option<&MediaPlan> {
        self.current.as_ref()
    }

    /// Answer an offer (initial INVITE, re-INVITE or UPDATE).
    pub fn answer(&mut self, offer: &[u8]) -> Result<(MediaPlan, String), NegotiationError> {
        let sd = SessionDescription::parse(offer)?;
        let idx = sd
            .media
            .iter()
            .position(|m| m.kind == "audio" && m.port != 0 && m.proto.starts_with("RTP/AVP"))
            .ok_or(NegotiationError::NoAudio)?;
        let m = &sd.media[idx];
        // Keep the codec in use when the re-offer still has it; else our preference order.
        let keep = self.current.as_ref().map(|c| c.codec).filter(|c| c.find_in(m).is_some());
        let codec = keep.or_else(|| self.prefs.iter().copied().find(|c| c.find_in(m).is_some())).ok_or_else(
            || NegotiationError::NoCommonCodec {
                offered: describe_formats(m),
                ours: self.prefs.iter().map(|c| c.encoding()).collect::<Vec<_>>().join(", "),
            },
        )?;
        let pt = codec.find_in(m).ok_or(NegotiationError::AnswerMismatch)?;
        let dtmf_pt = telephone_event_pt(m);
        let conn = sd.connection_for(m).ok_or(NegotiationError::NoConnection)?;
        let offered_dir = sd.direction_for(m);
        let mut direction = offered_dir.answer_to();
        // RFC 2543-style hold: c=0.0.0.0 means "do not send to me".
        let remote = if conn.is_unspecified() {
            direction = match direction {
                Direction::SendRecv | Direction::RecvOnly => Direction::RecvOnly,
                _ => Direction::Inactive,
            };
            None
        } else {
            Some(SocketAddr::new(conn, m.port))
        };
        let plan = MediaPlan { remote, codec, pt, dtmf_pt, direction, ptime: PTIME };
        let body = self.render_answer(&sd, idx, &plan);
        self.current = Some(plan.clone());
        Ok((plan, body))
    }

    /// Our offer, for an INVITE that came without SDP (answer arrives in the ACK).
    pub fn offer(&mut self) -> String {
        let mut formats: Vec<(u8, &str, Option<&str>)> =
            self.prefs.iter().map(|c| (c.static_pt(), c.encoding(), None)).collect();
        formats.push((self.dtmf_pt, "telephone-event", Some("0-16")));
        let direction = self.current.as_ref().map(|c| c.direction).unwrap_or_default();
        let body = self.render(&[MLine::Ours { formats, direction }]);
        self.finish(body)
    }

    /// Our last SDP again, version unchanged: the body of a session refresh
    /// (RFC 4028 §7.4: a refresh changes nothing). None before any SDP was sent.
    pub fn refresh_offer(&self) -> Option<String> {
        self.last_body.as_ref().map(|b| b.replacen("{VERSION}", &self.version.to_string(), 1))
    }

    /// The peer's answer to our offer.
    pub fn accept_answer(&mut self, answer: &[u8]) -> Result<MediaPlan, NegotiationError> {
        let sd = SessionDescription::parse(answer)?;
        let m =
            sd.media.iter().find(|m| m.kind == "audio" && m.port != 0).ok_or(NegotiationError::NoAudio)?;
        let codec = m
            .payload_types()
            .find_map(|pt| {
                let c = match m.rtpmap(pt) {
                    Some(map) => Codec::parse(&map.encoding),
                    None => self.prefs.iter().copied().find(|c| c.static_pt() == pt),
                }?;
                self.prefs.contains(&c).then_some((c, pt))
            })
            .ok_or(NegotiationError::AnswerMismatch)?;
        let conn = sd.connection_for(m).ok_or(NegotiationError::NoConnection)?;
        let direction = sd.direction_for(m).answer_to();
        let remote = (!conn.is_unspecified()).then(|| SocketAddr::new(conn, m.port));
        let plan = MediaPlan {
            remote,
            codec: codec.0,
            pt: codec.1,
            dtmf_pt: telephone_event_pt(m),
            direction,
            ptime: PTIME,
        };
        self.current = Some(plan.clone());
        Ok(plan)
    }

    fn render_answer(&mut self, sd: &SessionDescription, idx: usize, plan: &MediaPlan) -> String {
        let lines: Vec<MLine> = sd
            .media
            .iter()
            .enumerate()
            .map(|(i, m)| {
                if i == idx {
                    let mut formats = vec![(plan.pt, plan.codec.encoding(), None)];
                    if let Some(dt) = plan.dtmf_pt {
                        formats.push((dt, "telephone-event", Some("0-16")));
                    }
                    MLine::Ours { formats, direction: plan.direction }
                } else {
                    MLine::Rejected {
                        kind: m.kind.clone(),
                        proto: m.proto.clone(),
                        fmt: m.formats.first().cloned(),
                    }
                }
            })
            .collect();
        let body = self.render(&lines);
        self.finish(body)
    }

    /// Bump the o= version only when the SDP changed (RFC 3264 §8).
    fn finish(&mut self, body_without_version: String) -> String {
        if self.last_body.as_deref() != Some(body_without_version.as_str()) {
            if self.last_body.is_some() {
                self.version += 1;
            }
            self.last_body = Some(body_without_version.clone());
        }
        body_without_version.replacen("{VERSION}", &self.version.to_string(), 1)
    }

    fn render(&self, lines: &[MLine]) -> String {
        let fam = if self.local_addr.is_ipv4() { "IP4" } else { "IP6" };
        let mut s = format!(
            "v=0\r\no=voice-ua {} {{VERSION}} IN {fam} {a}\r\ns=voice-ua\r\nc=IN {fam} {a}\r\nt=0 0\r\n",
            self.session_id,
            a = self.local_addr
        );
        for line in lines {
            match line {
                MLine::Ours { formats, direction } => {
                    let _ = write!(s, "m=audio {} RTP/AVP", self.local_port);
                    for (pt, ..) in formats {
                        let _ = write!(s, " {pt}");
                    }
                    s.push_str("\r\n");
                    for (pt, enc, fmtp) in formats {
                        let _ = write!(s, "a=rtpmap:{pt} {enc}/8000\r\n");
                        if let Some(f) = fmtp {
                            let _ = write!(s, "a=fmtp:{pt} {f}\r\n");
                        }
                    }
                    let _ = write!(s, "a=ptime:{PTIME}\r\na={}\r\n", direction.as_str());
                }
                MLine::Rejected { kind, proto, fmt } => {
                    let _ = write!(s, "m={kind} 0 {proto} {}\r\n", fmt.as_deref().unwrap_or("0"));
                }
            }
        }
        s
    }
}

enum MLine<'a> {
    Ours { formats: Vec<(u8, &'a str, Option<&'a str>)>, direction: Direction },
    Rejected { kind: String, proto: String, fmt: Option<String> },
}

fn telephone_event_pt(m: &MediaDescription) -> Option<u8> {
    m.payload_types().find(|&pt| {
        m.rtpmap(pt)
            .is_some_and(|r| r.encoding.eq_ignore_ascii_case("telephone-event") && r.clock_rate == 8000)
    })
}

fn describe_formats(m: &MediaDescription) -> String {
    m.formats
        .iter()
        .map(|f| match f.parse::<u8>().ok().and_then(|pt| m.rtpmap(pt)) {
            Some(map) => format!("{}/{}", map.encoding, map.clock_rate),
            None => f.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[path = "negotiate_tests.rs"]
mod tests;
