//! The whole path on loopback with the OpenAI provider: Kamailio as registrar
//! and record-routing proxy, voice-ua registered as 9000 with
//! `agent.provider = "openai"` and bridged over wss:// to the fake OpenAI
//! Realtime server (GA shape), baresip as 1001 dialling 9000 and recording
//! what it hears. The rig and the checks are `agent_e2e`'s, shared with the
//! Deepgram tests.
//!
//! * greeting: voice-ua asks for it (`response.create`), the fake's 1.5 s
//!   tone is what baresip heard, for about 1.5 s, and nothing else.
//! * tool call: an `http` function hits the test's own HTTP server with the
//!   arguments; the fake gets the `function_call_output` under its call id,
//!   then a `response.create`.

use voice_ua_fake_openai::{FakeConfig, FakeOpenAi, Record, Step};

use crate::agent_e2e::{greeting_heard, http_tool, tool_called, Agent, FakeAgent};

const KEY: &str = "sk-interop-openai-key-0123456789";

impl FakeAgent for FakeOpenAi {
    type Record = Record;
    const PROVIDER: &'static str = "openai";
    const KEY_ENV: &'static str = "OPENAI_API_KEY";
    fn url(&self) -> String {
        FakeOpenAi::url(self)
    }
    fn server(&self) -> Option<&voice_ua_fake_server::FakeServer<Record>> {
        Some(self)
    }
}

fn openai(script: Vec<Step>) -> Agent<FakeOpenAi> {
    let rt = Agent::<FakeOpenAi>::runtime();
    let fake = rt
        .block_on(FakeOpenAi::start(FakeConfig::new(KEY).tls(true).script(script)))
        .expect("fake OpenAI starts");
    Agent::new(fake, KEY, rt)
}

/// What every OpenAI call must show: the GA shape on the wire, PCMU both ways.
fn ga_shape(r: &Record) {
    assert_eq!(r.authorization.as_deref(), Some(&*format!("Bearer {KEY}")));
    assert_eq!(r.beta_header, None, "no OpenAI-Beta header");
    assert!(r.request.starts_with("/v1/realtime?model=gpt-realtime"), "{}", r.request);
    let session = serde_json::to_value(r.session.as_ref().expect("a session.update")).expect("json");
    assert_eq!(session["type"], "realtime", "{session}");
    assert_eq!(session["audio"]["input"]["format"]["type"], "audio/pcmu", "{session}");
    assert_eq!(session["audio"]["output"]["format"]["type"], "audio/pcmu", "{session}");
    assert!(r.violations.is_empty() && r.errors_sent.is_empty(), "{r:?}");
    assert!(r.script_done, "{r:?}");
}

#[test]
fn openai_greeting_tone_reaches_the_caller_through_the_pbx() {
    let script = vec![Step::AwaitResponseCreate, Step::speak("Hello", 1500)];
    let Some((r, rig)) = greeting_heard("openai_greeting", openai(script)) else {
        return;
    };
    ga_shape(&r);
    let greeting = r.response_creates[0].as_ref().and_then(|p| p.instructions.clone()).unwrap_or_default();
    assert!(greeting.ends_with("Hello"), "voice-ua asked for its greeting: {greeting:?}");
    assert!(r.appends > 50, "baresip's audio reached the agent: {r:?}");
    assert!(!rig.ua_events("calls are answered by the OpenAI Realtime API").is_empty(), "{}", rig.diag());
    eprintln!("openai_greeting: {:.1} s", rig.started.elapsed().as_secs_f64());
}

#[test]
fn openai_tool_call_reaches_the_http_function() {
    let script = vec![
        Step::AwaitResponseCreate,
        Step::speak("Hello", 300),
        Step::WaitAudio { frames: 10, min_dbfs: None },
        Step::call("call_1", "open_gate", r#"{"gate":"main"}"#),
        Step::speak("The gate is open", 300),
    ];
    let Some((r, rig)) = tool_called("openai_tool", openai(script), http_tool()) else {
        return;
    };
    eprintln!("openai_tool: function outputs {:?}", r.function_outputs);
    ga_shape(&r);
    assert_eq!(r.function_outputs, [("call_1".to_owned(), r#"{"ok":true}"#.to_owned())]);
    assert_eq!(r.response_creates.len(), 2, "the greeting, then the model goes on after the output");
    let session = r.session.as_ref().expect("session");
    assert_eq!(session.tools.as_ref().map(|t| t[0].name.as_str()), Some("open_gate"));
    eprintln!("openai_tool: {:.1} s", rig.started.elapsed().as_secs_f64());
}
