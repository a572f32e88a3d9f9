//! The SIP messages of a sipp `-trace_msg` file, so the tests can assert on
//! what voice-ua actually answered (status codes, headers, SDP) rather
//! than only on sipp's exit code.
//!
//! The file is a sequence of blocks, each introduced by a line of dashes and
//! a timestamp, then `UDP message sent (N bytes):` or
//! `UDP message received [N] bytes :`, a blank line and the message.

use std::path::Path;

use super::logs;

#[derive(Clone, Debug)]
pub struct SipMsg {
    /// Sent by sipp (else received from voice-ua).
    pub sent: bool,
    /// When sipp logged it: seconds since midnight (from the block header).
    pub at: Option<f64>,
    pub text: String,
}

impl SipMsg {
    pub fn start_line(&self) -> &str {
        self.text.lines().next().unwrap_or_default().trim()
    }

    /// The status code of a response, `None` for a request.
    pub fn status(&self) -> Option<u16> {
        let line = self.start_line();
        line.strip_prefix("SIP/2.0 ")?.split_whitespace().next()?.parse().ok()
    }

    /// The method of a request, `None` for a response.
    pub fn method(&self) -> Option<&str> {
        if self.status().is_some() {
            return None;
        }
        self.start_line().split_whitespace().next()
    }

    fn head(&self) -> &str {
        self.text.split("\n\n").next().unwrap_or_default()
    }

    /// The first value of a header (case-insensitive name, compact forms
    /// not handled: voice-ua and sipp use the long ones).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers(name).into_iter().next()
    }

    /// All values of a header, in order.
    pub fn headers(&self, name: &str) -> Vec<&str> {
        self.head()
            .lines()
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect()
    }

    /// `(number, method)` of the CSeq header.
    pub fn cseq(&self) -> Option<(u32, String)> {
        let value = self.header("CSeq")?;
        let mut parts = value.split_whitespace();
        Some((parts.next()?.parse().ok()?, parts.next()?.to_string()))
    }

    pub fn body(&self) -> &str {
        self.text.split_once("\n\n").map(|(_, b)| b.trim()).unwrap_or_default()
    }

    /// The SDP lines of the body (empty without a body).
    pub fn sdp_lines(&self) -> Vec<&str> {
        self.body().lines().map(str::trim).filter(|l| l.len() > 2 && l.as_bytes()[1] == b'=').collect()
    }

    /// The audio m-line: port and payload types.
    pub fn sdp_audio(&self) -> Option<(u16, Vec<String>)> {
        let line = self.sdp_lines().into_iter().find_map(|l| l.strip_prefix("m=audio "))?;
        let mut parts = line.split_whitespace();
        let port = parts.next()?.parse().ok()?;
        let _proto = parts.next()?;
        Some((port, parts.map(str::to_string).collect()))
    }

    /// The connection address (`c=IN IP4 <addr>`).
    pub fn sdp_connection(&self) -> Option<String> {
        self.sdp_lines().into_iter().find_map(|l| l.strip_prefix("c=IN IP4 ")).map(|a| a.trim().to_string())
    }

    /// The `a=` attribute values named `name` (`a=rtpmap:0 PCMU/8000` ->
    /// `rtpmap` -> "0 PCMU/8000"; flags such as `a=sendrecv` -> "").
    pub fn sdp_attrs(&self, name: &str) -> Vec<String> {
        self.sdp_lines()
            .into_iter()
            .filter_map(|l| l.strip_prefix("a="))
            .filter_map(|a| match a.split_once(':') {
                Some((n, v)) if n == name => Some(v.trim().to_string()),
                None if a == name => Some(String::new()),
                _ => None,
            })
            .collect()
    }

    /// The media direction attribute (sendrecv when none is given).
    pub fn sdp_direction(&self) -> &'static str {
        for dir in ["sendrecv", "sendonly", "recvonly", "inactive"] {
            if !self.sdp_attrs(dir).is_empty() {
                return dir;
            }
        }
        "sendrecv"
    }
}

/// Every message in a `-trace_msg` file, in order.
pub fn parse(path: &Path) -> Vec<SipMsg> {
    parse_text(&logs::read(path))
}

