//! The Deepgram agent's configuration: [`DeepgramConfig`] (endpoint, key, extra CA file)
//! with its defaults, the [`AgentConfig`] every call gets (its client-side functions are
//! [`crate::tools::FunctionSpec`]s), the `Settings` message built from them, and the key
//! masked in `Debug` (the URL rule is [`crate::ws`]'s). The listener is Nova or Flux
//! ([`Flux`]); the Model Improvement Program is opted out of unless configured.

use std::fmt;
use std::path::PathBuf;

use super::messages::{AgentSettings, AudioSettings, FunctionDef, Listen, Provider, Settings, Speak, Think};
use crate::provider::AudioFormat;
use crate::reconnect::ReconnectPolicy;
use crate::tools::FunctionSpec;
use crate::ws::mask;

/// Deepgram's Voice Agent endpoint.
pub const DEFAULT_URL: &str = "wss://agent.deepgram.com/v1/agent/converse";

/// The Deepgram agent's settings for every call.
#[derive(Clone)]
pub struct DeepgramConfig {
    /// WebSocket URL; `ws://` only for loopback hosts (tests).
    pub url: String,
    /// API key, sent as `Authorization: Token <key>`. Never logged.
    pub api_key: String,
    /// A PEM file of CA certificates trusted in addition to the webpki roots.
    pub extra_ca_file: Option<PathBuf>,
    /// What the agent listens with, thinks with, says.
    pub settings: AgentConfig,
    /// How a session that drops mid-call is opened again.
    pub reconnect: ReconnectPolicy,
}

impl fmt::Debug for DeepgramConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeepgramConfig")
            .field("url", &self.url)
            .field("api_key", &mask(&self.api_key))
            .field("extra_ca_file", &self.extra_ca_file)
            .field("settings", &self.settings)
            .field("reconnect", &self.reconnect)
            .finish()
    }
}

impl DeepgramConfig {
    /// The default endpoint and agent with this key.
    pub fn new(api_key: impl Into<String>) -> Self {
        DeepgramConfig {
            url: DEFAULT_URL.into(),
            api_key: api_key.into(),
            extra_ca_file: None,
            settings: AgentConfig::default(),
            reconnect: ReconnectPolicy::default(),
        }
    }

    /// The `Settings` message for a call in `format`.
    pub fn settings_message(&self, format: AudioFormat) -> Settings {
        let s = &self.settings;
        Settings {
            audio: AudioSettings::for_format(format),
            agent: AgentSettings {
                listen: Listen { provider: s.listen_provider() },
                think: Think {
                    provider: Provider {
                        kind: s.think_provider.clone(),
                        model: Some(s.think_model.clone()),
                        ..Provider::default()
                    },
                    prompt: Some(s.prompt.clone()),
                    functions: s
                        .functions
                        .iter()
                        .map(|f| FunctionDef {
                            name: f.name.clone(),
                            description: f.description.clone(),
                            parameters: f.parameters.clone(),
                        })
                        .collect(),
                },
                speak: Speak {
                    provider: Provider {
                        kind: "deepgram".into(),
                        model: Some(s.speak_model.clone()),
                        ..Provider::default()
                    },
                },
                greeting: s.greeting.clone(),
                context: None,
            },
            experimental: s.experimental,
            mip_opt_out: s.mip_opt_out,
        }
    }
}

/// Deepgram Flux, the `v2` listen provider with its own end-of-turn detection
/// (reference §3.2): what [`AgentConfig::flux`] sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Flux {
    /// `flux-general-en` or `flux-general-multi`.
    pub model: String,
    /// The end-of-turn confidence that ends a turn (0.5-0.9), when set.
    pub eot_threshold: Option<f64>,
    /// The confidence of an early end-of-turn guess, when set.
    pub eager_eot_threshold: Option<f64>,
    /// A turn ends after this much silence whatever the confidence, when set.
    pub eot_timeout_ms: Option<u32>,
}

impl Default for Flux {
    /// `flux-general-en` with Deepgram's own thresholds.
    fn default() -> Self {
        Flux {
            model: FLUX_MODEL.into(),
            eot_threshold: None,
            eager_eot_threshold: None,
            eot_timeout_ms: None,
        }
    }
}

/// Flux's English model.
pub const FLUX_MODEL: &str = "flux-general-en";

/// The agent itself.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// Listen language (`en`, `es`, `multi`).
    pub language: String,
    /// Speech-to-text model (`nova-3`).
    pub listen_model: String,
    /// LLM provider (`open_ai`, `anthropic`, `google`, `groq`).
    pub think_provider: String,
    /// LLM model (`gpt-4o-mini`).
    pub think_model: String,
    /// System prompt.
    pub prompt: String,
    /// Voice (`aura-2-thalia-en`, `aura-2-celeste-es`).
    pub speak_model: String,
    /// Said when the call is answered.
    pub greeting: Option<String>,
    /// Client-side functions.
    pub functions: Vec<FunctionSpec>,
    /// Ask for experimental messages (Deepgram's own latency figures).
    pub experimental: bool,
    /// Listen with Flux (`v2`) instead of `listen_model` (Nova, `v1`); `language` is
    /// then Flux's model's.
    pub flux: Option<Flux>,
    /// Words the listener should expect (names, products), for either listener.
    pub keyterms: Vec<String>,
    /// Opt out of Deepgram's Model Improvement Program (default: yes).
    pub mip_opt_out: bool,
    /// A DTMF key that ends the caller's turn (Flux's `ForceEndTurn`) and sends the digits
    /// typed before it, when set.
    pub end_of_turn_key: Option<char>,
}

impl AgentConfig {
    /// `agent.listen.provider`: Nova (`v1`, the model and language) or Flux (`v2`, its
    /// thresholds; no `smart_format`, no language).
    pub fn listen_provider(&self) -> Provider {
        match &self.flux {
            None => Provider {
                kind: "deepgram".into(),
                model: Some(self.listen_model.clone()),
                language: Some(self.language.clone()),
                keyterms: self.keyterms.clone(),
                ..Provider::default()
            },
            Some(f) => Provider {
                kind: "deepgram".into(),
                version: Some("v2".into()),
                model: Some(f.model.clone()),
                eot_threshold: f.eot_threshold,
                eager_eot_threshold: f.eager_eot_threshold,
                eot_timeout_ms: f.eot_timeout_ms,
                keyterms: self.keyterms.clone(),
                ..Provider::default()
            },
        }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            language: "en".into(),
            listen_model: "nova-3".into(),
            think_provider: "open_ai".into(),
            think_model: "gpt-4o-mini".into(),
            prompt: "You answer the phone for a small business. Keep every answer short.".into(),
            speak_model: "aura-2-thalia-en".into(),
            greeting: None,
            functions: Vec::new(),
            experimental: false,
            flux: None,
            keyterms: Vec::new(),
            mip_opt_out: true,
            end_of_turn_key: None,
        }
    }
}
