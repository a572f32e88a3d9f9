//! The configuration file (TOML) and how flags and the environment override it, one
//! module per section, each checking its own keys: [`sip`] (down to the effective
//! `SipSettings`), [`calls`], [`log`], [`agent`], [`http`] and [`records`]. They share
//! [`error`] (every mistake a user can make is one `ConfigError` line naming the key or
//! file and the fix) and [`read`] (bounded file reads). This module holds the file as a
//! whole: it finds and parses it, and checks every section into what `register` runs
//! with and `voice-ua check` prints. The sections never depend on this module.

mod agent;
mod calls;
mod error;
mod http;
mod log;
mod openai;
mod pipeline;
mod prompt;
#[cfg(test)]
mod props;
mod read;
mod records;
mod sip;
mod websocket;

pub use agent::{AgentChoice, Fallback};
pub use calls::CallSettings;
pub use error::ConfigError;
pub use log::LogFormat;
pub use records::RecordSettings;
pub use sip::Overrides;

use agent::AgentSection;
use calls::CallsSection;
use error::one_line;
use http::HttpSection;
use log::LogSection;
use records::RecordsSection;
use serde::Deserialize;
use sip::SipSection;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use voice_ua_sip::SipSettings;

/// Where the configuration is looked for when --config is not given.
pub const DEFAULT_PATHS: [&str; 2] = ["./voice-ua.toml", "/etc/voice-ua/voice-ua.toml"];

/// The file as written; every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub sip: SipSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub calls: CallsSection,
    #[serde(default)]
    pub agent: AgentSection,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub records: RecordsSection,
}

/// Find and read the configuration: the given path (which must exist), else the
/// first default path that exists, else an empty configuration.
pub fn load(explicit: Option<&Path>) -> Result<(Option<PathBuf>, FileConfig), ConfigError> {
    let path = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => DEFAULT_PATHS.iter().map(PathBuf::from).find(|p| p.is_file()),
    };
    let Some(path) = path else { return Ok((None, FileConfig::default())) };
    let text =
        std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
    let cfg =
        parse(&text).map_err(|(line, message)| ConfigError::Parse { path: path.clone(), line, message })?;
    Ok((Some(path), cfg))
}

/// Parse TOML text; errors as (line, one-line message).
pub fn parse(text: &str) -> Result<FileConfig, (usize, String)> {
    toml::from_str(text).map_err(|e| {
        // Bytes, not a str slice: a span is not promised to start on a char boundary.
        let line = e
            .span()
            .map(|s| text.as_bytes().iter().take(s.start).filter(|&&b| b == b'\n').count() + 1)
            .unwrap_or(0);
        (line, one_line(&e.message().replace(['\r', '\n'], " ")))
    })
}

/// Merge the `[sip]` section, flags and environment into the settings the SIP user
/// agent runs with. `env_password` is the value of VOICE_UA_SIP_PASSWORD, if set.
pub fn effective(
    file: &FileConfig,
    flags: &Overrides,
    env_password: Option<String>,
) -> Result<SipSettings, ConfigError> {
    sip::settings(&file.sip, flags, env_password)
}

/// Validate the `[calls]` section.
pub fn calls(file: &FileConfig) -> Result<CallSettings, ConfigError> {
    calls::settings(&file.calls)
}

/// Where the monitoring HTTP server listens: `None` when turned off.
pub fn http(file: &FileConfig) -> Result<Option<SocketAddr>, ConfigError> {
    http::listen(&file.http)
}

/// Validate the `[records]` section. `None`: records are off (`path = ""`).
pub fn records(file: &FileConfig) -> Result<Option<RecordSettings>, ConfigError> {
    records::settings(&file.records)
}

/// The whole configuration, checked: what `register` runs with and `voice-ua check`
/// prints.
pub struct Checked {
    /// The file read, if any.
    pub source: Option<PathBuf>,
    pub sip: SipSettings,
    pub calls: CallSettings,
    pub http: Option<SocketAddr>,
    pub records: Option<RecordSettings>,
    pub agent: AgentChoice,
    pub fallback: Fallback,
    pub log_format: LogFormat,
    pub log_directives: String,
    pub log_filter: tracing_subscriber::EnvFilter,
    pub privacy: Privacy,
}

/// What the privacy keys decide: the consent prompt (`records.consent_prompt`, μ-law
/// 8 kHz, empty: none) and whether transcript lines are logged (`log.transcripts`).
#[derive(Debug, Clone, Default)]
pub struct Privacy {
    pub consent_prompt: Vec<u8>,
    pub log_transcripts: bool,
}