fn parse_text(text: &str) -> Vec<SipMsg> {
    let mut out: Vec<SipMsg> = Vec::new();
    let mut current: Option<(bool, Option<f64>, Vec<&str>)> = None;
    let flush = |current: &mut Option<(bool, Option<f64>, Vec<&str>)>, out: &mut Vec<SipMsg>| {
        if let Some((sent, at, lines)) = current.take() {
            let body = lines.join("\n");
            let trimmed = body.trim_matches(|c| c == '\n' || c == '\r');
            if !trimmed.is_empty() {
                out.push(SipMsg { sent, at, text: trimmed.replace('\r', "") });
            }
        }
    };
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.starts_with("-----------------------------------------------") {
            flush(&mut current, &mut out);
            let at = time_of_day(line);
            let Some(kind) = lines.peek() else { break };
            // "Unexpected UDP message received:" blocks repeat a message
            // already traced: skip them
            let plain = kind.starts_with("UDP message") || kind.starts_with("TCP message");
            let sent = if plain && kind.contains("message sent") {
                Some(true)
            } else if plain && kind.contains("message received") {
                Some(false)
            } else {
                None
            };
            if let Some(sent) = sent {
                lines.next();
                current = Some((sent, at, Vec::new()));
            }
        } else if let Some((_, _, body)) = current.as_mut() {
            body.push(line);
        }
    }
    flush(&mut current, &mut out);
    out
}

/// "----- 2026-11-21 23:25:49.814785" -> seconds since midnight.
fn time_of_day(header: &str) -> Option<f64> {
    let clock = header.split_whitespace().last()?;
    let mut parts = clock.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Responses received (from voice-ua) whose CSeq method is `method`.
pub fn responses<'a>(msgs: &'a [SipMsg], method: &str) -> Vec<&'a SipMsg> {
    msgs.iter()
        .filter(|m| !m.sent && m.status().is_some())
        .filter(|m| m.cseq().is_some_and(|(_, meth)| meth == method))
        .collect()
}

/// A compact listing (direction, start line, CSeq) for failure messages.
pub fn summary(msgs: &[SipMsg]) -> String {
    msgs.iter()
        .map(|m| {
            format!(
                "{} {} [{}]\n",
                if m.sent { "sipp ->" } else { "sipp <-" },
                m.start_line(),
                m.header("CSeq").unwrap_or("?")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_trace_blocks_and_sdp() {
        let text = "----------------------------------------------- 2026-11-21 23:25:49.814785\n\
UDP message sent (624 bytes):\n\nINVITE sip:9000@127.0.0.1:5998 SIP/2.0\nCSeq: 1 INVITE\nContent-Length: 0\n\n\n\
----------------------------------------------- 2026-11-21 23:25:49.826496\n\
UDP message received [633] bytes :\n\nSIP/2.0 200 OK\nCSeq: 1 INVITE\nSession-Expires: 90;refresher=uac\n\
Content-Type: application/sdp\n\nv=0\nc=IN IP4 127.0.0.1\nm=audio 21000 RTP/AVP 0 101\n\
a=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\na=ptime:20\na=recvonly\n\n";
        let msgs = parse_text(text);
        assert_eq!(msgs.len(), 2);
        assert!(msgs[0].sent);
        assert_eq!(
            msgs[0].at.map(|t| (t * 1e6).round()),
            Some(((23.0 * 3600.0 + 25.0 * 60.0 + 49.814785) * 1e6_f64).round())
        );
        assert_eq!(msgs[0].method(), Some("INVITE"));
        let ok = &msgs[1];
        assert_eq!(ok.status(), Some(200));
        assert_eq!(ok.cseq(), Some((1, "INVITE".to_string())));
        assert_eq!(ok.header("session-expires"), Some("90;refresher=uac"));
        assert_eq!(ok.sdp_audio(), Some((21000, vec!["0".to_string(), "101".to_string()])));
        assert_eq!(ok.sdp_connection().as_deref(), Some("127.0.0.1"));
        assert_eq!(ok.sdp_attrs("rtpmap"), vec!["0 PCMU/8000", "101 telephone-event/8000"]);
        assert_eq!(ok.sdp_direction(), "recvonly");
        assert_eq!(responses(&msgs, "INVITE").len(), 1);
    }
}
