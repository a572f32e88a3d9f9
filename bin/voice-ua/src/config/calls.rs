//! The `[calls]` section: who may call, how many at once, the codecs, RTP ports,
//! media timeout, ringing and the jitter buffer's bounds.

use super::error::{invalid, ConfigError};
use serde::Deserialize;
use std::net::IpAddr;
use std::time::Duration;
use voice_ua_sip::negotiate::Codec;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsSection {
    pub allow: Option<Vec<String>>,
    pub max_calls: Option<usize>,
    pub codecs: Option<Vec<String>>,
    pub rtp_ports: Option<String>,
    pub media_timeout_secs: Option<u64>,
    pub ring_ms: Option<u64>,
    pub jitter_start_ms: Option<u64>,
    pub jitter_max_ms: Option<u64>,
    pub echo_cancel: Option<bool>,
    pub barge_in_min_ms: Option<u32>,
    pub duck_ms: Option<u32>,
}

/// The call settings, validated.
#[derive(Debug, Clone)]
pub struct CallSettings {
    pub allow: Vec<IpAddr>,
    pub max_calls: usize,
    pub codecs: Vec<Codec>,
    pub rtp_ports: (u16, u16),
    pub media_timeout: Duration,
    pub ring: Duration,
    pub jitter_start: Duration,
    pub jitter_max: Duration,
    /// Cancel the echo of our playback in the caller's audio, and let a barge-in during
    /// playback through only on caller speech that survives it.
    pub echo_cancel: bool,
    /// Caller speech (after echo cancellation) a barge-in during playback needs.
    pub barge_in_min_ms: u32,
    /// Playback ducked this long before a barge-in's flush (0: off).
    pub duck_ms: u32,
}

/// Validate the `[calls]` section (defaults: PCMU, PCMA; ports 10000-10500; 30 s media timeout).
pub fn settings(c: &CallsSection) -> Result<CallSettings, ConfigError> {
    let mut allow = Vec::new();
    for a in c.allow.iter().flatten() {
        allow.push(
            a.parse::<IpAddr>()
                .map_err(|_| invalid("calls.allow", a, "expected IP addresses, e.g. [\"192.168.1.20\"]"))?,
        );
    }
    let max_calls = c.max_calls.unwrap_or(4);
    if !(1..=1000).contains(&max_calls) {
        return Err(invalid("calls.max_calls", &max_calls.to_string(), "use 1 to 1000"));
    }
    let mut codecs = Vec::new();
    for name in c.codecs.clone().unwrap_or_else(|| vec!["PCMU".into(), "PCMA".into()]) {
        match Codec::parse(&name) {
            None => return Err(invalid("calls.codecs", &name, "voice-ua carries PCMU, PCMA and G722")),
            Some(codec) => codecs.push(codec),
        }
    }
    if codecs.is_empty() {
        return Err(invalid("calls.codecs", "[]", "list at least one of PCMU, PCMA, G722"));
    }
    let ports = c.rtp_ports.clone().unwrap_or_else(|| "10000-10500".into());
    let rtp_ports = ports
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)))
        .filter(|(a, b)| *a >= 1024 && a < b)
        .ok_or_else(|| {
            invalid("calls.rtp_ports", &ports, "expected FIRST-LAST above 1023, e.g. 10000-10500")
        })?;
    let media_timeout = c.media_timeout_secs.unwrap_or(30);
    if !(5..=3600).contains(&media_timeout) {
        return Err(invalid("calls.media_timeout_secs", &media_timeout.to_string(), "use 5 to 3600 seconds"));
    }
    let ring = c.ring_ms.unwrap_or(200);
    if ring > 10_000 {
        return Err(invalid("calls.ring_ms", &ring.to_string(), "use 0 to 10000 milliseconds"));
    }
    let start = c.jitter_start_ms.unwrap_or(40);
    let max = c.jitter_max_ms.unwrap_or(200);
    if !(20..=max).contains(&start) || max > 1000 {
        return Err(invalid(
            "calls.jitter_start_ms",
            &start.to_string(),
            "use 20 ms up to jitter_max_ms (at most 1000)",
        ));
    }
    let barge_in_min_ms = c.barge_in_min_ms.unwrap_or(voice_ua_call::DEFAULT_BARGE_IN_MIN_MS);
    if !(40..=1000).contains(&barge_in_min_ms) {
        return Err(invalid(
            "calls.barge_in_min_ms",
            &barge_in_min_ms.to_string(),
            "use 40 to 1000 milliseconds",
        ));
    }
    let duck_ms = c.duck_ms.unwrap_or(voice_ua_call::DEFAULT_DUCK_MS);
    if duck_ms > 500 {
        return Err(invalid(
            "calls.duck_ms",
            &duck_ms.to_string(),
            "use 0 (off) to 500 milliseconds; 150-300 is usual",
        ));
    }
    Ok(CallSettings {
        echo_cancel: c.echo_cancel.unwrap_or(voice_ua_call::DEFAULT_ECHO_CANCEL),
        barge_in_min_ms,
        duck_ms,
        allow,
        max_calls,
        codecs,
        rtp_ports,
        media_timeout: Duration::from_secs(media_timeout),
        ring: Duration::from_millis(ring),
        jitter_start: Duration::from_millis(start),
        jitter_max: Duration::from_millis(max),
    })
}

