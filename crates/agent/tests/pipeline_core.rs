//! The pipeline's turn machine in virtual time: frames, transcripts, LLM steps, TTS
//! audio and playback reports fed with an injected clock, the outputs checked exactly.
//! No sockets, no tasks.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::encode;
use serde_json::json;
use voice_ua_agent::pipeline::wire::{ChatStep, ToolCallRequest};
use voice_ua_agent::pipeline::{LlmPrices, Output, PipelineConfig, PipelineCore, Stage};
use voice_ua_agent::{AgentEvent, AudioFormat, AudioFrame, Digit, FunctionSpec, SessionEnd, ToolKind};

const FORMAT: AudioFormat = AudioFormat::Ulaw8k;
const FRAME: Duration = Duration::from_millis(20);

fn config() -> PipelineConfig {
    let mut c = common::pipeline::config("http://127.0.0.1:9/v1");
    c.stt.sample_rate = 8000;
    c.tts.sample_rate = 8000;
    c.llm.prices = Some(LlmPrices { input: 1.0, cached_input: 0.5, output: 4.0 });
    c.instructions = "Be brief.".into();
    c.max_tool_rounds = 2;
    c.functions = vec![FunctionSpec {
        name: "open_gate".into(),
        description: "Open the gate".into(),
        parameters: json!({"type":"object","properties":{}}),
        kind: ToolKind::Http {
            url: "http://127.0.0.1:9/t".into(),
            headers: vec![],
            timeout: Duration::from_secs(1),
        },
        filler: Default::default(),
    }];
    c
}

fn voice() -> AudioFrame {
    let pcm: Vec<i16> = (0..160).map(|i| ((i as f64 * 0.2).sin() * 8000.0) as i16).collect();
    AudioFrame::new(&encode(FORMAT, &pcm)).expect("frame")
}

/// A core and its clock.
struct Rig {
    core: PipelineCore,
    now: Instant,
    out: Vec<Output>,
}

