//! The `[agent.websocket]` table: a WebSocket bot in the `twilio` or `asp` dialect.
//! Header values may name their secret instead of holding it (`env:NAME`, `file:/path`);
//! they are never printed, and `voice-ua check` shows only the header names.

use super::error::{invalid, ConfigError};
use super::read::{read_text_bounded, MAX_SECRET_FILE};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use voice_ua_agent::{Dialect, WebSocketConfig};

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct WebSocketSection {
    pub url: Option<String>,
    pub dialect: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub custom_parameters: BTreeMap<String, String>,
    pub connect_timeout_ms: Option<u64>,
    pub ca_file: Option<PathBuf>,
}

/// The connect timeout's bounds, in ms.
const CONNECT_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 100..=60_000;

/// Check the table into the provider's settings; `env` reads an environment variable
/// (`std::env::var` in the binary).
pub fn config(
    w: &WebSocketSection,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<WebSocketConfig, ConfigError> {
    let url = w.url.clone().filter(|u| !u.is_empty()).ok_or(ConfigError::Missing {
        what: "WebSocket bot URL",
        fix: "set agent.websocket.url = \"wss://bot.example.com/media\"",
    })?;
    let loopback = ["ws://127.", "ws://localhost", "ws://[::1]"].iter().any(|p| url.starts_with(p));
    if !(url.starts_with("wss://") || loopback) {
        return Err(invalid(
            "agent.websocket.url",
            &url,
            "expected wss://host/path (ws:// only to 127.0.0.1, localhost or [::1])",
        ));
    }
    let dialect = match w.dialect.as_deref() {
        None => {
            return Err(ConfigError::Missing {
                what: "bot dialect",
                fix: "set agent.websocket.dialect = \"twilio\" or \"asp\"",
            })
        }
        Some(d) => {
            d.parse::<Dialect>().map_err(|_| invalid("agent.websocket.dialect", d, "use twilio or asp"))?
        }
    };
    let mut cfg = WebSocketConfig::new(url, dialect);
    for (name, value) in &w.headers {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(invalid(
                "agent.websocket.headers",
                name,
                "a header name is letters, digits, - and _",
            ));
        }
        let value = secret(name, value, env)?;
        if value.is_empty() || value.chars().any(char::is_control) {
            // The value is a secret: the message names the header, not the value.
            return Err(invalid(
                "agent.websocket.headers",
                name,
                "its value is empty or holds a control character",
            ));
        }
        cfg.headers.push((name.clone(), value));
    }
    if dialect == Dialect::Asp && !w.custom_parameters.is_empty() {
        return Err(invalid(
            "agent.websocket.custom_parameters",
            "(set)",
            "custom parameters are Twilio's start message; the asp dialect has none",
        ));
    }
    cfg.custom_parameters = w.custom_parameters.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some(ms) = w.connect_timeout_ms {
        if !CONNECT_TIMEOUT_MS.contains(&ms) {
            return Err(invalid("agent.websocket.connect_timeout_ms", &ms.to_string(), "use 100 to 60000"));
        }
        cfg.connect_timeout = Duration::from_millis(ms);
    }
    if let Some(ca) = &w.ca_file {
        if !ca.is_file() {
            return Err(invalid(
                "agent.websocket.ca_file",
                &ca.display().to_string(),
                "no such file (a PEM CA certificate)",
            ));
        }
        cfg.extra_ca_file = Some(ca.clone());
    }
    Ok(cfg)
}

/// A header's value: `env:NAME` (an environment variable), `file:/path` (a file's
/// contents), else the value itself; trimmed.
fn secret(header: &str, value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    if let Some(name) = value.strip_prefix("env:") {
        return env(name).map(|v| v.trim().to_owned()).ok_or_else(|| {
            invalid(
                "agent.websocket.headers",
                header,
                &format!("its value names the environment variable {name}, which is not set"),
            )
        });
    }
    if let Some(path) = value.strip_prefix("file:") {
        let path = PathBuf::from(path);
        return read_text_bounded(&path, MAX_SECRET_FILE)
            .map(|v| v.trim().to_owned())
            .map_err(|source| ConfigError::SecretFile { what: "WebSocket header", path, source });
    }
    Ok(value.trim().to_owned())
}

