//! The first look at a SIP datagram, on its raw bytes and before any full parse:
//! is it a keepalive, a request (which method, inside a dialog or not), a response,
//! or something the SIP parser would refuse (and why)? Cheap enough to run on every
//! datagram of a flood: one pass over the header lines, no allocation.
//!
//! It checks what a transaction needs (RFC 3261 §8.1.1: Via, From, To, Call-ID,
//! CSeq, a request line or status line) and that a UDP datagram holds the whole body
//! its Content-Length announces (§18.3). Sans-IO: bytes in, a [`Verdict`] out.

use std::fmt;

/// How long a header section may be before the datagram is refused (rsipstack reads
/// at most 64 KiB; no legitimate request of ours comes near this).
pub const MAX_HEAD: usize = 16 * 1024;

/// What a datagram is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// CRLF keepalives (RFC 5626 §4.4.1) and other whitespace.
    Keepalive,
    /// A well-formed request.
    Request {
        method: Method,
        /// The To header carries a tag: the request belongs to a dialog.
        in_dialog: bool,
    },
    /// A well-formed response.
    Response { status: u16 },
    /// Not a message a SIP parser would accept.
    Malformed(Defect),
}

/// The request methods voice-ua tells apart; anything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Update,
    Prack,
    Refer,
    Notify,
    Subscribe,
    Message,
    Publish,
    Other,
}

impl Method {
    fn from_token(t: &str) -> Method {
        match t {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "REFER" => Method::Refer,
            "NOTIFY" => Method::Notify,
            "SUBSCRIBE" => Method::Subscribe,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            _ => Method::Other,
        }
    }
}

/// Why a datagram is not a usable SIP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Defect {
    /// The header section is not UTF-8 text.
    NotText,
    /// No empty line ends the header section (within [`MAX_HEAD`] bytes).
    NoEndOfHeaders,
    /// The first line is neither a request line nor a status line.
    StartLine,
    /// A header line without a `name:`.
    HeaderLine,
    /// A header every transaction needs is missing.
    Missing(&'static str),
    /// A header that must appear once appears again.
    Repeated(&'static str),
    /// CSeq is not `number METHOD`.
    CSeq,
    /// The CSeq method is not the request's method.
    CSeqMethod,
    /// Content-Length is not a number.
    ContentLength,
    /// The datagram holds less body than Content-Length announces.
    Truncated,
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Defect::NotText => f.write_str("the header section is not UTF-8 text"),
            Defect::NoEndOfHeaders => f.write_str("no empty line ends the headers"),
            Defect::StartLine => f.write_str("the first line is not a SIP/2.0 request or status line"),
            Defect::HeaderLine => f.write_str("a header line has no name"),
            Defect::Missing(h) => write!(f, "no {h} header"),
            Defect::Repeated(h) => write!(f, "more than one {h} header"),
            Defect::CSeq => f.write_str("CSeq is not a number and a method"),
            Defect::CSeqMethod => f.write_str("the CSeq method is not the request's method"),
            Defect::ContentLength => f.write_str("Content-Length is not a number"),
            Defect::Truncated => f.write_str("the body is shorter than Content-Length"),
        }
    }
}

/// Look at one datagram. Never panics, allocates nothing.
pub fn screen(bytes: &[u8]) -> Verdict {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Verdict::Keepalive;
    }
    let Some((head_len, body_start)) = end_of_head(bytes) else {
        return Verdict::Malformed(Defect::NoEndOfHeaders);
    };
    let Some(head) = bytes.get(..head_len).and_then(|h| std::str::from_utf8(h).ok()) else {
        return Verdict::Malformed(Defect::NotText);
    };
    let body_len = bytes.len().saturating_sub(body_start);
    match check(head, body_len) {
        Ok(v) => v,
        Err(d) => Verdict::Malformed(d),
    }
}

