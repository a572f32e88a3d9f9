//! The sans-IO OpenAI Realtime session in virtual time: the GA handshake, audio both
//! ways, barge-in (flush, then the truncate of the item that was playing), late deltas of
//! interrupted responses, function calls, usage and cost, and what ends a session (a
//! handshake that never completes, fatal errors, closes, oversized frames) with its typed
//! code; unknown and malformed events are survived.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use voice_ua_agent::openai::session::{
    Closed, OpenAiSession, Output, State, HANDSHAKE_TIMEOUT, MAX_EVENT_BYTES, MAX_PENDING_TOOLS,
};
use voice_ua_agent::openai::{Prices, ToolChoice, TurnDetection};
use voice_ua_agent::{
    AgentError, AgentEvent, AudioFormat, AudioFrame, OpenAiConfig, ReconnectPolicy, Role, SessionEnd, Usage,
};

/// A session that does not reconnect: what ends it is tested here; reconnecting in
/// openai_reconnect.rs.
fn config() -> OpenAiConfig {
    let mut c = OpenAiConfig::new("k");
    c.reconnect = ReconnectPolicy::off();
    c
}

fn drain(s: &mut OpenAiSession) -> Vec<Output> {
    std::iter::from_fn(|| s.poll_output()).collect()
}

fn text(s: &mut OpenAiSession, t: Instant, event: Value) {
    s.handle_text(t, &event.to_string());
}

/// Server VAD hears the caller start.
fn speech_started(s: &mut OpenAiSession, t: Instant) {
    text(s, t, json!({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": "u1"}));
}

/// A response begins.
fn response_created(s: &mut OpenAiSession, t: Instant, id: &str) {
    text(s, t, json!({"type": "response.created", "response": {"id": id, "status": "in_progress"}}));
}

fn streaming_with(t0: Instant, config: &OpenAiConfig) -> OpenAiSession {
    let mut s = OpenAiSession::new(t0, AudioFormat::Ulaw8k, config, None).expect("G.711");
    text(&mut s, t0, json!({"type": "session.created", "session": {"type": "realtime", "id": "sess_1"}}));
    text(&mut s, t0, json!({"type": "session.updated", "session": {"type": "realtime"}}));
    drain(&mut s);
    s
}

fn streaming(t0: Instant) -> OpenAiSession {
    streaming_with(t0, &config())
}

/// The JSON events that left, in order (`"audio"` for an append).
fn sent(outputs: &[Output]) -> Vec<Value> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::SendAudio(_) => Some(json!("audio")),
            Output::SendText(t) => Some(serde_json::from_str(t).expect("json")),
            _ => None,
        })
        .collect()
}

fn types(outputs: &[Output]) -> Vec<String> {
    sent(outputs).iter().map(|v| v.as_str().unwrap_or(v["type"].as_str().unwrap_or("?")).to_owned()).collect()
}

fn events(outputs: &[Output]) -> Vec<AgentEvent> {
    outputs.iter().filter_map(|o| if let Output::Event(e) = o { Some(e.clone()) } else { None }).collect()
}

fn audio_bytes(outputs: &[Output]) -> Vec<u8> {
    events(outputs)
        .iter()
        .flat_map(|e| if let AgentEvent::Audio(f) = e { f.as_bytes().to_vec() } else { Vec::new() })
        .collect()
}

