//! NAT keepalive between registrations: what to send to the PBX. A double CRLF
//! (RFC 5626 §3.5.1) costs the PBX nothing; an OPTIONS request (built here) is
//! answered, so it also tells the log whether the PBX is still there.

use crate::ids::IdSource;
use crate::settings::Transport;
use std::net::SocketAddr;

pub const CRLF_PING: &[u8] = b"\r\n\r\n";

/// An out-of-dialog OPTIONS to the registrar.
pub fn options_request(
    ids: &mut IdSource,
    extension: &str,
    domain: &str,
    contact: SocketAddr,
    transport: Transport,
    user_agent: &str,
) -> String {
    let tcp = transport == Transport::Tcp;
    format!(
        "OPTIONS sip:{domain}{tp} SIP/2.0\r\n\
         Via: SIP/2.0/{t} {contact};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{extension}@{domain}>;tag={tag}\r\n\
         To: <sip:{domain}>\r\n\
         Call-ID: {cid}@{host}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Contact: <sip:{extension}@{contact}{tp}>\r\n\
         User-Agent: {user_agent}\r\n\
         Content-Length: 0\r\n\r\n",
        tp = if tcp { ";transport=tcp" } else { "" },
        t = if tcp { "TCP" } else { "UDP" },
        branch = ids.hex(1),
        tag = ids.hex(1),
        cid = ids.hex(2),
        host = contact.ip(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_is_a_complete_request() {
        let mut ids = IdSource::from_seed(3);
        let r = options_request(
            &mut ids,
            "9000",
            "pbx:5070",
            "127.0.0.1:5062".parse().expect("a"),
            Transport::Udp,
            "ua",
        );
        assert!(r.starts_with("OPTIONS sip:pbx:5070 SIP/2.0\r\n"));
        for h in [
            "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK",
            "From: <sip:9000@pbx:5070>;tag=",
            "CSeq: 1 OPTIONS",
            "Call-ID: ",
        ] {
            assert!(r.contains(h), "{h} in {r}");
        }
        assert!(r.ends_with("\r\n\r\n"));
        let again = options_request(
            &mut ids,
            "9000",
            "pbx:5070",
            "127.0.0.1:5062".parse().expect("a"),
            Transport::Udp,
            "ua",
        );
        assert_ne!(r, again, "fresh identifiers each time");
    }
}
