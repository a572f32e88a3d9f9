//! The Deepgram Voice Agent bridge: one WebSocket per call to
//! `wss://agent.deepgram.com/v1/agent/converse`, caller audio in the call's own G.711 or
//! linear16 format (nothing is transcoded), agent audio back as seam events.
//!
//! - [`messages`]: serde types for every JSON message (sans-IO).
//! - [`session`]: the state machine that decides what to send and what the call sees.
//! - `config`: [`DeepgramConfig`], the agent's settings and its functions.
//! - `connection`: the async shell (tokio-tungstenite over rustls with the ring provider):
//!   TLS, the WebSocket, the per-call task and [`check_key`].
//! - the client-side functions it calls are [`crate::tools`], shared with other providers.
//! - this module: [`DeepgramProvider`], the [`AgentProvider`], and the public names of the
//!   parts above.

#[doc(hidden)]
pub mod audio_out;
pub mod messages;
pub mod session;

mod config;
mod connection;

// The tools were Deepgram's first; their old paths stay.
pub use crate::tools::arguments;
#[doc(hidden)]
pub use crate::tools::http;

use std::fmt;
use std::sync::Arc;

pub use self::config::{AgentConfig, DeepgramConfig, Flux, DEFAULT_URL, FLUX_MODEL};
pub use self::connection::check_key;
use self::session::PROVIDER;
use crate::provider::{AgentProvider, AgentSession, CallFacts};
pub use crate::tools::{Builtin, FunctionSpec, ToolKind};
pub use crate::tools::{MAX_DTMF_DIGITS, MAX_HANGUP_REASON};
// Shared with the other providers since OpenAI's; their old paths stay.
pub use crate::ws::{install_crypto_provider, CONNECT_TIMEOUT};
use crate::AgentError;

/// The Deepgram Voice Agent as an [`AgentProvider`].
#[derive(Clone)]
pub struct DeepgramProvider {
    config: Arc<DeepgramConfig>,
    tls: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for DeepgramProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeepgramProvider").field("config", &self.config).finish_non_exhaustive()
    }
}

impl DeepgramProvider {
    /// Check the URL and load the extra CA file. Installs the ring crypto provider.
    pub fn new(config: DeepgramConfig) -> Result<Self, AgentError> {
        crate::ws::install_crypto_provider();
        crate::ws::check_url(PROVIDER, &config.url)?;
        if config.api_key.trim().is_empty() {
            return Err(crate::ws::provider_error(
                PROVIDER,
                "no Deepgram API key configured: set one (agent.api_key or its environment variable)",
            ));
        }
        let tls = Arc::new(crate::ws::tls_config(PROVIDER, config.extra_ca_file.as_ref())?);
        Ok(DeepgramProvider { config: Arc::new(config), tls })
    }

    /// The configuration.
    pub fn config(&self) -> &DeepgramConfig {
        &self.config
    }
}

#[async_trait::async_trait]
impl AgentProvider for DeepgramProvider {
    fn name(&self) -> &str {
        PROVIDER
    }

    async fn open(&self, call: CallFacts) -> Result<AgentSession, AgentError> {
        call.format.validate()?;
        tracing::info!(format = %call.format, url = %self.config.url, "Deepgram agent answering");
        let config = Arc::clone(&self.config);
        let tls = Arc::clone(&self.tls);
        Ok(AgentSession::spawn(self.name(), move |io| connection::run(config, tls, call, io)))
    }
}
