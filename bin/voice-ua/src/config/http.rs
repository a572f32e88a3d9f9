//! The `[http]` section: where the monitoring server (/metrics, /healthz) listens.

use super::error::{invalid, ConfigError};
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    pub listen: Option<String>,
}

/// Where the monitoring HTTP server listens (`[http] listen`): 127.0.0.1:9100 by
/// default, `None` when set to "".
pub fn listen(h: &HttpSection) -> Result<Option<SocketAddr>, ConfigError> {
    match h.listen.as_deref() {
        None => Ok(Some(SocketAddr::from(([127, 0, 0, 1], 9100)))),
        Some("") => Ok(None),
        Some(l) => l.parse::<SocketAddr>().map(Some).map_err(|_| {
            invalid("http.listen", l, "expected IP:PORT, e.g. 127.0.0.1:9100, or \"\" to turn it off")
        }),
    }
}

/// One line for `voice-ua check`.
pub fn describe(listen: Option<SocketAddr>) -> String {
    listen.map(|a| format!("http://{a}/metrics and /healthz")).unwrap_or_else(|| "off".into())
}

#[cfg(test)]
mod tests {
    use crate::config::{http, parse, FileConfig};

    #[test]
    fn http_listen_defaults_to_loopback_and_can_be_turned_off() {
        assert_eq!(
            http(&FileConfig::default()).expect("default"),
            Some("127.0.0.1:9100".parse().expect("a"))
        );
        assert_eq!(http(&parse("[http]\nlisten = \"\"\n").expect("ok")).expect("off"), None);
        let cfg = parse("[http]\nlisten = \"0.0.0.0:9200\"\n").expect("ok");
        assert_eq!(http(&cfg).expect("set"), Some("0.0.0.0:9200".parse().expect("a")));
        let e = http(&parse("[http]\nlisten = \"9100\"\n").expect("ok")).expect_err("bad");
        assert!(e.to_string().starts_with("http.listen = \"9100\" is not valid"), "{e}");
        assert!(parse("[http]\nport = 9100\n").is_err(), "unknown keys refused");
    }
}
