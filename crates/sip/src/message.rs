//! The small amount of SIP text the sans-IO cores read and write themselves: a
//! response reader (status, headers with compact names unfolded), header lists split
//! at top-level commas, Contact and Via parameters, and sip-URI host/port. It is
//! deliberately lenient and never panics: the transport's full parser has already
//! accepted what reaches here.

use std::net::{IpAddr, SocketAddr};

/// Why bytes were not a SIP response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("not a SIP response status line")]
    BadStatusLine,
    #[error("the message is not UTF-8 text")]
    NotText,
}

/// A parsed response: status code and headers (full names, in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseView {
    pub status: u16,
    pub reason: String,
    headers: Vec<(String, String)>,
}

impl ResponseView {
    /// Read a response from its wire bytes (the body, if any, is ignored).
    pub fn parse(bytes: &[u8]) -> Result<ResponseView, MessageError> {
        let text = std::str::from_utf8(bytes).map_err(|_| MessageError::NotText)?;
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        let mut lines = unfold(head).into_iter();
        let status_line = lines.next().ok_or(MessageError::BadStatusLine)?;
        let mut parts = status_line.splitn(3, ' ');
        if parts.next() != Some("SIP/2.0") {
            return Err(MessageError::BadStatusLine);
        }
        let status = parts
            .next()
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (100..700).contains(c))
            .ok_or(MessageError::BadStatusLine)?;
        let reason = parts.next().unwrap_or("").to_string();
        let headers = lines
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                Some((full_name(n.trim()).to_string(), v.trim().to_string()))
            })
            .collect();
        Ok(ResponseView { status, reason, headers })
    }

    /// Every value of header `name` (case-insensitive, full name), one per header line.
    pub fn header_lines<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = name.to_string();
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(&name)).map(|(_, v)| v.as_str())
    }

    /// Every comma-separated element of header `name` across all its lines.
    pub fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.header_lines(name).flat_map(split_list)
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_lines(name).next()
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, &str)> {
        let v = self.header("CSeq")?;
        let (n, m) = v.split_once(char::is_whitespace)?;
        Some((n.trim().parse().ok()?, m.trim()))
    }

    /// A header holding a number of seconds (Expires, Min-Expires, Retry-After).
    pub fn seconds(&self, name: &str) -> Option<u32> {
        let v = self.header(name)?;
        let digits = v.split(|c: char| !c.is_ascii_digit()).next()?;
        digits.parse().ok()
    }
}

fn full_name(n: &str) -> &str {
    match n {
        "v" | "V" => "Via",
        "m" | "M" => "Contact",
        "f" | "F" => "From",
        "t" | "T" => "To",
        "i" | "I" => "Call-ID",
        "l" | "L" => "Content-Length",
        "c" | "C" => "Content-Type",
        "k" | "K" => "Supported",
        other => other,
    }
}

/// Lines of a header block, with RFC 3261 line folding undone.
pub(crate) fn unfold(head: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in head.split("\r\n").flat_map(|l| l.split('\n')) {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
                continue;
            }
        }
        if !line.is_empty() {
            out.push(line.to_string());
        }
    }
    out
}

/// Split a header value at commas that are outside quotes and `<…>`.
pub fn split_list(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut in_quote, mut in_angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in v.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            ',' if !in_quote && !in_angle => {
                let part = v[start..i].trim();
                if !part.is_empty() {
                    out.push(part);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = v[start..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    out
}

/// A Contact (or From/To) element: its URI and the header parameters after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub uri: String,
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    pub fn parse(v: &str) -> Option<NameAddr> {
        let v = v.trim();
        let (uri, rest) = match (v.find('<'), v.find('>')) {
            (Some(a), Some(b)) if a < b => (&v[a + 1..b], &v[b + 1..]),
            _ => match v.find(';') {
                Some(i) => (&v[..i], &v[i..]),
                None => (v, ""),
            },
        };
        Some(NameAddr { uri: uri.trim().to_string(), params: params(rest) })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }
}

/// `;a=1;b;c="x"` → [(a, Some(1)), (b, None), (c, Some(x))].
fn params(s: &str) -> Vec<(String, Option<String>)> {
    s.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((n, v)) => (n.trim().to_string(), Some(v.trim().trim_matches('"').to_string())),
            None => (p.to_string(), None),
        })
        .collect()
}

