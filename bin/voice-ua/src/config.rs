//! The configuration file (TOML) and how flags and the environment override it,
//! down to the effective `SipSettings`. Every mistake a user can make here becomes
//! one `ConfigError` line naming the key or file and the fix.

use serde::Deserialize;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use voice_ua_sip::message::split_host_port;
use voice_ua_sip::negotiate::Codec;
use voice_ua_sip::{KeepaliveMode, SipSettings, Transport};

/// Where the configuration is looked for when --config is not given.
pub const DEFAULT_PATHS: [&str; 2] = ["./voice-ua.toml", "/etc/voice-ua/voice-ua.toml"];
pub const PASSWORD_ENV: &str = "VOICE_UA_SIP_PASSWORD";

/// Every message is one line: paths and values from the file are shown with their
/// control characters escaped (see [`one_line`]).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", one_line(&.path.display().to_string()))]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {}, line {line}: {}", one_line(&.path.display().to_string()), one_line(.message))]
    Parse { path: PathBuf, line: usize, message: String },
    #[error("{key} = \"{}\" is not valid: {}", one_line(.value), one_line(.why))]
    Invalid { key: &'static str, value: String, why: String },
    #[error("no {what}: {fix}")]
    Missing { what: &'static str, fix: &'static str },
    #[error(
        "cannot read the SIP password file {}: {source}; check sip.password_file and its permissions",
        one_line(&.path.display().to_string())
    )]
    PasswordFile { path: PathBuf, source: std::io::Error },
    #[error(
        "cannot read the {what} file {}: {source}; check the path and its permissions",
        one_line(&.path.display().to_string())
    )]
    SecretFile { what: &'static str, path: PathBuf, source: std::io::Error },
}

/// At most this many characters of a value in an error message.
const SHOWN_CHARS: usize = 120;

/// `s` fit for one line of an error message: control characters (a newline in a
/// value, an escape sequence) escaped, at most [`SHOWN_CHARS`] characters (cut on a
/// character boundary, marked with `…`).
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(SHOWN_CHARS * 4));
    for (i, c) in s.chars().enumerate() {
        if i == SHOWN_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The largest secret file (password, key) read: a line of text.
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Read a whole file of at most `limit` bytes: a device or a FIFO given by mistake
/// (`/dev/zero`) is an error, not an endless read.
pub fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut out = Vec::new();
    std::fs::File::open(path)?.take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes, is it the right file?"),
        ));
    }
    Ok(out)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_text_bounded(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_bounded(path, limit)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

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
    pub agent: crate::agent_config::AgentSection,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub records: RecordsSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    pub listen: Option<String>,
}