fn delta(response: &str, item: &str, bytes: &[u8]) -> Value {
    json!({
        "type": "response.output_audio.delta", "event_id": "ev", "response_id": response, "item_id": item,
        "output_index": 0, "content_index": 0,
        "delta": base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

fn failure(outputs: &[Output]) -> AgentError {
    match events(outputs).last() {
        Some(AgentEvent::Ended(SessionEnd::Failed(e))) => e.clone(),
        other => panic!("expected Ended(Failed), got {other:?}: {outputs:?}"),
    }
}

/// 20 ms of µ-law whose first byte says which frame it is.
fn numbered(n: u8) -> AudioFrame {
    let mut bytes = [0xff; 160];
    bytes[0] = n;
    AudioFrame::new(&bytes).expect("fits")
}

#[test]
fn the_ga_session_update_goes_first_with_the_calls_law_both_ways() {
    let t0 = Instant::now();
    let mut c = config();
    c.functions.push(voice_ua_agent::FunctionSpec {
        name: "open_gate".into(),
        description: "Open the gate".into(),
        parameters: json!({"type": "object", "properties": {}}),
        kind: voice_ua_agent::ToolKind::Builtin(voice_ua_agent::Builtin::Hangup),
        filler: Default::default(),
    });
    for (format, law) in [(AudioFormat::Ulaw8k, "audio/pcmu"), (AudioFormat::Alaw8k, "audio/pcma")] {
        let mut s = OpenAiSession::new(t0, format, &c, None).expect("G.711");
        let out = sent(&drain(&mut s));
        assert_eq!(out.len(), 1, "{out:?}");
        let update = &out[0];
        assert_eq!(update["type"], "session.update");
        let session = &update["session"];
        assert_eq!(session["type"], "realtime", "the GA shape");
        assert_eq!(session["model"], "gpt-realtime");
        assert_eq!(session["output_modalities"], json!(["audio"]));
        assert_eq!(session["audio"]["input"]["format"], json!({"type": law}));
        assert_eq!(session["audio"]["output"]["format"], json!({"type": law}), "nothing is transcoded");
        assert_eq!(session["audio"]["output"]["voice"], "marin");
        assert_eq!(session["audio"]["input"]["noise_reduction"], json!({"type": "near_field"}));
        assert_eq!(session["audio"]["input"]["transcription"], json!({"model": "gpt-4o-mini-transcribe"}));
        assert_eq!(
            session["audio"]["input"]["turn_detection"],
            json!({"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500,
                   "create_response": true, "interrupt_response": true})
        );
        assert_eq!(
            session["tools"][0],
            json!({"type": "function", "name": "open_gate",
            "description": "Open the gate", "parameters": {"type": "object", "properties": {}}})
        );
        assert_eq!(session["tool_choice"], "auto");
        for beta in ["input_audio_format", "output_audio_format", "modalities", "voice", "turn_detection"] {
            assert!(session.get(beta).is_none(), "no beta field {beta}: {session}");
        }
    }
    let err = OpenAiSession::new(t0, AudioFormat::Linear16 { rate_hz: 12000 }, &c, None)
        .expect_err("L16 at 12 kHz");
    assert_eq!(err.kind(), "unsupported_format");
}

#[test]
fn semantic_vad_off_switches_and_a_named_tool_choice() {
    let t0 = Instant::now();
    let mut c = config();
    c.turn_detection = TurnDetection::SemanticVad { eagerness: voice_ua_agent::openai::Eagerness::Low };
    c.noise_reduction = voice_ua_agent::openai::NoiseReduction::Off;
    c.transcription = None;
    c.tool_choice = ToolChoice::Function("open_gate".into());
    let mut s = OpenAiSession::new(t0, AudioFormat::Ulaw8k, &c, None).expect("G.711");
    let update = sent(&drain(&mut s)).remove(0);
    let input = &update["session"]["audio"]["input"];
    assert_eq!(
        input["turn_detection"],
        json!({"type": "semantic_vad", "eagerness": "low", "create_response": true, "interrupt_response": true})
    );
    assert_eq!(input["noise_reduction"], Value::Null, "null turns it off");
    assert_eq!(input["transcription"], Value::Null);
    assert_eq!(update["session"]["tool_choice"], json!({"type": "function", "name": "open_gate"}));
}

#[test]
fn audio_flows_only_after_session_updated_then_the_greeting() {
    let t0 = Instant::now();
    let mut c = config();
    c.greeting = Some("Hello, Los Robles gate.".into());
    let mut s = OpenAiSession::new(t0, AudioFormat::Ulaw8k, &c, None).expect("G.711");
    drain(&mut s);
    assert_eq!(s.state(), State::AwaitingSessionUpdated);
    s.handle_call_audio(t0, &numbered(1));
    s.handle_call_audio(t0, &numbered(2));
    text(&mut s, t0, json!({"type": "session.created", "session": {"type": "realtime", "id": "sess_9"}}));
    let out = drain(&mut s);
    assert_eq!(events(&out), [AgentEvent::SessionOpened { id: "sess_9".into() }]);
    assert!(sent(&out).is_empty(), "no audio before session.updated");
    text(&mut s, t0, json!({"type": "session.updated", "session": {"type": "realtime"}}));
    assert_eq!(s.state(), State::Streaming);
    let out = sent(&drain(&mut s));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["type"], "response.create");
    let instructions = out[0]["response"]["instructions"].as_str().expect("instructions");
    assert!(instructions.ends_with("Hello, Los Robles gate."), "{instructions}");
    assert_eq!(s.counts().frames_dropped, 2);
    assert_eq!(s.session_id(), Some("sess_9"));
}

#[test]
fn caller_frames_leave_in_order_two_per_append() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    let t = |ms| t0 + Duration::from_millis(ms);
    for n in 1..=5u8 {
        s.handle_call_audio(t(20 * u64::from(n)), &numbered(n));
    }
    s.handle_call_audio(t(200), &AudioFrame::new(&[]).expect("empty"));
    let out = drain(&mut s);
    let batches: Vec<Vec<u8>> = out
        .iter()
        .filter_map(|o| if let Output::SendAudio(b) = o { Some(b.as_bytes().to_vec()) } else { None })
        .collect();
    assert_eq!(batches.len(), 2, "frames 1-4 in two appends; 5 waits for its pair");
    assert!(batches.iter().all(|b| b.len() == 320));
    assert_eq!((batches[0][0], batches[0][160], batches[1][0], batches[1][160]), (1, 2, 3, 4));
    s.handle_call_audio(t(120), &numbered(6));
    assert_eq!(types(&drain(&mut s)), ["audio"]);
    let counts = s.counts();
    assert_eq!((counts.frames_sent, counts.appends), (6, 3));

    // One frame per append when configured so.
    let mut c = config();
    c.append_frames = 1;
    let mut s = streaming_with(t0, &c);
    s.handle_call_audio(t0, &numbered(1));
    assert_eq!(types(&drain(&mut s)), ["audio"]);
}

#[test]
fn the_append_event_is_the_json_serde_would_write() {
    use voice_ua_agent::openai::messages::{append_json, append_json_len, ClientEvent};
    for len in [0usize, 1, 2, 3, 160, 320, 800] {
        let audio: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let mut out = bytes::BytesMut::new();
        append_json(&audio, &mut out);
        assert_eq!(out.len(), append_json_len(len));
        let want = ClientEvent::InputAudioBufferAppend {
            audio: base64::engine::general_purpose::STANDARD.encode(&audio),
        }
        .to_json();
        assert_eq!(std::str::from_utf8(&out).expect("utf8"), want);
    }
}

#[test]
fn agent_audio_reaches_the_call_in_20_ms_chunks() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    let bytes: Vec<u8> = (0..490u32).map(|i| i as u8).collect();
    text(&mut s, t0, delta("resp_1", "item_1", &bytes));
    let out = drain(&mut s);
    let sizes: Vec<usize> =
        events(&out).iter().map(|e| if let AgentEvent::Audio(f) = e { f.len() } else { 0 }).collect();
    assert_eq!(sizes, [160, 160, 160, 10]);
    assert_eq!(audio_bytes(&out), bytes);
    assert_eq!(s.playback().sent(), 490);
    // Not base64: dropped and counted.
    text(
        &mut s,
        t0,
        json!({"type": "response.output_audio.delta", "response_id": "resp_1", "item_id": "item_1", "delta": "@@@"}),
    );
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.counts().malformed, 1);
}

