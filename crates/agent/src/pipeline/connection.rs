//! The pipeline's async shell around [`PipelineCore`]: the per-call task that feeds it
//! the call's inputs and the three stages' answers, and makes the HTTP requests it
//! decides on ([`crate::http`], one client per call, connections kept alive):
//!
//! - **STT**: one task per utterance, `multipart/form-data` with the WAV, the JSON
//!   `{"text": …}` back within `stt.timeout`.
//! - **LLM**: one streamed request at a time (`text/event-stream`), SSE decoded and
//!   assembled into steps as they arrive; the first token within `first_token_timeout`,
//!   no gap longer than `idle_timeout`.
//! - **TTS**: one worker per reply, taking its sentences in order, each streamed back as
//!   raw PCM with its first byte within `first_byte_timeout`.
//!
//! A new turn or a barge-in aborts the LLM and TTS tasks (their connections go with
//! them); the core ignores anything late from an older turn.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::http::Uri;

use super::config::{LlmConfig, PipelineConfig, Stage, SttConfig, TtsConfig};
use super::core::{Output, PipelineCore};
use super::wire::{multipart_form, parse_completion, ChatStep, ChatStream, FilePart, SseDecoder};
use crate::http::{Body, HttpClient, HttpError, HttpResponse};
use crate::provider::{AgentEvent, AgentIo, CallFacts, CallInput, SessionEnd};
use crate::tools::{start_tool, tool_finished, transfer_answer, PendingTransfer, ToolResult};
use crate::ws::now;

/// The most bytes of an STT answer read.
const MAX_STT_ANSWER: usize = 64 * 1024;
/// The most bytes of one LLM answer read (a runaway stream is cut).
const MAX_LLM_ANSWER: usize = 1 << 20;

/// What a stage task reports.
#[derive(Debug)]
pub(super) enum StageMsg {
    Transcript { turn: u32, text: String },
    Llm { turn: u32, round: u32, step: ChatStep },
    LlmEnded { turn: u32, round: u32 },
    Audio { turn: u32, seq: u32, bytes: Bytes },
    SentenceDone { turn: u32, seq: u32 },
    Failed { turn: u32, stage: Stage, detail: String },
}

/// Where each stage lives, and how to ask it.
pub(super) struct Endpoints {
    pub stt: Uri,
    pub llm: Uri,
    pub tts: Uri,
}

/// The TTS worker of the reply being spoken.
struct Speaker {
    turn: u32,
    sentences: mpsc::UnboundedSender<(u32, String)>,
    task: AbortHandle,
}

