//! The generic WebSocket bot bridge: one WebSocket per call to a bot that speaks one of
//! two dialects, voice-ua being the client (the telephony side, as Twilio is):
//!
//! - [`twilio`]: Twilio Media Streams, the shape Pipecat, Telnyx, Exotel, SignalWire and
//!   Fonoster use;
//! - [`asp`]: the Audio Session Protocol of theo-ai-voice-agent.
//!
//! Each dialect is a sans-IO core ([`session::DialectCore`]); `connection` is the one
//! async shell for both; [`WebSocketProvider`] is the [`AgentProvider`]. A session that
//! cannot start or breaks ends with [`AgentError::Provider`] carrying a typed
//! [`FailureCode`], so the call plays its fallback prompt and transfers, as with Deepgram.
//! docs/websocket-bots.md describes both dialects message by message.

pub mod asp;
pub mod audio;
pub mod session;
pub mod twilio;

mod config;
mod connection;

use std::fmt;
use std::sync::Arc;

use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

pub use self::config::{Dialect, WebSocketConfig, DEFAULT_CONNECT_TIMEOUT};
use self::connection::Target;
pub use self::session::{FailureCode, PROVIDER};
use crate::provider::{AgentProvider, AgentSession, CallFacts};
use crate::ws;
use crate::AgentError;

/// A WebSocket bot as an [`AgentProvider`].
#[derive(Clone)]
pub struct WebSocketProvider {
    config: Arc<WebSocketConfig>,
    headers: Arc<Vec<(HeaderName, HeaderValue)>>,
    tls: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for WebSocketProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketProvider").field("config", &self.config).finish_non_exhaustive()
    }
}

fn config_error(detail: String) -> AgentError {
    AgentError::Provider { provider: PROVIDER.into(), detail, code: None }
}

impl WebSocketProvider {
    /// Check the URL and the headers, load the extra CA file. Installs the ring crypto
    /// provider.
    pub fn new(config: WebSocketConfig) -> Result<Self, AgentError> {
        ws::install_crypto_provider();
        ws::check_url(PROVIDER, &config.url)?;
        let mut headers = Vec::with_capacity(config.headers.len());
        for (name, value) in &config.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| config_error(format!("header name {name:?} is not a valid HTTP header name")))?;
            // The value is a secret: never in the message.
            let v = HeaderValue::from_str(value.trim()).map_err(|_| {
                config_error(format!("the value of header {name} holds characters a header cannot carry"))
            })?;
            headers.push((n, v));
        }
        let tls = Arc::new(ws::tls_config(PROVIDER, config.extra_ca_file.as_ref())?);
        Ok(WebSocketProvider { config: Arc::new(config), headers: Arc::new(headers), tls })
    }

    /// The configuration.
    pub fn config(&self) -> &WebSocketConfig {
        &self.config
    }
}

#[async_trait::async_trait]
impl AgentProvider for WebSocketProvider {
    fn name(&self) -> &str {
        PROVIDER
    }

    async fn open(&self, call: CallFacts) -> Result<AgentSession, AgentError> {
        audio::check_format(call.format)?;
        let config = &self.config;
        tracing::info!(format = %call.format, url = %config.url, dialect = %config.dialect, "WebSocket bot answering");
        let target = Target {
            config: Arc::clone(config),
            headers: Arc::clone(&self.headers),
            tls: Arc::clone(&self.tls),
        };
        let session = match config.dialect {
            Dialect::Twilio => {
                let ids = twilio::TwilioIds::for_call(&call, random_16());
                let parameters = twilio::custom_parameters(&call, &config.custom_parameters);
                let core = twilio::TwilioCore::new(call.format, ids, parameters);
                AgentSession::spawn(self.name(), move |io| connection::run(core, target, io))
            }
            Dialect::Asp => {
                let core = asp::AspCore::new(now(), &call, random_16());
                AgentSession::spawn(self.name(), move |io| connection::run(core, target, io))
            }
        };
        Ok(session)
    }
}

/// 16 random bytes (the operating system's generator; a clock-derived fallback keeps a
/// call going on a system without one).
fn random_16() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    if getrandom::getrandom(&mut bytes).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        bytes.copy_from_slice(&t.as_nanos().to_le_bytes());
    }
    bytes
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
