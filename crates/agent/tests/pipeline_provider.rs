//! The pipeline provider end to end in-process: its session against the strict fake
//! OpenAI-compatible STT, chat and TTS servers (`voice-ua-fake-pipeline`), driven the way
//! a call drives it — caller frames every tick, agent audio "played" at 8 kHz, marks
//! answered when their audio has played, flushes answered with what was heard.

mod common;

use std::collections::VecDeque;
use std::time::Duration;

use common::encode;
use common::http::http_once;
use common::session::facts;
use serde_json::json;
use voice_ua_agent::pipeline::{PipelineConfig, PipelineProvider};
use voice_ua_agent::{
    AgentEvent, AgentProvider, AgentSession, AudioFormat, AudioFrame, CallInput, FunctionSpec, Role,
    SessionEnd, ToolKind,
};
use voice_ua_fake_pipeline::{ChatScript, Dialect, Failure, FakePipeline, Settings, Stage, ToolRule};

const FORMAT: AudioFormat = AudioFormat::Ulaw8k;
/// Ticks of the simulated call; each stands for 20 ms of call time.
const TICK: Duration = Duration::from_millis(8);

fn config(fake: &FakePipeline) -> PipelineConfig {
    common::pipeline::config(&fake.base_url())
}

/// What the caller does at each tick: speak (a loud voice-like tone) or stay quiet.
fn voice_frame(n: usize) -> AudioFrame {
    let pcm: Vec<i16> = (0..160)
        .map(|i| {
            let t = (n * 160 + i) as f64 / 8000.0;
            ((t * 220.0 * std::f64::consts::TAU).sin() * 6000.0
                + (t * 710.0 * std::f64::consts::TAU).sin() * 3000.0) as i16
        })
        .collect();
    AudioFrame::new(&encode(FORMAT, &pcm)).expect("frame")
}

fn quiet_frame() -> AudioFrame {
    AudioFrame::silence(FORMAT)
}

/// The call's side: playback at 160 samples per tick, marks and flushes answered.
struct Call {
    session: AgentSession,
    events: Vec<AgentEvent>,
    ticks: usize,
    /// Agent audio received and played, in samples.
    queued: u64,
    played: u64,
    marks: VecDeque<(u32, u64)>,
}

impl Call {
    async fn open(provider: &PipelineProvider) -> Call {
        let session = provider.open(facts("pipe-1", FORMAT)).await.expect("open");
        Call { session, events: Vec::new(), ticks: 0, queued: 0, played: 0, marks: VecDeque::new() }
    }

    fn playing(&self) -> bool {
        self.played < self.queued
    }

    /// One tick: the caller's frame, events, playback.
    async fn tick(&mut self, frame: AudioFrame) -> bool {
        let _ = self.session.send_audio(frame);
        self.ticks += 1;
        tokio::time::sleep(TICK).await;
        while let Some(event) = self.session.try_event() {
            match &event {
                AgentEvent::Audio(f) => self.queued += f.len() as u64,
                AgentEvent::Mark(id) => self.marks.push_back((*id, self.queued)),
                AgentEvent::FlushPlayback => {
                    self.queued = self.played;
                    let _ = self
                        .session
                        .send_playback(CallInput::PlaybackFlushed { played_samples: self.played });
                    for (id, _) in self.marks.drain(..) {
                        let _ = self.session.send_playback(CallInput::MarkPlayed { id, cleared: true });
                    }
                }
                _ => {}
            }
            let end = matches!(event, AgentEvent::Ended(_));
            self.events.push(event);
            if end {
                return false;
            }
        }
        self.played = (self.played + 160).min(self.queued);
        while self.marks.front().is_some_and(|&(_, at)| at <= self.played) {
            if let Some((id, _)) = self.marks.pop_front() {
                let _ = self.session.send_playback(CallInput::MarkPlayed { id, cleared: false });
            }
        }
        true
    }

    /// The caller speaks for `ms`, then is quiet.
    async fn say(&mut self, ms: usize) {
        for _ in 0..ms / 20 {
            let n = self.ticks;
            if !self.tick(voice_frame(n)).await {
                return;
            }
        }
    }

