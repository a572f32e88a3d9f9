//! The pipeline's turn machine, sans-IO: the caller's frames, keys, transcripts, LLM
//! stream steps, TTS audio, tool results and playback reports in, each with its `now`;
//! requests to make and events for the call out ([`PipelineCore::poll_output`]). No
//! socket, no clock, no task: the shell in `connection.rs` makes the HTTP requests and
//! tests drive it in virtual time.
//!
//! A turn:
//! ```text
//! caller frames → Endpointer ─TurnEnded→ Transcribe(wav) ─text→ Think(request)
//!   ─Text deltas→ SentenceSplitter ─sentence→ Speak(text) ─PCM→ Voice → Audio + Mark
//!   ─ToolCalls→ RunTools ─results→ Think again (at most max_tool_rounds)
//! ```
//! Rules:
//! - **Turns supersede.** Each utterance is a new turn id. A new utterance before the
//!   reply is heard cancels that reply's LLM and TTS ([`Output::CancelReply`]); results
//!   of an old turn are ignored. Its transcript still joins the history.
//! - **Barge-in.** While agent audio is playing (marks not yet played), only the
//!   endpointer's `BargeIn` (speech that lasted `barge_in_min_ms` above the raised
//!   playback threshold) interrupts: [`AgentEvent::FlushPlayback`] and `CancelReply`.
//!   The call's [`CallInput::PlaybackFlushed`] tells how much was heard; the history
//!   keeps the heard part of the reply, marked as cut off. An utterance that ends while
//!   audio plays without having barged in (a short "mm-hm", an echo) is dropped.
//! - **Sentences.** The LLM's text goes to TTS sentence by sentence; each sentence's
//!   audio ends with a [`AgentEvent::Mark`], so played marks say which sentences were
//!   heard.
//! - **Failure.** A stage that fails, times out or answers garbage ends the session as
//!   `Failed` with a code per stage (`STT_FAILED`, `LLM_FAILED`, `TTS_FAILED`): the call
//!   plays its fallback prompt and transfers, as for every provider.

mod filler;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use voice_ua_media::{EndpointEvent, Endpointer};

use super::config::{LlmPrices, PipelineConfig, Stage, PROVIDER};
use super::voice::Voice;
use super::wire::history::DEFAULT_MAX_MESSAGE_CHARS;
use super::wire::{wav_pcm16, ChatRequest, ChatStep, History, SentenceSplitter, ToolCallRequest};
use crate::provider::{AgentEvent, AudioFormat, AudioFrame, Digit, ReplyFigures, Role, SessionEnd, Usage};
use crate::tools::{Fillers, ToolCall};
use crate::{AgentError, ProviderCode};

/// What the shell must do.
// Agent audio travels by value (no heap per frame): the size is the point.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// POST this utterance (a WAV file) for transcription.
    Transcribe {
        /// The turn it belongs to.
        turn: u32,
        /// The WAV file.
        wav: Vec<u8>,
    },
    /// POST this chat-completions request (JSON) and stream its answer back.
    Think {
        /// The turn it belongs to.
        turn: u32,
        /// Its round within the turn (tool calls make more than one).
        round: u32,
        /// The request body.
        body: Vec<u8>,
    },
    /// Synthesize this sentence after the turn's earlier ones, in order.
    Speak {
        /// The turn it belongs to.
        turn: u32,
        /// Its place in the turn's reply (0, 1, …).
        seq: u32,
        /// What to say.
        text: String,
    },
    /// Stop the LLM and TTS requests in flight: their turn is over.
    CancelReply,
    /// Run these functions; each result comes back through [`PipelineCore::tool_result`].
    RunTools {
        /// The turn they belong to.
        turn: u32,
        /// The calls, arguments checked to be JSON objects.
        calls: Vec<ToolCall>,
    },
    /// Tell the call.
    Event(AgentEvent),
}

/// A sentence of the reply and where its audio lies in the session's agent audio.
#[derive(Debug, Clone)]
struct Spoken {
    text: String,
    /// First sample (8 kHz units) of its audio, once its audio began.
    start: Option<u64>,
    /// One past its last sample, once its audio ended.
    end: Option<u64>,
    /// A filler phrase said while a function ran: heard, but not the LLM's words.
    filler: bool,
}