/// User, host and port of a `sip:`/`sips:` URI (port defaulted to 5060/5061).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: u16,
}

impl UriTarget {
    pub fn parse(uri: &str) -> Option<UriTarget> {
        let (default_port, rest) = if let Some(r) = strip_prefix_ci(uri, "sips:") {
            (5061, r)
        } else {
            (5060, strip_prefix_ci(uri, "sip:")?)
        };
        let rest = rest.split([';', '?']).next().unwrap_or("");
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u.split(':').next().unwrap_or(u).to_string()), h),
            None => (None, rest),
        };
        let (host, port) = split_host_port(hostport)?;
        Some(UriTarget { user, host: host.to_ascii_lowercase(), port: port.unwrap_or(default_port) })
    }

    /// The same place as `addr`, comparing IP text exactly.
    pub fn is_at(&self, addr: SocketAddr) -> bool {
        self.port == addr.port() && self.host.parse::<IpAddr>().ok() == Some(addr.ip())
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    match (s.get(..prefix.len()), s.get(prefix.len()..)) {
        (Some(head), Some(rest)) if head.eq_ignore_ascii_case(prefix) => Some(rest),
        _ => None,
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
pub fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Some(r) = s.strip_prefix('[') {
        let (h, after) = r.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((h, port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, Some(p.parse().ok()?))),
        Some(_) => Some((s, None)), // bare IPv6
        None => Some((s, None)),
    }
}

/// What the top Via of a response says about where the request came from
/// (RFC 3581 `received` and `rport`), if the server filled both in.
pub fn via_source(via: &str) -> Option<SocketAddr> {
    let (_sent_by, rest) = via.split_once(';')?;
    let ps = params(&format!(";{rest}"));
    let get = |n: &str| ps.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).and_then(|(_, v)| v.clone());
    let ip: IpAddr = get("received")?.parse().ok()?;
    let port: u16 = get("rport")?.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "SIP/2.0 200 OK\r\n\
        v: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKabc;rport=5062;received=127.0.0.1\r\n\
        From: <sip:9000@pbx>;tag=1\r\nTo: <sip:9000@pbx>;tag=2\r\nCall-ID: x@y\r\n\
        CSeq: 7 REGISTER\r\n\
        Contact: <sip:9001@10.0.0.9:5060>;expires=100, \"A, B\" <sip:9000@127.0.0.1:5062>;expires=20\r\n\
        Contact: <sip:9000@127.0.0.1:5099>\r\n  ;expires=30\r\n\
        Expires: 60\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn reads_status_headers_lists_and_folding() {
        let r = ResponseView::parse(OK.as_bytes()).expect("parses");
        assert_eq!(r.status, 200);
        assert_eq!(r.cseq(), Some((7, "REGISTER")));
        assert_eq!(r.seconds("Expires"), Some(60));
        let contacts: Vec<_> = r.header_values("Contact").collect();
        assert_eq!(contacts.len(), 3, "{contacts:?}");
        let second = NameAddr::parse(contacts[1]).expect("contact");
        assert_eq!(second.uri, "sip:9000@127.0.0.1:5062");
        assert_eq!(second.param("expires"), Some("20"));
        let third = NameAddr::parse(contacts[2]).expect("contact");
        assert_eq!(third.param("expires"), Some("30"));
        let via = r.header("Via").expect("compact v: is Via");
        assert_eq!(via_source(via), Some("127.0.0.1:5062".parse().expect("addr")));
    }

    #[test]
    fn uri_targets() {
        let t = UriTarget::parse("sip:9000@127.0.0.1:5062;transport=tcp").expect("uri");
        assert_eq!(t.user.as_deref(), Some("9000"));
        assert!(t.is_at("127.0.0.1:5062".parse().expect("addr")));
        let t = UriTarget::parse("SIP:pbx.example.org").expect("uri");
        assert_eq!((t.host.as_str(), t.port), ("pbx.example.org", 5060));
        let t = UriTarget::parse("sip:9000@[::1]:5070").expect("uri");
        assert_eq!((t.host.as_str(), t.port), ("::1", 5070));
        assert_eq!(UriTarget::parse("tel:+123"), None);
        assert_eq!(UriTarget::parse("sip:9000@host:notaport"), None);
    }

    #[test]
    fn bad_responses_are_errors() {
        assert_eq!(ResponseView::parse(b"INVITE sip:x SIP/2.0\r\n\r\n"), Err(MessageError::BadStatusLine));
        assert_eq!(ResponseView::parse(b"SIP/2.0 abc OK\r\n"), Err(MessageError::BadStatusLine));
        assert_eq!(ResponseView::parse(&[0xff, 0xfe]), Err(MessageError::NotText));
        assert_eq!(via_source("SIP/2.0/UDP 1.2.3.4;rport"), None);
    }

    proptest::proptest! {
        /// A response written the way servers write them reads back: status, reason,
        /// every header value (compact names under their full name), lists split.
        #[test]
        fn a_written_response_reads_back(
            status in 100u16..700, reason in "[ -~]{0,20}",
            headers in proptest::collection::vec(("[A-Za-z][A-Za-z-]{1,12}", "[!-~]([ -~]{0,20}[!-~])?"), 0..8),
            expires in proptest::num::u32::ANY, cseq in proptest::num::u32::ANY, folded in proptest::bool::ANY,
        ) {
            let ours = ["cseq", "expires", "contact"];
            proptest::prop_assume!(headers.iter().all(|(n, _)| !ours.contains(&full_name(n).to_ascii_lowercase().as_str())));
            let mut text = format!("SIP/2.0 {status} {reason}\r\nCSeq: {cseq} REGISTER\r\n");
            for (n, v) in &headers {
                text.push_str(&format!("{n}: {v}\r\n"));
            }
            let fold = if folded { "\r\n " } else { " " };
            text.push_str(&format!("m: <sip:a@b>;{fold}expires={expires}\r\nExpires: {expires}\r\n\r\nbody"));
            let r = ResponseView::parse(text.as_bytes()).expect("reads");
            proptest::prop_assert_eq!(r.status, status);
            proptest::prop_assert_eq!(r.reason.as_str(), reason.as_str());
            proptest::prop_assert_eq!(r.cseq(), Some((cseq, "REGISTER")));
            for (n, v) in &headers {
                let lines: Vec<&str> = r.header_lines(full_name(n)).collect();
                proptest::prop_assert!(lines.contains(&v.as_str()), "{} missing: {:?}", v, lines);
            }
            let contact = r.header_lines("Contact").last().and_then(NameAddr::parse).expect("contact");
            let want = expires.to_string();
            proptest::prop_assert_eq!(contact.param("expires"), Some(want.as_str()));
            proptest::prop_assert_eq!(r.seconds("Expires"), Some(expires));
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let mut b = b"SIP/2.0 200 OK\r\n".to_vec();
            b.extend(bytes);
            if let Ok(r) = ResponseView::parse(&b) {
                let _ = (r.cseq(), r.seconds("Expires"), r.header_values("Via").count());
            }
        }

        #[test]
        fn never_panics(s in ".{0,300}") {
            if let Ok(r) = ResponseView::parse(s.as_bytes()) {
                let _ = r.cseq();
                for c in r.header_values("Contact") { let _ = NameAddr::parse(c).map(|n| UriTarget::parse(&n.uri)); }
            }
            let _ = split_list(&s);
            let _ = via_source(&s);
            let _ = UriTarget::parse(&s);
            let _ = NameAddr::parse(&s);
        }
    }
}