impl Rig {
    fn new(config: PipelineConfig) -> Rig {
        Rig {
            core: PipelineCore::new(Arc::new(config), FORMAT).expect("core"),
            now: Instant::now(),
            out: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(o) = self.core.poll_output() {
            self.out.push(o);
        }
    }

    /// `n` frames, each handed over at the end of its 20 ms.
    fn frames(&mut self, n: usize, frame: AudioFrame) {
        for _ in 0..n {
            self.now += FRAME;
            self.core.audio(self.now, &frame);
            self.drain();
        }
    }

    fn transcript(&mut self, turn: u32, text: &str) {
        self.core.transcript(self.now, turn, text);
        self.drain();
    }

    fn wait(&mut self, d: Duration) {
        self.now += d;
    }

    fn take(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    /// Speak `ms`, then be quiet until the turn ends: the Transcribe request's turn.
    fn utterance(&mut self, ms: usize) -> u32 {
        self.frames(ms / 20, voice());
        for _ in 0..60 {
            self.frames(1, AudioFrame::silence(FORMAT));
            if self.out.iter().any(|o| matches!(o, Output::Transcribe { .. })) {
                break;
            }
        }
        let out = self.take();
        let turns: Vec<u32> = out
            .iter()
            .filter_map(|o| if let Output::Transcribe { turn, .. } = o { Some(*turn) } else { None })
            .collect();
        assert_eq!(turns.len(), 1, "{out:?}");
        turns[0]
    }

    fn step(&mut self, turn: u32, round: u32, step: ChatStep) {
        self.core.llm_step(self.now, turn, round, step);
        self.drain();
    }

    /// A turn answered "One two three four. Five six seven eight.", each sentence's 1 s
    /// of audio sent and not yet played; returns the turn.
    fn two_second_reply(&mut self) -> u32 {
        let turn = self.utterance(600);
        self.transcript(turn, "tell me");
        self.step(turn, 1, ChatStep::Text("One two three four. Five six seven eight.".into()));
        self.step(turn, 1, ChatStep::Done);
        self.take();
        self.speak(turn, 0, 1000);
        self.speak(turn, 1, 1000);
        turn
    }

    /// `ms` of TTS audio for sentence `seq`, then its end.
    fn speak(&mut self, turn: u32, seq: u32, ms: u32) {
        let bytes = vec![0x10u8; (16 * ms) as usize];
        self.core.tts_audio(self.now, turn, seq, &bytes);
        self.core.tts_done(turn, seq);
        self.drain();
    }
}

fn events(out: &[Output]) -> Vec<&AgentEvent> {
    out.iter().filter_map(|o| if let Output::Event(e) = o { Some(e) } else { None }).collect()
}

fn speaks(out: &[Output]) -> Vec<(u32, String)> {
    out.iter()
        .filter_map(
            |o| if let Output::Speak { seq, text, .. } = o { Some((*seq, text.clone())) } else { None },
        )
        .collect()
}

#[test]
fn a_turns_stages_are_timed_exactly_and_announced_before_its_audio() {
    let mut r = Rig::new(config());
    let turn = r.utterance(600);
    // Endpointing: 700 ms of quiet (35 frames) after the last loud frame.
    r.wait(Duration::from_millis(120));
    r.transcript(turn, "hello there");
    let think: Vec<_> = r.take();
    assert!(matches!(think.last(), Some(Output::Think { round: 1, .. })), "{think:?}");
    r.wait(Duration::from_millis(250));
    r.step(turn, 1, ChatStep::Text("Hi. ".into()));
    r.step(turn, 1, ChatStep::Text("How can I help you today?".into()));
    r.step(turn, 1, ChatStep::Done);
    assert_eq!(speaks(&r.out), [(0, "Hi.".to_owned()), (1, "How can I help you today?".to_owned())]);
    r.take();
    r.wait(Duration::from_millis(90));
    r.speak(turn, 0, 400);
    let out = r.take();
    let ev = events(&out);
    let AgentEvent::ReplyStarted(f) = ev[0] else { panic!("ReplyStarted first: {ev:?}") };
    assert_eq!(f.endpointing, Some(Duration::from_millis(700)));
    assert_eq!(f.transcribe, Some(Duration::from_millis(120)));
    assert_eq!(f.think, Some(Duration::from_millis(250)));
    assert_eq!(f.speak, Some(Duration::from_millis(90)));
    // The pipeline's own total: the four stages end to end (no gaps between them here).
    assert_eq!(f.total, Some(Duration::from_millis(700 + 120 + 250 + 90)));
    assert!(matches!(ev[1], AgentEvent::Audio(_)));
    // 400 ms of audio is 20 frames, then the sentence's mark.
    assert_eq!(ev.iter().filter(|e| matches!(e, AgentEvent::Audio(_))).count(), 20);
    assert_eq!(ev.last(), Some(&&AgentEvent::Mark(0)));
}

#[test]
fn the_reply_joins_the_history_once_heard_and_a_barge_in_keeps_only_what_was_heard() {
    let mut r = Rig::new(config());
    r.two_second_reply();
    assert!(r.core.playing());
    // Not yet heard: not yet in the history.
    assert_eq!(r.core.history().messages().len(), 2);
    // The caller talks over it: barge-in after 300 ms of speech, flush and cancel.
    r.frames(20, voice());
    let out = r.take();
    let ev = events(&out);
    assert_eq!(ev.iter().filter(|e| ***e == AgentEvent::FlushPlayback).count(), 1, "{ev:?}");
    assert!(out.contains(&Output::CancelReply));
    // The caller heard the first sentence and half of the second.
    r.core.playback_flushed(8000 + 4000);
    let history = r.core.history().messages();
    assert_eq!(history.last().map(|m| m.content()), Some("One two three four. Five six…"));
    assert!(!r.core.playing());
}

#[test]
fn a_reply_heard_to_its_end_is_kept_whole() {
    let mut r = Rig::new(config());
    let turn = r.utterance(600);
    r.transcript(turn, "hi");
    r.step(turn, 1, ChatStep::Text("Hello, welcome to the gate.".into()));
    r.step(turn, 1, ChatStep::Done);
    r.speak(turn, 0, 600);
    r.core.mark_played(0);
    r.drain();
    assert!(!r.core.playing());
    assert_eq!(r.core.history().messages().last().map(|m| m.content()), Some("Hello, welcome to the gate."));
}

#[test]
fn a_murmur_under_the_agents_audio_is_dropped_and_an_old_turns_results_are_ignored() {
    let mut r = Rig::new(config());
    let turn = r.utterance(600);
    r.transcript(turn, "hi");
    r.step(turn, 1, ChatStep::Text("A long answer is being spoken now.".into()));
    r.step(turn, 1, ChatStep::Done);
    r.speak(turn, 0, 3000);
    r.take();
    // 220 ms of speech: a turn by min_speech_ms (200), not a barge-in (300).
    r.frames(11, voice());
    r.frames(40, AudioFrame::silence(FORMAT));
    let out = r.take();
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Transcribe { .. } | Output::Event(AgentEvent::FlushPlayback))),
        "{out:?}"
    );
    // Results for a turn that is not the newest change nothing.
    r.core.stage_failed(turn - 1, Stage::Tts, "late");
    r.drain();
    assert!(!r.core.is_ended());
}

