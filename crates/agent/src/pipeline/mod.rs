//! The on-prem pipeline agent: voice-ua's own turn-taking, then any OpenAI-compatible
//! speech-to-text (`/v1/audio/transcriptions`: speaches, whisper.cpp's server, OpenAI),
//! any OpenAI-compatible LLM with the configured functions as tools
//! (`/v1/chat/completions`, streamed: Ollama, llama.cpp, vLLM, OpenRouter, OpenAI), and
//! any OpenAI-compatible text-to-speech (`/v1/audio/speech` as raw PCM, streamed:
//! Kokoro-FastAPI, speaches, OpenAI), sentence by sentence, with barge-in.
//!
//! - [`wire`]: the sans-IO wire pieces (SSE, chat-completion chunks, sentences, the
//!   bounded history, WAV and multipart bodies).
//! - `core`: [`PipelineCore`], the turn machine (sans-IO, virtual-time tests).
//! - `voice`: the TTS's PCM to the call's frames (one resampler per call).
//! - `config`: [`PipelineConfig`] and its checks.
//! - `connection`: the async shell, the per-call task making the HTTP requests.
//! - `check`: each server asked once, for `voice-ua check --agent`.
//! - this module: [`PipelineProvider`], the [`AgentProvider`].

pub mod wire;

mod check;
mod config;
mod connection;
mod core;
mod voice;

use std::sync::Arc;

pub use self::check::{check, StageCheck};
use self::config::PROVIDER;
pub use self::config::{
    endpoint_url, LlmConfig, LlmPrices, PipelineConfig, Stage, SttConfig, TtsConfig,
    DEFAULT_FIRST_TOKEN_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_HISTORY, DEFAULT_MAX_TOOL_ROUNDS,
    DEFAULT_STT_TIMEOUT, DEFAULT_TTS_TIMEOUT,
};
use self::connection::Endpoints;
pub use self::core::{Output, PipelineCore};
pub use self::voice::Voice;
use crate::provider::{AgentProvider, AgentSession, CallFacts};
use crate::{ws, AgentError};

/// The pipeline as an [`AgentProvider`].
#[derive(Clone)]
pub struct PipelineProvider {
    config: Arc<PipelineConfig>,
    endpoints: Arc<Endpoints>,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for PipelineProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineProvider").field("config", &self.config).finish_non_exhaustive()
    }
}

impl PipelineProvider {
    /// Check the settings and load the extra CA file. Installs the ring crypto provider.
    pub fn new(config: PipelineConfig) -> Result<Self, AgentError> {
        ws::install_crypto_provider();
        let [stt, llm, tts] = config.check()?;
        let tls = Arc::new(ws::tls_config(PROVIDER, config.extra_ca_file.as_ref())?);
        Ok(PipelineProvider {
            config: Arc::new(config),
            endpoints: Arc::new(Endpoints { stt, llm, tts }),
            tls,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }
}

#[async_trait::async_trait]
impl AgentProvider for PipelineProvider {
    fn name(&self) -> &str {
        PROVIDER
    }

    async fn open(&self, call: CallFacts) -> Result<AgentSession, AgentError> {
        call.format.validate()?;
        tracing::info!(
            format = %call.format,
            stt = %self.endpoints.stt,
            llm = %self.endpoints.llm,
            model = %self.config.llm.model,
            tts = %self.endpoints.tts,
            "pipeline agent answering"
        );
        let (config, endpoints, tls) =
            (Arc::clone(&self.config), Arc::clone(&self.endpoints), Arc::clone(&self.tls));
        Ok(AgentSession::spawn(self.name(), move |io| connection::run(config, endpoints, tls, call, io)))
    }
}
