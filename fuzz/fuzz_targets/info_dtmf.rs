//! DTMF in SIP INFO bodies: the first byte picks the content type, the rest is the
//! body. Nothing may panic, a digit is always one of 0-9 * # A-D, and the digit
//! written back as either body type reads as the same digit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voice_ua_sip::info_dtmf::digit_from_info;

const TYPES: [&str; 4] =
    ["application/dtmf-relay", "application/dtmf", "Application/DTMF-Relay; x=1", "text/plain"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let content_type = TYPES[usize::from(pick) % TYPES.len()];
    let Some(digit) = digit_from_info(content_type, body) else { return };
    assert!(matches!(digit, '0'..='9' | '*' | '#' | 'A'..='D'), "{digit:?}");
    let relay = format!("Signal={digit}\r\nDuration=160\r\n");
    assert_eq!(digit_from_info("application/dtmf-relay", relay.as_bytes()), Some(digit));
    assert_eq!(digit_from_info("application/dtmf", digit.to_string().as_bytes()), Some(digit));
});