/// Where the monitoring HTTP server listens (`[http] listen`): 127.0.0.1:9100 by
/// default, `None` when set to "".
pub fn http(file: &FileConfig) -> Result<Option<SocketAddr>, ConfigError> {
    match file.http.listen.as_deref() {
        None => Ok(Some(SocketAddr::from(([127, 0, 0, 1], 9100)))),
        Some("") => Ok(None),
        Some(l) => l.parse::<SocketAddr>().map(Some).map_err(|_| {
            invalid("http.listen", l, "expected IP:PORT, e.g. 127.0.0.1:9100, or \"\" to turn it off")
        }),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsSection {
    pub path: Option<String>,
    pub retention_days: Option<u32>,
    pub recordings: Option<bool>,
    pub recordings_dir: Option<String>,
    pub recordings_retention_days: Option<u32>,
}

/// The call records settings, validated (`None` from [`records`]: records are off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSettings {
    /// The SQLite database (relative paths are relative to the working directory).
    pub path: PathBuf,
    /// Days calls and recordings are kept (0: forever), and where recordings go:
    /// `recordings_dir` is `Some` exactly when recordings are on.
    pub retention: voice_ua_records::Retention,
}

/// The directory systemd gives the service (`StateDirectory=voice-ua`).
pub const STATE_DIR: &str = "/var/lib/voice-ua";

/// Where the call records go when `records.path` is not set:
/// `$STATE_DIRECTORY/calls.db` under systemd (it sets STATE_DIRECTORY from the unit's
/// StateDirectory), else `/var/lib/voice-ua/calls.db` when that directory exists (the
/// package is installed: `voice-ua calls` run by an administrator finds the
/// service's records), else `./calls.db` (a developer's run).
pub fn default_records_path(state_directory: Option<&str>, state_dir_exists: bool) -> PathBuf {
    // STATE_DIRECTORY may list several directories separated by ':'; ours is the first.
    match state_directory.and_then(|s| s.split(':').next()).filter(|s| !s.is_empty()) {
        Some(dir) => Path::new(dir).join("calls.db"),
        None if state_dir_exists => Path::new(STATE_DIR).join("calls.db"),
        None => PathBuf::from("calls.db"),
    }
}

/// Validate the `[records]` section. `None`: records are off (`path = ""`).
pub fn records(file: &FileConfig) -> Result<Option<RecordSettings>, ConfigError> {
    records_with(file, std::env::var("STATE_DIRECTORY").ok().as_deref(), Path::new(STATE_DIR).is_dir())
}

fn records_with(
    file: &FileConfig,
    state_directory: Option<&str>,
    state_dir_exists: bool,
) -> Result<Option<RecordSettings>, ConfigError> {
    let r = &file.records;
    let path = match r.path.as_deref() {
        None => default_records_path(state_directory, state_dir_exists),
        Some("") => {
            if r.recordings == Some(true) {
                return Err(invalid(
                    "records.recordings",
                    "true",
                    "recordings belong to call records, which records.path = \"\" turns off; set records.path, or recordings = false",
                ));
            }
            return Ok(None);
        }
        Some(p) if p.ends_with('/') || Path::new(p).is_dir() => {
            return Err(invalid(
                "records.path",
                p,
                "give the database file, e.g. /var/lib/voice-ua/calls.db, not a directory",
            ))
        }
        Some(p) => PathBuf::from(p),
    };
    let retention_days = r.retention_days.unwrap_or(90);
    if retention_days > 36_500 {
        return Err(invalid(
            "records.retention_days",
            &retention_days.to_string(),
            "use 0 (keep forever) to 36500 days",
        ));
    }
    let recordings_retention_days = r.recordings_retention_days.unwrap_or(30);
    if recordings_retention_days > 36_500 {
        return Err(invalid(
            "records.recordings_retention_days",
            &recordings_retention_days.to_string(),
            "use 0 (keep forever) to 36500 days",
        ));
    }
    let recordings_dir = match (r.recordings.unwrap_or(false), r.recordings_dir.as_deref()) {
        (false, _) => None,
        (true, Some("")) => {
            return Err(invalid(
                "records.recordings_dir",
                "",
                "give a directory, or leave it out for <database directory>/recordings",
            ))
        }
        (true, Some(d)) => Some(PathBuf::from(d)),
        (true, None) => Some(path.parent().unwrap_or(Path::new("")).join("recordings")),
    };
    let retention = voice_ua_records::Retention {
        call_days: retention_days,
        recordings_dir,
        recording_days: recordings_retention_days,
    };
    Ok(Some(RecordSettings { path, retention }))
}

/// One line for `voice-ua check`.
pub fn describe_records(r: Option<&RecordSettings>) -> String {
    let Some(r) = r else { return "off (records.path = \"\")".into() };
    let keep = |days: u32| if days == 0 { "forever".to_string() } else { format!("{days} days") };
    let recordings = match &r.retention.recordings_dir {
        None => "recordings off".to_string(),
        Some(d) => format!("stereo recordings in {}, kept {}", d.display(), keep(r.retention.recording_days)),
    };
    format!("{}, kept {}; {recordings}", r.path.display(), keep(r.retention.call_days))
}

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
}