#[test]
fn transcripts_of_both_sides_reach_the_call_and_the_history() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    text(
        &mut s,
        t0,
        json!({"type": "conversation.item.input_audio_transcription.completed",
        "item_id": "u1", "content_index": 0, "transcript": "Delivery for 4B"}),
    );
    text(
        &mut s,
        t0,
        json!({"type": "response.output_audio_transcript.done",
        "response_id": "r1", "item_id": "a1", "output_index": 0, "content_index": 0, "transcript": "Who is it for?"}),
    );
    let said: Vec<(Role, String)> = events(&drain(&mut s))
        .into_iter()
        .filter_map(
            |e| if let AgentEvent::Transcript { role, text, .. } = e { Some((role, text)) } else { None },
        )
        .collect();
    assert_eq!(said, [(Role::User, "Delivery for 4B".into()), (Role::Agent, "Who is it for?".into())]);
    let history: Vec<(Role, &str)> = s.history().collect();
    assert_eq!(history, [(Role::User, "Delivery for 4B"), (Role::Agent, "Who is it for?")]);
}

/// Two replies queued at the call: a (2 s) and b (1 s), 3 s of audio at once at `t0`.
fn two_items_queued(t0: Instant) -> OpenAiSession {
    let mut s = streaming(t0);
    response_created(&mut s, t0, "r1");
    for _ in 0..10 {
        text(&mut s, t0, delta("r1", "a", &[0x55; 1600]));
    }
    text(&mut s, t0, json!({"type": "response.done", "response": {"id": "r1", "status": "completed"}}));
    response_created(&mut s, t0, "r2");
    for _ in 0..5 {
        text(&mut s, t0, delta("r2", "b", &[0x66; 1600]));
    }
    text(&mut s, t0, json!({"type": "response.done", "response": {"id": "r2", "status": "completed"}}));
    drain(&mut s);
    s
}

#[test]
fn barge_in_flushes_once_and_truncates_the_item_that_was_playing() {
    let t0 = Instant::now();
    let mut s = two_items_queued(t0);
    // The caller speaks 700 ms in: a is playing, b is queued behind it.
    let t = t0 + Duration::from_millis(700);
    speech_started(&mut s, t);
    speech_started(&mut s, t);
    assert_eq!(events(&drain(&mut s)), [AgentEvent::FlushPlayback], "one flush per utterance");
    // The call had played 680 ms of a when its pacer flushed.
    s.handle_playback_flushed(t, 680 * 8);
    let out = sent(&drain(&mut s));
    assert_eq!(
        out,
        [
            json!({"type": "conversation.item.truncate", "item_id": "a", "content_index": 0, "audio_end_ms": 680}),
            json!({"type": "conversation.item.truncate", "item_id": "b", "content_index": 0, "audio_end_ms": 0}),
        ],
        "the item playing, not the last one received; b was never heard"
    );
}

#[test]
fn a_barge_in_mid_second_item_leaves_the_first_alone() {
    let t0 = Instant::now();
    let mut s = two_items_queued(t0);
    let t = t0 + Duration::from_millis(2400);
    speech_started(&mut s, t);
    assert_eq!(events(&drain(&mut s)), [AgentEvent::FlushPlayback]);
    s.handle_playback_flushed(t, 2400 * 8);
    assert_eq!(
        sent(&drain(&mut s)),
        [
            json!({"type": "conversation.item.truncate", "item_id": "b", "content_index": 0, "audio_end_ms": 400})
        ]
    );
}

