//! OpenAI turn features in virtual time: a slow function gets the hold tone (OpenAI says
//! no phrase of ours, even when one is configured) until its output is sent, and digits
//! the caller types go in as a user `input_text` item with a `response.create` — at once,
//! or after the response in progress.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use voice_ua_agent::openai::session::{OpenAiSession, Output};
use voice_ua_agent::tools::Filler;
use voice_ua_agent::{AgentEvent, AudioFormat, Digit, FunctionSpec, HoldReason, OpenAiConfig, ToolKind};

const MS: Duration = Duration::from_millis(1);

fn drain(s: &mut OpenAiSession) -> Vec<Output> {
    std::iter::from_fn(|| s.poll_output()).collect()
}

fn text(s: &mut OpenAiSession, t: Instant, event: Value) {
    s.handle_text(t, &event.to_string());
}

fn streaming(t0: Instant, config: &OpenAiConfig) -> OpenAiSession {
    let mut s = OpenAiSession::new(t0, AudioFormat::Ulaw8k, config, None).expect("G.711");
    text(&mut s, t0, json!({"type": "session.updated", "session": {"type": "realtime"}}));
    drain(&mut s);
    s
}

fn sent(outputs: &[Output]) -> Vec<Value> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::SendText(t) => Some(serde_json::from_str(t).expect("json")),
            _ => None,
        })
        .collect()
}

fn holds(outputs: &[Output]) -> Vec<bool> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(AgentEvent::Hold { reason: HoldReason::Tool, on }) => Some(*on),
            _ => None,
        })
        .collect()
}

fn run_until(s: &mut OpenAiSession, now: &mut Instant, until: Instant) -> Vec<Output> {
    let mut out = Vec::new();
    while *now < until {
        *now += 20 * MS;
        if s.poll_timeout().is_some_and(|t| t <= *now) {
            s.handle_timeout(*now);
        }
        out.extend(drain(s));
    }
    out
}

fn function_call(s: &mut OpenAiSession, t: Instant, response: &str, call: &str, name: &str) {
    text(s, t, json!({"type": "response.created", "response": {"id": response, "status": "in_progress"}}));
    text(
        s,
        t,
        json!({"type": "response.function_call_arguments.done", "response_id": response,
        "item_id": format!("fc_{call}"), "output_index": 0, "call_id": call, "name": name, "arguments": "{}"}),
    );
    text(s, t, json!({"type": "response.done", "response": {"id": response, "status": "completed"}}));
}

#[test]
fn a_slow_function_gets_the_hold_tone_even_with_a_phrase_configured() {
    let t0 = Instant::now();
    let mut config = OpenAiConfig::new("k");
    config.functions.push(FunctionSpec {
        name: "open_gate".into(),
        description: "Open the gate".into(),
        parameters: json!({"type":"object","properties":{}}),
        kind: ToolKind::Http {
            url: "http://127.0.0.1:9/g".into(),
            headers: vec![],
            timeout: Duration::from_secs(5),
        },
        filler: Filler::Phrase { after: 700 * MS, text: "One moment.".into() },
    });
    let mut s = streaming(t0, &config);
    let mut now = t0;
    function_call(&mut s, now, "r1", "c1", "open_gate");
    let out = drain(&mut s);
    assert!(out.iter().any(|o| matches!(o, Output::RunTool(_))));
    let out = run_until(&mut s, &mut now, t0 + 680 * MS);
    assert!(holds(&out).is_empty());
    let out = run_until(&mut s, &mut now, t0 + 700 * MS);
    assert_eq!(holds(&out), [true], "the tone at +700 ms");
    assert!(sent(&out).is_empty(), "no out-of-band response: OpenAI gets the tone");
    s.handle_tool_result(now, "c1".into(), "open_gate".into(), "ok".into());
    let out = drain(&mut s);
    let kinds: Vec<String> =
        sent(&out).iter().map(|v| v["type"].as_str().unwrap_or("?").to_owned()).collect();
    assert_eq!(kinds, ["conversation.item.create", "response.create"]);
    assert_eq!(holds(&out), [false], "off once the output is sent");
    assert!(matches!(out.last(), Some(Output::Event(AgentEvent::Hold { on: false, .. }))));
}

#[test]
fn typed_digits_are_a_user_item_answered_after_the_response_in_progress() {
    let t0 = Instant::now();
    let mut config = OpenAiConfig::new("k");
    config.end_of_turn_key = Some('#');
    let mut s = streaming(t0, &config);
    let digit = |c| Digit::new(c).expect("key");
    for c in ['1', '2', '3', '4', '#'] {
        s.handle_digit(t0, digit(c));
    }
    let out = drain(&mut s);
    assert_eq!(
        sent(&out),
        [
            json!({"type":"conversation.item.create","item":{"type":"message","role":"user",
                   "content":[{"type":"input_text","text":"The caller typed 1234 on the keypad."}]}}),
            json!({"type":"response.create"}),
        ]
    );
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Event(AgentEvent::Transcript { text, .. }) if text.contains("1234"))));
    assert_eq!(
        s.history().last().map(|(_, t)| t.to_owned()),
        Some("The caller typed 1234 on the keypad.".into())
    );

    // While a response runs: the item now, the response.create when it is done.
    text(&mut s, t0, json!({"type": "response.created", "response": {"id": "r2", "status": "in_progress"}}));
    s.handle_digit(t0, digit('9'));
    let mut now = t0;
    let out = run_until(&mut s, &mut now, t0 + 2100 * MS);
    let kinds: Vec<String> =
        sent(&out).iter().map(|v| v["type"].as_str().unwrap_or("?").to_owned()).collect();
    assert_eq!(kinds, ["conversation.item.create"], "after 2 s of no key; r2 still runs");
    text(&mut s, now, json!({"type": "response.done", "response": {"id": "r2", "status": "completed"}}));
    assert_eq!(sent(&drain(&mut s)), [json!({"type":"response.create"})]);
    // The end key alone does nothing: OpenAI's turn detection ends turns.
    s.handle_digit(now, digit('#'));
    assert!(sent(&drain(&mut s)).is_empty());
}