/// The reply being generated and played.
#[derive(Debug)]
struct Reply {
    turn: u32,
    /// The current LLM round's text.
    round_text: String,
    /// Sentences sent to TTS, in order.
    spoken: Vec<Spoken>,
    /// The first sentence of the last round (earlier rounds' text went into the history
    /// with their tool calls).
    round_from: usize,
    /// The last round's text, for the history once it has been heard.
    final_text: Option<String>,
    /// Whether the reply's final text went into the history.
    in_history: bool,
    /// The LLM has finished (no more rounds coming).
    llm_done: bool,
    /// Tool results still awaited in this round.
    tools_pending: usize,
    round: u32,
    audio_started: bool,
    interrupted: bool,
}

/// Instants of the turn in progress, for [`ReplyFigures`].
#[derive(Debug, Default, Clone, Copy)]
struct Timing {
    /// When the end of the turn was decided, and the utterance went to the STT.
    turn_end: Option<Instant>,
    endpointing: Option<Duration>,
    /// From the caller's last speech to the reply's first audio byte, as the pipeline
    /// sees it (the call's own figure adds the playout and the pacer).
    total: Option<Duration>,
    transcribe: Option<Duration>,
    llm_sent: Option<Instant>,
    think: Option<Duration>,
    tts_sent: Option<Instant>,
    speak: Option<Duration>,
}

impl Timing {
    fn figures(&self) -> ReplyFigures {
        ReplyFigures {
            total: self.total,
            endpointing: self.endpointing,
            transcribe: self.transcribe,
            think: self.think,
            speak: self.speak,
        }
    }
}

/// The longest keypad entry kept for the next user message.
const MAX_KEYS: usize = 32;

/// One call's pipeline.
pub struct PipelineCore {
    config: Arc<PipelineConfig>,
    format: AudioFormat,
    endpointer: Endpointer,
    pcm: Vec<i16>,
    /// The call's rate to the STT's, built once per call (none when they are equal).
    stt_resampler: Option<voice_ua_media::Resampler>,
    history: History,
    splitter: SentenceSplitter,
    voice: Voice,
    /// The newest turn; results of older turns are ignored.
    turn: u32,
    reply: Option<Reply>,
    timing: Timing,
    /// Agent audio sent this session, in 8 kHz samples (the call's count for
    /// `PlaybackFlushed`).
    sent: u64,
    /// Marks sent and not yet played: (id, end of the audio before it).
    marks: VecDeque<(u32, u64)>,
    /// Agent audio has been sent since the last mark (a sentence still arriving).
    unmarked_audio: bool,
    next_mark: u32,
    /// The speech in progress barged in.
    barged: bool,
    /// Keys pressed since the last user message.
    keys: String,
    outputs: VecDeque<Output>,
    ended: bool,
    /// What the caller hears while a slow function runs (`core/filler.rs`).
    fillers: Fillers,
}

fn stage_error(stage: Stage, detail: impl std::fmt::Display) -> AgentError {
    let code = match stage {
        Stage::Stt => "STT_FAILED",
        Stage::Llm => "LLM_FAILED",
        Stage::Tts => "TTS_FAILED",
    };
    AgentError::Provider {
        provider: PROVIDER.into(),
        detail: format!("the {} server {detail}", stage.word().to_uppercase()),
        code: ProviderCode::new(code),
    }
}

