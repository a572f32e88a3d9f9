//! [`FakeConfig`]: how the fake behaves (key, ws:// or wss://, port, pacing, script or
//! echo).

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
    /// Played by every connection once its session is configured.
    pub script: Vec<Step>,
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
