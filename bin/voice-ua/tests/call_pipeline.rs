//! The binary with `provider = "pipeline"` against the fake OpenAI-compatible STT, chat
//! and TTS servers, end to end over real sockets: the greeting and a turn reach the
//! caller, an HTTP function runs, the record holds the transcript, the tool call and the
//! turn with its stages; a stage that is down plays the fallback prompt and REFERs the
//! caller to the human.
//!
//! What the turn machine decides is proven in virtual time by voice-ua-agent's tests;
//! these check the wiring through the binary's config and call task.

mod common;

use common::agent::{fallback_and_refer, http_tool, talk_and_keep_the_record};
use std::time::Duration;
use voice_ua_fake_pipeline::{ChatScript, Failure, FakePipeline, Settings, Stage, ToolRule};
use voice_ua_records::CallOutcome;

const ENV: &[(&str, &str)] = &[];

/// `[agent]` with the pipeline's three stages on the fake, greeting "Hello, main gate.".
fn agent_config(fake: &FakePipeline, extra: &str) -> String {
    let url = fake.base_url();
    format!(
        "[agent]\nprovider = \"pipeline\"\ngreeting = \"Hello, main gate.\"\n{extra}\n\
         [agent.pipeline.stt]\nurl = \"{url}\"\nmodel = \"whisper-1\"\nlanguage = \"en\"\n\
         [agent.pipeline.llm]\nurl = \"{url}\"\nmodel = \"llama3.2\"\n\
         [agent.pipeline.tts]\nurl = \"{url}\"\nmodel = \"kokoro\"\nvoice = \"af_heart\"\nsample_rate = 24000\n"
    )
}

/// Packets whose payload is not μ-law silence (0xFF/0x7F).
fn audible(got: &[common::Received]) -> usize {
    got.iter().filter(|(_, _, _, p)| p.iter().any(|&b| b != 0xFF && b != 0x7F)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_runs_a_tool_and_the_record_keeps_the_turn_and_its_stages() {
    let (http_port, http_rx) = http_tool();
    let fake = FakePipeline::start(Settings::new().transcripts(&["please open the main gate"]).script(
        ChatScript::new().rule(
            ToolRule::new("gate", "open_gate", r#"{"gate":"main"}"#).then_reply("The gate is open. Welcome."),
        ),
    ))
    .await
    .expect("fake pipeline");
    let functions = format!(
        "[[agent.functions]]\nname = \"open_gate\"\ndescription = \"Open a gate\"\nkind = \"http\"\n\
         url = \"http://127.0.0.1:{http_port}/gates/open\"\ntimeout_ms = 2000\n\
         parameters = {{ type = \"object\", properties = {{ gate = {{ type = \"string\" }} }} }}\n"
    );
    let config = agent_config(&fake, &functions);
    // 2 s of quiet (the greeting plays), 1 s of speech, then 5 s of quiet for the answer.
    let loud = |i: u32| (100..150).contains(&i);
    let (got, (record, _), status, logs) =
        talk_and_keep_the_record("pipe-turn", config, ENV, 400, loud).await;
    assert!(status.success(), "{status:?}");
    let (head, body) = http_rx.recv_timeout(Duration::from_secs(1)).expect("the HTTP function was called");
    assert!(head.starts_with("POST /gates/open HTTP/1.1"), "{head}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).ok(),
        Some(serde_json::json!({"gate": "main"}))
    );
    assert!(fake.records().refused().is_empty(), "{:?}", fake.records().refused());
    // The greeting and the answer reached the caller: several seconds of agent audio.
    assert!(audible(&got) > 100, "{} audible packets", audible(&got));
    assert!(logs.iter().any(|l| l.contains("calls are answered by the pipeline")));

    assert_eq!(record.agent.as_deref(), Some("pipeline"));
    let lines: Vec<(&str, &str)> =
        record.transcript.iter().map(|l| (l.role.as_str(), l.text.as_str())).collect();
    assert_eq!(
        lines,
        [
            ("agent", "Hello, main gate."),
            ("user", "please open the main gate"),
            ("agent", "The gate is open. Welcome.")
        ]
    );
    let tools: Vec<(&str, &str)> =
        record.tool_calls.iter().map(|t| (t.name.as_str(), t.result.as_str())).collect();
    assert_eq!(tools, [("open_gate", "ok")]);
    // The turn, with the pipeline's stages, as the call measured it.
    assert_eq!(record.turns.len(), 1, "{:?}", record.turns);
    let turn = &record.turns[0];
    assert_eq!(turn.endpointing_ms, Some(700));
    assert!(turn.transcribe_ms.is_some() && turn.think_ms.is_some() && turn.speak_ms.is_some(), "{turn:?}");
    assert!(turn.latency_ms >= 700, "the latency includes the end-of-turn silence: {turn:?}");
    assert_eq!((record.outcome, record.hung_up_by.as_str()), (CallOutcome::CallerHangup, "caller"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_that_is_down_plays_the_fallback_and_transfers_to_the_human() {
    let fake = FakePipeline::start(Settings::new().transcripts(&["hello"])).await.expect("fake pipeline");
    fake.fail_always(Stage::Tts, Some(Failure::Status(503)));
    let config = agent_config(&fake, "fallback_transfer = \"9001\"\n");
    let call = fallback_and_refer("pipe-fallback", config, ENV).await;
    call.assert_heard_and_transferred("TTS_FAILED");
    assert_eq!(call.record.agent.as_deref(), Some("pipeline"));
}