/// (length of the header section, offset of the body), or None when no empty line
/// ends the headers within [`MAX_HEAD`]. Accepts bare LF line ends as parsers do.
fn end_of_head(bytes: &[u8]) -> Option<(usize, usize)> {
    let window = bytes.get(..bytes.len().min(MAX_HEAD + 4))?;
    let mut i = 0;
    while i < window.len() {
        if window[i] == b'\n' {
            if window.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if window.get(i + 1) == Some(&b'\r') && window.get(i + 2) == Some(&b'\n') {
                let end = if i > 0 && window[i - 1] == b'\r' { i - 1 } else { i };
                return Some((end, i + 3));
            }
        }
        i += 1;
    }
    None
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// What a message is once its start line and headers check out.
enum Start<'a> {
    Request(&'a str),
    Response(u16),
}

fn start_line(line: &str) -> Option<Start<'_>> {
    let mut parts = line.splitn(3, ' ');
    let (a, b) = (parts.next()?, parts.next()?);
    if a == "SIP/2.0" {
        // The reason phrase may be empty, and some servers drop the space before it.
        let status: u16 =
            (b.len() == 3 && b.bytes().all(|d| d.is_ascii_digit())).then(|| b.parse().ok())??;
        return (100..=699).contains(&status).then_some(Start::Response(status));
    }
    let uri_ok = !b.is_empty() && b.contains(':') && !b.bytes().any(|x| x.is_ascii_control());
    (is_token(a) && uri_ok && parts.next()? == "SIP/2.0").then_some(Start::Request(a))
}

