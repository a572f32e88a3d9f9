//! The `[sip]` section: the extension, the PBX, the password and how to reach it, merged
//! with the command line's flags and the environment into the `SipSettings` the SIP
//! user agent runs with; and those settings as `voice-ua check` prints them.

use super::error::{invalid, ConfigError};
use super::read::{read_text_bounded, MAX_SECRET_FILE};
use serde::Deserialize;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use voice_ua_sip::message::split_host_port;
use voice_ua_sip::{KeepaliveMode, SipSettings, Transport};

pub const PASSWORD_ENV: &str = "VOICE_UA_SIP_PASSWORD";

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

/// Merge the `[sip]` section, flags and environment into the settings the SIP user agent runs with.
/// `env_password` is the value of VOICE_UA_SIP_PASSWORD, if set.
pub fn settings(
    f: &SipSection,
    flags: &Overrides,
    env_password: Option<String>,
) -> Result<SipSettings, ConfigError> {
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
    use crate::config::{effective, parse, FileConfig};

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