impl PipelineCore {
    /// A pipeline for a call in `format`; the greeting (if any) is queued at once.
    pub fn new(config: Arc<PipelineConfig>, format: AudioFormat) -> Result<PipelineCore, AgentError> {
        let endpointer = Endpointer::new(config.turn, format.sample_rate())
            .map_err(|e| crate::ws::provider_error(PROVIDER, format!("turn settings: {e}")))?;
        let voice = Voice::new(config.tts.sample_rate, format)?;
        let stt_resampler = if config.stt.sample_rate == format.sample_rate() {
            None
        } else {
            Some(voice_ua_media::Resampler::new(format.sample_rate(), config.stt.sample_rate).map_err(
                |e| {
                    crate::ws::provider_error(
                        PROVIDER,
                        format!("cannot resample the caller's audio for the STT: {e}"),
                    )
                },
            )?)
        };
        let history = History::with_limits(
            &config.instructions,
            config.max_history_messages,
            DEFAULT_MAX_MESSAGE_CHARS,
        );
        let mut core = PipelineCore {
            format,
            endpointer,
            pcm: Vec::with_capacity(format.frame_samples()),
            stt_resampler,
            history,
            splitter: SentenceSplitter::new(),
            voice,
            turn: 0,
            reply: None,
            timing: Timing::default(),
            sent: 0,
            marks: VecDeque::new(),
            unmarked_audio: false,
            next_mark: 0,
            barged: false,
            keys: String::new(),
            outputs: VecDeque::new(),
            ended: false,
            fillers: Fillers::new(&config.functions, true),
            config,
        };
        if let Some(greeting) = core.config.greeting.clone().filter(|g| !g.trim().is_empty()) {
            core.history.push_assistant(&greeting);
            core.outputs.push_back(Output::Event(AgentEvent::Transcript {
                role: Role::Agent,
                text: greeting.clone(),
                at: SystemTime::now(),
            }));
            let mut reply = Reply::new(0);
            reply.llm_done = true;
            reply.in_history = true;
            reply.spoken.push(Spoken { text: greeting.clone(), start: None, end: None, filler: false });
            core.reply = Some(reply);
            core.outputs.push_back(Output::Speak { turn: 0, seq: 0, text: greeting });
        }
        Ok(core)
    }

    /// The next thing to do, in the order decided.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The session is over (nothing more will be decided).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The newest turn's id.
    pub fn turn(&self) -> u32 {
        self.turn
    }

    /// The conversation as the LLM sees it (for tests and logs).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Agent audio may still be playing: a sentence's audio is still arriving, or some
    /// mark has not been reported played.
    pub fn playing(&self) -> bool {
        self.unmarked_audio || !self.marks.is_empty()
    }