/// The session task.
pub(super) async fn run(
    config: Arc<PipelineConfig>,
    endpoints: Arc<Endpoints>,
    tls: Arc<rustls::ClientConfig>,
    call: CallFacts,
    mut io: AgentIo,
) {
    let mut core = match PipelineCore::new(Arc::clone(&config), call.format) {
        Ok(core) => core,
        Err(error) => {
            tracing::warn!(%error, "pipeline agent could not start");
            let _ = io.send(AgentEvent::Ended(SessionEnd::Failed(error))).await;
            return;
        }
    };
    let client = HttpClient::new(tls.clone());
    let (tx, mut rx) = mpsc::channel::<StageMsg>(64);
    let (tool_tx, mut tool_rx) = mpsc::channel::<ToolResult>(8);
    let mut transfer: Option<PendingTransfer> = None;
    let mut tool_turns: HashMap<String, u32> = HashMap::new();
    let mut llm: Option<AbortHandle> = None;
    let mut speaker: Option<Speaker> = None;
    let mut stt_tasks: Vec<AbortHandle> = Vec::new();
    loop {
        while let Some(output) = core.poll_output() {
            match output {
                Output::Event(event) => {
                    let last = matches!(event, AgentEvent::Ended(_));
                    if io.send(event).await.is_err() {
                        core.call_ended();
                    }
                    if last {
                        stop(&mut llm, &mut speaker);
                        stt_tasks.iter().for_each(AbortHandle::abort);
                        return;
                    }
                }
                Output::Transcribe { turn, wav } => {
                    stt_tasks.retain(|t| !t.is_finished());
                    let (client, url, cfg, tx) =
                        (client.clone(), endpoints.stt.clone(), config.stt.clone(), tx.clone());
                    let task = tokio::spawn(async move {
                        let msg = match transcribe(&client, &url, &cfg, wav).await {
                            Ok(text) => StageMsg::Transcript { turn, text },
                            Err(detail) => StageMsg::Failed { turn, stage: Stage::Stt, detail },
                        };
                        let _ = tx.send(msg).await;
                    });
                    stt_tasks.push(task.abort_handle());
                }
                Output::Think { turn, round, body } => {
                    if let Some(old) = llm.take() {
                        old.abort();
                    }
                    let (client, url, cfg, tx) =
                        (client.clone(), endpoints.llm.clone(), config.llm.clone(), tx.clone());
                    let task =
                        tokio::spawn(
                            async move { think(&client, &url, &cfg, body, (turn, round), &tx).await },
                        );
                    llm = Some(task.abort_handle());
                }
                Output::Speak { turn, seq, text } => {
                    if speaker.as_ref().is_none_or(|s| s.turn != turn) {
                        if let Some(old) = speaker.take() {
                            old.task.abort();
                        }
                        let (sentences, queue) = mpsc::unbounded_channel();
                        let (client, url, cfg, tx) =
                            (client.clone(), endpoints.tts.clone(), config.tts.clone(), tx.clone());
                        let task =
                            tokio::spawn(async move { speak(&client, &url, &cfg, turn, queue, &tx).await });
                        speaker = Some(Speaker { turn, sentences, task: task.abort_handle() });
                    }
                    if let Some(s) = speaker.as_ref() {
                        let _ = s.sentences.send((seq, text));
                    }
                }
                Output::CancelReply => stop(&mut llm, &mut speaker),
                Output::RunTools { turn, calls } => {
                    for call in calls {
                        tool_turns.insert(call.id.clone(), turn);
                        if let Some((id, _name, content)) =
                            start_tool(&config.functions, &tls, call, &io, &tool_tx, &mut transfer).await
                        {
                            tool_turns.remove(&id);
                            core.tool_result(now(), turn, &id, &content);
                        }
                    }
                }
            }
        }
        tokio::select! {
            input = io.recv() => match input {
                Some(CallInput::Audio(frame)) => core.audio(now(), &frame),
                Some(CallInput::Digit(digit)) => core.digit(now(), digit),
                Some(CallInput::TransferResult(outcome)) => {
                    if let Some((id, _name, content)) = transfer_answer(&mut transfer, outcome) {
                        let turn = tool_turns.remove(&id).unwrap_or(core.turn());
                        core.tool_result(now(), turn, &id, &content);
                    }
                }
                Some(CallInput::MarkPlayed { id, .. }) => core.mark_played(id),
                Some(CallInput::PlaybackFlushed { played_samples }) => core.playback_flushed(played_samples),
                Some(CallInput::CallEnded) | None => core.call_ended(),
            },
            Some(msg) = rx.recv() => match msg {
                StageMsg::Transcript { turn, text } => core.transcript(now(), turn, &text),
                StageMsg::Llm { turn, round, step } => core.llm_step(now(), turn, round, step),
                StageMsg::LlmEnded { turn, round } => core.llm_ended(now(), turn, round),
                StageMsg::Audio { turn, seq, bytes } => core.tts_audio(now(), turn, seq, &bytes),
                StageMsg::SentenceDone { turn, seq } => core.tts_done(turn, seq),
                StageMsg::Failed { turn, stage, detail } => core.stage_failed(turn, stage, detail),
            },
            Some((id, name, content)) = tool_rx.recv() => {
                tool_finished(&io, &name, &content).await;
                let turn = tool_turns.remove(&id).unwrap_or(core.turn());
                core.tool_result(now(), turn, &id, &content);
            }
        }
    }
}

fn stop(llm: &mut Option<AbortHandle>, speaker: &mut Option<Speaker>) {
    if let Some(task) = llm.take() {
        task.abort();
    }
    if let Some(s) = speaker.take() {
        s.task.abort();
    }
}

fn auth(key: Option<&String>) -> Vec<(String, String)> {
    key.map(|k| vec![("Authorization".to_owned(), format!("Bearer {}", k.trim()))]).unwrap_or_default()
}

/// `error` as the one line a failed stage reports.
fn describe(error: HttpError, url: &Uri) -> String {
    match error {
        HttpError::Io(e) => format!("at {url} could not be reached ({e}): is it running?"),
        HttpError::Timeout(ms) => format!("at {url} did not answer within {ms} ms"),
        HttpError::Status { status, body } => format!("at {url} answered HTTP {status}: {body}"),
        other => format!("at {url} failed: {other}"),
    }
}

