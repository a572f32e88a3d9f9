//! DTMF carried in SIP INFO (what PBXs in "SIP INFO" DTMF mode send):
//! `application/dtmf-relay` (`Signal=5\r\nDuration=160`) and `application/dtmf`
//! (the bare digit). Both are digits to the call, same as RFC 4733 events.

/// The digit in an INFO body, if the content type carries DTMF and the digit is valid.
pub fn digit_from_info(content_type: &str, body: &[u8]) -> Option<char> {
    let ct = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let text = std::str::from_utf8(body).ok()?;
    let raw = match ct.as_str() {
        "application/dtmf-relay" => text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?,
        "application/dtmf" => text.trim(),
        _ => return None,
    };
    normalize(raw)
}

/// "5", "*", "#", "A"-"D" (any case), and the RFC 4733 event numbers 10 (*) / 11 (#).
fn normalize(raw: &str) -> Option<char> {
    match raw {
        "10" => return Some('*'),
        "11" => return Some('#'),
        _ => {}
    }
    let mut chars = raw.chars();
    let c = chars.next()?.to_ascii_uppercase();
    if chars.next().is_some() {
        return None;
    }
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
}

#[cfg(test)]
mod tests {
    use super::digit_from_info;

    #[test]
    fn both_info_flavours_give_digits() {
        assert_eq!(digit_from_info("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n"), Some('5'));
        assert_eq!(digit_from_info("Application/DTMF-Relay; x=y", b"Duration=100\nsignal= #\n"), Some('#'));
        assert_eq!(digit_from_info("application/dtmf-relay", b"Signal=11\r\n"), Some('#'));
        assert_eq!(digit_from_info("application/dtmf", b"*"), Some('*'));
        assert_eq!(digit_from_info("application/dtmf", b"d\r\n"), Some('D'));
    }

    #[test]
    fn anything_else_is_not_a_digit() {
        assert_eq!(digit_from_info("application/sdp", b"Signal=5"), None);
        assert_eq!(digit_from_info("application/dtmf-relay", b"Signal=55"), None);
        assert_eq!(digit_from_info("application/dtmf-relay", b"Duration=100"), None);
        assert_eq!(digit_from_info("application/dtmf", b"E"), None);
        assert_eq!(digit_from_info("application/dtmf", &[0xff]), None);
        assert_eq!(digit_from_info("application/dtmf", b""), None);
    }

    const DIGITS: &str = "0123456789*#ABCD";

    proptest::proptest! {
        #[test]
        fn any_body_is_a_valid_digit_or_none(
            ct in proptest::sample::select(vec!["application/dtmf-relay", "application/dtmf", "text/plain", ""]),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        ) {
            if let Some(d) = digit_from_info(ct, &body) {
                proptest::prop_assert!(DIGITS.contains(d), "{:?}", d);
            }
        }

        /// Every digit, written either way a PBX writes it, reads back.
        #[test]
        fn every_digit_reads_back(
            i in 0usize..16, lower in proptest::bool::ANY, pad in "[ \t]{0,3}",
            duration in proptest::num::u16::ANY, crlf in proptest::bool::ANY,
        ) {
            let d = DIGITS.chars().nth(i).expect("a digit");
            let written = if lower { d.to_ascii_lowercase() } else { d };
            let nl = if crlf { "\r\n" } else { "\n" };
            let relay = format!("Signal={pad}{written}{pad}{nl}Duration={duration}{nl}");
            proptest::prop_assert_eq!(digit_from_info("application/dtmf-relay", relay.as_bytes()), Some(d));
            let bare = format!("{pad}{written}{nl}");
            proptest::prop_assert_eq!(digit_from_info("application/dtmf; charset=x", bare.as_bytes()), Some(d));
        }
    }
}