    /// Quiet ticks until `done` holds (panics after `limit` ticks).
    async fn until(&mut self, limit: usize, done: impl Fn(&Call) -> bool) {
        for _ in 0..limit {
            if done(self) || !self.tick(quiet_frame()).await {
                return;
            }
        }
        assert!(done(self), "gave up after {limit} ticks; events: {:?}", self.summary());
    }

    fn summary(&self) -> Vec<String> {
        self.events.iter().filter(|e| !matches!(e, AgentEvent::Audio(_))).map(|e| format!("{e:?}")).collect()
    }

    fn transcripts(&self, role: Role) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                AgentEvent::Transcript { role: r, text, .. } if *r == role => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    fn ended(&self) -> Option<&SessionEnd> {
        self.events.iter().find_map(|e| if let AgentEvent::Ended(end) = e { Some(end) } else { None })
    }
}

#[tokio::test]
async fn a_turn_is_transcribed_answered_and_spoken_sentence_by_sentence() {
    let fake = FakePipeline::start(
        Settings::new()
            .transcripts(&["is the gate open"])
            .script(ChatScript::new().default_reply("You asked: {user}. The gate is closed at night.")),
    )
    .await
    .expect("fake");
    let mut cfg = config(&fake);
    cfg.greeting = Some("Hello, main gate.".into());
    let provider = PipelineProvider::new(cfg).expect("provider");
    let mut call = Call::open(&provider).await;
    // The greeting plays first, without an LLM round.
    call.until(300, |c| c.marks.is_empty() && c.queued > 0 && !c.playing()).await;
    call.say(800).await;
    // Done: all three sentences synthesized (the greeting and two), and all of it played.
    call.until(400, |c| {
        c.transcripts(Role::Agent).len() == 2
            && fake.speeches().len() == 3
            && !c.playing()
            && c.marks.is_empty()
    })
    .await;

    assert_eq!(call.transcripts(Role::User), ["is the gate open"]);
    assert_eq!(call.transcripts(Role::Agent)[1], "You asked: is the gate open. The gate is closed at night.");
    let records = fake.records();
    assert!(records.refused().is_empty(), "refused: {:?}", records.refused());
    // The utterance went as 16 kHz PCM16 WAV, with the prefix padding and the speech.
    let stt = fake.transcriptions();
    assert_eq!(stt.len(), 1);
    assert_eq!(stt[0].sample_rate, Some(16000));
    let ms = stt[0].duration_ms.unwrap_or_default();
    assert!((800..=1400).contains(&ms), "{ms} ms");
    assert_eq!(stt[0].field("language"), Some("en"));
    // The LLM saw the system prompt (with the greeting) and the caller's words.
    let chats = fake.chats();
    assert_eq!(chats.len(), 1);
    let messages = chats[0].messages();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].content.as_deref().unwrap_or_default().contains("Hello, main gate."));
    assert_eq!(messages[1].content.as_deref(), Some("is the gate open"));
    assert!(!chats[0].had_tool_choice());
    // TTS: the greeting, then each sentence on its own, in order.
    let inputs: Vec<String> = fake.speeches().iter().filter_map(|s| s.input().map(str::to_owned)).collect();
    assert_eq!(inputs, ["Hello, main gate.", "You asked: is the gate open.", "The gate is closed at night."]);
    // The reply announced its stages before its audio.
    let started =
        call.events.iter().position(|e| matches!(e, AgentEvent::ReplyStarted(_))).expect("ReplyStarted");
    let AgentEvent::ReplyStarted(figures) = &call.events[started] else { unreachable!() };
    assert_eq!(figures.endpointing, Some(Duration::from_millis(700)), "the configured end-of-turn silence");
    assert!(
        figures.transcribe.is_some() && figures.think.is_some() && figures.speak.is_some(),
        "{figures:?}"
    );
    let greeting_audio = call.events[..started].iter().filter(|e| matches!(e, AgentEvent::Audio(_))).count();
    let after = call.events[started..].iter().filter(|e| matches!(e, AgentEvent::Audio(_))).count();
    assert!(greeting_audio > 0 && after > 0);
    // Both connections were kept alive: one per stage at most, and they were reused.
    call.session.end_call();
}