async fn within<T>(
    limit: Duration,
    work: impl std::future::Future<Output = Result<T, HttpError>>,
) -> Result<T, HttpError> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::Timeout(limit.as_millis())),
    }
}

/// A 200 whose body is not what the stage asked for, as one line: its type and the start
/// of its body.
async fn wrong_type(response: HttpResponse, url: &Uri, wanted: &str, hint: &str) -> String {
    let shown = response.header("content-type").unwrap_or("no content type").to_owned();
    let text = response.text(16 * 1024).await.unwrap_or_default();
    format!(
        "at {url} answered {shown} instead of {wanted} ({}): {hint}",
        crate::tools::http::error_excerpt(&text)
    )
}

/// One utterance to text.
pub(super) async fn transcribe(
    client: &HttpClient,
    url: &Uri,
    cfg: &SttConfig,
    wav: Vec<u8>,
) -> Result<String, String> {
    let mut fields: Vec<(&str, &str)> = vec![("model", cfg.model.as_str()), ("response_format", "json")];
    if let Some(language) = cfg.language.as_deref() {
        fields.push(("language", language));
    }
    if let Some(prompt) = cfg.prompt.as_deref() {
        fields.push(("prompt", prompt));
    }
    let mut seed = [0u8; 16];
    getrandom::getrandom(&mut seed).map_err(|e| format!("could not draw a form boundary: {e}"))?;
    let file = FilePart { field: "file", filename: "utterance.wav", content_type: "audio/wav", data: &wav };
    let (content_type, bytes) = multipart_form(seed, &fields, &file).map_err(|e| e.to_string())?;
    let body = Body { content_type, bytes: Bytes::from(bytes) };
    let answer = within(cfg.timeout, async {
        let response = client.post(url, &auth(cfg.api_key.as_ref()), body).await?.error_for_status().await?;
        response.text(MAX_STT_ANSWER).await
    })
    .await
    .map_err(|e| describe(e, url))?;
    #[derive(serde::Deserialize)]
    struct Transcription {
        text: String,
    }
    match serde_json::from_str::<Transcription>(&answer) {
        Ok(t) => Ok(t.text),
        Err(_) => Err(format!(
            "at {url} answered something that is not a transcription ({}): expected {{\"text\": …}}",
            crate::tools::http::error_excerpt(&answer)
        )),
    }
}