#[test]
fn speech_after_the_agent_finished_playing_flushes_and_truncates_nothing() {
    let t0 = Instant::now();
    let mut s = two_items_queued(t0);
    // 3 s of audio, played by t0 + 3 s; the margin is 500 ms.
    let t = t0 + Duration::from_millis(3600);
    speech_started(&mut s, t);
    assert!(drain(&mut s).is_empty(), "nothing may be playing: no flush");
    // Just within the margin: a flush; the call reports it all heard; no truncate.
    let mut s = two_items_queued(t0);
    let t = t0 + Duration::from_millis(3400);
    speech_started(&mut s, t);
    assert_eq!(events(&drain(&mut s)), [AgentEvent::FlushPlayback]);
    s.handle_playback_flushed(t, 3000 * 8);
    assert!(drain(&mut s).is_empty(), "a reply heard to its end is never truncated");
    // A report nobody asked for changes nothing.
    s.handle_playback_flushed(t, 42);
    assert!(drain(&mut s).is_empty());
}

#[test]
fn deltas_of_an_interrupted_or_cancelled_response_never_play() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    response_created(&mut s, t0, "r1");
    text(&mut s, t0, delta("r1", "a", &[0x55; 800]));
    drain(&mut s);
    // The caller speaks: server VAD cancels r1, whose deltas may still be on their way.
    let t = t0 + Duration::from_millis(50);
    speech_started(&mut s, t);
    text(&mut s, t, delta("r1", "a", &[0x55; 800]));
    text(
        &mut s,
        t,
        json!({"type": "response.done", "response": {"id": "r1", "status": "cancelled",
        "status_details": {"type": "cancelled", "reason": "turn_detected"}}}),
    );
    text(&mut s, t, delta("r1", "a", &[0x55; 800]));
    let out = drain(&mut s);
    assert_eq!(events(&out), [AgentEvent::FlushPlayback], "no stale audio after the flush: {out:?}");
    assert_eq!(s.counts().stale_deltas, 2);
    // The next response plays.
    response_created(&mut s, t, "r2");
    text(&mut s, t, delta("r2", "c", &[0x66; 160]));
    assert_eq!(audio_bytes(&drain(&mut s)), [0x66; 160]);

    // The server cancels on its own (no speech_started seen first): late deltas dropped.
    let mut s = streaming(t0);
    response_created(&mut s, t0, "r1");
    text(&mut s, t0, json!({"type": "response.done", "response": {"id": "r1", "status": "cancelled"}}));
    text(&mut s, t0, delta("r1", "a", &[0x55; 800]));
    assert!(audio_bytes(&drain(&mut s)).is_empty());
}

fn function_call(s: &mut OpenAiSession, t: Instant, response: &str, call: &str, name: &str, args: &str) {
    text(
        s,
        t,
        json!({"type": "response.output_item.added", "response_id": response, "output_index": 0,
        "item": {"id": format!("fc_item_{call}"), "type": "function_call", "call_id": call, "name": name, "arguments": ""}}),
    );
    text(
        s,
        t,
        json!({"type": "response.function_call_arguments.done", "response_id": response,
        "item_id": format!("fc_item_{call}"), "output_index": 0, "call_id": call, "arguments": args}),
    );
}

#[test]
fn function_results_go_back_and_the_model_goes_on_once_all_are_answered() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    response_created(&mut s, t0, "r1");
    function_call(&mut s, t0, "r1", "call_a", "check_visitor", r#"{"visitor_name":"Carlos Ruiz"}"#);
    function_call(&mut s, t0, "r1", "call_b", "get_recent_plates", "{}");
    let runs: Vec<(String, String, String)> = drain(&mut s)
        .into_iter()
        .filter_map(|o| if let Output::RunTool(c) = o { Some((c.id, c.name, c.arguments)) } else { None })
        .collect();
    assert_eq!(
        runs,
        [
            ("call_a".into(), "check_visitor".into(), r#"{"visitor_name":"Carlos Ruiz"}"#.into()),
            ("call_b".into(), "get_recent_plates".into(), "{}".into()),
        ],
        "the name comes from the output item when arguments.done has none"
    );
    s.handle_tool_result(t0, "call_a".into(), "check_visitor".into(), r#"{"ok":true}"#.into());
    assert_eq!(
        sent(&drain(&mut s)),
        [json!({"type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": "call_a", "output": "{\"ok\":true}"}})]
    );
    text(&mut s, t0, json!({"type": "response.done", "response": {"id": "r1", "status": "completed"}}));
    assert!(sent(&drain(&mut s)).is_empty(), "call_b still runs: no response.create yet");
    s.handle_tool_result(t0, "call_b".into(), "get_recent_plates".into(), "[]".into());
    assert_eq!(types(&drain(&mut s)), ["conversation.item.create", "response.create"]);
    // An answer nobody waits for is dropped.
    s.handle_tool_result(t0, "call_b".into(), "get_recent_plates".into(), "[]".into());
    assert!(drain(&mut s).is_empty());
}

#[test]
fn a_call_answered_before_its_response_is_done_waits_for_it() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    response_created(&mut s, t0, "r1");
    function_call(&mut s, t0, "r1", "call_a", "hangup", "{}");
    drain(&mut s);
    s.handle_tool_result(t0, "call_a".into(), "hangup".into(), "ok".into());
    assert_eq!(types(&drain(&mut s)), ["conversation.item.create"], "r1 is still in progress");
    text(&mut s, t0, json!({"type": "response.done", "response": {"id": "r1", "status": "completed"}}));
    assert_eq!(types(&drain(&mut s)), ["response.create"]);
}