/// Check every section of `file` with the flags and the environment (passwords, the
/// Deepgram key, RUST_LOG): the first mistake is the error. `[log]` is checked for
/// `check` too, so a bad value is found before the service starts.
pub fn check(
    source: Option<PathBuf>,
    file: &FileConfig,
    flags: &Overrides,
    log_format: Option<LogFormat>,
    log_filter: Option<String>,
) -> Result<Checked, ConfigError> {
    let sip = effective(file, flags, std::env::var(sip::PASSWORD_ENV).ok())?;
    let calls = calls(file)?;
    let http = http(file)?;
    let records = records(file)?;
    let keys = agent::EnvKeys {
        deepgram: std::env::var(agent::KEY_ENV).ok(),
        openai: std::env::var(agent::OPENAI_KEY_ENV).ok(),
    };
    let (agent, fallback) = agent::choose(&file.agent, keys)?;
    let log_format = log::format(&file.log, log_format)?;
    let log_directives = log::directives(log_filter.or(file.log.filter.clone()));
    let log_filter = log::filter(&log_directives)?;
    let privacy = Privacy {
        consent_prompt: match &file.records.consent_prompt {
            Some(path) if !path.as_os_str().is_empty() => prompt::read_ulaw("records.consent_prompt", path)?,
            _ => Vec::new(),
        },
        log_transcripts: file.log.transcripts.unwrap_or(false),
    };
    Ok(Checked {
        source,
        sip,
        calls,
        http,
        records,
        agent,
        fallback,
        log_format,
        log_directives,
        log_filter,
        privacy,
    })
}

impl Checked {
    /// The effective settings as `voice-ua check` prints them, secrets masked, a line each.
    pub fn describe(&self) -> String {
        let mut out = sip::describe(&self.sip, self.source.as_deref());
        let _ = writeln!(out, "calls:              {}", calls::describe(&self.calls));
        let _ = writeln!(out, "agent:              {}", agent::describe(&self.agent));
        let _ = writeln!(out, "http:               {}", http::describe(self.http));
        let _ = writeln!(out, "records:            {}", records::describe(self.records.as_ref()));
        let _ = writeln!(out, "log:                {}", log::describe(self.log_format, &self.log_directives));
        let _ = writeln!(out, "fallback:           {}", agent::describe_fallback(&self.fallback));
        let _ = writeln!(out, "privacy:            {}", describe_privacy(&self.privacy));
        out
    }
}

/// The privacy line for `voice-ua check`.
fn describe_privacy(p: &Privacy) -> String {
    let consent = if p.consent_prompt.is_empty() {
        "no consent prompt".to_string()
    } else {
        format!("{:.1} s consent prompt before the agent speaks", p.consent_prompt.len() as f64 / 8000.0)
    };
    let log = if p.log_transcripts { "transcripts logged" } else { "transcripts not logged" };
    format!("{consent}, {log}")
}

#[cfg(test)]
mod tests {
    use super::error::SHOWN_CHARS;
    use super::*;

    #[test]
    fn the_example_config_parses_and_covers_every_key() {
        let text = include_str!("../../../../conf/voice-ua.example.toml");
        let cfg = parse(text).expect("example parses");
        assert_eq!(cfg.sip.extension.as_deref(), Some("9000"));
        let s = effective(&cfg, &Overrides::default(), Some("from-env".into())).expect("valid");
        assert_eq!(s.expires, 300);
        // Every key of the sections appears (commented or not) in the example.
        for key in [
            "extension",
            "pbx",
            "domain",
            "auth_user",
            "password",
            "password_file",
            "realm",
            "transport",
            "bind",
            "public_addr",
            "expires",
            "retry_max_secs",
            "keepalive",
            "keepalive_interval_secs",
            "follow_nat",
            "tcp_max_connections",
            "tcp_idle_timeout_secs",
            "format",
            "filter",
            "allow",
            "max_calls",
            "codecs",
            "rtp_ports",
            "media_timeout_secs",
            "ring_ms",
            "jitter_start_ms",
            "jitter_max_ms",
            "provider",
            "key_file",
            "url",
            "ca_file",
            "language",
            "listen_model",
            "think_provider",
            "think_model",
            "speak_model",
            "prompt",
            "prompt_file",
            "greeting",
            "fallback_audio",
            "fallback_transfer",
            "name",
            "description",
            "kind",
            "timeout_ms",
            "headers",
            "parameters",
            "target",
            "dialect",
            "custom_parameters",
            "connect_timeout_ms",
            "listen",
            "path",
            "retention_days",
            "recordings",
            "recordings_dir",
            "recordings_retention_days",
            "model",
            "voice",
            "transcription_model",
            "noise_reduction",
            "turn_detection",
            "vad_threshold",
            "prefix_padding_ms",
            "silence_duration_ms",
            "eagerness",
            "tool_choice",
            "renew_after_minutes",
            "reconnect_attempts",
            "reconnect_window_ms",
            "audio_in",
            "cached_in",
            "audio_out",
            "text_in",
            "text_out",
            "end_of_turn_key",
            "max_history_messages",
            "max_tool_rounds",
            "min_speech_ms",
            "end_silence_ms",
            "max_utterance_ms",
            "noise_gate_dbfs",
            "barge_in_min_ms",
            "playback_margin_db",
            "key_env",
            "sample_rate",
            "timeout_ms",
            "temperature",
            "max_tokens",
            "first_token_timeout_ms",
            "idle_timeout_ms",
            "input",
            "cached_input",
            "output",
            "send_sample_rate",
            "speed",
            "first_byte_timeout_ms",
            "transcripts",
            "consent_prompt",
            "mip_opt_out",
            "keyterms",
            "eot_threshold",
            "eager_eot_threshold",
            "eot_timeout_ms",
            "filler_after_ms",
            "filler",
        ] {
            assert!(text.contains(&format!("{key} =")), "example config documents {key}");
        }
    }

