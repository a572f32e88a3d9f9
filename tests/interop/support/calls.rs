//! Shared pieces of the call tests: voice-ua started to take calls (with a
//! `[calls]` config and its own RTP port range), the per-call log lines it
//! writes ("incoming call", "call ended: ...", "caller pressed a key"), and
//! the pcaps Debian's sip-tester ships.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::logs;
use super::ports::{free_port, is_listening};
use super::voice_ua::{Password, UaConfig, VoiceUa};
use super::{wait_until, RunDir};

/// Where sip-tester keeps its pcaps (overridable for other layouts).
pub fn pcap_dir() -> PathBuf {
    std::env::var_os("VOICE_UA_SIPP_PCAPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/sip-tester"))
}

/// Copies the named pcaps into the run directory, sipp's working directory
/// (play_pcap_audio resolves names relative to it). Panics naming the
/// package when one is missing.
pub fn copy_pcaps(run: &RunDir, names: &[&str]) {
    for name in names {
        let src = pcap_dir().join(name);
        std::fs::copy(&src, run.file(name)).unwrap_or_else(|e| {
            panic!("cannot copy {} (Debian package sip-tester ships it): {e}", src.display())
        });
    }
}

/// A block of 100 UDP ports below the ephemeral range (which starts at
/// 32768, where `free_port` finds its ports): voice-ua's `rtp_ports` take
/// the first 60, the test's own media sockets the rest. Distinct per test
/// within this process.
pub struct PortBlock {
    pub base: u16,
}

impl PortBlock {
    pub fn next() -> PortBlock {
        static NEXT: AtomicU16 = AtomicU16::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < 120, "out of RTP port blocks");
        PortBlock { base: 20000 + 100 * n }
    }

    /// voice-ua's `calls.rtp_ports` value.
    pub fn ua_range(&self) -> String {
        format!("{}-{}", self.base, self.base + 59)
    }

    /// A port for the test's side: 0..=15 -> base+64+2i. sipp's `-mp` is
    /// `peer(0)`; sipp also binds `-mp`+2 for video, so `peer(1)` is taken
    /// too; the test's own RTP sockets use `peer(3)` and up.
    pub fn peer(&self, i: u16) -> u16 {
        assert!(i < 16);
        self.base + 64 + 2 * i
    }

    pub fn contains_ua_port(&self, port: u16) -> bool {
        (self.base..self.base + 60).contains(&port)
    }
}

pub const PASSWORD: &str = "calls-9000-Secret";

/// voice-ua as extension 9000 at registrar 127.0.0.1:`pbx_port` (a
/// Kamailio, or nothing at all: calls must work while registration
/// retries), with `[calls]` = `rtp_ports` from `block` plus `extra`
/// lines. Returns once its SIP port listens.
pub fn start_ua(run: &RunDir, pbx_port: u16, block: &PortBlock, extra: &str, password: &str) -> VoiceUa {
    start_ua_env(run, pbx_port, block, extra, password, &[])
}

/// [`start_ua`] with extra environment variables for voice-ua only.
pub fn start_ua_env(
    run: &RunDir,
    pbx_port: u16,
    block: &PortBlock,
    extra: &str,
    password: &str,
    env: &[(&str, &str)],
) -> VoiceUa {
    let toml = format!("[calls]\nrtp_ports = \"{}\"\n{extra}\n", block.ua_range());
    let cfg = UaConfig {
        pbx_port,
        bind_port: free_port(),
        transport: "udp",
        password: Password::Env(password.to_string()),
        expires: None,
    };
    let mut ua = VoiceUa::start_with_env(run, &cfg, Some(&toml), env);
    let up = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        if !ua.is_running() {
            return Some(false);
        }
        is_listening(cfg.bind_port, false).then_some(true)
    });
    assert_eq!(
        up,
        Some(true),
        "voice-ua did not listen on 127.0.0.1:{} within 10 s (config:\n{toml})\n{}",
        cfg.bind_port,
        ua.diag()
    );
    ua
}

/// The call id in a per-call event's span (`span.id`, or any span's `id`).
pub fn call_id(event: &Value) -> Option<&str> {
    event
        .pointer("/span/id")
        .or_else(|| {
            event.get("spans").and_then(Value::as_array).and_then(|s| s.iter().find_map(|s| s.get("id")))
        })
        .and_then(Value::as_str)
}

/// One "call ended: ..." line (all its fields, for failure messages).
#[allow(dead_code)]
#[derive(Clone, Debug)]
pub struct CallEnded {
    pub call_id: String,
    pub message: String,
    pub duration_s: f64,
    pub codec: String,
    pub packets_in: u64,
    pub packets_out: u64,
    pub lost: u64,
    pub late: u64,
    pub concealed: u64,
    pub jitter_ms: f64,
    pub hung_up_by: String,
    pub raw: Value,
}

fn f64_field(e: &Value, name: &str) -> f64 {
    logs::field(e, name).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

fn str_field(e: &Value, name: &str) -> String {
    logs::field(e, name).and_then(Value::as_str).unwrap_or_default().to_string()
}

pub fn calls_ended(ua: &VoiceUa) -> Vec<CallEnded> {
    ua.events_with("call ended: ", None)
        .into_iter()
        .map(|e| CallEnded {
            call_id: call_id(&e).unwrap_or_default().to_string(),
            message: logs::message(&e).unwrap_or_default().to_string(),
            duration_s: f64_field(&e, "duration_s"),
            codec: str_field(&e, "codec"),
            packets_in: logs::field_u64(&e, "packets_in").unwrap_or(0),
            packets_out: logs::field_u64(&e, "packets_out").unwrap_or(0),
            lost: logs::field_u64(&e, "lost").unwrap_or(0),
            late: logs::field_u64(&e, "late").unwrap_or(0),
            concealed: logs::field_u64(&e, "concealed").unwrap_or(0),
            jitter_ms: f64_field(&e, "jitter_ms"),
            hung_up_by: str_field(&e, "hung_up_by"),
            raw: e,
        })
        .collect()
}

/// Waits until `n` "call ended" lines were logged; panics after `timeout`.
pub fn wait_calls_ended(ua: &VoiceUa, n: usize, timeout: Duration) -> Vec<CallEnded> {
    wait_until(timeout, Duration::from_millis(100), || {
        let ended = calls_ended(ua);
        (ended.len() >= n).then_some(ended)
    })
    .unwrap_or_else(|| {
        panic!(
            "voice-ua logged {} \"call ended\" line(s) within {timeout:?}, expected {n}\n{}",
            calls_ended(ua).len(),
            ua.diag()
        )
    })
}

/// The "call ended" line of one call id; panics when absent.
pub fn call_ended_for(ua: &VoiceUa, call_id: &str, timeout: Duration) -> CallEnded {
    wait_until(timeout, Duration::from_millis(100), || {
        calls_ended(ua).into_iter().find(|c| c.call_id == call_id)
    })
    .unwrap_or_else(|| panic!("no \"call ended\" line for call {call_id} within {timeout:?}\n{}", ua.diag()))
}

/// Digits voice-ua logged as "caller pressed a key" for one call, in order.
pub fn digits_pressed(ua: &VoiceUa, call_id: &str) -> Vec<String> {
    ua.events_with("caller pressed a key", Some("INFO"))
        .iter()
        .filter(|e| self::call_id(e) == Some(call_id))
        .map(|e| match logs::field(e, "digit") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        })
        .collect()
}
