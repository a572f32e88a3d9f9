//! [`FakeConfig`]: how the fake behaves (key, ws:// or wss://, timeouts, script).

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
    /// Played by every connection after `SettingsApplied`.
    pub script: Vec<Step>,
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