#[tokio::test]
async fn a_tool_call_runs_and_its_result_is_spoken() {
    let (url, webhook) = http_once(r#"{"opened":true}"#).await;
    let fake = FakePipeline::start(
        Settings::new().transcripts(&["please open the gate"]).script(
            ChatScript::new().rule(
                ToolRule::new("open", "open_gate", r#"{"gate":"main"}"#)
                    .preamble("One moment.")
                    .then_reply("Done: {result}."),
            ),
        ),
    )
    .await
    .expect("fake");
    let mut cfg = config(&fake);
    cfg.functions.push(FunctionSpec {
        name: "open_gate".into(),
        description: "Open a gate".into(),
        parameters: json!({"type":"object","properties":{"gate":{"type":"string"}},"required":["gate"]}),
        kind: ToolKind::Http { url, headers: vec![], timeout: Duration::from_secs(2) },
        filler: Default::default(),
    });
    let provider = PipelineProvider::new(cfg).expect("provider");
    let mut call = Call::open(&provider).await;
    call.say(700).await;
    call.until(500, |c| c.transcripts(Role::Agent).iter().any(|t| t.starts_with("Done")) && !c.playing())
        .await;

    let request = webhook.await.expect("webhook");
    assert!(request.ends_with(r#"{"gate":"main"}"#), "{request}");
    assert!(call.events.contains(&AgentEvent::ToolFinished { name: "open_gate".into(), ok: true }));
    let chats = fake.chats();
    assert_eq!(chats.len(), 2, "the call, then the answer with its result");
    assert_eq!(chats[0].tool_names(), ["open_gate"]);
    let second = chats[1].messages();
    let tool = second.iter().find(|m| m.tool_call_id.is_some()).expect("the tool result went back");
    assert_eq!(tool.content.as_deref(), Some(r#"{"opened":true}"#));
    let inputs: Vec<String> = fake.speeches().iter().filter_map(|s| s.input().map(str::to_owned)).collect();
    assert_eq!(
        inputs.first().map(String::as_str),
        Some("One moment."),
        "the preamble is spoken while the tool runs"
    );
    assert!(inputs.last().is_some_and(|t| t.contains("opened")), "{inputs:?}");
    assert!(fake.records().refused().is_empty(), "{:?}", fake.records().refused());
    call.session.end_call();
}

#[tokio::test]
async fn ollama_tool_calls_arrive_whole_and_no_tool_choice_is_sent() {
    let fake = FakePipeline::start(
        Settings::new()
            .dialect(Dialect::Ollama)
            .transcripts(&["hang up now"])
            .script(ChatScript::new().rule(ToolRule::new("hang", "hangup", "{}").then_reply("Goodbye."))),
    )
    .await
    .expect("fake");
    let mut cfg = config(&fake);
    cfg.functions.push(FunctionSpec {
        name: "hangup".into(),
        description: "End the call".into(),
        parameters: json!({"type":"object","properties":{}}),
        kind: ToolKind::Builtin(voice_ua_agent::Builtin::Hangup),
        filler: Default::default(),
    });
    let provider = PipelineProvider::new(cfg).expect("provider");
    let mut call = Call::open(&provider).await;
    call.say(700).await;
    call.until(500, |c| {
        c.events.iter().any(|e| matches!(e, AgentEvent::HangUp { .. }))
            && c.transcripts(Role::Agent).len() == 1
    })
    .await;
    assert!(fake.records().refused().is_empty(), "{:?}", fake.records().refused());
    assert!(fake.chats().iter().all(|c| !c.had_tool_choice()));
    assert_eq!(call.transcripts(Role::Agent), ["Goodbye."]);
    call.session.end_call();
}

#[tokio::test]
async fn arguments_that_are_not_json_go_back_to_the_model_and_it_is_asked_again() {
    let fake = FakePipeline::start(Settings::new().transcripts(&["open the gate"]).script(
        ChatScript::new().rule(ToolRule::new("open", "open_gate", r#"{"gate":"main"}"#).then_reply("Done.")),
    ))
    .await
    .expect("fake");
    fake.break_next_tool_call();
    let (url, _webhook) = http_once(r#"{"opened":true}"#).await;
    let mut cfg = config(&fake);
    cfg.functions.push(FunctionSpec {
        name: "open_gate".into(),
        description: "Open a gate".into(),
        parameters: json!({"type":"object","properties":{"gate":{"type":"string"}}}),
        kind: ToolKind::Http { url, headers: vec![], timeout: Duration::from_secs(2) },
        filler: Default::default(),
    });
    let provider = PipelineProvider::new(cfg).expect("provider");
    let mut call = Call::open(&provider).await;
    call.say(700).await;
    call.until(500, |c| c.transcripts(Role::Agent).iter().any(|t| t == "Done.")).await;
    let chats = fake.chats();
    assert!(chats.len() >= 2, "{}", chats.len());
    let second = chats[1].messages();
    let tool = second.iter().find(|m| m.tool_call_id.is_some()).expect("an answer to the broken call");
    assert!(tool.content.as_deref().unwrap_or_default().starts_with("error:"), "{tool:?}");
    assert!(fake.records().refused().is_empty(), "{:?}", fake.records().refused());
    call.session.end_call();
}

/// A stage that fails ends the session with its code, for the call's fallback.
async fn failing(stage: Stage, failure: Failure) -> String {
    let fake = FakePipeline::start(Settings::new().transcripts(&["hello"])).await.expect("fake");
    fake.fail_always(stage, Some(failure));
    let mut cfg = config(&fake);
    cfg.stt.timeout = Duration::from_millis(800);
    cfg.llm.first_token_timeout = Duration::from_millis(800);
    cfg.tts.first_byte_timeout = Duration::from_millis(800);
    let provider = PipelineProvider::new(cfg).expect("provider");
    let mut call = Call::open(&provider).await;
    call.say(700).await;
    call.until(600, |c| c.ended().is_some()).await;
    match call.ended() {
        Some(SessionEnd::Failed(e)) => format!("{} | {e}", e.code().unwrap_or_default()),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn each_stage_down_slow_or_garbled_ends_the_session_with_its_code() {
    let cases = [
        (Stage::Stt, Failure::Status(500), "STT_FAILED", "HTTP 500"),
        (Stage::Stt, Failure::Hang, "STT_FAILED", "within 800 ms"),
        (Stage::Stt, Failure::Garbage, "STT_FAILED", "not a transcription"),
        (Stage::Chat, Failure::Status(503), "LLM_FAILED", "HTTP 503"),
        (Stage::Chat, Failure::Hang, "LLM_FAILED", "within 800 ms"),
        (Stage::Chat, Failure::Garbage, "LLM_FAILED", "no chat completion"),
        (Stage::Tts, Failure::Status(500), "TTS_FAILED", "HTTP 500"),
        (Stage::Tts, Failure::Hang, "TTS_FAILED", "within 800 ms"),
        (Stage::Tts, Failure::Garbage, "TTS_FAILED", "instead of PCM"),
    ];
    for (stage, failure, code, words) in cases {
        eprintln!("case {stage:?} {failure:?}");
        let got = failing(stage, failure.clone()).await;
        assert!(got.starts_with(code) && got.contains(words), "{stage:?}/{failure:?}: {got}");
    }
}

#[tokio::test]
async fn a_server_that_is_not_running_is_named_in_the_failure() {
    let fake = FakePipeline::start(Settings::new().transcripts(&["hello"])).await.expect("fake");
    let mut cfg = config(&fake);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    cfg.llm.url = format!("http://127.0.0.1:{port}/v1");
    let provider = PipelineProvider::new(cfg).expect("provider");
    let mut call = Call::open(&provider).await;
    call.say(700).await;
    call.until(400, |c| c.ended().is_some()).await;
    let Some(SessionEnd::Failed(e)) = call.ended() else { panic!("{:?}", call.summary()) };
    assert_eq!(e.code(), Some("LLM_FAILED"));
    let line = e.to_string();
    assert!(line.contains(&format!("127.0.0.1:{port}")) && line.contains("could not be reached"), "{line}");
}

#[tokio::test]
async fn barge_in_mid_answer_flushes_cancels_the_streams_and_keeps_what_was_heard() {
    let long = "First sentence of a long answer. Second sentence keeps going on and on. Third sentence is here. Fourth sentence. Fifth sentence ends it.";
    let fake = FakePipeline::start(
        Settings::new()
            .transcripts(&["tell me everything", "stop"])
            .script(ChatScript::new().default_reply(long)),
    )
    .await
    .expect("fake");
    // The answer streams slowly, so the caller speaks while it is still being written.
    fake.update(|s| s.chat.chunk_interval = Duration::from_millis(60));
    let provider = PipelineProvider::new(config(&fake)).expect("provider");
    let mut call = Call::open(&provider).await;
    call.say(700).await;
    // Wait until about a second of the answer has played.
    call.until(600, |c| c.played >= 8000).await;
    call.say(800).await;
    call.until(600, |_| fake.chats().len() >= 2).await;

    let flush = call.events.iter().filter(|e| **e == AgentEvent::FlushPlayback).count();
    assert_eq!(flush, 1, "{:?}", call.summary());
    let first = &fake.chats()[0];
    assert!(first.cut_by_client(), "the LLM stream was dropped mid-answer");
    // The second request carries the first answer as far as it was heard, marked cut off.
    let second = fake.chats()[1].messages().to_vec();
    let heard = second
        .iter()
        .rev()
        .find(|m| m.tool_call_id.is_none() && m.role == voice_ua_fake_pipeline::Role::Assistant)
        .and_then(|m| m.content.clone())
        .expect("the heard part of the answer");
    assert!(heard.starts_with("First sentence"), "{heard}");
    assert!(heard.ends_with('…'), "{heard}");
    assert!(heard.len() < long.len(), "only part of it was heard: {heard}");
    assert_eq!(second.last().and_then(|m| m.content.as_deref()), Some("stop"));
    assert!(fake.records().refused().is_empty(), "{:?}", fake.records().refused());
    call.session.end_call();
}

#[tokio::test]
async fn a_short_sound_under_the_agents_audio_is_not_a_turn() {
    let fake = FakePipeline::start(
        Settings::new().transcripts(&["what are the opening hours"]).script(
            ChatScript::new()
                .default_reply("We open at nine in the morning and close at six in the evening every day."),
        ),
    )
    .await
    .expect("fake");
    let provider = PipelineProvider::new(config(&fake)).expect("provider");
    let mut call = Call::open(&provider).await;
    call.say(700).await;
    call.until(600, |c| c.played >= 4000).await;
    // 200 ms: under barge_in_min_ms (300) but a turn by min_speech_ms (200).
    call.say(200).await;
    call.until(800, |c| c.marks.is_empty() && !c.playing() && c.queued > 8000).await;
    // A second more of quiet: nothing comes of the murmur.
    for _ in 0..50 {
        call.tick(quiet_frame()).await;
    }
    assert!(!call.events.contains(&AgentEvent::FlushPlayback));
    assert_eq!(
        fake.transcriptions().len(),
        1,
        "the murmur was not sent to the STT: {:?} {:?}",
        fake.transcriptions().iter().map(|t| t.duration_ms).collect::<Vec<_>>(),
        call.summary()
    );
    call.session.end_call();
}

#[tokio::test]
async fn the_end_of_turn_key_ends_the_turn_without_waiting_for_silence() {
    let fake =
        FakePipeline::start(Settings::new().transcripts(&["visitor for flat nine"])).await.expect("fake");
    let provider = PipelineProvider::new(config(&fake)).expect("provider");
    let mut call = Call::open(&provider).await;
    call.say(600).await;
    call.session.send_digit(voice_ua_agent::Digit::new('#').expect("key")).expect("digit");
    // Well under the 700 ms end-of-turn silence.
    call.until(20, |_| !fake.transcriptions().is_empty()).await;
    call.until(400, |c| c.events.iter().any(|e| matches!(e, AgentEvent::ReplyStarted(_)))).await;
    let started =
        call.events.iter().find_map(|e| if let AgentEvent::ReplyStarted(f) = e { Some(*f) } else { None });
    let endpointing = started.and_then(|f| f.endpointing).expect("figures");
    assert!(endpointing < Duration::from_millis(700), "{endpointing:?}");
    call.session.end_call();
}

#[tokio::test]
async fn the_check_asks_each_server_once_and_names_the_one_that_fails() {
    let fake = FakePipeline::start(Settings::new()).await.expect("fake");
    let cfg = config(&fake);
    let report = voice_ua_agent::pipeline::check(&cfg).await.expect("all three answer");
    let stages: Vec<&str> = report.iter().map(|s| s.stage).collect();
    assert_eq!(stages, ["stt", "llm", "tts"]);
    assert!(report[2].answer.contains("ms of audio"), "{report:?}");
    assert_eq!((fake.transcriptions().len(), fake.chats().len(), fake.speeches().len()), (1, 1, 1));
    assert!(fake.records().refused().is_empty(), "{:?}", fake.records().refused());
    fake.fail_always(Stage::Tts, Some(Failure::Status(404)));
    let e = voice_ua_agent::pipeline::check(&cfg).await.expect_err("the TTS fails").to_string();
    assert!(e.contains("TTS server") && e.contains("HTTP 404"), "{e}");
}

#[tokio::test]
async fn an_llm_that_answers_the_whole_completion_at_once_is_understood_too() {
    // A gateway that ignores `stream: true`: one JSON chat completion.
    let (llm_url, request) = http_once(
        r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the gateway. Welcome."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":6,"total_tokens":18}}"#,
    )
    .await;
    let fake = FakePipeline::start(Settings::new().transcripts(&["hello"])).await.expect("fake");
    let mut cfg = config(&fake);
    cfg.llm.url = llm_url;
    let provider = PipelineProvider::new(cfg).expect("provider");
    let mut call = Call::open(&provider).await;
    call.say(700).await;
    call.until(400, |c| !c.transcripts(Role::Agent).is_empty() && c.queued > 0).await;
    assert_eq!(call.transcripts(Role::Agent), ["Hello from the gateway. Welcome."]);
    let sent = request.await.expect("the LLM request");
    assert!(sent.contains(r#""stream":true"#), "{sent}");
    let inputs: Vec<String> = fake.speeches().iter().filter_map(|s| s.input().map(str::to_owned)).collect();
    assert_eq!(inputs.first().map(String::as_str), Some("Hello from the gateway."));
    assert!(call.events.iter().any(|e| matches!(e, AgentEvent::Usage(u) if u.output_text_tokens == 6)));
    call.session.end_call();
}

#[tokio::test]
async fn a_slow_tool_gets_its_filler_phrase_spoken_by_the_tts_and_kept_out_of_the_history() {
    let (url, _server) = common::http::slow_server(Duration::from_millis(1200), r#"{"opened":true}"#).await;
    let fake =
        FakePipeline::start(
            Settings::new().transcripts(&["please open the gate"]).script(ChatScript::new().rule(
                ToolRule::new("open", "open_gate", r#"{"gate":"main"}"#).then_reply("Done: {result}."),
            )),
        )
        .await
        .expect("fake");
    let phrase = "One moment, I'm opening the gate.";
    let mut cfg = config(&fake);
    cfg.functions.push(FunctionSpec {
        name: "open_gate".into(),
        description: "Open a gate".into(),
        parameters: json!({"type":"object","properties":{"gate":{"type":"string"}},"required":["gate"]}),
        kind: ToolKind::Http { url, headers: vec![], timeout: Duration::from_secs(5) },
        filler: voice_ua_agent::tools::Filler::Phrase {
            after: Duration::from_millis(300),
            text: phrase.into(),
        },
    });
    let provider = PipelineProvider::new(cfg).expect("provider");
    let mut call = Call::open(&provider).await;
    call.say(700).await;
    // Until the answer has played and its TTS request is in the fake's book (the book is
    // written as the request ends, which may be after the call saw the audio).
    let spoken = |t: &str| fake.speeches().iter().any(|s| s.input().is_some_and(|i| i.starts_with(t)));
    call.until(500, |c| {
        c.transcripts(Role::Agent).iter().any(|t| t.starts_with("Done")) && !c.playing() && spoken("Done")
    })
    .await;
    let inputs: Vec<String> = fake.speeches().iter().filter_map(|s| s.input().map(str::to_owned)).collect();
    assert_eq!(inputs.iter().filter(|t| *t == phrase).count(), 1, "the phrase once: {inputs:?}");
    let done = inputs.iter().position(|t| t.starts_with("Done")).expect("the answer was spoken");
    assert!(inputs.iter().position(|t| t == phrase) < Some(done), "the phrase, then the answer: {inputs:?}");
    let chats = fake.chats();
    assert_eq!(chats.len(), 2);
    let second = format!("{:?}", chats[1].messages());
    assert!(!second.contains("opening the gate"), "the LLM never sees the filler: {second}");
    assert!(!call.transcripts(Role::Agent).iter().any(|t| t == phrase), "nor does the transcript");
    assert!(
        !call.events.iter().any(|e| matches!(e, AgentEvent::Hold { on: true, .. })),
        "no tone over the phrase"
    );
    call.session.end_call();
}