#[test]
fn calls_of_an_interrupted_response_are_not_run_nor_continued() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    // Cancelled while its call runs: the output goes back, the caller's turn goes on.
    response_created(&mut s, t0, "r1");
    function_call(&mut s, t0, "r1", "call_a", "open_gate", "{}");
    drain(&mut s);
    text(&mut s, t0, json!({"type": "response.done", "response": {"id": "r1", "status": "cancelled"}}));
    s.handle_tool_result(t0, "call_a".into(), "open_gate".into(), "ok".into());
    assert_eq!(types(&drain(&mut s)), ["conversation.item.create"]);
    // Interrupted before the arguments were complete: not run at all.
    response_created(&mut s, t0, "r2");
    speech_started(&mut s, t0);
    function_call(&mut s, t0, "r2", "call_b", "open_gate", "{\"gate\":");
    assert!(!drain(&mut s).iter().any(|o| matches!(o, Output::RunTool(_))));
}

#[test]
fn more_than_the_running_limit_is_refused_at_once() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    response_created(&mut s, t0, "r1");
    for i in 0..=MAX_PENDING_TOOLS {
        function_call(&mut s, t0, "r1", &format!("c{i}"), "slow", "{}");
    }
    let out = drain(&mut s);
    assert_eq!(out.iter().filter(|o| matches!(o, Output::RunTool(_))).count(), MAX_PENDING_TOOLS);
    let refused = sent(&out);
    assert_eq!(refused.len(), 1);
    assert!(refused[0]["item"]["output"]
        .as_str()
        .is_some_and(|o| o.starts_with("error: too many function calls")));
}

#[test]
fn usage_is_costed_at_the_configured_prices_and_adds_up() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    // The real session's figures in shared/openai-realtime.md §4.
    let usage = json!({"input_tokens": 789, "output_tokens": 32, "total_tokens": 821,
        "input_token_details": {"text_tokens": 313, "audio_tokens": 476, "cached_tokens": 640,
            "cached_tokens_details": {"text_tokens": 256, "audio_tokens": 384, "image_tokens": 0}},
        "output_token_details": {"text_tokens": 9, "audio_tokens": 23}});
    text(
        &mut s,
        t0,
        json!({"type": "response.done", "response": {"id": "r1", "status": "completed", "usage": usage}}),
    );
    text(
        &mut s,
        t0,
        json!({"type": "response.done", "response": {"id": "r2", "status": "cancelled", "usage": usage}}),
    );
    let usages: Vec<Usage> = events(&drain(&mut s))
        .into_iter()
        .filter_map(|e| if let AgentEvent::Usage(u) = e { Some(u) } else { None })
        .collect();
    // (476-384)·32 + (313-256)·4 + 640·0.40 + 23·64 + 9·16 = 2944 + 228 + 256 + 1472 + 144.
    let one = Usage {
        input_audio_tokens: 476,
        input_text_tokens: 313,
        cached_input_tokens: 640,
        output_audio_tokens: 23,
        output_text_tokens: 9,
        cost_micro_usd: 5044,
    };
    assert_eq!(usages, [one, one], "a cancelled response is billed too");
    assert_eq!(usages[0].plus(usages[1]).cost_micro_usd, 10_088);
    // Other prices; cached tokens without their split are taken as audio first.
    let prices = Prices { audio_in: 10.0, cached_in: 0.30, audio_out: 20.0, text_in: 1.0, text_out: 2.0 };
    let u: voice_ua_agent::openai::messages::UsageInfo = serde_json::from_value(json!({
        "input_tokens": 1000, "output_tokens": 100,
        "input_token_details": {"text_tokens": 400, "audio_tokens": 600, "cached_tokens": 700},
        "output_token_details": {"text_tokens": 10, "audio_tokens": 90}}))
    .expect("usage");
    // audio: 600 cached; text: 100 cached, 300 not: 300 + 700·0.3 + 90·20 + 10·2.
    assert_eq!(prices.usage(&u).cost_micro_usd, 300 + 210 + 1800 + 20);
}

