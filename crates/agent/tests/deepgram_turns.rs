//! Deepgram turn features: fillers while a slow function runs (a queued
//! `InjectAgentMessage` or the hold tone, in virtual time and against the fake), the
//! keypad (typed digits as `InjectUserMessage`, the end-of-turn key as `ForceEndTurn`
//! with Flux only), the Flux listen settings and the privacy default (`mip_opt_out`).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use voice_ua_agent::deepgram::session::{DeepgramSession, Output};
use voice_ua_agent::deepgram::Flux;
use voice_ua_agent::tools::Filler;
use voice_ua_agent::{
    AgentEvent, AgentProvider, AudioFormat, DeepgramConfig, DeepgramProvider, Digit, FunctionSpec,
    HoldReason, ToolKind,
};
use voice_ua_fake_deepgram::{FakeConfig, FakeDeepgram, Step};

mod common;
use common::http::slow_server;
use common::session::{drive, finish, LIMIT};

const KEY: &str = "test-key-0123456789";
const MS: Duration = Duration::from_millis(1);

fn http_function(name: &str, url: &str, filler: Filler) -> FunctionSpec {
    FunctionSpec {
        name: name.into(),
        description: "slow or fast".into(),
        parameters: json!({"type":"object","properties":{}}),
        kind: ToolKind::Http { url: url.into(), headers: vec![], timeout: Duration::from_secs(5) },
        filler,
    }
}