/// Validate the `[calls]` section (defaults: PCMU, PCMA; ports 10000-10500; 30 s media timeout).
pub fn calls(file: &FileConfig) -> Result<CallSettings, ConfigError> {
    let c = &file.calls;
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
            Some(Codec::G722) | None => {
                return Err(invalid(
                    "calls.codecs",
                    &name,
                    "voice-ua carries PCMU and PCMA (G.722 is not built yet)",
                ))
            }
            Some(codec) => codecs.push(codec),
        }
    }
    if codecs.is_empty() {
        return Err(invalid("calls.codecs", "[]", "list at least one of PCMU, PCMA"));
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
    Ok(CallSettings {
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipSection {
    pub extension: Option<String>,
    pub pbx: Option<String>,
    pub domain: Option<String>,
    pub auth_user: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub realm: Option<String>,
    pub transport: Option<String>,
    pub bind: Option<String>,
    pub public_addr: Option<String>,
    pub expires: Option<u32>,
    pub retry_max_secs: Option<u64>,
    pub keepalive: Option<String>,
    pub keepalive_interval_secs: Option<u64>,
    pub follow_nat: Option<bool>,
    pub tcp_max_connections: Option<usize>,
    pub tcp_idle_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    pub format: Option<String>,
    pub filter: Option<String>,
}

/// Values given on the command line (they win over the file).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub extension: Option<String>,
    pub pbx: Option<String>,
    pub password: Option<String>,
    pub auth_user: Option<String>,
    pub realm: Option<String>,
    pub transport: Option<String>,
    pub bind: Option<String>,
    pub public_addr: Option<String>,
    pub expires: Option<u32>,
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

/// Merge file, flags and environment into the settings the SIP agent runs with.
/// `env_password` is the value of VOICE_UA_SIP_PASSWORD, if set.
pub fn effective(
    file: &FileConfig,
    flags: &Overrides,
    env_password: Option<String>,
) -> Result<SipSettings, ConfigError> {
    let f = &file.sip;
    let extension = flags.extension.clone().or(f.extension.clone()).ok_or(ConfigError::Missing {
        what: "extension",
        fix: "give --ext 9000 or set sip.extension in the config",
    })?;
    if extension.is_empty() || !extension.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+*".contains(c)) {
        return Err(invalid("sip.extension", &extension, "use the extension number, e.g. 9000"));
    }
    let pbx = flags.pbx.clone().or(f.pbx.clone()).ok_or(ConfigError::Missing {
        what: "PBX address",
        fix: "give --pbx HOST[:PORT] or set sip.pbx in the config",
    })?;
    if split_host_port(&pbx).is_none() || pbx.contains(['/', ' ', ';']) {
        return Err(invalid("sip.pbx", &pbx, "expected HOST or HOST:PORT, e.g. 192.168.1.10:5060"));
    }
    let password = match (flags.password.clone(), env_password, &f.password_file, &f.password) {
        (Some(p), _, _, _) => p,
        (None, Some(p), _, _) => p,
        (None, None, Some(path), _) => read_text_bounded(path, MAX_SECRET_FILE)
            .map_err(|source| ConfigError::PasswordFile { path: path.clone(), source })?
            .trim_end_matches(['\r', '\n'])
            .to_string(),
        (None, None, None, Some(p)) => p.clone(),
        (None, None, None, None) => {
            return Err(ConfigError::Missing {
                what: "SIP password",
                fix: "set VOICE_UA_SIP_PASSWORD, sip.password_file in the config, or --password",
            })
        }
    };
    let mut s = SipSettings::new(&extension, &pbx, &password);
    s.domain = f.domain.clone();
    s.auth_user = flags.auth_user.clone().or(f.auth_user.clone()).filter(|u| !u.is_empty());
    s.realm = flags.realm.clone().or(f.realm.clone()).filter(|r| !r.is_empty());
    if let Some(t) = flags.transport.as_deref().or(f.transport.as_deref()) {
        s.transport = match t.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            _ => return Err(invalid("sip.transport", t, "use udp or tcp")),
        };
    }
    if let Some(b) = flags.bind.as_deref().or(f.bind.as_deref()) {
        s.bind = b.parse::<SocketAddr>().map_err(|_| {
            invalid("sip.bind", b, "expected IP:PORT, e.g. 0.0.0.0:5060 or 192.168.1.50:5060")
        })?;
    }
    if let Some(p) = flags.public_addr.as_deref().or(f.public_addr.as_deref()) {
        s.public_addr = Some(
            p.parse::<IpAddr>()
                .map_err(|_| invalid("sip.public_addr", p, "expected an IP address, e.g. 203.0.113.7"))?,
        );
    }
    if let Some(e) = flags.expires.or(f.expires) {
        if !(10..=86_400).contains(&e) {
            return Err(invalid("sip.expires", &e.to_string(), "use 10 to 86400 seconds (300 is usual)"));
        }
        s.expires = e;
    }
    if let Some(r) = f.retry_max_secs {
        if !(1..=3600).contains(&r) {
            return Err(invalid("sip.retry_max_secs", &r.to_string(), "use 1 to 3600 seconds"));
        }
        s.retry_max = Duration::from_secs(r);
    }
    if let Some(k) = f.keepalive.as_deref() {
        s.keepalive = match k.to_ascii_lowercase().as_str() {
            "crlf" => KeepaliveMode::Crlf,
            "options" => KeepaliveMode::Options,
            "off" => KeepaliveMode::Off,
            _ => return Err(invalid("sip.keepalive", k, "use crlf, options or off")),
        };
    }
    if let Some(i) = f.keepalive_interval_secs {
        if !(5..=3600).contains(&i) {
            return Err(invalid(
                "sip.keepalive_interval_secs",
                &i.to_string(),
                "use 5 to 3600 seconds (25 is usual)",
            ));
        }
        s.keepalive_interval = Duration::from_secs(i);
    }
    if let Some(n) = f.follow_nat {
        s.follow_nat = n;
    }
    if let Some(n) = f.tcp_max_connections {
        if !(1..=4096).contains(&n) {
            return Err(invalid("sip.tcp_max_connections", &n.to_string(), "use 1 to 4096 (64 is usual)"));
        }
        s.tcp_max_connections = n;
    }
    if let Some(i) = f.tcp_idle_timeout_secs {
        if !(5..=600).contains(&i) {
            return Err(invalid(
                "sip.tcp_idle_timeout_secs",
                &i.to_string(),
                "use 5 to 600 seconds (60 is usual; keep it above the keepalive interval)",
            ));
        }
        s.tcp_idle_timeout = Duration::from_secs(i);
    }
    Ok(s)
}

pub(crate) fn invalid(key: &'static str, value: &str, why: &str) -> ConfigError {
    ConfigError::Invalid { key, value: value.to_string(), why: why.to_string() }
}

/// The effective settings as `voice-ua check` prints them, secrets masked.
pub fn describe(s: &SipSettings, source: Option<&Path>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "config file:        {}",
        source
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(none; flags and environment only)".into())
    );
    let _ = writeln!(out, "extension:          {}", s.extension);
    let _ = writeln!(out, "pbx:                {}", s.pbx);
    let _ = writeln!(out, "domain:             {}", s.domain.as_deref().unwrap_or(&s.pbx));
    let _ = writeln!(out, "auth user:          {}", s.auth_user.as_deref().unwrap_or(&s.extension));
    let _ = writeln!(out, "password:           {}", mask(&s.password));
    let _ = writeln!(out, "realm:              {}", s.realm.as_deref().unwrap_or("(any)"));
    let _ = writeln!(out, "transport:          {}", s.transport.as_str());
    let _ = writeln!(out, "bind:               {}", s.bind);
    let _ = writeln!(
        out,
        "public address:     {}",
        s.public_addr
            .map(|a| a.to_string())
            .unwrap_or_else(|| "(bound address, or the route to the PBX)".into())
    );
    let _ = writeln!(out, "expires:            {} s", s.expires);
    let _ = writeln!(out, "retry max:          {} s", s.retry_max.as_secs());
    let _ = writeln!(out, "keepalive:          {:?} every {} s", s.keepalive, s.keepalive_interval.as_secs());
    let _ = writeln!(out, "follow NAT (rport): {}", s.follow_nat);
    if s.transport == Transport::Tcp {
        let _ = writeln!(
            out,
            "TCP connections:    at most {}, idle ones closed after {} s",
            s.tcp_max_connections,
            s.tcp_idle_timeout.as_secs()
        );
    }
    out
}