#[test]
fn unknown_and_malformed_events_are_ignored_and_counted() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    text(&mut s, t0, json!({"type": "response.shiny_new_thing", "x": 1}));
    for garbage in ["{not json", "[1,2]", r#"{"no":"type"}"#, r#"{"type":"response.done","response":7}"#, ""]
    {
        s.handle_text(t0, garbage);
    }
    text(
        &mut s,
        t0,
        json!({"type": "rate_limits.updated", "rate_limits": [{"name": "tokens", "limit": 1000, "remaining": 10, "reset_seconds": 1.5}]}),
    );
    assert!(drain(&mut s).is_empty());
    let c = s.counts();
    assert_eq!((c.unknown, c.malformed), (1, 5));
    assert_eq!(s.state(), State::Streaming);
    // Still streaming: audio flows.
    text(&mut s, t0, delta("r", "i", &[1; 160]));
    assert_eq!(audio_bytes(&drain(&mut s)).len(), 160);
}

#[test]
fn an_oversized_frame_ends_the_session() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    let huge = format!(
        r#"{{"type":"response.output_audio_transcript.done","transcript":"{}"}}"#,
        "a".repeat(MAX_EVENT_BYTES)
    );
    s.handle_text(t0, &huge);
    let e = failure(&drain(&mut s));
    assert_eq!(e.code(), Some("EVENT_TOO_LARGE"));
    assert!(
        e.to_string()
            .starts_with("agent openai failed: OpenAI sent a 1024 KiB event, over the 1024 KiB limit"),
        "{e}"
    );
    assert_eq!(s.state(), State::Ended);
}

#[test]
fn a_handshake_that_never_completes_fails_after_the_timeout() {
    let t0 = Instant::now();
    let mut s = OpenAiSession::new(t0, AudioFormat::Ulaw8k, &config(), None).expect("G.711");
    drain(&mut s);
    assert_eq!(s.poll_timeout(), Some(t0 + HANDSHAKE_TIMEOUT));
    s.handle_timeout(t0 + Duration::from_secs(9));
    assert!(drain(&mut s).is_empty());
    s.handle_timeout(t0 + HANDSHAKE_TIMEOUT);
    let out = drain(&mut s);
    let e = failure(&out);
    assert_eq!(e.code(), Some("HANDSHAKE_TIMEOUT"));
    assert!(e.to_string().contains("no session.updated within 10 s"), "{e}");
    assert_eq!(out.last(), Some(&Output::Close));
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn a_refused_configuration_fails_with_its_code() {
    let t0 = Instant::now();
    let mut s = OpenAiSession::new(t0, AudioFormat::Ulaw8k, &config(), None).expect("G.711");
    drain(&mut s);
    text(
        &mut s,
        t0,
        json!({"type": "error", "error": {"type": "invalid_request_error", "code": "invalid_value",
        "message": "Invalid value: 'nova'.", "param": "session.audio.output.voice", "event_id": "voice-ua-session-update"}}),
    );
    let e = failure(&drain(&mut s));
    assert_eq!(e.code(), Some("INVALID_VALUE"));
    assert_eq!(
        e.to_string(),
        "agent openai failed: OpenAI refused the session configuration: invalid_value: Invalid value: 'nova'. (session.audio.output.voice)"
    );
}

#[test]
fn recoverable_errors_are_survived_and_fatal_ones_end_the_call() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    text(
        &mut s,
        t0,
        json!({"type": "error", "error": {"type": "invalid_request_error", "code": "invalid_value",
        "message": "audio_end_ms is longer than the audio", "param": "audio_end_ms"}}),
    );
    text(
        &mut s,
        t0,
        json!({"type": "error", "error": {"type": "invalid_request_error",
        "code": "conversation_already_has_active_response", "message": "busy"}}),
    );
    assert!(drain(&mut s).is_empty());
    assert_eq!((s.state(), s.counts().errors), (State::Streaming, 2));
    for (error, code) in [
        (
            json!({"type": "invalid_request_error", "code": "session_expired", "message": "Your session hit the maximum duration of 60 minutes."}),
            "SESSION_EXPIRED",
        ),
        (json!({"type": "server_error", "message": "The server had an error"}), "SERVER_ERROR"),
        (
            json!({"type": "insufficient_quota", "code": "insufficient_quota", "message": "You exceeded your current quota"}),
            "INSUFFICIENT_QUOTA",
        ),
    ] {
        let mut s = streaming(t0);
        text(&mut s, t0, json!({"type": "error", "error": error}));
        let e = failure(&drain(&mut s));
        assert_eq!((e.kind(), e.code()), ("provider", Some(code)), "{e}");
        assert!(!e.to_string().contains('\n'));
    }
}