fn streaming(t0: Instant, config: &DeepgramConfig) -> DeepgramSession {
    let mut s = DeepgramSession::new(t0, AudioFormat::Ulaw8k, config.settings_message(AudioFormat::Ulaw8k))
        .with_functions(&config.settings.functions)
        .with_end_of_turn_key(config.settings.end_of_turn_key);
    s.handle_text(t0, r#"{"type":"Welcome","request_id":"r1"}"#);
    s.handle_text(t0, r#"{"type":"SettingsApplied"}"#);
    drain(&mut s);
    s
}

fn drain(s: &mut DeepgramSession) -> Vec<Output> {
    std::iter::from_fn(|| s.poll_output()).collect()
}

/// The JSON messages sent, parsed.
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

fn call(id: &str, name: &str) -> String {
    json!({"type":"FunctionCallRequest","functions":[{"id":id,"name":name,"arguments":"{}","client_side":true}]})
        .to_string()
}

/// Step virtual time in 20 ms ticks up to `until`, handling timeouts as the shell does.
fn run_until(s: &mut DeepgramSession, now: &mut Instant, until: Instant) -> Vec<Output> {
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

#[test]
fn a_slow_tool_gets_the_hold_tone_at_700_ms_until_its_result_is_sent() {
    let t0 = Instant::now();
    let mut config = DeepgramConfig::new("k");
    config.settings.functions.push(http_function("lookup", "http://127.0.0.1:9/x", Filler::default()));
    let mut s = streaming(t0, &config);
    let mut now = t0;
    s.handle_text(now, &call("f1", "lookup"));
    let out = drain(&mut s);
    assert!(matches!(out.as_slice(), [Output::RunTool(_)]), "{out:?}");
    assert_eq!(s.poll_timeout(), Some(t0 + 700 * MS), "the threshold is the next timer");

    let out = run_until(&mut s, &mut now, t0 + 680 * MS);
    assert!(holds(&out).is_empty(), "nothing before the threshold: {out:?}");
    let out = run_until(&mut s, &mut now, t0 + 700 * MS);
    assert_eq!(holds(&out), [true], "the hold tone at +700 ms");
    assert!(sent(&out).is_empty(), "no phrase configured: nothing to Deepgram");
    assert!(s.tool_hold());

    let out = run_until(&mut s, &mut now, t0 + 3000 * MS);
    assert!(holds(&out).is_empty(), "one hold, not repeated");
    s.handle_tool_result(now, "f1".into(), "lookup".into(), "ok".into());
    let out = drain(&mut s);
    let response = out.iter().position(|o| matches!(o, Output::SendText(_))).expect("the result");
    let off = out
        .iter()
        .position(|o| matches!(o, Output::Event(AgentEvent::Hold { on: false, .. })))
        .expect("the hold ends");
    assert!(response < off, "the result goes out, then the hold ends: {out:?}");
    assert!(!s.tool_hold());
}

#[test]
fn a_fast_tool_gets_nothing_and_two_slow_ones_share_one_hold() {
    let t0 = Instant::now();
    let mut config = DeepgramConfig::new("k");
    config.settings.functions.push(http_function("a", "http://127.0.0.1:9/a", Filler::default()));
    config.settings.functions.push(http_function(
        "b",
        "http://127.0.0.1:9/b",
        Filler::Tone { after: 300 * MS },
    ));
    config.settings.functions.push(http_function("quiet", "http://127.0.0.1:9/q", Filler::Off));
    let mut s = streaming(t0, &config);
    let mut now = t0;
    s.handle_text(now, &call("f1", "a"));
    let out = run_until(&mut s, &mut now, t0 + 400 * MS);
    s.handle_tool_result(now, "f1".into(), "a".into(), "ok".into());
    let out2 = run_until(&mut s, &mut now, t0 + 2000 * MS);
    assert!(holds(&out).is_empty() && holds(&out2).is_empty(), "fast: no hold");

    // Off: never a hold.
    s.handle_text(now, &call("q1", "quiet"));
    let start = now;
    let out = run_until(&mut s, &mut now, start + 3000 * MS);
    assert!(holds(&out).is_empty(), "filler = false: no hold");
    s.handle_tool_result(now, "q1".into(), "quiet".into(), "ok".into());
    drain(&mut s);

    // Two at once: b's threshold is 300 ms, a's 700 ms; one hold until both are in.
    let start = now;
    s.handle_text(now, &call("f2", "a"));
    s.handle_text(now, &call("f3", "b"));
    let out = run_until(&mut s, &mut now, start + 1000 * MS);
    assert_eq!(holds(&out), [true]);
    s.handle_tool_result(now, "f3".into(), "b".into(), "ok".into());
    assert!(holds(&drain(&mut s)).is_empty(), "a still runs: the hold goes on");
    s.handle_tool_result(now, "f2".into(), "a".into(), "ok".into());
    assert_eq!(holds(&drain(&mut s)), [false]);
}

#[test]
fn a_phrase_is_queued_once_then_the_tone_and_a_refusal_falls_back_to_the_tone() {
    let t0 = Instant::now();
    let mut config = DeepgramConfig::new("k");
    let phrase = "One moment, I'm opening the gate.";
    config.settings.functions.push(http_function(
        "open_gate",
        "http://127.0.0.1:9/g",
        Filler::Phrase { after: 700 * MS, text: phrase.into() },
    ));
    let mut s = streaming(t0, &config);
    let mut now = t0;
    s.handle_text(now, &call("g1", "open_gate"));
    drain(&mut s);
    let out = run_until(&mut s, &mut now, t0 + 700 * MS);
    assert_eq!(
        sent(&out),
        [json!({"type":"InjectAgentMessage","message":phrase,"behavior":"queue"})],
        "the phrase at the threshold, queued behind the current turn"
    );
    assert!(holds(&out).is_empty(), "no tone over the phrase");
    let out = run_until(&mut s, &mut now, t0 + 3100 * MS);
    assert!(holds(&out).is_empty(), "the phrase plays first");
    let out = run_until(&mut s, &mut now, t0 + 3300 * MS);
    assert_eq!(holds(&out), [true], "then the tone while the wait goes on");
    assert!(sent(&out).is_empty(), "the phrase is said once");
    s.handle_tool_result(now, "g1".into(), "open_gate".into(), "ok".into());
    assert_eq!(holds(&drain(&mut s)), [false]);

    // Refused: the tone at once.
    let start = now;
    s.handle_text(now, &call("g2", "open_gate"));
    drain(&mut s);
    let out = run_until(&mut s, &mut now, start + 700 * MS);
    assert_eq!(sent(&out).len(), 1);
    s.handle_text(now, &json!({"type":"InjectionRefused","message":phrase}).to_string());
    assert_eq!(holds(&drain(&mut s)), [true], "refused: the tone instead");
    s.call_ended();
    let out = drain(&mut s);
    assert_eq!(holds(&out), [false], "the session's end ends the hold");
    assert!(matches!(out.last(), Some(Output::Close)));
}

#[test]
fn transfer_and_hangup_builtins_never_get_a_filler() {
    let t0 = Instant::now();
    let mut config = DeepgramConfig::new("k");
    for (name, builtin) in [
        ("to_guard", voice_ua_agent::Builtin::Transfer { target: "9001".into() }),
        ("bye", voice_ua_agent::Builtin::Hangup),
    ] {
        config.settings.functions.push(FunctionSpec {
            name: name.into(),
            description: "built-in".into(),
            parameters: json!({"type":"object","properties":{}}),
            kind: ToolKind::Builtin(builtin),
            filler: Filler::Phrase { after: 10 * MS, text: "never".into() },
        });
    }
    let mut s = streaming(t0, &config);
    let mut now = t0;
    s.handle_text(now, &call("t1", "to_guard"));
    s.handle_text(now, &call("h1", "bye"));
    let out = run_until(&mut s, &mut now, t0 + 5000 * MS);
    assert!(holds(&out).is_empty() && sent(&out).iter().all(|m| m["type"] == "KeepAlive"), "{out:?}");
}

#[test]
fn typed_digits_go_in_as_text_and_the_end_key_forces_the_end_of_a_flux_turn_only() {
    let t0 = Instant::now();
    let mut config = DeepgramConfig::new("k");
    config.settings.end_of_turn_key = Some('#');
    let digit = |c| Digit::new(c).expect("a DTMF key");

    // Nova: digits then `#` → the text at once; `#` alone sends nothing.
    let mut s = streaming(t0, &config);
    assert!(!s.flux());
    for c in ['4', '7', '1', '1', '#'] {
        s.handle_digit(t0, digit(c));
    }
    assert_eq!(
        sent(&drain(&mut s)),
        [json!({"type":"InjectUserMessage","content":"The caller typed 4711 on the keypad."})]
    );
    s.handle_digit(t0, digit('#'));
    assert!(sent(&drain(&mut s)).is_empty(), "no ForceEndTurn without Flux");

    // Digits without the key are sent after 2 s of no key.
    let mut now = t0;
    s.handle_digit(now, digit('1'));
    now += 1500 * MS;
    s.handle_digit(now, digit('*'));
    let pressed = now;
    let out = run_until(&mut s, &mut now, pressed + 1900 * MS);
    assert!(sent(&out).iter().all(|m| m["type"] != "InjectUserMessage"), "still typing");
    let out = run_until(&mut s, &mut now, pressed + 2100 * MS);
    let typed: Vec<Value> = sent(&out).into_iter().filter(|m| m["type"] == "InjectUserMessage").collect();
    assert_eq!(typed, [json!({"type":"InjectUserMessage","content":"The caller typed 1* on the keypad."})]);

    // Flux: `#` alone ends the caller's turn.
    config.settings.flux = Some(Flux::default());
    let mut s = streaming(t0, &config);
    assert!(s.flux());
    s.handle_digit(t0, digit('#'));
    assert_eq!(sent(&drain(&mut s)), [json!({"type":"ForceEndTurn"})]);

    // No end key: `#` is a digit like the others.
    config.settings.end_of_turn_key = None;
    let mut s = streaming(t0, &config);
    s.handle_digit(t0, digit('#'));
    assert!(sent(&drain(&mut s)).is_empty());
    let mut now = t0;
    let out = run_until(&mut s, &mut now, t0 + 2100 * MS);
    assert!(sent(&out).iter().any(|m| m["content"] == "The caller typed # on the keypad."), "{out:?}");
}

#[test]
fn flux_settings_serialise_without_smart_format_and_mip_opt_out_is_the_default() {
    let mut config = DeepgramConfig::new("k");
    let settings = |c: &DeepgramConfig| -> Value {
        let message = voice_ua_agent::deepgram::messages::ClientMessage::Settings(Box::new(
            c.settings_message(AudioFormat::Ulaw8k),
        ));
        serde_json::from_str(&message.to_json()).expect("json")
    };
    let v = settings(&config);
    assert_eq!(v["mip_opt_out"], true, "opted out of the Model Improvement Program by default");
    assert_eq!(v["agent"]["listen"]["provider"], json!({"type":"deepgram","model":"nova-3","language":"en"}));
    config.settings.mip_opt_out = false;
    assert!(settings(&config).get("mip_opt_out").is_none(), "false is Deepgram's default: not sent");

    config.settings.flux = Some(Flux {
        model: "flux-general-en".into(),
        eot_threshold: Some(0.8),
        eager_eot_threshold: Some(0.5),
        eot_timeout_ms: Some(3000),
    });
    config.settings.keyterms = vec!["Acme".into(), "gate".into()];
    let v = settings(&config);
    assert_eq!(
        v["agent"]["listen"]["provider"],
        json!({"type":"deepgram","version":"v2","model":"flux-general-en","eot_threshold":0.8,
               "eager_eot_threshold":0.5,"eot_timeout_ms":3000,"keyterms":["Acme","gate"]})
    );
    let listen = v["agent"]["listen"]["provider"].as_object().expect("object");
    assert!(!listen.contains_key("smart_format") && !listen.contains_key("language"));
}

// ---- against the fake

fn config_for(fake: &FakeDeepgram) -> DeepgramConfig {
    let mut config = DeepgramConfig::new(KEY);
    config.url = fake.url();
    config
}

fn has_hold(events: &[AgentEvent], on: bool) -> bool {
    events.contains(&AgentEvent::Hold { reason: HoldReason::Tool, on })
}

#[tokio::test]
async fn the_fake_gets_the_queued_phrase_only_for_the_slow_function() {
    let (fast_url, _fast) = slow_server(Duration::ZERO, r#"{"ok":true}"#).await;
    let (slow_url, _slow) = slow_server(Duration::from_millis(900), r#"{"ok":true}"#).await;
    let script = vec![
        Step::call("fc_fast", "fast", "{}"),
        Step::call("fc_slow", "slow", "{}"),
        Step::speak("Done", 100, true),
    ];
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).script(script)).await.expect("fake");
    let mut config = config_for(&fake);
    let filler =
        |after: u64| Filler::Phrase { after: Duration::from_millis(after), text: "One moment.".into() };
    config.settings.functions.push(http_function("fast", &fast_url, filler(300)));
    config.settings.functions.push(http_function("slow", &slow_url, filler(300)));
    let provider = DeepgramProvider::new(config).expect("provider");
    let mut session =
        provider.open(common::session::facts("dg-filler", AudioFormat::Ulaw8k)).await.expect("open");
    let events = drive(&mut session, AudioFormat::Ulaw8k, |ev| common::session::audio_bytes(ev) >= 800).await;
    finish(&mut session).await;
    let r = &fake.wait_records(1, LIMIT).await[0];
    assert!(r.violations.is_empty() && r.errors_sent.is_empty(), "{r:?}");
    assert_eq!(r.function_responses.len(), 2, "{r:?}");
    assert_eq!(r.injected_agent.len(), 1, "one phrase, for the slow function only: {r:?}");
    assert_eq!(
        (r.injected_agent[0].0.as_str(), r.injected_agent[0].1.as_deref()),
        ("One moment.", Some("queue"))
    );
    // The phrase went out before the slow function's response.
    let texts: Vec<Value> = r.texts.iter().map(|t| serde_json::from_str(t).expect("json")).collect();
    let inject = texts.iter().position(|t| t["type"] == "InjectAgentMessage").expect("inject");
    let slow =
        texts.iter().position(|t| t["type"] == "FunctionCallResponse" && t["id"] == "fc_slow").expect("slow");
    assert!(inject < slow);
    assert!(!has_hold(&events, true), "the phrase was spoken: the tone did not start within its 2.5 s");
}

#[tokio::test]
async fn a_refused_phrase_and_a_tone_function_give_the_call_a_hold() {
    let (slow_url, _slow) = slow_server(Duration::from_millis(800), r#"{"ok":true}"#).await;
    let script = vec![Step::call("fc_1", "slow", "{}"), Step::speak("Done", 100, true)];
    let fake =
        FakeDeepgram::start(FakeConfig::new(KEY).script(script).refuse_injections(true)).await.expect("fake");
    let mut config = config_for(&fake);
    let filler = Filler::Phrase { after: Duration::from_millis(200), text: "One moment.".into() };
    config.settings.functions.push(http_function("slow", &slow_url, filler));
    let provider = DeepgramProvider::new(config).expect("provider");
    let mut session =
        provider.open(common::session::facts("dg-refused", AudioFormat::Ulaw8k)).await.expect("open");
    let events = drive(&mut session, AudioFormat::Ulaw8k, |ev| common::session::audio_bytes(ev) >= 800).await;
    finish(&mut session).await;
    let on = events.iter().position(|e| *e == AgentEvent::Hold { reason: HoldReason::Tool, on: true });
    let off = events.iter().position(|e| *e == AgentEvent::Hold { reason: HoldReason::Tool, on: false });
    assert!(
        matches!((on, off), (Some(a), Some(b)) if a < b),
        "refused phrase → the tone until the result: {events:?}"
    );
    let r = &fake.wait_records(1, LIMIT).await[0];
    assert_eq!(r.injected_agent.len(), 1);
}

#[tokio::test]
async fn the_fake_records_typed_digits_and_answers_force_end_turn_by_listener() {
    for flux in [false, true] {
        let fake =
            FakeDeepgram::start(FakeConfig::new(KEY).script(vec![Step::Pause(Duration::from_secs(5))]))
                .await
                .expect("fake");
        let mut config = config_for(&fake);
        config.settings.end_of_turn_key = Some('#');
        config.settings.flux = flux.then(Flux::default);
        let provider = DeepgramProvider::new(config).expect("provider");
        let mut session =
            provider.open(common::session::facts("dg-keys", AudioFormat::Ulaw8k)).await.expect("open");
        // Let the session stream, then type 42# and a lone #.
        drive(&mut session, AudioFormat::Ulaw8k, {
            let mut n = 0;
            move |_| {
                n += 1;
                n > 30
            }
        })
        .await;
        for c in ['4', '2', '#', '#'] {
            session.send_digit(Digit::new(c).expect("key")).expect("sent");
        }
        drive(&mut session, AudioFormat::Ulaw8k, {
            let mut n = 0;
            move |_| {
                n += 1;
                n > 20
            }
        })
        .await;
        finish(&mut session).await;
        let r = &fake.wait_records(1, LIMIT).await[0];
        assert!(r.errors_sent.is_empty() && r.violations.is_empty(), "{r:?}");
        assert_eq!(r.injected_user, ["The caller typed 42 on the keypad."]);
        let settings = r.settings.as_ref().expect("settings");
        assert_eq!(settings.agent.listen.provider.is_flux(), flux);
        assert!(settings.mip_opt_out, "opted out by default");
        if flux {
            assert_eq!((r.force_end_turns, r.warnings_sent.len()), (1, 0), "{r:?}");
        } else {
            assert_eq!(r.force_end_turns, 0, "not sent to Nova: {r:?}");
        }
    }
}

// ---- the fake's own rules

type RawWs = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw_client(fake: &FakeDeepgram) -> RawWs {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = fake.url().into_client_request().expect("request");
    request.headers_mut().insert("Authorization", format!("Token {KEY}").parse().expect("header"));
    tokio_tungstenite::connect_async(request).await.expect("connect").0
}

/// The next text frame, parsed.
async fn next_json(ws: &mut RawWs) -> Value {
    use futures_util::StreamExt;
    loop {
        match tokio::time::timeout(LIMIT, ws.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                return serde_json::from_str(t.as_str()).expect("json")
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("no text frame: {other:?}"),
        }
    }
}

async fn send(ws: &mut RawWs, text: String) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(text)).await.expect("send");
}

#[tokio::test]
async fn the_fake_warns_force_end_turn_to_nova_and_refuses_smart_format_with_flux() {
    let fake = FakeDeepgram::start(FakeConfig::new(KEY)).await.expect("fake");
    let settings = |c: &DeepgramConfig| {
        voice_ua_agent::deepgram::messages::ClientMessage::Settings(Box::new(
            c.settings_message(AudioFormat::Ulaw8k),
        ))
        .to_json()
    };
    // Nova: ForceEndTurn is answered with the warning.
    let mut ws = raw_client(&fake).await;
    assert_eq!(next_json(&mut ws).await["type"], "Welcome");
    send(&mut ws, settings(&DeepgramConfig::new(KEY))).await;
    assert_eq!(next_json(&mut ws).await["type"], "SettingsApplied");
    send(&mut ws, json!({"type":"ForceEndTurn"}).to_string()).await;
    let warning = next_json(&mut ws).await;
    assert_eq!(
        (warning["type"].as_str(), warning["code"].as_str()),
        (Some("Warning"), Some("FORCE_END_TURN_UNSUPPORTED"))
    );
    drop(ws);

    // Flux with smart_format: INVALID_SETTINGS.
    let mut config = DeepgramConfig::new(KEY);
    config.settings.flux = Some(Flux::default());
    let mut v: Value = serde_json::from_str(&settings(&config)).expect("json");
    v["agent"]["listen"]["provider"]["smart_format"] = json!(true);
    let mut ws = raw_client(&fake).await;
    next_json(&mut ws).await;
    send(&mut ws, v.to_string()).await;
    let error = next_json(&mut ws).await;
    assert_eq!((error["type"].as_str(), error["code"].as_str()), (Some("Error"), Some("INVALID_SETTINGS")));
}
