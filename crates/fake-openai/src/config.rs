//! [`FakeConfig`]: how the fake behaves (key, ws:// or wss://, port, pacing, script or
//! echo).

use std::collections::BTreeMap;

use crate::Step;

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// The only key accepted.
    pub api_key: String,
    /// Serve `wss://` with a generated certificate.
    pub tls: bool,
    /// Listen on this port; 0: a free one.
    pub port: u16,
    /// Milliseconds of audio per `response.output_audio.delta`.
    pub delta_ms: u32,
    /// Played by every connection once its session is configured (unless it has its own).
    pub script: Vec<Step>,
    /// Connection `n` (1-based) plays this script instead.
    pub scripts: BTreeMap<u32, Vec<Step>>,
    /// The first this many connections are dropped (no close frame) right after
    /// `session.updated`.
    pub close_after_handshake: u32,
    /// From connection `n` on, the upgrade is refused with this HTTP status.
    pub refuse_from: Option<(u32, u16)>,
    /// After the script: answer each caller utterance (found by level) with the caller's
    /// own audio, like an echo test.
    pub echo: bool,
}

impl FakeConfig {
    /// ws://, any port, 100 ms deltas, an empty script, no echo.
    pub fn new(api_key: &str) -> Self {
        FakeConfig {
            api_key: api_key.into(),
            tls: false,
            port: 0,
            delta_ms: 100,
            script: Vec::new(),
            scripts: BTreeMap::new(),
            close_after_handshake: 0,
            refuse_from: None,
            echo: false,
        }
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

    /// Drop the first `k` connections right after `session.updated`.
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

    /// The port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Echo mode.
    pub fn echo(mut self, on: bool) -> Self {
        self.echo = on;
        self
    }

    /// Audio per delta.
    pub fn delta_ms(mut self, ms: u32) -> Self {
        self.delta_ms = ms.max(1);
        self
    }
}