fn check(head: &str, body_len: usize) -> Result<Verdict, Defect> {
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = start_line(lines.next().unwrap_or("")).ok_or(Defect::StartLine)?;
    let (mut via, mut from, mut to, mut call_id, mut cseq, mut length) =
        (false, false, None, false, None, None);
    let (mut to_tagged, mut in_to) = (false, false);
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // A folded continuation belongs to the header above it.
            to_tagged |= in_to && has_tag(line);
            continue;
        }
        in_to = false;
        let (name, value) = line.split_once(':').ok_or(Defect::HeaderLine)?;
        let name = name.trim_end_matches([' ', '\t']);
        if !is_token(name) {
            return Err(Defect::HeaderLine);
        }
        let value = value.trim();
        let once = |seen: bool, h: &'static str| if seen { Err(Defect::Repeated(h)) } else { Ok(true) };
        if eq(name, "Via") || eq(name, "v") {
            via = true;
        } else if eq(name, "From") || eq(name, "f") {
            from = once(from, "From")?;
        } else if eq(name, "To") || eq(name, "t") {
            if to.is_some() {
                return Err(Defect::Repeated("To"));
            }
            to = Some(value);
            to_tagged = has_tag(value);
            in_to = true;
        } else if eq(name, "Call-ID") || eq(name, "i") {
            call_id = once(call_id, "Call-ID")?;
        } else if eq(name, "CSeq") {
            if cseq.is_some() {
                return Err(Defect::Repeated("CSeq"));
            }
            cseq = Some(value);
        } else if eq(name, "Content-Length") || eq(name, "l") {
            if length.is_some() {
                return Err(Defect::Repeated("Content-Length"));
            }
            length = Some(value);
        }
    }
    for (present, h) in [(via, "Via"), (from, "From"), (to.is_some(), "To"), (call_id, "Call-ID")] {
        if !present {
            return Err(Defect::Missing(h));
        }
    }
    let cseq = cseq.ok_or(Defect::Missing("CSeq"))?;
    let (number, cseq_method) = cseq.split_once([' ', '\t']).ok_or(Defect::CSeq)?;
    let cseq_method = cseq_method.trim();
    let number_ok = !number.is_empty() && number.len() <= 10 && number.bytes().all(|d| d.is_ascii_digit());
    if !number_ok || number.parse::<u32>().is_err() || !is_token(cseq_method) {
        return Err(Defect::CSeq);
    }
    if let Some(length) = length {
        let n: usize =
            (!length.is_empty() && length.len() <= 10 && length.bytes().all(|d| d.is_ascii_digit()))
                .then(|| length.parse().ok())
                .flatten()
                .ok_or(Defect::ContentLength)?;
        if body_len < n {
            return Err(Defect::Truncated);
        }
    }
    Ok(match start {
        Start::Request(method) => {
            if cseq_method != method {
                return Err(Defect::CSeqMethod);
            }
            Verdict::Request { method: Method::from_token(method), in_dialog: to_tagged }
        }
        Start::Response(status) => Verdict::Response { status },
    })
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// `;tag=` anywhere in a header value, any case, without allocating.
fn has_tag(value: &str) -> bool {
    value
        .as_bytes()
        .windows(5)
        .any(|w| w.first() == Some(&b';') && w.get(1..).is_some_and(|t| t.eq_ignore_ascii_case(b"tag=")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "OPTIONS sip:9000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK1\r\n\
        From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:9000@127.0.0.1>\r\nCall-ID: abc\r\nCSeq: 1 OPTIONS\r\n\
        Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    fn with(from: &str, to: &str) -> String {
        GOOD.replace(from, to)
    }

    #[test]
    fn requests_responses_and_keepalives() {
        assert_eq!(screen(GOOD.as_bytes()), Verdict::Request { method: Method::Options, in_dialog: false });
        let bye = with("OPTIONS", "BYE").replace("127.0.0.1>\r\nCall", "127.0.0.1>;TAG=x\r\nCall");
        assert_eq!(screen(bye.as_bytes()), Verdict::Request { method: Method::Bye, in_dialog: true });
        let compact = "INVITE sip:a@b SIP/2.0\nv: SIP/2.0/UDP h\nf: <sip:x@y>;tag=1\nt: <sip:a@b>\ni: c\n\
            CSeq: 7 INVITE\nl: 4\n\nv=0\n";
        assert_eq!(screen(compact.as_bytes()), Verdict::Request { method: Method::Invite, in_dialog: false });
        let resp =
            "SIP/2.0 180 Ringing\r\nVia: a\r\nFrom: a\r\nTo: b;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
        assert_eq!(screen(resp.as_bytes()), Verdict::Response { status: 180 });
        let bare = resp.replace("180 Ringing", "180");
        assert_eq!(screen(bare.as_bytes()), Verdict::Response { status: 180 }, "no reason phrase");
        assert_eq!(screen(b"\r\n\r\n"), Verdict::Keepalive);
        assert_eq!(screen(b""), Verdict::Keepalive);
        let odd = with("OPTIONS sip", "FROB sip").replace("1 OPTIONS", "1 FROB");
        assert_eq!(screen(odd.as_bytes()), Verdict::Request { method: Method::Other, in_dialog: false });
    }

    #[test]
    fn each_defect_is_named() {
        let bad = |s: &str| match screen(s.as_bytes()) {
            Verdict::Malformed(d) => d,
            v => panic!("{v:?} for {s}"),
        };
        assert_eq!(bad(&with("CSeq: 1 OPTIONS", "CSeq: x OPTIONS")), Defect::CSeq);
        assert_eq!(bad(&with("CSeq: 1 OPTIONS", "CSeq: 99999999999 OPTIONS")), Defect::CSeq);
        assert_eq!(bad(&with("CSeq: 1 OPTIONS", "CSeq: 1 INVITE")), Defect::CSeqMethod);
        assert_eq!(
            bad(&with("Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK1\r\n", "")),
            Defect::Missing("Via")
        );
        assert_eq!(bad(&with("Call-ID: abc\r\n", "")), Defect::Missing("Call-ID"));
        assert_eq!(bad(&with("Call-ID: abc\r\n", "Call-ID: abc\r\ni: d\r\n")), Defect::Repeated("Call-ID"));
        assert_eq!(bad(&with("Content-Length: 0", "Content-Length: 10")), Defect::Truncated);
        assert_eq!(bad(&with("Content-Length: 0", "Content-Length: -1")), Defect::ContentLength);
        assert_eq!(bad(&with("SIP/2.0\r\nVia", "SIP/3.0\r\nVia")), Defect::StartLine);
        assert_eq!(bad(&with("Max-Forwards: 70", "Max-Forwards 70")), Defect::HeaderLine);
        assert_eq!(bad(&GOOD.replace("\r\n\r\n", "\r\n")), Defect::NoEndOfHeaders);
        assert_eq!(bad("\x16\x03\x01 garbage\r\n\r\n"), Defect::StartLine);
        assert_eq!(bad("SIP/2.0 99 Low\r\n\r\n"), Defect::StartLine);
        let mut not_text = GOOD.as_bytes().to_vec();
        not_text[40] = 0xff;
        assert_eq!(screen(&not_text), Verdict::Malformed(Defect::NotText));
        let long = format!("OPTIONS sip:a SIP/2.0\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(bad(&long), Defect::NoEndOfHeaders);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..800)) {
            let _ = screen(&bytes);
        }

        #[test]
        fn mangled_good_requests_never_panic_and_keep_their_method(
            cut in 0usize..400, byte in proptest::num::u8::ANY, at in 0usize..400,
        ) {
            let mut b = GOOD.as_bytes().to_vec();
            if let Some(x) = b.get_mut(at) { *x = byte; }
            b.truncate(cut.max(1));
            if let Verdict::Request { method, .. } = screen(&b) {
                proptest::prop_assert_eq!(method, Method::Options);
            }
        }
    }
}