    fn event(&mut self, event: AgentEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    fn fail(&mut self, error: AgentError) {
        if self.ended {
            return;
        }
        tracing::warn!(%error, "pipeline agent failed");
        self.stop_fillers();
        self.outputs.push_back(Output::CancelReply);
        self.event(AgentEvent::Ended(SessionEnd::Failed(error)));
        self.ended = true;
    }

    /// A stage of `turn` failed: the session ends (old turns' failures are ignored).
    pub fn stage_failed(&mut self, turn: u32, stage: Stage, detail: impl std::fmt::Display) {
        if turn == self.turn && !self.ended {
            self.fail(stage_error(stage, detail));
        }
    }

    /// The call ended.
    pub fn call_ended(&mut self) {
        if !self.ended {
            self.stop_fillers();
            self.outputs.push_back(Output::CancelReply);
            self.event(AgentEvent::Ended(SessionEnd::CallEnded));
            self.ended = true;
        }
    }

    /// One 20 ms frame of the caller's audio.
    pub fn audio(&mut self, now: Instant, frame: &AudioFrame) {
        if self.ended {
            return;
        }
        self.filler_tick(now);
        self.pcm.clear();
        let bytes = frame.as_bytes();
        let n = bytes.len() / self.format.bytes_per_sample();
        self.pcm.extend((0..n).filter_map(|i| self.format.sample(bytes, i)));
        let playing = self.playing();
        let step = self.endpointer.push(&self.pcm, playing);
        self.endpoint_event(now, step);
    }

    fn endpoint_event(&mut self, now: Instant, step: EndpointEvent) {
        match step {
            EndpointEvent::BargeIn => {
                self.barged = true;
                self.barge_in();
            }
            EndpointEvent::SpeechStarted => self.barged = false,
            EndpointEvent::TurnEnded { endpointing, .. } => {
                let barged = std::mem::take(&mut self.barged);
                if self.playing() && !barged {
                    tracing::debug!("an utterance under the agent's audio that did not barge in: dropped");
                    return;
                }
                let wav = Self::utterance_wav(
                    self.stt_resampler.as_mut(),
                    self.format.sample_rate(),
                    self.endpointer.utterance(),
                );
                self.new_turn(now, endpointing, wav);
            }
            _ => {}
        }
    }

    /// The utterance as the STT wants it: WAV PCM16 at its rate (one allocation per
    /// utterance, for the request body).
    fn utterance_wav(
        resampler: Option<&mut voice_ua_media::Resampler>,
        rate: u32,
        utterance: &[i16],
    ) -> Vec<u8> {
        let Some(r) = resampler else { return wav_pcm16(utterance, rate) };
        r.reset();
        let mut out = vec![0i16; r.output_len(utterance.len()) + 8];
        let n = r.process(utterance, &mut out);
        out.truncate(n);
        wav_pcm16(&out, r.output_rate())
    }

    /// A key the caller pressed: the end-of-turn key ends the turn; other keys join the
    /// next user message.
    pub fn digit(&mut self, now: Instant, digit: Digit) {
        if self.ended {
            return;
        }
        if self.config.end_of_turn_key == Some(digit.as_char()) {
            match self.endpointer.end_turn_now() {
                Some(step) => self.endpoint_event(now, step),
                None if !self.keys.is_empty() => {
                    // Keys alone make a turn: no audio to transcribe.
                    let keys = std::mem::take(&mut self.keys);
                    self.turn += 1;
                    self.timing = Timing::default();
                    self.cancel_unheard_reply();
                    self.user_said(now, self.turn, crate::keypad::typed_text(&keys));
                }
                None => {}
            }
        } else if self.keys.len() < MAX_KEYS {
            self.keys.push(digit.as_char());
        }
    }

    fn new_turn(&mut self, now: Instant, endpointing: Duration, wav: Vec<u8>) {
        self.turn += 1;
        self.cancel_unheard_reply();
        self.timing = Timing { turn_end: Some(now), endpointing: Some(endpointing), ..Timing::default() };
        self.outputs.push_back(Output::Transcribe { turn: self.turn, wav });
    }

    /// A reply that is being generated but not yet heard gives way to a new turn.
    fn cancel_unheard_reply(&mut self) {
        if let Some(reply) = self.reply.take() {
            if !reply.audio_started || reply.interrupted {
                self.outputs.push_back(Output::CancelReply);
            }
            if !reply.interrupted && !reply.in_history && reply.audio_started {
                // Played (its marks were reached) but its LLM never finished: keep what played.
                self.history.push_assistant(&reply.spoken_text());
            }
            if reply.interrupted && !reply.in_history && reply.audio_started {
                // Our barge-in was never carried out (no `PlaybackFlushed` came: the call's
                // echo gate heard no caller speech over the playback and dropped the flush):
                // the sentences already sent played to their end; the rest was cancelled.
                self.history.push_assistant_heard(&reply.spoken_text(), true);
            }
        }
        self.splitter = SentenceSplitter::new();
    }

    fn barge_in(&mut self) {
        tracing::info!("barge-in: the caller spoke over the agent");
        self.event(AgentEvent::FlushPlayback);
        self.outputs.push_back(Output::CancelReply);
        if let Some(reply) = self.reply.as_mut() {
            reply.interrupted = true;
        }
        self.voice.reset();
        self.unmarked_audio = false;
        self.splitter = SentenceSplitter::new();
    }

    /// The transcript of `turn`'s utterance.
    pub fn transcript(&mut self, now: Instant, turn: u32, text: &str) {
        if self.ended {
            return;
        }
        if turn == self.turn {
            self.timing.transcribe = self.timing.turn_end.map(|t| now.saturating_duration_since(t));
        }
        let text = text.trim();
        if text.is_empty() || !text.chars().any(char::is_alphanumeric) {
            tracing::debug!(turn, "the STT heard no words: nothing to answer");
            return;
        }
        let mut said = text.to_owned();
        if !self.keys.is_empty() {
            said.push(' ');
            said.push_str(&crate::keypad::typed_text(&std::mem::take(&mut self.keys)));
        }
        self.user_said(now, turn, said);
    }

    fn user_said(&mut self, now: Instant, turn: u32, text: String) {
        self.event(AgentEvent::Transcript { role: Role::User, text: text.clone(), at: SystemTime::now() });
        self.history.push_user(&text);
        if turn != self.turn {
            // An older utterance: the newer turn's request will carry it.
            return;
        }
        self.reply = Some(Reply::new(turn));
        self.think(now);
    }

    fn think(&mut self, now: Instant) {
        let Some(reply) = self.reply.as_mut() else { return };
        reply.round += 1;
        reply.round_text.clear();
        let llm = &self.config.llm;
        let mut request = ChatRequest::new(&llm.model, self.history.messages(), &self.config.functions);
        request.tool_choice = llm.tool_choice.as_ref();
        request.temperature = llm.temperature;
        request.max_tokens = llm.max_tokens;
        match request.to_json() {
            Ok(body) => {
                if self.timing.llm_sent.is_none() {
                    self.timing.llm_sent = Some(now);
                }
                let (turn, round) = (reply.turn, reply.round);
                self.outputs.push_back(Output::Think { turn, round, body });
            }
            Err(e) => self.fail(stage_error(Stage::Llm, format!("request could not be built: {e}"))),
        }
    }

    /// A step of the LLM stream of `turn`'s `round`.
    pub fn llm_step(&mut self, now: Instant, turn: u32, round: u32, step: ChatStep) {
        if self.ended || turn != self.turn {
            return;
        }
        let Some(reply) = self.reply.as_mut() else { return };
        // A round that gave way to the next (its tool calls answered) says no more.
        if reply.interrupted || reply.round != round {
            return;
        }
        match step {
            ChatStep::Text(delta) => {
                if self.timing.think.is_none() {
                    self.timing.think = self.timing.llm_sent.map(|t| now.saturating_duration_since(t));
                }
                reply.round_text.push_str(&delta);
                self.splitter.push(&delta);
                while let Some(sentence) = self.splitter.next_sentence() {
                    self.speak(now, sentence);
                }
            }
            ChatStep::ToolCalls(calls) => {
                if self.timing.think.is_none() {
                    self.timing.think = self.timing.llm_sent.map(|t| now.saturating_duration_since(t));
                }
                self.tool_calls(now, calls);
            }
            ChatStep::Usage { prompt_tokens, completion_tokens, cached_tokens } => {
                let usage = usage(self.config.llm.prices, prompt_tokens, completion_tokens, cached_tokens);
                self.event(AgentEvent::Usage(usage));
            }
            ChatStep::ServerError(message) => {
                self.fail(stage_error(Stage::Llm, format!("answered with an error: {message}")));
            }
            ChatStep::Finished(_) | ChatStep::Done => self.round_finished(now),
        }
    }

    /// The LLM stream of `turn`'s `round` ended (after `[DONE]` or without it).
    pub fn llm_ended(&mut self, now: Instant, turn: u32, round: u32) {
        if !self.ended && turn == self.turn && self.reply.as_ref().is_some_and(|r| r.round == round) {
            self.round_finished(now);
        }
    }

    fn round_finished(&mut self, now: Instant) {
        let Some(reply) = self.reply.as_mut() else { return };
        if reply.llm_done || reply.tools_pending > 0 || reply.interrupted {
            return;
        }
        reply.llm_done = true;
        if let Some(rest) = self.splitter.finish() {
            self.speak(now, rest);
        }
        let Some(reply) = self.reply.as_mut() else { return };
        let text = reply.round_text.trim().to_owned();
        if !text.is_empty() {
            // Into the history once heard (in full, or the part heard before a barge-in).
            reply.final_text = Some(text.clone());
            self.event(AgentEvent::Transcript { role: Role::Agent, text, at: SystemTime::now() });
        }
        self.maybe_done();
    }

    fn tool_calls(&mut self, now: Instant, calls: Vec<ToolCallRequest>) {
        let Some(reply) = self.reply.as_mut() else { return };
        let text = std::mem::take(&mut reply.round_text);
        // What was said before the calls is spoken now; the calls' answers come next.
        if let Some(rest) = self.splitter.finish() {
            self.speak(now, rest);
        }
        self.history.push_assistant(text.trim());
        self.history.push_tool_calls(&calls);
        let mut run: Vec<ToolCall> = Vec::new();
        for call in &calls {
            match call.invalid_arguments_result() {
                None => run.push(call.to_tool_call()),
                Some(result) => {
                    tracing::warn!(name = %call.name, "the LLM's function arguments are not a JSON object: sent back");
                    self.history.push_tool_result(&call.id, &result);
                }
            }
        }
        let Some(reply) = self.reply.as_mut() else { return };
        reply.round_from = reply.spoken.len();
        reply.tools_pending = run.len();
        let turn = reply.turn;
        if run.is_empty() {
            self.next_round(now);
        } else {
            for call in &run {
                self.fillers.started(now, &call.id, &call.name);
            }
            self.outputs.push_back(Output::RunTools { turn, calls: run });
            self.drain_fillers();
        }
    }

    /// A function's result (`content`, `ok: …` or `error: …`).
    pub fn tool_result(&mut self, now: Instant, turn: u32, id: &str, content: &str) {
        self.fillers.finished(id);
        self.drain_fillers();
        if self.ended || turn != self.turn {
            return;
        }
        self.history.push_tool_result(id, content);
        let Some(reply) = self.reply.as_mut() else { return };
        reply.tools_pending = reply.tools_pending.saturating_sub(1);
        if reply.tools_pending == 0 && !reply.interrupted {
            self.next_round(now);
        }
    }

    fn next_round(&mut self, now: Instant) {
        let Some(reply) = self.reply.as_ref() else { return };
        if reply.round >= self.config.max_tool_rounds {
            tracing::warn!(
                rounds = reply.round,
                "the LLM kept calling functions: this turn ends without an answer"
            );
            if let Some(reply) = self.reply.as_mut() {
                reply.llm_done = true;
            }
            self.maybe_done();
            return;
        }
        self.think(now);
    }

    fn speak(&mut self, now: Instant, text: String) {
        let Some(reply) = self.reply.as_mut() else { return };
        if text.trim().is_empty() {
            return;
        }
        let seq = reply.spoken.len() as u32;
        reply.spoken.push(Spoken { text: text.clone(), start: None, end: None, filler: false });
        if self.timing.tts_sent.is_none() {
            self.timing.tts_sent = Some(now);
        }
        let turn = reply.turn;
        self.outputs.push_back(Output::Speak { turn, seq, text });
    }

    /// A piece of sentence `seq`'s audio (PCM16 LE at the TTS's rate).
    pub fn tts_audio(&mut self, now: Instant, turn: u32, seq: u32, bytes: &[u8]) {
        if self.ended || turn != self.turn || bytes.is_empty() {
            return;
        }
        let Some(reply) = self.reply.as_mut() else { return };
        if reply.interrupted {
            return;
        }
        if !reply.audio_started {
            reply.audio_started = true;
            // The next utterance's padding must not reach back into the audio before
            // the reply (unless the caller is talking now).
            if !self.endpointer.speaking() {
                self.endpointer.reset();
            }
            self.timing.speak = self.timing.tts_sent.map(|t| now.saturating_duration_since(t));
            self.timing.total = self
                .timing
                .turn_end
                .map(|t| now.saturating_duration_since(t) + self.timing.endpointing.unwrap_or_default());
            if turn > 0 {
                let figures = self.timing.figures();
                tracing::info!(?figures, "pipeline reply starts");
                self.outputs.push_back(Output::Event(AgentEvent::ReplyStarted(figures)));
            }
        }
        let Some(reply) = self.reply.as_mut() else { return };
        if let Some(s) = reply.spoken.get_mut(seq as usize) {
            s.start.get_or_insert(self.sent);
        }
        let (outputs, format) = (&mut self.outputs, self.format);
        let produced =
            self.voice.push(bytes, |frame| outputs.push_back(Output::Event(AgentEvent::Audio(frame))));
        self.sent += to_8k(produced, format);
        self.unmarked_audio = true;
    }

    /// Sentence `seq`'s audio is complete: its mark follows it.
    pub fn tts_done(&mut self, turn: u32, seq: u32) {
        if self.ended || turn != self.turn {
            return;
        }
        let Some(reply) = self.reply.as_mut() else { return };
        if reply.interrupted {
            return;
        }
        let (outputs, format) = (&mut self.outputs, self.format);
        let produced = self.voice.finish(|frame| outputs.push_back(Output::Event(AgentEvent::Audio(frame))));
        self.sent += to_8k(produced, format);
        let Some(reply) = self.reply.as_mut() else { return };
        if let Some(s) = reply.spoken.get_mut(seq as usize) {
            s.start.get_or_insert(self.sent);
            s.end = Some(self.sent);
        }
        let id = self.next_mark;
        self.next_mark = self.next_mark.wrapping_add(1);
        self.marks.push_back((id, self.sent));
        self.unmarked_audio = false;
        self.event(AgentEvent::Mark(id));
        self.maybe_done();
    }

    /// The call played (or flushed) the audio up to mark `id`.
    pub fn mark_played(&mut self, id: u32) {
        while let Some(&(front, _)) = self.marks.front() {
            self.marks.pop_front();
            if front == id {
                break;
            }
        }
        self.maybe_done();
    }

    /// The call flushed agent audio after `played` samples (8 kHz units) had been heard.
    pub fn playback_flushed(&mut self, played: u64) {
        self.marks.clear();
        // The flushed audio was never played: the call's count goes on from `played`,
        // and so does ours, or every later reply would look unheard.
        self.sent = played;
        let Some(reply) = self.reply.as_mut() else { return };
        if !reply.interrupted {
            return;
        }
        let heard = reply.heard(played);
        if crate::privacy::log_text() {
            tracing::info!(heard = %heard, "the caller heard this much of the reply");
        } else {
            tracing::info!(
                heard_words = heard.split_whitespace().count(),
                "the caller heard this much of the reply"
            );
        }
        if !reply.in_history {
            self.history.push_assistant_heard(&heard, true);
        }
        self.reply = None;
    }

    /// Once the LLM is done and every sentence has played, the reply is over.
    fn maybe_done(&mut self) {
        let done = self.reply.as_ref().is_some_and(|r| {
            r.llm_done && !r.interrupted && r.spoken.iter().all(|s| s.end.is_some()) && self.marks.is_empty()
        });
        if done {
            if let Some(reply) = self.reply.take() {
                if !reply.in_history {
                    if let Some(text) = reply.final_text {
                        self.history.push_assistant(&text);
                    }
                }
            }
        }
    }
}

impl Reply {
    fn new(turn: u32) -> Reply {
        Reply {
            turn,
            round_text: String::new(),
            spoken: Vec::new(),
            round_from: 0,
            final_text: None,
            in_history: false,
            llm_done: false,
            tools_pending: 0,
            round: 0,
            audio_started: false,
            interrupted: false,
        }
    }

