//! `voice-ua check --agent` for the pipeline: each of the three servers asked once, the
//! way a call asks it — half a second of silence to the STT, a one-line conversation with
//! the configured functions to the LLM (streamed), one short sentence to the TTS — so a
//! wrong URL, model, key, voice or missing tool support shows before the first call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::config::{PipelineConfig, Stage, PROVIDER};
use super::connection::{speak, think, transcribe, StageMsg};
use super::wire::{wav_pcm16, ChatRequest, ChatStep, History};
use crate::http::HttpClient;
use crate::{ws, AgentError};

/// What one stage answered, for the check's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageCheck {
    /// The stage.
    pub stage: &'static str,
    /// From the request to its whole answer.
    pub took: Duration,
    /// What came back, in a few words.
    pub answer: String,
}

fn failed(stage: Stage, detail: impl std::fmt::Display) -> AgentError {
    ws::provider_error(PROVIDER, format!("the {} server {detail}", stage.word().to_uppercase()))
}

/// Ask each server once; the first that fails is the error.
pub async fn check(config: &PipelineConfig) -> Result<Vec<StageCheck>, AgentError> {
    ws::install_crypto_provider();
    let [stt, llm, tts] = config.check()?;
    let client = HttpClient::new(Arc::new(ws::tls_config(PROVIDER, config.extra_ca_file.as_ref())?));
    let mut report = Vec::new();

    let started = Instant::now();
    let silence = vec![0i16; config.stt.sample_rate as usize / 2];
    let text = transcribe(&client, &stt, &config.stt, wav_pcm16(&silence, config.stt.sample_rate))
        .await
        .map_err(|e| failed(Stage::Stt, e))?;
    report.push(StageCheck {
        stage: "stt",
        took: started.elapsed(),
        answer: format!("{text:?} for 0.5 s of silence"),
    });

    let started = Instant::now();
    let mut history = History::new(&config.instructions);
    history.push_user("This is a connection test: answer with the single word OK.");
    let mut request = ChatRequest::new(&config.llm.model, history.messages(), &config.functions);
    request.tool_choice = config.llm.tool_choice.as_ref();
    request.max_tokens = Some(16);
    let body = request.to_json().map_err(|e| failed(Stage::Llm, e))?;
    let (tx, mut rx) = mpsc::channel(64);
    think(&client, &llm, &config.llm, body, (1, 1), &tx).await;
    drop(tx);
    let mut said = String::new();
    let mut calls = 0;
    while let Some(msg) = rx.recv().await {
        match msg {
            StageMsg::Failed { detail, .. } => return Err(failed(Stage::Llm, detail)),
            StageMsg::Llm { step: ChatStep::Text(t), .. } => said.push_str(&t),
            StageMsg::Llm { step: ChatStep::ToolCalls(c), .. } => calls += c.len(),
            StageMsg::Llm { step: ChatStep::ServerError(e), .. } => {
                return Err(failed(Stage::Llm, format!("answered with an error: {e}")))
            }
            _ => {}
        }
    }
    let answer = match (said.trim(), calls) {
        ("", 0) => return Err(failed(Stage::Llm, format!("at {llm} streamed no text and no function call"))),
        (said, 0) => format!("{said:?}"),
        (_, n) => format!("{n} function call(s)"),
    };
    report.push(StageCheck { stage: "llm", took: started.elapsed(), answer });

    let started = Instant::now();
    let (tx, mut rx) = mpsc::channel(64);
    let (sentences, queue) = mpsc::unbounded_channel();
    let _ = sentences.send((0, "OK.".to_owned()));
    drop(sentences);
    speak(&client, &tts, &config.tts, 1, queue, &tx).await;
    drop(tx);
    let mut bytes = 0;
    while let Some(msg) = rx.recv().await {
        match msg {
            StageMsg::Failed { detail, .. } => return Err(failed(Stage::Tts, detail)),
            StageMsg::Audio { bytes: b, .. } => bytes += b.len(),
            _ => {}
        }
    }
    if bytes == 0 {
        return Err(failed(Stage::Tts, format!("at {tts} answered no audio for \"OK.\"")));
    }
    let ms = bytes as u64 * 1000 / (2 * u64::from(config.tts.sample_rate));
    report.push(StageCheck {
        stage: "tts",
        took: started.elapsed(),
        answer: format!("{ms} ms of audio for \"OK.\""),
    });
    Ok(report)
}
