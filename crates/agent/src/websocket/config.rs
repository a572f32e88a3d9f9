//! [`WebSocketConfig`]: where the bot is (`wss://`, or `ws://` to loopback only), which
//! [`Dialect`] it speaks, the headers the upgrade carries (their values are secrets:
//! masked in `Debug`), the Twilio custom parameters and the connect timeout.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The default connect timeout (TCP + TLS + upgrade).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The protocol the bot speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Twilio Media Streams (JSON text frames, base64 μ-law).
    Twilio,
    /// The Audio Session Protocol of theo-ai-voice-agent (JSON control, binary PCM16).
    Asp,
}

impl Dialect {
    /// `twilio` or `asp`, as configured.
    pub const fn as_str(self) -> &'static str {
        match self {
            Dialect::Twilio => "twilio",
            Dialect::Asp => "asp",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Dialect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "twilio" => Ok(Dialect::Twilio),
            "asp" => Ok(Dialect::Asp),
            other => Err(format!("unknown dialect {other:?}: use twilio or asp")),
        }
    }
}

/// A WebSocket bot's settings for every call.
#[derive(Clone, PartialEq, Eq)]
pub struct WebSocketConfig {
    /// The bot's URL; `ws://` only for loopback hosts.
    pub url: String,
    /// What it speaks.
    pub dialect: Dialect,
    /// Extra headers on the upgrade request (`Authorization`). Values are never logged.
    pub headers: Vec<(String, String)>,
    /// Twilio's `start.customParameters` beyond voice-ua's own.
    pub custom_parameters: Vec<(String, String)>,
    /// TCP + TLS + upgrade within this, or the call falls back.
    pub connect_timeout: Duration,
    /// A PEM file of CA certificates trusted in addition to the webpki roots.
    pub extra_ca_file: Option<PathBuf>,
}

impl WebSocketConfig {
    /// `url` in `dialect`, no headers or parameters, the default timeout.
    pub fn new(url: impl Into<String>, dialect: Dialect) -> WebSocketConfig {
        WebSocketConfig {
            url: url.into(),
            dialect,
            headers: Vec::new(),
            custom_parameters: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            extra_ca_file: None,
        }
    }

    /// Add a header to the upgrade request.
    pub fn header(mut self, name: &str, value: &str) -> WebSocketConfig {
        self.headers.push((name.into(), value.into()));
        self
    }
}

impl fmt::Debug for WebSocketConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<String> = self.headers.iter().map(|(k, _)| format!("{k}: ****")).collect();
        f.debug_struct("WebSocketConfig")
            .field("url", &self.url)
            .field("dialect", &self.dialect)
            .field("headers", &headers)
            .field("custom_parameters", &self.custom_parameters)
            .field("connect_timeout", &self.connect_timeout)
            .field("extra_ca_file", &self.extra_ca_file)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_masked() {
        let c =
            WebSocketConfig::new("wss://bot/ws", Dialect::Twilio).header("Authorization", "Bearer s3cr3t");
        let shown = format!("{c:?}");
        assert!(shown.contains("Authorization: ****") && !shown.contains("s3cr3t"), "{shown}");
        assert_eq!("asp".parse::<Dialect>(), Ok(Dialect::Asp));
        assert!("sip".parse::<Dialect>().is_err());
    }
}