#[test]
fn a_close_mid_call_ends_the_session_with_a_typed_code() {
    let t0 = Instant::now();
    let cases = [
        (
            Closed::Frame { code: 1001, reason: "Your session hit the maximum duration of 60 minutes.".into() },
            "SESSION_EXPIRED",
            "agent openai failed: OpenAI ended the session at its 60-minute maximum (close 1001: Your session hit the maximum duration of 60 minutes.) before voice-ua renewed it",
        ),
        (
            Closed::Frame { code: 1011, reason: "internal error".into() },
            "WS_CLOSE_1011",
            "agent openai failed: OpenAI closed the session mid-call (close code 1011 \"internal error\")",
        ),
        (
            Closed::Frame { code: 4000, reason: "beta_api_shape_disabled".into() },
            "BETA_API_SHAPE_DISABLED",
            "agent openai failed: OpenAI closed the session mid-call (close code 4000 \"beta_api_shape_disabled\")",
        ),
        (Closed::Dropped, "CONNECTION_LOST", "agent openai failed: OpenAI lost the session mid-call (connection dropped)"),
    ];
    for (closed, code, line) in cases {
        let mut s = streaming(t0);
        s.handle_closed(t0, closed);
        let e = failure(&drain(&mut s));
        assert_eq!((e.code(), e.to_string().as_str()), (Some(code), line));
    }
    let mut s = OpenAiSession::new(t0, AudioFormat::Ulaw8k, &config(), None).expect("G.711");
    s.handle_closed(t0, Closed::Frame { code: 1008, reason: "policy".into() });
    let e = failure(&drain(&mut s));
    assert!(e.to_string().contains("closed the connection during setup"), "{e}");
    // The call's end closes politely and ends once.
    let mut s = streaming(t0);
    s.call_ended();
    s.handle_closed(t0, Closed::Dropped);
    assert_eq!(drain(&mut s), [Output::Event(AgentEvent::Ended(SessionEnd::CallEnded)), Output::Close]);
}