#[test]
fn a_new_utterance_before_the_reply_is_heard_cancels_it_and_both_words_reach_the_llm() {
    let mut r = Rig::new(config());
    let first = r.utterance(600);
    r.transcript(first, "my name is Ann");
    r.take();
    let second = r.utterance(600);
    assert_eq!(second, first + 1);
    assert!(r.out.is_empty());
    let out: Vec<Output> = std::iter::from_fn(|| r.core.poll_output()).collect();
    assert!(out.is_empty(), "{out:?}");
    // The first reply's late steps are ignored; the second turn asks with both messages.
    r.step(first, 1, ChatStep::Text("Hello Ann.".into()));
    assert!(speaks(&r.out).is_empty());
    r.transcript(second, "I am here for flat 4");
    let Some(Output::Think { body, .. }) = r.out.iter().rev().find(|o| matches!(o, Output::Think { .. }))
    else {
        panic!("{:?}", r.out)
    };
    let body: serde_json::Value = serde_json::from_slice(body).expect("json");
    let messages = body["messages"].as_array().expect("messages");
    assert_eq!(
        messages.last().and_then(|m| m["content"].as_str()),
        Some("my name is Ann I am here for flat 4")
    );
}

#[test]
fn tool_calls_run_and_the_rounds_are_bounded() {
    let mut r = Rig::new(config());
    let turn = r.utterance(600);
    r.transcript(turn, "open it");
    r.take();
    let call =
        |id: &str| ToolCallRequest { id: id.into(), name: "open_gate".into(), arguments: Ok(json!({})) };
    r.step(turn, 1, ChatStep::ToolCalls(vec![call("c1")]));
    r.step(turn, 1, ChatStep::Done);
    let out = r.take();
    assert!(matches!(&out[..], [Output::RunTools { calls, .. }] if calls[0].id == "c1"), "{out:?}");
    r.core.tool_result(r.now, turn, "c1", "ok");
    r.drain();
    assert!(matches!(r.take().last(), Some(Output::Think { round: 2, .. })));
    // Round 2 calls again: max_tool_rounds (2) is reached, the turn ends without a third.
    r.step(turn, 2, ChatStep::ToolCalls(vec![call("c2")]));
    r.core.tool_result(r.now, turn, "c2", "ok");
    r.drain();
    assert!(!r.take().iter().any(|o| matches!(o, Output::Think { .. })));
}

#[test]
fn arguments_that_are_not_json_are_answered_without_running_the_function() {
    let mut r = Rig::new(config());
    let turn = r.utterance(600);
    r.transcript(turn, "open it");
    r.take();
    let broken =
        ToolCallRequest { id: "c1".into(), name: "open_gate".into(), arguments: Err("expected `}`".into()) };
    r.step(turn, 1, ChatStep::ToolCalls(vec![broken]));
    let out = r.take();
    assert!(!out.iter().any(|o| matches!(o, Output::RunTools { .. })), "{out:?}");
    let Some(Output::Think { body, round: 2, .. }) = out.last() else { panic!("{out:?}") };
    let body: serde_json::Value = serde_json::from_slice(body).expect("json");
    let last = body["messages"].as_array().and_then(|m| m.last()).expect("a message");
    assert_eq!(last["role"], "tool");
    assert!(last["content"].as_str().is_some_and(|c| c.starts_with("error:")), "{last}");
}

#[test]
fn usage_is_priced_and_a_failed_stage_ends_the_session_with_its_code() {
    let mut r = Rig::new(config());
    let turn = r.utterance(600);
    r.transcript(turn, "hi");
    r.take();
    r.step(turn, 1, ChatStep::Usage { prompt_tokens: 1000, completion_tokens: 100, cached_tokens: 400 });
    let out = r.take();
    let Some(AgentEvent::Usage(u)) = events(&out).first().copied() else { panic!("{out:?}") };
    // 600 fresh × $1 + 400 cached × $0.5 + 100 out × $4, per million: $0.0012.
    assert_eq!((u.input_text_tokens, u.cached_input_tokens, u.output_text_tokens), (1000, 400, 100));
    assert_eq!(u.cost_micro_usd, 1200);
    r.core.stage_failed(turn, Stage::Llm, "answered HTTP 500");
    r.drain();
    let out = r.take();
    let Some(AgentEvent::Ended(SessionEnd::Failed(e))) = events(&out).last().copied() else {
        panic!("{out:?}")
    };
    assert_eq!(e.code(), Some("LLM_FAILED"));
    assert!(r.core.is_ended());
}