/// One LLM round, streamed: each step to the shell as it is assembled.
pub(super) async fn think(
    client: &HttpClient,
    url: &Uri,
    cfg: &LlmConfig,
    body: Vec<u8>,
    (turn, round): (u32, u32),
    tx: &mpsc::Sender<StageMsg>,
) {
    let failed = |detail: String| StageMsg::Failed { turn, stage: Stage::Llm, detail };
    let mut headers = auth(cfg.api_key.as_ref());
    headers.push(("Accept".into(), "text/event-stream".into()));
    let started = tokio::time::Instant::now();
    let response = within(cfg.first_token_timeout, async {
        let body = Body { content_type: "application/json".into(), bytes: Bytes::from(body) };
        client.post(url, &headers, body).await?.error_for_status().await
    })
    .await;
    let mut response = match response {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(failed(describe(e, url))).await;
            return;
        }
    };
    let kind = response.header("content-type").unwrap_or_default().to_owned();
    if kind.starts_with("application/json") {
        // A server (or a gateway in front of it) that ignored `stream: true` and answered
        // the whole completion at once: the same steps, all together.
        let detail = match within(cfg.first_token_timeout, response.text(MAX_LLM_ANSWER)).await {
            Ok(body) => match parse_completion(&body) {
                Ok(steps) => {
                    tracing::debug!("the LLM answered without streaming");
                    for step in steps {
                        if tx.send(StageMsg::Llm { turn, round, step }).await.is_err() {
                            return;
                        }
                    }
                    let _ = tx.send(StageMsg::LlmEnded { turn, round }).await;
                    return;
                }
                Err(e) => format!(
                    "at {url} answered JSON that is not a chat completion ({e}): is it an OpenAI-compatible chat completions endpoint?"
                ),
            },
            Err(e) => describe(e, url),
        };
        let _ = tx.send(failed(detail)).await;
        return;
    }
    if !kind.starts_with("text/event-stream") {
        let detail = wrong_type(
            response,
            url,
            "an event stream",
            "is it an OpenAI-compatible chat completions endpoint?",
        );
        let _ = tx.send(failed(detail.await)).await;
        return;
    }
    let mut decoder = SseDecoder::new();
    let mut stream = ChatStream::new();
    let mut read = 0usize;
    let mut first = true;
    // Some chunk was a chat completion (a stream cut short after one still counts).
    let mut answered = false;
    loop {
        let limit = if first {
            cfg.first_token_timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(1))
        } else {
            cfg.idle_timeout
        };
        let chunk = match within(limit, response.chunk()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => {
                decoder.finish();
                Bytes::new()
            }
            Err(e) => {
                let _ = tx.send(failed(describe(e, url))).await;
                return;
            }
        };
        read += chunk.len();
        if read > MAX_LLM_ANSWER {
            let _ = tx
                .send(failed(format!("at {url} streamed more than {MAX_LLM_ANSWER} bytes in one answer")))
                .await;
            return;
        }
        let ended = chunk.is_empty();
        decoder.push(&chunk);
        while let Some(event) = decoder.next_event() {
            let steps = match event {
                Ok(event) => stream.push_event(&event),
                Err(e) => {
                    let _ = tx.send(failed(format!("at {url} sent a broken event stream: {e}"))).await;
                    return;
                }
            };
            match steps {
                Ok(steps) => {
                    for step in steps {
                        first = false;
                        answered = true;
                        if tx.send(StageMsg::Llm { turn, round, step }).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx
                        .send(failed(format!("at {url} sent a chunk that is not a chat completion: {e}")))
                        .await;
                    return;
                }
            }
        }
        if ended {
            break;
        }
    }
    if !stream.is_done() && !answered {
        let detail = format!(
            "at {url} answered an event stream with no chat completion in it: is it an OpenAI-compatible chat completions endpoint?"
        );
        let _ = tx.send(failed(detail)).await;
        return;
    }
    for step in stream.finish() {
        if tx.send(StageMsg::Llm { turn, round, step }).await.is_err() {
            return;
        }
    }
    let _ = tx.send(StageMsg::LlmEnded { turn, round }).await;
}

/// The TTS request body for one sentence.
fn speech_request(cfg: &TtsConfig, text: &str) -> String {
    let mut body = serde_json::json!({
        "model": cfg.model,
        "input": text,
        "voice": cfg.voice,
        "response_format": "pcm",
    });
    if let Some(speed) = cfg.speed {
        body["speed"] = serde_json::json!(speed);
    }
    if let Some(instructions) = cfg.instructions.as_deref() {
        body["instructions"] = serde_json::json!(instructions);
    }
    if cfg.send_sample_rate {
        body["sample_rate"] = serde_json::json!(cfg.sample_rate);
    }
    body.to_string()
}

/// The reply's TTS worker: each sentence in order, its audio streamed back.
pub(super) async fn speak(
    client: &HttpClient,
    url: &Uri,
    cfg: &TtsConfig,
    turn: u32,
    mut sentences: mpsc::UnboundedReceiver<(u32, String)>,
    tx: &mpsc::Sender<StageMsg>,
) {
    let failed = |detail: String| StageMsg::Failed { turn, stage: Stage::Tts, detail };
    let headers = auth(cfg.api_key.as_ref());
    while let Some((seq, text)) = sentences.recv().await {
        let response = within(cfg.first_byte_timeout, async {
            client.post(url, &headers, Body::json(speech_request(cfg, &text))).await?.error_for_status().await
        })
        .await;
        let mut response = match response {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(failed(describe(e, url))).await;
                return;
            }
        };
        // Raw PCM has no type of its own; an error page or JSON in a 200 is not audio.
        if response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json") || t.starts_with("text/"))
        {
            let detail = wrong_type(response, url, "PCM audio", "check response_format pcm is supported");
            let _ = tx.send(failed(detail.await)).await;
            return;
        }
        let mut got_audio = false;
        loop {
            let limit = cfg.first_byte_timeout;
            match within(limit, response.chunk()).await {
                Ok(Some(bytes)) => {
                    got_audio = true;
                    if tx.send(StageMsg::Audio { turn, seq, bytes }).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(failed(describe(e, url))).await;
                    return;
                }
            }
        }
        if !got_audio {
            tracing::warn!(chars = text.chars().count(), "the TTS answered no audio for a sentence");
        }
        if tx.send(StageMsg::SentenceDone { turn, seq }).await.is_err() {
            return;
        }
    }
}