#[test]
fn ga_events_with_nulls_and_fields_voice_ua_does_not_model_are_read() {
    let t0 = Instant::now();
    let mut s = OpenAiSession::new(t0, AudioFormat::Ulaw8k, &config(), None).expect("G.711");
    drain(&mut s);
    text(
        &mut s,
        t0,
        json!({"type": "session.created", "event_id": "event_1", "session": {
        "type": "realtime", "object": "realtime.session", "id": "sess_GA", "model": "gpt-realtime-2025-08-28",
        "output_modalities": ["audio"], "instructions": "", "tools": [], "tool_choice": "auto",
        "max_output_tokens": "inf", "tracing": null, "truncation": "auto", "prompt": null, "expires_at": 0,
        "include": null, "audio": {
            "input": {"format": {"type": "audio/pcm", "rate": 24000}, "transcription": null, "noise_reduction": null,
                "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                    "silence_duration_ms": 200, "idle_timeout_ms": null, "create_response": true, "interrupt_response": true}},
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin", "speed": 1.0}}}}),
    );
    text(
        &mut s,
        t0,
        json!({"type": "session.updated", "event_id": "event_2", "session": {"type": "realtime", "id": "sess_GA",
        "audio": {"input": {"format": {"type": "audio/pcmu"}, "new_knob": {"x": 1}}}}}),
    );
    assert_eq!(s.state(), State::Streaming);
    assert_eq!(s.session_id(), Some("sess_GA"));
    text(
        &mut s,
        t0,
        json!({"type": "response.created", "event_id": "e", "response": {"object": "realtime.response",
        "id": "resp_1", "status": "in_progress", "status_details": null, "output": [], "conversation_id": "conv_1",
        "output_modalities": ["audio"], "max_output_tokens": "inf", "audio": {"output": {"format": {"type": "audio/pcmu"}, "voice": "marin"}},
        "usage": null, "metadata": null}}),
    );
    text(
        &mut s,
        t0,
        json!({"type": "response.done", "event_id": "e", "response": {"object": "realtime.response",
        "id": "resp_1", "status": "completed", "status_details": null, "output": null, "metadata": null,
        "usage": {"total_tokens": 10, "input_tokens": 6, "output_tokens": 4,
            "input_token_details": {"text_tokens": 6, "audio_tokens": 0, "image_tokens": 0, "cached_tokens": null,
                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}},
            "output_token_details": {"text_tokens": 4, "audio_tokens": null}}}}),
    );
    text(
        &mut s,
        t0,
        json!({"type": "conversation.item.input_audio_transcription.completed", "event_id": "e",
        "item_id": "item_1", "content_index": 0, "transcript": "Hi", "logprobs": null,
        "usage": {"type": "duration", "seconds": 1.2}}),
    );
    let out = drain(&mut s);
    assert_eq!(s.counts().malformed, 0, "{out:?}");
    let usage = events(&out).iter().find_map(|e| if let AgentEvent::Usage(u) = e { Some(*u) } else { None });
    assert_eq!(
        usage.map(|u| (u.input_text_tokens, u.output_text_tokens, u.cost_micro_usd)),
        Some((6, 4, 24 + 64))
    );
    assert!(events(&out).iter().any(|e| matches!(e, AgentEvent::Transcript { role: Role::User, .. })));
}

/// The caller interrupts one reply, then the next one: each barge-in flushes and
/// truncates its own reply at what was heard of it (the heard count the call reports
/// runs over the whole session).
#[test]
fn a_second_reply_is_interrupted_like_the_first() {
    let t0 = Instant::now();
    let mut s = streaming(t0);
    response_created(&mut s, t0, "r1");
    for _ in 0..25 {
        text(&mut s, t0, delta("r1", "a", &[0x55; 1600]));
    }
    drain(&mut s);
    // 1 s into the 5 s reply: the caller speaks; the call had played 1 s.
    let t1 = t0 + Duration::from_millis(1000);
    speech_started(&mut s, t1);
    assert_eq!(events(&drain(&mut s)), [AgentEvent::FlushPlayback]);
    s.handle_playback_flushed(t1, 1000 * 8);
    let first = sent(&drain(&mut s));
    assert_eq!(
        first,
        [
            json!({"type": "conversation.item.truncate", "item_id": "a", "content_index": 0, "audio_end_ms": 1000})
        ]
    );
    text(&mut s, t1, json!({"type": "response.done", "response": {"id": "r1", "status": "cancelled"}}));
    drain(&mut s);
    // The next reply, 600 ms later, 5 s again; the caller cuts in 1 s into it.
    let t2 = t1 + Duration::from_millis(600);
    response_created(&mut s, t2, "r2");
    for _ in 0..25 {
        text(&mut s, t2, delta("r2", "b", &[0x66; 1600]));
    }
    drain(&mut s);
    let t3 = t2 + Duration::from_millis(1000);
    speech_started(&mut s, t3);
    assert_eq!(events(&drain(&mut s)), [AgentEvent::FlushPlayback], "the second reply is flushed too");
    s.handle_playback_flushed(t3, 2000 * 8);
    assert_eq!(
        sent(&drain(&mut s)),
        [
            json!({"type": "conversation.item.truncate", "item_id": "b", "content_index": 0, "audio_end_ms": 1000})
        ]
    );
}

/// 20 ms of a 1 kHz tone as little-endian PCM at `rate`, starting at frame `k`.
fn pcm_tone(rate: u32, k: usize) -> Vec<u8> {
    let n = rate as usize / 50;
    (0..n)
        .flat_map(|i| {
            let t = (k * n + i) as f64 / f64::from(rate);
            (((2.0 * std::f64::consts::PI * 1000.0 * t).sin() * 8000.0) as i16).to_le_bytes()
        })
        .collect()
}

fn rms(bytes: &[u8]) -> f64 {
    let s: Vec<f64> = bytes.chunks_exact(2).map(|b| f64::from(i16::from_le_bytes([b[0], b[1]]))).collect();
    (s.iter().map(|x| x * x).sum::<f64>() / s.len().max(1) as f64).sqrt()
}

#[test]
fn a_16_khz_call_is_resampled_to_and_from_openais_24_khz_pcm() {
    let t0 = Instant::now();
    let format = AudioFormat::Linear16 { rate_hz: 16_000 };
    let mut s = OpenAiSession::new(t0, format, &config(), None).expect("linear16 16 kHz is bridged");
    let out = sent(&drain(&mut s));
    let audio = &out[0]["session"]["audio"];
    assert_eq!(audio["input"]["format"], json!({"type": "audio/pcm", "rate": 24000}));
    assert_eq!(audio["output"]["format"], json!({"type": "audio/pcm", "rate": 24000}));
    text(&mut s, t0, json!({"type": "session.created", "session": {"type": "realtime", "id": "sess_1"}}));
    text(&mut s, t0, json!({"type": "session.updated", "session": {"type": "realtime"}}));
    drain(&mut s);
    // Caller: 640 bytes of 16 kHz per frame, 960 bytes of 24 kHz per frame to OpenAI.
    let mut up = Vec::new();
    for k in 0..10 {
        s.handle_call_audio(t0, &AudioFrame::new(&pcm_tone(16_000, k)).expect("640 bytes"));
        for o in drain(&mut s) {
            if let Output::SendAudio(b) = o {
                up.extend_from_slice(b.as_bytes());
            }
        }
    }
    assert_eq!(up.len(), 10 * 960);
    assert!((rms(&up[960..]) / (8000.0 / 2f64.sqrt()) - 1.0).abs() < 0.1, "rms {:.0}", rms(&up[960..]));
    // Agent: 24 kHz deltas come back as 640-byte frames at 16 kHz.
    response_created(&mut s, t0, "r1");
    let mut down = Vec::new();
    for k in 0..10 {
        text(&mut s, t0, delta("r1", "item_1", &pcm_tone(24_000, k)));
        down.extend(audio_bytes(&drain(&mut s)));
    }
    assert_eq!(down.len(), 10 * 640);
    assert!((rms(&down[640..]) / (8000.0 / 2f64.sqrt()) - 1.0).abs() < 0.1, "rms {:.0}", rms(&down[640..]));
    // A barge-in after 100 ms heard (1600 samples at 16 kHz) truncates the item at 100 ms.
    speech_started(&mut s, t0 + Duration::from_millis(50));
    drain(&mut s);
    s.handle_playback_flushed(t0 + Duration::from_millis(60), 1600);
    let out = sent(&drain(&mut s));
    assert!(
        out.contains(&json!({"type": "conversation.item.truncate", "item_id": "item_1", "content_index": 0, "audio_end_ms": 100})),
        "{out:?}"
    );
}