#[test]
fn the_end_key_ends_a_turn_at_once_and_keys_alone_are_a_turn() {
    let mut r = Rig::new(config());
    r.frames(30, voice());
    r.core.digit(r.now, Digit::new('#').expect("key"));
    r.drain();
    let out = r.take();
    assert!(matches!(out.last(), Some(Output::Transcribe { turn: 1, .. })), "{out:?}");
    // Keys with no speech, then the end key: the keys are the caller's words.
    for k in ['4', '2', '#'] {
        r.core.digit(r.now, Digit::new(k).expect("key"));
    }
    r.drain();
    let out = r.take();
    assert!(
        events(&out).iter().any(|e| matches!(e, AgentEvent::Transcript { text, .. } if text.contains("42"))),
        "{out:?}"
    );
    assert!(matches!(out.last(), Some(Output::Think { turn: 2, .. })), "{out:?}");
}

#[test]
fn the_greeting_is_spoken_without_the_llm_and_announces_no_turn() {
    let mut cfg = config();
    cfg.greeting = Some("Hello, main gate.".into());
    let mut r = Rig::new(cfg);
    r.drain();
    assert_eq!(speaks(&r.out), [(0, "Hello, main gate.".to_owned())]);
    r.take();
    r.speak(0, 0, 200);
    let out = r.take();
    assert!(!events(&out).iter().any(|e| matches!(e, AgentEvent::ReplyStarted(_))));
    // The greeting is in the system message, so the first LLM request knows it.
    assert!(r.core.history().messages()[0].content().contains("Hello, main gate."));
}

#[test]
fn a_second_barge_in_keeps_what_was_heard_too() {
    let mut r = Rig::new(config());
    let mut played = 0;
    for (n, words) in [(1, "one two three four"), (2, "five six seven eight")] {
        let turn = r.utterance(600);
        r.transcript(turn, "go on");
        r.step(turn, 1, ChatStep::Text(format!("Alpha {words}. Beta {words}.")));
        r.step(turn, 1, ChatStep::Done);
        r.speak(turn, 0, 1000);
        r.speak(turn, 1, 1000);
        r.take();
        r.frames(20, voice());
        assert!(r.take().contains(&Output::Event(AgentEvent::FlushPlayback)));
        // The call played the first sentence and a quarter of the second of this reply;
        // everything flushed before was never played and is not in the call's count.
        played += 8000 + 2000;
        r.core.playback_flushed(played);
        let heard = r
            .core
            .history()
            .messages()
            .iter()
            .rev()
            .find(|m| m.role() == "assistant")
            .map(|m| m.content().to_owned());
        assert_eq!(heard.as_deref(), Some(&*format!("Alpha {words}. Beta…")), "reply {n}");
        // Quiet until the caller's speech is over (it ends as a turn of its own).
        r.frames(40, AudioFrame::silence(FORMAT));
        r.take();
    }
}

/// A turn that calls `open_gate` (with `filler`): the rig after the `RunTools`.
fn tool_turn(filler: voice_ua_agent::tools::Filler) -> (Rig, u32) {
    let mut c = config();
    c.functions[0].filler = filler;
    let mut r = Rig::new(c);
    let turn = r.utterance(600);
    r.transcript(turn, "open the gate");
    r.take();
    let call = ToolCallRequest { id: "c1".into(), name: "open_gate".into(), arguments: Ok(json!({})) };
    r.step(turn, 1, ChatStep::ToolCalls(vec![call]));
    r.step(turn, 1, ChatStep::Done);
    let out = r.take();
    assert!(matches!(&out[..], [Output::RunTools { .. }]), "{out:?}");
    (r, turn)
}

fn holds(out: &[Output]) -> Vec<bool> {
    events(out)
        .iter()
        .filter_map(|e| if let AgentEvent::Hold { on, .. } = e { Some(*on) } else { None })
        .collect()
}

