//! The Reason header (RFC 3326) voice-ua puts on a BYE: which protocol's cause, the
//! cause code and a short text, written as the header's value.

use std::fmt;

/// Whose cause code a [`Reason`] carries (RFC 3326 `protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonProtocol {
    /// A SIP status code, e.g. 408.
    Sip,
    /// An ITU-T Q.850 cause, e.g. 16 (normal call clearing).
    Q850,
}

impl ReasonProtocol {
    /// The protocol's token in the header: `SIP` or `Q.850`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReasonProtocol::Sip => "SIP",
            ReasonProtocol::Q850 => "Q.850",
        }
    }
}

/// Why we ended a call, for the Reason header of our BYE. `Display` writes the header
/// value: `SIP;cause=408;text="session timer expired"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reason {
    pub protocol: ReasonProtocol,
    pub cause: u16,
    /// A short phrase; quotes and backslashes are escaped and control characters
    /// replaced when written.
    pub text: &'static str,
}

impl Reason {
    /// A SIP status code as the cause.
    pub const fn sip(cause: u16, text: &'static str) -> Reason {
        Reason { protocol: ReasonProtocol::Sip, cause, text }
    }

    /// A Q.850 cause.
    pub const fn q850(cause: u16, text: &'static str) -> Reason {
        Reason { protocol: ReasonProtocol::Q850, cause, text }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{};cause={};text=\"", self.protocol.as_str(), self.cause)?;
        // A quoted-string (RFC 3261 25.1): `"` and `\` as quoted pairs; no line breaks
        // or other control characters, which could end the header.
        for c in self.text.chars() {
            match c {
                '"' | '\\' => write!(f, "\\{c}")?,
                c if c.is_control() => f.write_str(" ")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_value_names_protocol_cause_and_text() {
        assert_eq!(
            Reason::sip(408, "session timer expired").to_string(),
            "SIP;cause=408;text=\"session timer expired\""
        );
        assert_eq!(
            Reason::q850(16, "voice-ua stopping").to_string(),
            "Q.850;cause=16;text=\"voice-ua stopping\""
        );
        assert_eq!(Reason::q850(102, "").to_string(), "Q.850;cause=102;text=\"\"");
    }

    #[test]
    fn the_text_cannot_break_out_of_its_quotes_or_the_header() {
        let r = Reason::sip(480, "say \"no\" \\ then\r\nVia: x");
        assert_eq!(r.to_string(), "SIP;cause=480;text=\"say \\\"no\\\" \\\\ then  Via: x\"");
        assert!(!r.to_string().contains('\n'));
    }
}
