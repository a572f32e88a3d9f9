//! Deepgram message types: the reference's JSON examples parse, everything round-trips,
//! unknown types and garbage never panic.

use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};
use voice_ua_agent::deepgram::messages::{
    AudioSettings, ClientMessage, ConversationRole, Encoding, FunctionCallResponse, ParseError, ServerMessage,
};
use voice_ua_agent::deepgram::session::DeepgramSession;
use voice_ua_agent::{AgentConfig, AudioFormat, Builtin, DeepgramConfig, FunctionSpec, ToolKind};

#[test]
fn server_messages_from_the_reference_parse() {
    let cases = [
        (r#"{"type":"Welcome","request_id":"fc553ec9-5874-49ca-a47c-b670d525a4b1"}"#, "Welcome"),
        (r#"{"type":"SettingsApplied"}"#, "SettingsApplied"),
        (r#"{"type":"ConversationText","role":"user","content":"Hola"}"#, "ConversationText"),
        (r#"{"type":"UserStartedSpeaking"}"#, "UserStartedSpeaking"),
        (r#"{"type":"AgentThinking","content":"..."}"#, "AgentThinking"),
        (
            r#"{"type":"AgentStartedSpeaking","total_latency":0.9,"tts_latency":0.2,"ttt_latency":0.6}"#,
            "AgentStartedSpeaking",
        ),
        (r#"{"type":"AgentAudioDone"}"#, "AgentAudioDone"),
        (r#"{"type":"Error","code":"CLIENT_MESSAGE_TIMEOUT","description":"We waited too long"}"#, "Error"),
        (r#"{"type":"Warning","code":"PROMPT_TOO_LONG","description":"long"}"#, "Warning"),
        (r#"{"type":"PromptUpdated"}"#, "PromptUpdated"),
        (r#"{"type":"InjectionRefused","message":"busy"}"#, "InjectionRefused"),
        (r#"{"type":"History","role":"user","content":"hi"}"#, "History"),
        (r#"{"type":"FunctionCallCancelled","functions":[{"id":"a","name":"b"}]}"#, "FunctionCallCancelled"),
        (r#"{"type":"LatencyReport","stt_latency":0.1}"#, "LatencyReport"),
    ];
    for (text, ty) in cases {
        let m = ServerMessage::parse(text).unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert!(!matches!(m, ServerMessage::Unknown { .. }), "{ty}");
        // Round trip through our own serializer.
        let again = ServerMessage::parse(&m.to_json()).expect("reparse");
        assert_eq!(again, m, "{ty}");
    }
    assert_eq!(
        ServerMessage::parse(r#"{"type":"ConversationText","role":"assistant","content":"Hi"}"#),
        Ok(ServerMessage::ConversationText { role: ConversationRole::Assistant, content: "Hi".into() })
    );
}

#[test]
fn function_call_request_arguments_are_a_string() {
    let text = r#"{"type":"FunctionCallRequest","functions":[{"id":"fc_1","name":"transfer_call",
        "arguments":"{\"extension\":\"201\"}","client_side":true}]}"#;
    let Ok(ServerMessage::FunctionCallRequest { functions }) = ServerMessage::parse(text) else {
        panic!("not a FunctionCallRequest")
    };
    assert_eq!(functions[0].id, "fc_1");
    assert_eq!(functions[0].name, "transfer_call");
    let args: Value = serde_json::from_str(&functions[0].arguments).expect("args");
    assert_eq!(args["extension"], "201");
    assert!(functions[0].client_side);
}

#[test]
fn latencies_as_strings_and_early_access_error_fields() {
    let m =
        ServerMessage::parse(r#"{"type":"AgentStartedSpeaking","total_latency":"1.5","tts_latency":null}"#);
    assert_eq!(
        m,
        Ok(ServerMessage::AgentStartedSpeaking {
            total_latency: Some(1.5),
            tts_latency: None,
            ttt_latency: None
        })
    );
    let m = ServerMessage::parse(r#"{"type":"Error","message":"old style"}"#);
    assert_eq!(m, Ok(ServerMessage::Error { code: String::new(), description: "old style".into() }));
}

#[test]
fn unknown_types_are_values_and_garbage_is_an_error() {
    match ServerMessage::parse(r#"{"type":"EndOfTurn","x":1}"#) {
        Ok(ServerMessage::Unknown { type_name, raw }) => {
            assert_eq!(type_name, "EndOfTurn");
            assert_eq!(raw["x"], 1);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(ServerMessage::parse("{not json"), Err(ParseError::Json(_))));
    assert!(matches!(ServerMessage::parse(r#"{"no":"type"}"#), Err(ParseError::NoType)));
    assert!(matches!(ServerMessage::parse(r#"{"type":7}"#), Err(ParseError::NoType)));
    assert!(matches!(ServerMessage::parse(r#"[1,2]"#), Err(ParseError::NoType)));
    assert!(matches!(
        ServerMessage::parse(r#"{"type":"ConversationText","role":"user"}"#),
        Err(ParseError::Schema { .. })
    ));
    // Never panics on arbitrary input.
    for text in ["", "null", "\u{0}", "{\"type\":\"Welcome\",\"request_id\":5}", "\"x\""] {
        let _ = ServerMessage::parse(text);
    }
}

#[test]
fn client_messages_have_the_reference_shapes() {
    assert_eq!(ClientMessage::KeepAlive.to_json(), r#"{"type":"KeepAlive"}"#);
    let r = ClientMessage::FunctionCallResponse(FunctionCallResponse {
        id: Some("fc_1".into()),
        name: "get_weather".into(),
        content: "{\"temp\":21}".into(),
    });
    let v: Value = serde_json::from_str(&r.to_json()).expect("json");
    assert_eq!(
        v,
        json!({"type":"FunctionCallResponse","id":"fc_1","name":"get_weather","content":"{\"temp\":21}"})
    );
    let v: Value = serde_json::from_str(
        &ClientMessage::InjectAgentMessage { message: "Un momento".into(), behavior: None }.to_json(),
    )
    .expect("json");
    assert_eq!(v, json!({"type":"InjectAgentMessage","message":"Un momento"}));
    assert_eq!(ClientMessage::parse(&r.to_json()).ok(), Some(r));
}

#[test]
fn settings_follow_the_call_codec_and_the_reference_example() {
    let mut config = DeepgramConfig::new("k");
    config.settings = AgentConfig {
        language: "es".into(),
        listen_model: "nova-3".into(),
        think_provider: "open_ai".into(),
        think_model: "gpt-4o-mini".into(),
        prompt: "Eres la recepcionista...".into(),
        speak_model: "aura-2-celeste-es".into(),
        greeting: Some("Hola, ¿en qué puedo ayudarle?".into()),
        functions: vec![FunctionSpec {
            name: "transfer_call".into(),
            description: "Transfiere la llamada".into(),
            parameters: json!({"type":"object","properties":{"extension":{"type":"string"}},"required":["extension"]}),
            kind: ToolKind::Builtin(Builtin::Transfer { target: "201".into() }),
            filler: Default::default(),
        }],
        experimental: false,
        // The reference's example does not opt out (voice-ua's default does: see below).
        mip_opt_out: false,
        ..AgentConfig::default()
    };
    let settings = ClientMessage::Settings(Box::new(config.settings_message(AudioFormat::Ulaw8k)));
    let got: Value = serde_json::from_str(&settings.to_json()).expect("json");
    // The reference's "minimal telephony Settings", less mip_opt_out:false (a default).
    let want = json!({"type":"Settings",
     "audio":{"input":{"encoding":"mulaw","sample_rate":8000},
              "output":{"encoding":"mulaw","sample_rate":8000,"container":"none"}},
     "agent":{"listen":{"provider":{"type":"deepgram","model":"nova-3","language":"es"}},
              "think":{"provider":{"type":"open_ai","model":"gpt-4o-mini"},
                       "prompt":"Eres la recepcionista...",
                       "functions":[{"name":"transfer_call","description":"Transfiere la llamada",
                                     "parameters":{"type":"object","properties":{"extension":{"type":"string"}},"required":["extension"]}}]},
              "speak":{"provider":{"type":"deepgram","model":"aura-2-celeste-es"}},
              "greeting":"Hola, ¿en qué puedo ayudarle?"}});
    assert_eq!(got, want);
    assert_eq!(ClientMessage::parse(&settings.to_json()).ok(), Some(settings));

    let alaw = AudioSettings::for_format(AudioFormat::Alaw8k);
    assert_eq!(
        (alaw.input.encoding, alaw.output.encoding, alaw.output.sample_rate),
        (Encoding::Alaw, Encoding::Alaw, 8000)
    );
    let l16 = AudioSettings::for_format(AudioFormat::Linear16 { rate_hz: 16000 });
    assert_eq!(
        (l16.input.encoding, l16.input.sample_rate, l16.output.sample_rate),
        (Encoding::Linear16, 16000, 16000)
    );
    assert_eq!(AudioSettings::call_format(Encoding::Mulaw, 8000), Some(AudioFormat::Ulaw8k));
    assert_eq!(AudioSettings::call_format(Encoding::Other, 8000), None);
}

#[test]
fn the_api_key_is_masked_in_debug() {
    let config = DeepgramConfig::new("0123456789abcdefSECRETtail");
    let shown = format!("{config:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(shown.contains("****tail"), "{shown}");
    assert!(!format!("{:?}", DeepgramConfig::new("zq9x")).contains("zq9x"));
}

#[test]
fn latencies_that_are_not_durations_are_absent() {
    for bad in [r#""NaN""#, r#""inf""#, r#""-infinity""#, "-0.5", r#""-2""#, r#""1e400""#] {
        let text = format!(r#"{{"type":"AgentStartedSpeaking","total_latency":{bad}}}"#);
        let m = ServerMessage::parse(&text);
        assert_eq!(
            m,
            Ok(ServerMessage::AgentStartedSpeaking {
                total_latency: None,
                tts_latency: None,
                ttt_latency: None
            }),
            "{bad}"
        );
    }
}

/// Server messages from the types voice-ua knows, with fields of any JSON shape.
fn server_like() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        // Floats serde_json reads back exactly (its default parser may be 1 ULP off).
        (any::<i32>(), 0..12i32).prop_map(|(m, e)| Value::from(f64::from(m) / 2f64.powi(e))),
        prop::sample::select(vec!["user", "assistant", "NaN", "inf", "1.5", "-3", ""]).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("(id|name|arguments|client_side|[a-z]{1,3})", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let field = prop::sample::select(vec![
        "request_id",
        "session_id",
        "role",
        "content",
        "functions",
        "total_latency",
        "tts_latency",
        "ttt_latency",
        "stt_latency",
        "code",
        "description",
        "message",
        "function_calls",
        "id",
        "name",
    ]);
    let kind = prop::sample::select(vec![
        "Welcome",
        "SettingsApplied",
        "ConversationText",
        "UserStartedSpeaking",
        "AgentThinking",
        "FunctionCallRequest",
        "FunctionCallResponse",
        "FunctionCallCancelled",
        "AgentStartedSpeaking",
        "AgentAudioDone",
        "LatencyReport",
        "InjectionRefused",
        "History",
        "Warning",
        "Error",
        "SomethingNew",
    ]);
    (kind, prop::collection::vec((field, value), 0..5)).prop_map(|(kind, fields)| {
        let mut object: serde_json::Map<String, Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        object.insert("type".into(), Value::from(kind));
        Value::Object(object).to_string()
    })
}

proptest! {
    #[test]
    fn any_text_never_panics_the_parser_or_the_session(text in "\\PC{0,200}", bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = ServerMessage::parse(&text);
        let _ = ServerMessage::parse(&String::from_utf8_lossy(&bytes));
        let t0 = Instant::now();
        let mut s = DeepgramSession::new(t0, AudioFormat::Ulaw8k, DeepgramConfig::new("k").settings_message(AudioFormat::Ulaw8k));
        s.handle_text(t0, r#"{"type":"Welcome","request_id":"r"}"#);
        s.handle_text(t0, r#"{"type":"SettingsApplied"}"#);
        s.handle_text(t0, &text);
        s.handle_binary(t0, &bytes);
        while s.poll_output().is_some() {}
    }

    #[test]
    fn what_parses_re_encodes_to_the_same_message(text in server_like()) {
        check_round_trip(&text)?;
        let t0 = Instant::now();
        let mut s = DeepgramSession::new(t0, AudioFormat::Linear16 { rate_hz: 16000 }, DeepgramConfig::new("k").settings_message(AudioFormat::Ulaw8k));
        s.handle_text(t0, r#"{"type":"Welcome","request_id":"r"}"#);
        s.handle_text(t0, r#"{"type":"SettingsApplied"}"#);
        s.handle_text(t0, &text);
        s.handle_timeout(t0 + std::time::Duration::from_secs(3 * 3600));
        while s.poll_output().is_some() {}
    }
}

/// `parse(text) == Ok(m)` ⇒ `parse(m.to_json()) == Ok(m)`, and latencies are durations.
fn check_round_trip(text: &str) -> Result<(), TestCaseError> {
    let Ok(message) = ServerMessage::parse(text) else { return Ok(()) };
    let again = ServerMessage::parse(&message.to_json());
    prop_assert_eq!(again.as_ref(), Ok(&message), "{} -> {}", text, message.to_json());
    let seconds = match &message {
        ServerMessage::AgentStartedSpeaking { total_latency, tts_latency, ttt_latency } => {
            vec![*total_latency, *tts_latency, *ttt_latency]
        }
        ServerMessage::LatencyReport { stt_latency, ttt_latency, tts_latency, total_latency } => {
            vec![*stt_latency, *ttt_latency, *tts_latency, *total_latency]
        }
        _ => vec![],
    };
    for s in seconds.into_iter().flatten() {
        prop_assert!(s.is_finite() && s >= 0.0, "{}", s);
    }
    Ok(())
}