    fn spoken_text(&self) -> String {
        self.spoken
            .iter()
            .filter(|s| s.end.is_some() && !s.filler)
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The reply as far as the caller heard it, `played` samples into the session's audio:
    /// whole sentences, then the heard share of the words of the one cut off.
    fn heard(&self, played: u64) -> String {
        let mut words: Vec<&str> = Vec::new();
        for s in self.spoken.iter().skip(self.round_from) {
            let Some(start) = s.start else { break };
            if s.filler {
                continue;
            }
            if played <= start {
                break;
            }
            match s.end {
                Some(end) if played >= end => words.extend(s.text.split_whitespace()),
                end => {
                    let all: Vec<&str> = s.text.split_whitespace().collect();
                    let len = end.unwrap_or(played).saturating_sub(start).max(1);
                    let share = (played - start) as f64 / len as f64;
                    let n = ((all.len() as f64) * share).floor() as usize;
                    words.extend(all.iter().take(n.min(all.len())));
                    break;
                }
            }
        }
        words.join(" ")
    }
}

fn to_8k(samples: usize, format: AudioFormat) -> u64 {
    samples as u64 * 8000 / u64::from(format.sample_rate())
}

/// One answer's usage at the configured prices.
fn usage(prices: Option<LlmPrices>, prompt: u64, completion: u64, cached: u64) -> Usage {
    let cost = prices.map_or(0.0, |p| {
        let fresh = prompt.saturating_sub(cached) as f64;
        (fresh * p.input + cached as f64 * p.cached_input + completion as f64 * p.output) / 1e6
    });
    Usage {
        input_text_tokens: prompt,
        cached_input_tokens: cached,
        output_text_tokens: completion,
        cost_micro_usd: (cost * 1e6).round().max(0.0) as u64,
        ..Usage::default()
    }
}