    #[test]
    fn values_and_paths_from_the_file_stay_on_one_line() {
        let cfg = parse("[sip]\nextension=\"9000\"\npbx=\"pbx\"\ntransport = \"udp\\n\\u001b[31mtcp\"\n")
            .expect("ok");
        let e = effective(&cfg, &Overrides::default(), Some("p".into())).expect_err("bad transport");
        assert_eq!(
            e.to_string(),
            "sip.transport = \"udp\\n\\u{1b}[31mtcp\" is not valid: use udp or tcp",
            "the newline and the escape sequence are shown, not obeyed"
        );
        let long = "é".repeat(500);
        let cfg = parse(&format!("[calls]\nrtp_ports = \"{long}\"\n")).expect("ok");
        let e = calls(&cfg).expect_err("bad ports").to_string();
        assert!(e.contains(&format!("\"{}…\"", "é".repeat(SHOWN_CHARS))), "cut on a character: {e}");
        let e =
            ConfigError::Read { path: "/etc/a\nb.toml".into(), source: std::io::ErrorKind::NotFound.into() };
        assert!(e.to_string().starts_with("cannot read config file /etc/a\\nb.toml: "), "{e}");
        let (line, msg) =
            parse("[sip]\n# ünïcödé ✓\nextension = \"9000\nx\"\n").expect_err("newline in a string");
        assert_eq!(line, 3, "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn check_prints_every_section_in_order() {
        let text = include_str!("../../../../conf/voice-ua.example.toml");
        let file = parse(text).expect("example parses");
        let (agent, fallback) = agent::choose(&file.agent, agent::EnvKeys::default()).expect("echo");
        let log_directives = "info,rsipstack=warn".to_string();
        let checked = Checked {
            source: Some("conf/voice-ua.example.toml".into()),
            sip: effective(&file, &Overrides::default(), Some("x".into())).expect("valid"),
            calls: calls(&file).expect("valid"),
            http: http(&file).expect("valid"),
            records: records::settings_with(&file.records, None, false).expect("valid"),
            agent,
            fallback,
            log_format: LogFormat::Human,
            log_filter: log::filter(&log_directives).expect("valid"),
            log_directives,
            privacy: Privacy::default(),
        };
        assert_eq!(
            checked.describe(),
            "\
config file:        conf/voice-ua.example.toml
extension:          9000
pbx:                192.168.1.10
domain:             192.168.1.10
auth user:          9000
password:           ******** (1 characters)
realm:              (any)
transport:          udp
bind:               0.0.0.0:5060
public address:     (bound address, or the route to the PBX)
expires:            300 s
retry max:          10 s
keepalive:          Crlf every 25 s
follow NAT (rport): true
calls:              up to 4, codecs PCMU, PCMA, RTP ports 10000-10500, media timeout 30 s, allow []
agent:              echo (no Deepgram key configured)
http:               http://127.0.0.1:9100/metrics and /healthz
records:            calls.db, kept 90 days; recordings off
log:                Human, filter \"info,rsipstack=warn\"
fallback:           7.4 s prompt, then hang up
privacy:            no consent prompt, transcripts not logged
"
        );
    }
}