/// The bot's line for `voice-ua check`: header names only.
pub fn describe(c: &WebSocketConfig) -> String {
    let headers: Vec<String> = c.headers.iter().map(|(k, _)| format!("{k}: ********")).collect();
    let params: Vec<&str> = c.custom_parameters.iter().map(|(k, _)| k.as_str()).collect();
    format!(
        "websocket bot ({}) at {}, headers [{}], custom parameters [{}], connect timeout {} ms{}",
        c.dialect,
        c.url,
        headers.join(", "),
        params.join(", "),
        c.connect_timeout.as_millis(),
        c.extra_ca_file.as_ref().map(|p| format!(", extra CA {}", p.display())).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> WebSocketSection {
        toml::from_str(text).expect("parses")
    }

    fn env(name: &str) -> Option<String> {
        (name == "BOT_TOKEN").then(|| " Bearer from-env \n".to_owned())
    }

    #[test]
    fn a_twilio_bot_with_secret_headers() {
        let dir = tempfile::tempdir().expect("dir");
        let key = dir.path().join("key");
        std::fs::write(&key, "k-from-file\n").expect("write");
        let s = section(&format!(
            r#"
            url = "wss://bot.example.com/media"
            dialect = "twilio"
            headers = {{ Authorization = "env:BOT_TOKEN", "X-Api-Key" = "file:{}", "X-Plain" = "p" }}
            custom_parameters = {{ tenant = "acme" }}
            connect_timeout_ms = 2500
            "#,
            key.display()
        ));
        let c = config(&s, &env).expect("valid");
        assert_eq!(c.dialect, Dialect::Twilio);
        assert_eq!(
            c.headers,
            [
                ("Authorization".into(), "Bearer from-env".into()),
                ("X-Api-Key".into(), "k-from-file".into()),
                ("X-Plain".into(), "p".into())
            ]
        );
        assert_eq!(c.custom_parameters, [("tenant".to_owned(), "acme".to_owned())]);
        assert_eq!(c.connect_timeout, Duration::from_millis(2500));
        let line = describe(&c);
        assert_eq!(
            line,
            "websocket bot (twilio) at wss://bot.example.com/media, headers [Authorization: ********, \
             X-Api-Key: ********, X-Plain: ********], custom parameters [tenant], connect timeout 2500 ms"
        );
        assert!(!format!("{c:?}").contains("from-env"), "Debug masks the values");
    }

    #[test]
    fn mistakes_are_one_line_and_never_show_a_secret() {
        for (text, expect) in [
            ("dialect = \"twilio\"", "agent.websocket.url"),
            ("url = \"wss://b/x\"", "agent.websocket.dialect"),
            ("url = \"wss://b/x\"\ndialect = \"sip\"", "use twilio or asp"),
            ("url = \"ws://10.0.0.2/x\"\ndialect = \"asp\"", "ws:// only to 127.0.0.1"),
            ("url = \"https://b/x\"\ndialect = \"asp\"", "expected wss://"),
            ("url = \"wss://b/x\"\ndialect = \"asp\"\nconnect_timeout_ms = 5", "100 to 60000"),
            ("url = \"wss://b/x\"\ndialect = \"asp\"\ncustom_parameters = { a = \"b\" }", "Twilio's start"),
            ("url = \"wss://b/x\"\ndialect = \"twilio\"\nheaders = { \"Bad Name\" = \"v\" }", "header name"),
            (
                "url = \"wss://b/x\"\ndialect = \"twilio\"\nheaders = { A = \"env:NOPE\" }",
                "NOPE, which is not set",
            ),
            (
                "url = \"wss://b/x\"\ndialect = \"twilio\"\nheaders = { A = \"file:/nonexistent/k\" }",
                "/nonexistent/k",
            ),
            (
                "url = \"wss://b/x\"\ndialect = \"twilio\"\nheaders = { A = \"sec\\nret\" }",
                "control character",
            ),
            (
                "url = \"wss://b/x\"\ndialect = \"twilio\"\nca_file = \"/nonexistent.pem\"",
                "agent.websocket.ca_file",
            ),
        ] {
            let e = config(&section(text), &env).expect_err(text).to_string();
            assert!(e.contains(expect), "{text}: {e}");
            assert!(!e.contains('\n') && !e.contains("sec\\nret"), "{text}: {e}");
        }
        assert!(toml::from_str::<WebSocketSection>("urll = \"x\"").is_err(), "unknown keys are refused");
    }
}
