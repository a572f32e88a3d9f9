//! The binary under test: locating it, starting `voice-ua register` with
//! everything passed by flags/env from a fresh working directory, and
//! reading its JSON log (stderr, `--log-format json`).

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use serde_json::Value;

use super::logs;
use super::process::Proc;
use super::{wait_until, RunDir, EXT};

/// `$VOICE_UA_BIN`, else `<target>/debug/voice-ua` derived from this test
/// executable (`<target>/debug/deps/interop-<hash>`). Panics if missing.
pub fn binary() -> PathBuf {
    let path = match std::env::var_os("VOICE_UA_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => {
            let exe = std::env::current_exe().expect("path of the running test executable");
            let profile_dir = exe
                .parent()
                .and_then(|deps| deps.parent())
                .expect("test executable lives in <target>/<profile>/deps/");
            profile_dir.join("voice-ua")
        }
    };
    assert!(
        path.is_file(),
        "voice-ua binary not found at {}: build it first: cargo build -p voice-ua \
         (or point VOICE_UA_BIN at it)",
        path.display()
    );
    path
}

/// How the password reaches voice-ua.
#[derive(Clone, Debug)]
pub enum Password {
    /// `--password P` on the command line.
    Flag(String),
    /// `VOICE_UA_SIP_PASSWORD=P` in the environment.
    Env(String),
}

#[derive(Clone, Debug)]
pub struct UaConfig {
    pub pbx_port: u16,
    pub bind_port: u16,
    /// "udp" or "tcp"
    pub transport: &'static str,
    pub password: Password,
    pub expires: Option<u32>,
}

/// One `registered` event.
#[derive(Clone, Debug)]
pub struct Registered {
    pub expires: Option<u64>,
    pub contact: String,
}

pub struct VoiceUa {
    proc: Proc,
    pub bind_port: u16,
}

impl VoiceUa {
    pub fn start(run: &RunDir, cfg: &UaConfig) -> VoiceUa {
        Self::start_with_config(run, cfg, None)
    }

    /// Like [`VoiceUa::start`], with `--config <file>` when `config_toml` is
    /// given: the TOML is written to `voice-ua.toml` in the run directory
    /// (not the working directory, so only the flag can find it).
    pub fn start_with_config(run: &RunDir, cfg: &UaConfig, config_toml: Option<&str>) -> VoiceUa {
        Self::start_with_env(run, cfg, config_toml, &[])
    }

    /// Like [`VoiceUa::start_with_config`], with extra environment variables
    /// (e.g. `DEEPGRAM_API_KEY`) for the child only.
    pub fn start_with_env(
        run: &RunDir,
        cfg: &UaConfig,
        config_toml: Option<&str>,
        env: &[(&str, &str)],
    ) -> VoiceUa {
        let bin = binary();
        // A fresh working directory: no ./voice-ua.toml is found there.
        let workdir = run.subdir("ua-cwd");
        let mut cmd = Command::new(&bin);
        cmd.current_dir(&workdir)
            .arg("register")
            .args(["--ext", EXT])
            .arg("--pbx")
            .arg(format!("127.0.0.1:{}", cfg.pbx_port))
            .args(["--transport", cfg.transport])
            .arg("--bind")
            .arg(format!("127.0.0.1:{}", cfg.bind_port))
            .args(["--log-format", "json"]);
        if let Some(expires) = cfg.expires {
            cmd.arg("--expires").arg(expires.to_string());
        }
        if let Some(toml) = config_toml {
            let file = run.file("voice-ua.toml");
            std::fs::write(&file, toml).unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
            cmd.arg("--config").arg(file);
        }
        // Nothing from the developer's environment may leak into the run.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("VOICE_UA_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("RUST_LOG", "info").env("HOME", &workdir).env("XDG_CONFIG_HOME", &workdir);
        cmd.envs(env.iter().copied());
        match &cfg.password {
            Password::Flag(p) => {
                cmd.arg("--password").arg(p);
            }
            Password::Env(p) => {
                cmd.env("VOICE_UA_SIP_PASSWORD", p);
            }
        }
        let proc = Proc::spawn("voice-ua", cmd, run, true);
        VoiceUa { proc, bind_port: cfg.bind_port }
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// All JSON events logged so far.
    pub fn events(&self) -> Vec<Value> {
        logs::json_lines(&self.proc.stderr)
    }

    /// Events whose message starts with `prefix`, optionally of one level.
    pub fn events_with(&self, prefix: &str, level: Option<&str>) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| logs::message(e).is_some_and(|m| m.starts_with(prefix)))
            .filter(|e| level.is_none_or(|l| logs::level(e) == Some(l)))
            .collect()
    }

    /// Every `registered` (INFO) event so far, oldest first.
    pub fn registered(&self) -> Vec<Registered> {
        self.events_with("registered", Some("INFO"))
            .iter()
            .map(|e| Registered {
                expires: logs::field_u64(e, "expires"),
                contact: logs::field(e, "contact").and_then(Value::as_str).unwrap_or_default().to_string(),
            })
            .collect()
    }

    /// Waits until at least `n` `registered` events were logged.
    pub fn wait_registered(&mut self, n: usize, timeout: Duration) -> Option<Vec<Registered>> {
        wait_until(timeout, Duration::from_millis(100), || {
            let regs = self.registered();
            (regs.len() >= n).then_some(regs)
        })
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.proc.try_status()
    }

    /// `kill -TERM <pid>`.
    pub fn sigterm(&mut self) {
        self.proc.signal("TERM");
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.proc.wait_timeout(timeout)
    }

    /// Log tail for failure messages.
    pub fn diag(&self) -> String {
        format!("{}{}", logs::tail(&self.proc.stderr, 60), logs::tail(&self.proc.stdout, 10))
    }
}
