//! The OpenAI Realtime bridge (GA API): one WebSocket per call to
//! `wss://api.openai.com/v1/realtime?model=gpt-realtime`, caller audio appended in the
//! call's own G.711 law (`audio/pcmu` or `audio/pcma`: nothing is transcoded), agent
//! audio back as seam events, barge-in truncating the reply where the caller stopped
//! hearing it.
//!
//! - [`messages`]: serde types for the client and server events (sans-IO).
//! - [`session`]: the state machine that decides what to send and what the call sees,
//!   with the playback accounting behind `conversation.item.truncate`.
//! - `config`: [`OpenAiConfig`], the model, voice, instructions, functions, turn
//!   detection and prices.
//! - `connection`: the async shell (tokio-tungstenite over rustls with the ring
//!   provider, shared with Deepgram in [`crate::ws`]): the per-call task and
//!   [`check_key`].
//! - the functions it calls are [`crate::tools`], shared with Deepgram.
//! - this module: [`OpenAiProvider`], the [`AgentProvider`].

pub mod messages;
pub mod session;

mod config;
mod connection;

use std::fmt;
use std::sync::Arc;

pub use self::config::{
    Eagerness, NoiseReduction, OpenAiConfig, Prices, ToolChoice, Transcription, TurnDetection,
    DEFAULT_APPEND_FRAMES, DEFAULT_MODEL, DEFAULT_RENEW_AFTER, DEFAULT_TRANSCRIPTION_MODEL, DEFAULT_URL,
    DEFAULT_VOICE, MAX_APPEND_FRAMES, RENEW_HARD_LIMIT, VAD_PREFIX_PADDING_MS, VAD_SILENCE_DURATION_MS,
    VAD_THRESHOLD,
};
pub use self::connection::check_key;
use self::messages::AudioFormatSpec;
use self::session::PROVIDER;
use crate::provider::{AgentProvider, AgentSession, CallFacts};
use crate::ws::{self, provider_error};
use crate::AgentError;

/// The OpenAI Realtime API as an [`AgentProvider`].
#[derive(Clone)]
pub struct OpenAiProvider {
    config: Arc<OpenAiConfig>,
    tls: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiProvider").field("config", &self.config).finish_non_exhaustive()
    }
}

impl OpenAiProvider {
    /// Check the URL, the key and the model, and load the extra CA file. Installs the ring
    /// crypto provider.
    pub fn new(config: OpenAiConfig) -> Result<Self, AgentError> {
        ws::install_crypto_provider();
        ws::check_url(PROVIDER, &config.request_url())?;
        if config.api_key.trim().is_empty() {
            return Err(provider_error(
                PROVIDER,
                "no OpenAI API key configured: set OPENAI_API_KEY or agent.key_file",
            ));
        }
        if config.model.is_empty()
            || !config.model.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        {
            return Err(provider_error(
                PROVIDER,
                format!("OpenAI model {:?} is not a model name: use e.g. gpt-realtime", config.model),
            ));
        }
        let tls = Arc::new(ws::tls_config(PROVIDER, config.extra_ca_file.as_ref())?);
        Ok(OpenAiProvider { config: Arc::new(config), tls })
    }

    /// The configuration.
    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }
}

#[async_trait::async_trait]
impl AgentProvider for OpenAiProvider {
    fn name(&self) -> &str {
        PROVIDER
    }

    async fn open(&self, call: CallFacts) -> Result<AgentSession, AgentError> {
        call.format.validate()?;
        // OpenAI takes G.711 as it is, and PCM only at 24 kHz: a linear16 call (a G.722
        // call's 16 kHz) is resampled both ways by the session.
        if AudioFormatSpec::for_call(call.format).is_none() {
            return Err(AgentError::UnsupportedFormat { format: call.format });
        }
        tracing::info!(format = %call.format, model = %self.config.model, "OpenAI agent answering");
        let config = Arc::clone(&self.config);
        let tls = Arc::clone(&self.tls);
        Ok(AgentSession::spawn(self.name(), move |io| connection::run(config, tls, call, io)))
    }
}
