//! [`FakeConfig`]: how the fake behaves (key, ws:// or wss://, timeouts, the script, and
//! per connection: its own script, a drop after the handshake, a refused upgrade).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::Step;

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// The only key accepted.
    pub api_key: String,
    /// Serve `wss://` with a generated certificate.
    pub tls: bool,
    /// Close sessions the client leaves silent this long.
    pub idle_timeout: Duration,
    /// Hold `SettingsApplied` back this long (audio in between is an error).
    pub settings_applied_delay: Duration,
    /// Played by every connection after `SettingsApplied` (unless it has its own).
    pub script: Vec<Step>,
    /// Connection `n` (1-based) plays this script instead.
    pub scripts: BTreeMap<u32, Vec<Step>>,
    /// The first this many connections are dropped (no close frame) right after
    /// `SettingsApplied`.
    pub close_after_handshake: u32,
    /// From connection `n` on, the upgrade is refused with this HTTP status.
    pub refuse_from: Option<(u32, u16)>,
    /// Answer every `InjectAgentMessage` with `InjectionRefused`.
    pub refuse_injections: bool,
}

impl FakeConfig {
    /// ws://, a 10 s idle timeout, no delay, an empty script.
    pub fn new(api_key: &str) -> Self {
        FakeConfig {
            api_key: api_key.into(),
            tls: false,
            idle_timeout: Duration::from_secs(10),
            settings_applied_delay: Duration::ZERO,
            script: Vec::new(),
            scripts: BTreeMap::new(),
            close_after_handshake: 0,
            refuse_from: None,
            refuse_injections: false,
        }
    }

    /// Refuse every `InjectAgentMessage`.
    pub fn refuse_injections(mut self, on: bool) -> Self {
        self.refuse_injections = on;
        self
    }

    /// Serve wss://.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// The script.
    pub fn script(mut self, steps: Vec<Step>) -> Self {
        self.script = steps;
        self
    }

    /// Connection `n` (1-based: the first is 1) plays `steps` instead of the script.
    pub fn script_for(mut self, n: u32, steps: Vec<Step>) -> Self {
        self.scripts.insert(n, steps);
        self
    }

    /// Drop the first `k` connections right after `SettingsApplied`.
    pub fn close_after_handshake(mut self, k: u32) -> Self {
        self.close_after_handshake = k;
        self
    }

    /// Refuse the upgrade of connection `n` and every later one with HTTP `status`.
    pub fn refuse_from(mut self, n: u32, status: u16) -> Self {
        self.refuse_from = Some((n, status));
        self
    }

    /// What connection `n` plays.
    pub(crate) fn script_of(&self, n: u32) -> &[Step] {
        self.scripts.get(&n).unwrap_or(&self.script)
    }

    /// The idle timeout.
    pub fn idle_timeout(mut self, t: Duration) -> Self {
        self.idle_timeout = t;
        self
    }

    /// The `SettingsApplied` delay.
    pub fn settings_applied_delay(mut self, t: Duration) -> Self {
        self.settings_applied_delay = t;
        self
    }
}
