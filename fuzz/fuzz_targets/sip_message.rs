//! crates/sip's own SIP text reading (message.rs): the response reader, header lists,
//! name-addr, URIs, host:port and Via. Nothing may panic; a parsed response's fields
//! written back as a response read the same; split_host_port round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voice_ua_sip::message::{split_host_port, split_list, via_source, NameAddr, ResponseView, UriTarget};

fuzz_target!(|data: &[u8]| {
    if let Ok(view) = ResponseView::parse(data) {
        let _ = view.cseq();
        let _ = view.seconds("Expires");
        for v in view.header_values("Contact") {
            if let Some(na) = NameAddr::parse(v) {
                let _ = na.param("expires");
                let _ = UriTarget::parse(&na.uri);
            }
        }
        for via in view.header_lines("Via") {
            let _ = via_source(via);
        }
        // Round trip: the status line and headers written back read the same.
        let mut text = format!("SIP/2.0 {} {}\r\n", view.status, view.reason);
        for name in ["Via", "Contact", "CSeq", "Expires", "Min-Expires", "Call-ID"] {
            for v in view.header_lines(name) {
                text.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        text.push_str("\r\n");
        if !view.reason.contains(['\r', '\n']) {
            let again = ResponseView::parse(text.as_bytes()).expect("a written-back response parses");
            assert_eq!(again.status, view.status);
            assert_eq!(again.cseq(), view.cseq());
            assert_eq!(again.seconds("Expires"), view.seconds("Expires"));
        }
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    for element in split_list(text) {
        assert!(!element.is_empty());
        assert!(text.contains(element), "an element is a piece of the input");
    }
    let _ = NameAddr::parse(text);
    let _ = UriTarget::parse(text);
    let _ = via_source(text);
    if let Some((host, Some(port))) = split_host_port(text) {
        if !host.contains([':', '[', ']']) && !host.is_empty() && host.trim() == host {
            let written = format!("{host}:{port}");
            assert_eq!(split_host_port(&written), Some((host, Some(port))));
        }
    }
});
