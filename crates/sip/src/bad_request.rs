//! A `400 Bad Request` for a request the SIP parser refused, built from the raw bytes
//! (RFC 3261 §8.2.6: copy Via, From, To, Call-ID and CSeq, add a To tag). When those
//! headers cannot be found, or the message is a response or an ACK, there is nobody
//! to answer and the caller drops it.

use crate::message::unfold;

/// The 400 to send back, or None when no response is possible.
pub fn bad_request_for(bytes: &[u8], reason: &str, to_tag: &str) -> Option<String> {
    let head_end = find(bytes, b"\r\n\r\n").unwrap_or(bytes.len()).min(16 * 1024);
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let lines = unfold(&head);
    let mut it = lines.iter();
    let start = it.next()?;
    let mut parts = start.split(' ');
    let method = parts.next()?;
    let _uri = parts.next()?;
    if parts.next() != Some("SIP/2.0")
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || method == "ACK"
    {
        return None;
    }
    let mut vias = Vec::new();
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    for line in it {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if value.contains(['\r', '\n']) {
            return None;
        }
        match name.trim().to_ascii_lowercase().as_str() {
            "via" | "v" => vias.push(value),
            "from" | "f" => from = Some(value),
            "to" | "t" => to = Some(value),
            "call-id" | "i" => call_id = Some(value),
            "cseq" => cseq = Some(value),
            _ => {}
        }
    }
    let (from, to, call_id, cseq) = (from?, to?, call_id?, cseq?);
    if vias.is_empty() {
        return None;
    }
    let reason = reason.replace(['\r', '\n'], " ");
    let mut out = String::from("SIP/2.0 400 Bad Request\r\n");
    for v in vias {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    out.push_str(&format!("From: {from}\r\n"));
    if to.to_ascii_lowercase().contains(";tag=") {
        out.push_str(&format!("To: {to}\r\n"));
    } else {
        out.push_str(&format!("To: {to};tag={to_tag}\r\n"));
    }
    out.push_str(&format!("Call-ID: {call_id}\r\nCSeq: {cseq}\r\n"));
    out.push_str(&format!("Warning: 399 voice-ua \"{}\"\r\n", reason.replace('"', "'")));
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_a_request_with_a_broken_header() {
        let req = b"OPTIONS sip:9000@127.0.0.1 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK1\r\n\
            v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0\r\n\
            From: <sip:a@b>;tag=1\r\nTo: <sip:9000@127.0.0.1>\r\n\
            Call-ID: abc\r\nCSeq: notanumber OPTIONS\r\nContent-Length: 99999\r\n\r\n";
        let r = bad_request_for(req, "bad CSeq", "t1").expect("answerable");
        assert!(r.starts_with("SIP/2.0 400 Bad Request\r\n"));
        assert!(r.contains("Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0\r\n"));
        assert!(r.contains("To: <sip:9000@127.0.0.1>;tag=t1\r\n"));
        assert!(r.contains("CSeq: notanumber OPTIONS\r\n"));
        assert!(r.contains("Call-ID: abc\r\n"));
        assert!(r.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn nobody_to_answer() {
        assert_eq!(bad_request_for(b"SIP/2.0 200 OK\r\n\r\n", "x", "t"), None);
        assert_eq!(
            bad_request_for(
                b"ACK sip:x SIP/2.0\r\nVia: a\r\nFrom: a\r\nTo: b\r\nCall-ID: c\r\nCSeq: 1 ACK\r\n\r\n",
                "x",
                "t"
            ),
            None
        );
        assert_eq!(bad_request_for(b"INVITE sip:x SIP/2.0\r\nFrom: a\r\nTo: b\r\n\r\n", "x", "t"), None);
        assert_eq!(bad_request_for(b"\x00\x01garbage", "x", "t"), None);
        assert_eq!(bad_request_for(b"", "x", "t"), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_never_answers_non_requests(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            if let Some(r) = bad_request_for(&bytes, "x", "t") {
                proptest::prop_assert!(r.starts_with("SIP/2.0 400 "));
            }
        }

        /// For a request with the headers a response needs, whatever else is broken,
        /// the 400 reads back as a response with the request's Call-ID and CSeq, and
        /// a line break in the reason never splits a header.
        #[test]
        fn a_400_reads_back_with_the_requests_ids(
            call_id in "[!-~]{1,30}", cseq in "[ -~]{1,20}", junk in "[ -~]{0,40}", reason in "[ -~\r\n]{0,40}",
        ) {
            let req = format!(
                "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\n\
                 To: <sip:a@b>\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nX-Junk: {junk}\r\n\r\n"
            );
            let r = bad_request_for(req.as_bytes(), &reason, "t").expect("answerable");
            let view = crate::message::ResponseView::parse(r.as_bytes()).expect("reads as a response");
            proptest::prop_assert_eq!(view.status, 400);
            proptest::prop_assert_eq!(view.header("Call-ID"), Some(call_id.as_str()));
            proptest::prop_assert_eq!(view.header("CSeq"), Some(cseq.trim()));
            proptest::prop_assert_eq!(r.matches("\r\n").count(), 9, "one line per header: {:?}", r);
        }
    }
}