/// One line for `voice-ua check`.
pub fn describe(calls: &CallSettings) -> String {
    format!(
        "up to {}, codecs {}, RTP ports {}-{}, media timeout {} s, allow {:?}",
        calls.max_calls,
        calls.codecs.iter().map(|c| c.encoding()).collect::<Vec<_>>().join(", "),
        calls.rtp_ports.0,
        calls.rtp_ports.1,
        calls.media_timeout.as_secs(),
        calls.allow
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{calls, parse, FileConfig};

    #[test]
    fn call_settings_default_and_refuse_nonsense() {
        let c = calls(&FileConfig::default()).expect("defaults");
        assert_eq!(
            (c.max_calls, c.rtp_ports, c.codecs.clone()),
            (4, (10000, 10500), vec![Codec::Pcmu, Codec::Pcma])
        );
        assert_eq!(c.media_timeout, Duration::from_secs(30));
        let cfg =
            parse("[calls]\nallow = [\"127.0.0.5\"]\ncodecs = [\"pcma\"]\nrtp_ports = \"20000-20100\"\n")
                .expect("ok");
        let c = calls(&cfg).expect("valid");
        assert_eq!((c.allow.len(), c.codecs.clone(), c.rtp_ports), (1, vec![Codec::Pcma], (20000, 20100)));
        assert_eq!(
            (c.echo_cancel, c.barge_in_min_ms, c.duck_ms),
            (true, 200, 0),
            "echo-safe barge-in by default"
        );
        let cfg = parse("[calls]\necho_cancel = false\nbarge_in_min_ms = 300\nduck_ms = 200\n").expect("ok");
        let c = calls(&cfg).expect("valid");
        assert_eq!((c.echo_cancel, c.barge_in_min_ms, c.duck_ms), (false, 300, 200));
        let cfg = parse("[calls]\ncodecs = [\"g722\", \"PCMU\"]\n").expect("ok");
        assert_eq!(calls(&cfg).expect("G.722 is carried").codecs, vec![Codec::G722, Codec::Pcmu]);
        for (key, bad) in [
            ("allow", "[\"pbx.lan\"]"),
            ("codecs", "[\"G729\"]"),
            ("rtp_ports", "\"9-5\""),
            ("max_calls", "0"),
            ("barge_in_min_ms", "10"),
            ("duck_ms", "900"),
        ] {
            let cfg = parse(&format!("[calls]\n{key} = {bad}\n")).expect("ok");
            let e = calls(&cfg).expect_err(key);
            assert!(e.to_string().starts_with(&format!("calls.{key} = ")), "{e}");
        }
    }
}