fn mask(secret: &str) -> String {
    if secret.is_empty() {
        "(empty)".into()
    } else {
        format!("******** ({} characters)", secret.chars().count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_and_covers_every_key() {
        let text = include_str!("../../../conf/voice-ua.example.toml");
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
            "listen",
            "path",
            "retention_days",
            "recordings",
            "recordings_dir",
            "recordings_retention_days",
        ] {
            assert!(text.contains(&format!("{key} =")), "example config documents {key}");
        }
    }

    #[test]
    fn flags_override_file_and_env_overrides_file_password() {
        let cfg =
            parse("[sip]\nextension = \"9000\"\npbx = \"10.0.0.1\"\npassword = \"file\"\nexpires = 600\n")
                .expect("ok");
        let flags =
            Overrides { expires: Some(120), pbx: Some("127.0.0.1:5070".into()), ..Default::default() };
        let s = effective(&cfg, &flags, Some("env".into())).expect("valid");
        assert_eq!((s.expires, s.pbx.as_str(), s.password.as_str()), (120, "127.0.0.1:5070", "env"));
        let s = effective(
            &cfg,
            &Overrides { password: Some("flag".into()), ..Default::default() },
            Some("env".into()),
        )
        .expect("valid");
        assert_eq!(s.password, "flag");
        let s = effective(&cfg, &Overrides::default(), None).expect("valid");
        assert_eq!(s.password, "file");
    }

    #[test]
    fn password_file_is_read_without_its_newline() {
        let dir = std::env::temp_dir().join(format!("voice-ua-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let pw = dir.join("pw");
        std::fs::write(&pw, "from-file\n").expect("write");
        let cfg =
            parse(&format!("[sip]\nextension=\"9000\"\npbx=\"pbx\"\npassword_file=\"{}\"\n", pw.display()))
                .expect("ok");
        assert_eq!(effective(&cfg, &Overrides::default(), None).expect("valid").password, "from-file");
        let cfg =
            parse("[sip]\nextension=\"9000\"\npbx=\"pbx\"\npassword_file=\"/nonexistent/pw\"\n").expect("ok");
        let e = effective(&cfg, &Overrides::default(), None).expect_err("missing file");
        assert!(e.to_string().contains("/nonexistent/pw"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn tcp_limits_come_from_the_file() {
        let s = effective(
            &parse("[sip]\nextension=\"9000\"\npbx=\"pbx\"\n").expect("ok"),
            &Overrides::default(),
            Some("p".into()),
        )
        .expect("valid");
        assert_eq!((s.tcp_max_connections, s.tcp_idle_timeout), (64, Duration::from_secs(60)), "defaults");
        let cfg = parse(
            "[sip]\nextension=\"9000\"\npbx=\"pbx\"\ntransport=\"tcp\"\ntcp_max_connections = 8\ntcp_idle_timeout_secs = 30\n",
        )
        .expect("ok");
        let s = effective(&cfg, &Overrides::default(), Some("p".into())).expect("valid");
        assert_eq!((s.tcp_max_connections, s.tcp_idle_timeout), (8, Duration::from_secs(30)));
    }

    #[test]
    fn mistakes_are_one_clear_line() {
        let (line, msg) = parse("[sip]\nextension = \"9000\"\npbxx = \"x\"\n").expect_err("unknown key");
        assert_eq!(line, 3);
        assert!(msg.contains("pbxx"), "{msg}");
        let cfg = parse("[sip]\nextension=\"9000\"\npbx=\"pbx\"\nbind=\"0.0.0.0\"\n").expect("ok");
        let e = effective(&cfg, &Overrides::default(), Some("p".into())).expect_err("bad bind");
        assert_eq!(
            e.to_string(),
            "sip.bind = \"0.0.0.0\" is not valid: expected IP:PORT, e.g. 0.0.0.0:5060 or 192.168.1.50:5060"
        );
        let cfg = parse("[sip]\nextension=\"9000\"\npbx=\"pbx\"\n").expect("ok");
        let e = effective(&cfg, &Overrides::default(), None).expect_err("no password");
        assert!(e.to_string().starts_with("no SIP password: set VOICE_UA_SIP_PASSWORD"), "{e}");
        let e = effective(&FileConfig::default(), &Overrides::default(), None).expect_err("no ext");
        assert!(e.to_string().contains("--ext"), "{e}");
        for (key, bad) in [
            ("transport", "\"sctp\""),
            ("public_addr", "\"host.example\""),
            ("expires", "5"),
            ("keepalive", "\"ping\""),
            ("tcp_max_connections", "0"),
            ("tcp_idle_timeout_secs", "3600"),
        ] {
            let cfg = parse(&format!("[sip]\nextension=\"9000\"\npbx=\"pbx\"\n{key} = {bad}\n")).expect("ok");
            let e = effective(&cfg, &Overrides::default(), Some("p".into())).expect_err(key);
            assert!(e.to_string().starts_with(&format!("sip.{key} = ")), "{e}");
            assert!(!e.to_string().contains('\n'));
        }
    }

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
        for (key, bad) in [
            ("allow", "[\"pbx.lan\"]"),
            ("codecs", "[\"G729\"]"),
            ("rtp_ports", "\"9-5\""),
            ("max_calls", "0"),
        ] {
            let cfg = parse(&format!("[calls]\n{key} = {bad}\n")).expect("ok");
            let e = calls(&cfg).expect_err(key);
            assert!(e.to_string().starts_with(&format!("calls.{key} = ")), "{e}");
        }
    }

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

    #[test]
    fn records_default_to_the_state_directory_and_can_be_turned_off() {
        let defaults = |state: Option<&str>, exists| {
            records_with(&FileConfig::default(), state, exists).expect("valid").expect("on")
        };
        let r = defaults(Some("/var/lib/voice-ua"), true);
        assert_eq!(r.path, PathBuf::from("/var/lib/voice-ua/calls.db"));
        assert_eq!(
            (r.retention.call_days, r.retention.recordings_dir.clone(), r.retention.recording_days),
            (90, None, 30)
        );
        assert_eq!(defaults(Some("/srv/state:/other"), false).path, PathBuf::from("/srv/state/calls.db"));
        assert_eq!(defaults(None, true).path, PathBuf::from("/var/lib/voice-ua/calls.db"));
        assert_eq!(defaults(None, false).path, PathBuf::from("calls.db"));
        assert_eq!(describe_records(Some(&defaults(None, false))), "calls.db, kept 90 days; recordings off");

        let cfg = parse("[records]\npath = \"/data/v/calls.db\"\nrecordings = true\nretention_days = 0\n")
            .expect("ok");
        let r = records_with(&cfg, None, false).expect("valid").expect("on");
        assert_eq!(
            r.retention.recordings_dir,
            Some(PathBuf::from("/data/v/recordings")),
            "next to the database"
        );
        assert_eq!(r.retention.call_days, 0);
        assert_eq!(
            describe_records(Some(&r)),
            "/data/v/calls.db, kept forever; stereo recordings in /data/v/recordings, kept 30 days"
        );
        let cfg =
            parse("[records]\nrecordings = true\nrecordings_dir = \"/rec\"\nrecordings_retention_days = 7\n")
                .expect("ok");
        let r = records_with(&cfg, None, false).expect("valid").expect("on");
        assert_eq!(
            (r.retention.recordings_dir, r.retention.recording_days),
            (Some(PathBuf::from("/rec")), 7)
        );

        let off = parse("[records]\npath = \"\"\n").expect("ok");
        assert_eq!(records_with(&off, Some("/var/lib/voice-ua"), true).expect("valid"), None);
        assert_eq!(describe_records(None), "off (records.path = \"\")");
    }

    #[test]
    fn records_mistakes_are_one_clear_line() {
        for (text, start) in [
            (
                "path = \"\"\nrecordings = true",
                "records.recordings = \"true\" is not valid: recordings belong",
            ),
            ("retention_days = 40000", "records.retention_days = \"40000\""),
            ("recordings_retention_days = 99999", "records.recordings_retention_days = \"99999\""),
            ("recordings = true\nrecordings_dir = \"\"", "records.recordings_dir = \"\""),
            (
                "path = \"/var/lib/voice-ua/\"",
                "records.path = \"/var/lib/voice-ua/\" is not valid: give the database file",
            ),
        ] {
            let cfg = parse(&format!("[records]\n{text}\n")).expect("parses");
            let e = records_with(&cfg, None, false).expect_err(text);
            assert!(e.to_string().starts_with(start), "{e}");
            assert!(!e.to_string().contains('\n'));
        }
        let (line, msg) = parse("[records]\nretention = 5\n").expect_err("unknown key");
        assert!(line == 2 && msg.contains("retention"), "{line} {msg}");
        assert!(parse("[records]\nretention_days = -1\n").is_err(), "negative days refused");
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
    fn a_secret_file_that_never_ends_is_refused_not_read_forever() {
        let cfg = parse("[sip]\nextension=\"9000\"\npbx=\"pbx\"\npassword_file=\"/dev/zero\"\n").expect("ok");
        let e = effective(&cfg, &Overrides::default(), None).expect_err("endless file");
        assert!(
            e.to_string().contains("/dev/zero") && e.to_string().contains("larger than 65536 bytes"),
            "{e}"
        );
        let dir = tempfile::tempdir().expect("tmp");
        let pw = dir.path().join("pw");
        std::fs::write(&pw, [0xff, 0xfe, b'\n']).expect("write");
        let cfg =
            parse(&format!("[sip]\nextension=\"9000\"\npbx=\"pbx\"\npassword_file=\"{}\"\n", pw.display()))
                .expect("ok");
        let e = effective(&cfg, &Overrides::default(), None).expect_err("binary file");
        assert!(e.to_string().contains("not UTF-8 text"), "{e}");
    }

    #[test]
    fn secrets_are_masked() {
        let s = SipSettings::new("9000", "pbx", "hunter2");
        let d = describe(&s, None);
        assert!(!d.contains("hunter2"));
        assert!(d.contains("******** (7 characters)"));
    }
}

/// Arbitrary configuration text, shaped like TOML so that it reaches the validators:
/// the loader never panics, and a mistake is one line.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// What a key takes: a string, an integer, a boolean, an array of strings, a table.
    #[derive(Clone, Copy, Debug)]
    enum Kind {
        S,
        I,
        B,
        A,
        T,
    }
    use Kind::{A, B, I, S, T};

    /// Each section with its keys and what they take.
    const SECTIONS: [(&str, &[(&str, Kind)]); 7] = [
        (
            "[sip]",
            &[
                ("extension", S),
                ("pbx", S),
                ("domain", S),
                ("auth_user", S),
                ("password", S),
                ("password_file", S),
                ("realm", S),
                ("transport", S),
                ("bind", S),
                ("public_addr", S),
                ("expires", I),
                ("retry_max_secs", I),
                ("keepalive", S),
                ("keepalive_interval_secs", I),
                ("follow_nat", B),
                ("tcp_max_connections", I),
                ("tcp_idle_timeout_secs", I),
            ],
        ),
        ("[log]", &[("format", S), ("filter", S)]),
        (
            "[calls]",
            &[
                ("allow", A),
                ("max_calls", I),
                ("codecs", A),
                ("rtp_ports", S),
                ("media_timeout_secs", I),
                ("ring_ms", I),
                ("jitter_start_ms", I),
                ("jitter_max_ms", I),
            ],
        ),
        (
            "[agent]",
            &[
                ("provider", S),
                ("url", S),
                ("key_file", S),
                ("ca_file", S),
                ("language", S),
                ("listen_model", S),
                ("think_provider", S),
                ("think_model", S),
                ("prompt", S),
                ("prompt_file", S),
                ("speak_model", S),
                ("greeting", S),
                ("fallback_audio", S),
                ("fallback_transfer", S),
            ],
        ),
        (
            "[[agent.functions]]",
            &[
                ("name", S),
                ("description", S),
                ("kind", S),
                ("url", S),
                ("timeout_ms", I),
                ("headers", T),
                ("parameters", T),
                ("target", S),
            ],
        ),
        ("[http]", &[("listen", S)]),
        (
            "[records]",
            &[
                ("path", S),
                ("retention_days", I),
                ("recordings", B),
                ("recordings_dir", S),
                ("recordings_retention_days", I),
            ],
        ),
    ];

    /// Strings a user might write, near misses, and anything at all.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "",
                "9000",
                "udp",
                "TCP",
                "crlf",
                "off",
                "options",
                "json",
                "human",
                "echo",
                "deepgram",
                "http",
                "transfer",
                "hangup",
                "send_dtmf",
                "PCMU",
                "pcma",
                "G722",
                "127.0.0.1:5060",
                "[::1]:5060",
                "pbx:99999",
                "0.0.0.0:0",
                "10000-10500",
                "65535-1024",
                "1024-",
                "-",
                "wss://127.0.0.1:1/x",
                "http://127.0.0.1:1/",
                "/",
                ".",
                "/nonexistent/x",
                "debug,rsipstack=trace",
                "[{a=b}]=trace",
                "x=",
                "=",
                "é",
                "✓-✓",
                "a\nb",
                "\u{1b}[2J",
            ])
            .prop_map(String::from),
            any::<String>(),
            "[ -~]{0,16}",
        ]
    }

    fn quoted() -> impl Strategy<Value = String> {
        text().prop_map(|s| toml::Value::String(s).to_string())
    }

    /// A value of `kind`, now and then one of another kind or not TOML at all.
    fn value(kind: Kind) -> BoxedStrategy<String> {
        let right = match kind {
            S => quoted().boxed(),
            I => prop_oneof![
                any::<i64>().prop_map(|n| n.to_string()),
                (0u32..70_000).prop_map(|n| n.to_string())
            ]
            .boxed(),
            B => any::<bool>().prop_map(|b| b.to_string()).boxed(),
            A => prop::collection::vec(quoted(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))).boxed(),
            T => prop::collection::vec((text(), quoted()), 0..3)
                .prop_map(|v| {
                    let kv: Vec<String> =
                        v.iter().map(|(k, v)| format!("{} = {v}", toml::Value::String(k.clone()))).collect();
                    format!("{{ {} }}", kv.join(", "))
                })
                .boxed(),
        };
        prop_oneof![
            40 => right,
            1 => quoted(),
            1 => any::<i64>().prop_map(|n| n.to_string()),
            1 => "[^\n]{0,12}",
        ]
        .boxed()
    }

    fn block(i: usize) -> impl Strategy<Value = String> {
        let (header, keys) = SECTIONS[i];
        // A function needs its name, description and kind (the first three keys).
        let required = if header == "[[agent.functions]]" { 3 } else { 0 };
        prop::sample::subsequence(keys[required..].to_vec(), 0..=(keys.len() - required).min(6))
            .prop_flat_map(move |chosen| {
                keys[..required]
                    .iter()
                    .chain(&chosen)
                    .map(|&(k, kind)| (Just(k), value(kind)))
                    .collect::<Vec<_>>()
            })
            .prop_map(move |kv| {
                let lines: Vec<String> = kv.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{header}\n{}\n", lines.join("\n"))
            })
    }

    /// A whole file: some of the sections, each once, in order.
    fn file() -> impl Strategy<Value = String> {
        prop::sample::subsequence((0..SECTIONS.len()).collect::<Vec<_>>(), 0..=SECTIONS.len())
            .prop_flat_map(|chosen| chosen.into_iter().map(block).collect::<Vec<_>>())
            .prop_map(|blocks| blocks.concat())
    }

    /// Every check `voice-ua check` makes of a file, each on its own (so that one
    /// mistake does not hide the others from the test): the messages of those that fail.
    fn every_check(text: &str) -> Vec<String> {
        let file = match parse(text) {
            Ok(f) => f,
            Err((line, message)) => {
                return vec![ConfigError::Parse { path: "t.toml".into(), line, message }.to_string()]
            }
        };
        let given =
            Overrides { extension: Some("9000".into()), pbx: Some("pbx".into()), ..Default::default() };
        let mut errors: Vec<String> = [
            effective(&file, &Overrides::default(), None).err(),
            effective(&file, &given, Some("pw".into())).err(),
            calls(&file).err(),
            http(&file).err(),
            records_with(&file, None, false).err(),
            crate::agent_config::choose(&file.agent, None).err(),
            crate::agent_config::choose(&file.agent, Some("key".into())).err(),
        ]
        .into_iter()
        .flatten()
        .map(|e| e.to_string())
        .collect();
        let directives = crate::log_directives(file.log.filter.clone());
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&directives) {
            errors.push(format!("log filter \"{}\" is not valid: {e}", one_line(&directives)));
        }
        errors
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn any_config_text_loads_or_says_what_is_wrong_in_one_line(
            text in file(),
            junk in prop::option::weighted(0.1, "[^\n]{0,20}"),
        ) {
            let mut text = text;
            if let Some(j) = junk {
                text.push_str(&j);
            }
            for e in every_check(&text) {
                prop_assert!(!e.is_empty() && !e.contains(['\n', '\r']), "{:?} from\n{}", e, text);
            }
        }
    }
}