#[test]
fn a_slow_tool_gets_its_filler_phrase_spoken_but_never_in_the_history() {
    let phrase = "One moment, I'm opening the gate.";
    let filler =
        voice_ua_agent::tools::Filler::Phrase { after: Duration::from_millis(700), text: phrase.into() };
    let (mut r, turn) = tool_turn(filler);
    r.frames(34, AudioFrame::silence(FORMAT));
    assert!(speaks(&r.take()).is_empty(), "nothing within 680 ms");
    r.frames(1, AudioFrame::silence(FORMAT));
    let out = r.take();
    assert_eq!(speaks(&out), [(0, phrase.to_owned())], "the phrase at +700 ms");
    assert!(holds(&out).is_empty(), "no tone over the phrase");
    assert!(
        !events(&out).iter().any(|e| matches!(e, AgentEvent::Transcript { .. })),
        "not a transcript line"
    );
    r.speak(turn, 0, 1500);
    let heard = r.take();
    assert!(events(&heard).iter().any(|e| matches!(e, AgentEvent::Audio(_))), "the phrase is heard");
    r.core.tool_result(r.now, turn, "c1", r#"{"opened":true}"#);
    r.drain();
    let out = r.take();
    let Some(Output::Think { body, round: 2, .. }) = out.last() else { panic!("{out:?}") };
    let body: serde_json::Value = serde_json::from_slice(body).expect("json");
    assert!(!body.to_string().contains("opening the gate"), "the LLM never sees the filler: {body}");
    r.step(turn, 2, ChatStep::Text("The gate is open.".into()));
    r.step(turn, 2, ChatStep::Done);
    let out = r.take();
    assert_eq!(speaks(&out), [(1, "The gate is open.".to_owned())]);
    r.speak(turn, 1, 400);
    for id in 0..2 {
        r.core.mark_played(id);
    }
    let history = format!("{:?}", r.core.history().messages());
    assert!(history.contains("The gate is open.") && !history.contains("opening the gate"), "{history}");
}

#[test]
fn a_slow_tool_without_a_phrase_gets_the_hold_tone_until_its_result() {
    let (mut r, turn) = tool_turn(voice_ua_agent::tools::Filler::default());
    r.frames(34, AudioFrame::silence(FORMAT));
    assert!(holds(&r.take()).is_empty());
    r.frames(1, AudioFrame::silence(FORMAT));
    let out = r.take();
    assert_eq!(holds(&out), [true], "the hold tone at +700 ms");
    assert!(speaks(&out).is_empty());
    assert!(r.core.tool_hold());
    r.frames(100, AudioFrame::silence(FORMAT));
    assert!(holds(&r.take()).is_empty(), "one hold");
    r.core.tool_result(r.now, turn, "c1", "ok");
    r.drain();
    assert_eq!(holds(&r.take()), [false]);
}

#[test]
fn keys_use_the_shared_wording() {
    let mut r = Rig::new(config());
    for k in ['4', '7', '1', '1', '#'] {
        r.core.digit(r.now, Digit::new(k).expect("key"));
    }
    r.drain();
    let out = r.take();
    assert!(
        events(&out).iter().any(|e| matches!(e, AgentEvent::Transcript { text, .. }
            if text == &voice_ua_agent::keypad::typed_text("4711"))),
        "{out:?}"
    );
}

#[test]
fn a_barge_in_the_call_never_carries_out_keeps_what_played_in_the_history() {
    // As in the barge-in test above, but the call's echo gate drops the flush: no
    // `PlaybackFlushed` ever comes, and the sentences already sent play to their end.
    let mut r = Rig::new(config());
    let turn = r.two_second_reply();
    r.frames(20, voice());
    let out = r.take();
    assert!(events(&out).iter().any(|e| **e == AgentEvent::FlushPlayback), "{out:?}");
    assert_eq!(r.core.history().messages().len(), 2, "nothing heard is known yet");
    // Both marks play (not cleared); then the caller's next utterance starts a new turn.
    r.core.mark_played(0);
    r.core.mark_played(1);
    r.drain();
    r.frames(10, AudioFrame::silence(FORMAT));
    let next = r.utterance(600);
    assert!(next > turn);
    let history = r.core.history().messages();
    let contents: Vec<&str> = history.iter().map(|m| m.content()).collect();
    assert!(
        contents.contains(&"One two three four. Five six seven eight. …"),
        "what played is in the history, marked as broken off: {contents:?}"
    );
}
