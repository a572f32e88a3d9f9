//! Arbitrary configuration text, shaped like TOML so that it reaches the validators:
//! the loader never panics, and a mistake is one line.

use super::*;
use proptest::prelude::*;

/// What a key takes: a string, an integer, a boolean, an array of strings, a table.
#[derive(Clone, Copy, Debug)]
enum Kind {
    S,
    I,
    B,
    A,
    T,
}
use Kind::{A, B, I, S, T};

/// Each section with its keys and what they take.
const SECTIONS: [(&str, &[(&str, Kind)]); 7] = [
    (
        "[sip]",
        &[
            ("extension", S),
            ("pbx", S),
            ("domain", S),
            ("auth_user", S),
            ("password", S),
            ("password_file", S),
            ("realm", S),
            ("transport", S),
            ("bind", S),
            ("public_addr", S),
            ("expires", I),
            ("retry_max_secs", I),
            ("keepalive", S),
            ("keepalive_interval_secs", I),
            ("follow_nat", B),
            ("tcp_max_connections", I),
            ("tcp_idle_timeout_secs", I),
        ],
    ),
    ("[log]", &[("format", S), ("filter", S)]),
    (
        "[calls]",
        &[
            ("allow", A),
            ("max_calls", I),
            ("codecs", A),
            ("rtp_ports", S),
            ("media_timeout_secs", I),
            ("ring_ms", I),
            ("jitter_start_ms", I),
            ("jitter_max_ms", I),
        ],
    ),
    (
        "[agent]",
        &[
            ("provider", S),
            ("url", S),
            ("key_file", S),
            ("ca_file", S),
            ("language", S),
            ("listen_model", S),
            ("think_provider", S),
            ("think_model", S),
            ("prompt", S),
            ("prompt_file", S),
            ("speak_model", S),
            ("greeting", S),
            ("fallback_audio", S),
            ("fallback_transfer", S),
        ],
    ),
    (
        "[[agent.functions]]",
        &[
            ("name", S),
            ("description", S),
            ("kind", S),
            ("url", S),
            ("timeout_ms", I),
            ("headers", T),
            ("parameters", T),
            ("target", S),
        ],
    ),
    ("[http]", &[("listen", S)]),
    (
        "[records]",
        &[
            ("path", S),
            ("retention_days", I),
            ("recordings", B),
            ("recordings_dir", S),
            ("recordings_retention_days", I),
        ],
    ),
];

/// Strings a user might write, near misses, and anything at all.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "9000",
            "udp",
            "TCP",
            "crlf",
            "off",
            "options",
            "json",
            "human",
            "echo",
            "deepgram",
            "http",
            "transfer",
            "hangup",
            "send_dtmf",
            "PCMU",
            "pcma",
            "G722",
            "127.0.0.1:5060",
            "[::1]:5060",
            "pbx:99999",
            "0.0.0.0:0",
            "10000-10500",
            "65535-1024",
            "1024-",
            "-",
            "wss://127.0.0.1:1/x",
            "http://127.0.0.1:1/",
            "/",
            ".",
            "/nonexistent/x",
            "debug,rsipstack=trace",
            "[{a=b}]=trace",
            "x=",
            "=",
            "é",
            "✓-✓",
            "a\nb",
            "\u{1b}[2J",
        ])
        .prop_map(String::from),
        any::<String>(),
        "[ -~]{0,16}",
    ]
}

fn quoted() -> impl Strategy<Value = String> {
    text().prop_map(|s| toml::Value::String(s).to_string())
}

/// A value of `kind`, now and then one of another kind or not TOML at all.
fn value(kind: Kind) -> BoxedStrategy<String> {
    let right = match kind {
        S => quoted().boxed(),
        I => {
            prop_oneof![any::<i64>().prop_map(|n| n.to_string()), (0u32..70_000).prop_map(|n| n.to_string())]
                .boxed()
        }
        B => any::<bool>().prop_map(|b| b.to_string()).boxed(),
        A => prop::collection::vec(quoted(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))).boxed(),
        T => prop::collection::vec((text(), quoted()), 0..3)
            .prop_map(|v| {
                let kv: Vec<String> =
                    v.iter().map(|(k, v)| format!("{} = {v}", toml::Value::String(k.clone()))).collect();
                format!("{{ {} }}", kv.join(", "))
            })
            .boxed(),
    };
    prop_oneof![
        40 => right,
        1 => quoted(),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => "[^\n]{0,12}",
    ]
    .boxed()
}

fn block(i: usize) -> impl Strategy<Value = String> {
    let (header, keys) = SECTIONS[i];
    // A function needs its name, description and kind (the first three keys).
    let required = if header == "[[agent.functions]]" { 3 } else { 0 };
    prop::sample::subsequence(keys[required..].to_vec(), 0..=(keys.len() - required).min(6))
        .prop_flat_map(move |chosen| {
            keys[..required]
                .iter()
                .chain(&chosen)
                .map(|&(k, kind)| (Just(k), value(kind)))
                .collect::<Vec<_>>()
        })
        .prop_map(move |kv| {
            let lines: Vec<String> = kv.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            format!("{header}\n{}\n", lines.join("\n"))
        })
}

/// A whole file: some of the sections, each once, in order.
fn file() -> impl Strategy<Value = String> {
    prop::sample::subsequence((0..SECTIONS.len()).collect::<Vec<_>>(), 0..=SECTIONS.len())
        .prop_flat_map(|chosen| chosen.into_iter().map(block).collect::<Vec<_>>())
        .prop_map(|blocks| blocks.concat())
}

/// Every check `voice-ua check` makes of a file, each on its own (so that one
/// mistake does not hide the others from the test): the messages of those that fail.
fn every_check(text: &str) -> Vec<String> {
    let file = match parse(text) {
        Ok(f) => f,
        Err((line, message)) => {
            return vec![ConfigError::Parse { path: "t.toml".into(), line, message }.to_string()]
        }
    };
    let given = Overrides { extension: Some("9000".into()), pbx: Some("pbx".into()), ..Default::default() };
    let mut errors: Vec<String> = [
        effective(&file, &Overrides::default(), None).err(),
        effective(&file, &given, Some("pw".into())).err(),
        calls(&file).err(),
        http(&file).err(),
        records::settings_with(&file.records, None, false).err(),
        agent::choose(&file.agent, agent::EnvKeys::default()).err(),
        agent::choose(
            &file.agent,
            agent::EnvKeys { deepgram: Some("key".into()), openai: Some("key".into()) },
        )
        .err(),
    ]
    .into_iter()
    .flatten()
    .map(|e| e.to_string())
    .collect();
    if let Err(e) = log::filter(&log::directives(file.log.filter.clone())) {
        errors.push(e.to_string());
    }
    errors
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn any_config_text_loads_or_says_what_is_wrong_in_one_line(
        text in file(),
        junk in prop::option::weighted(0.1, "[^\n]{0,20}"),
    ) {
        let mut text = text;
        if let Some(j) = junk {
            text.push_str(&j);
        }
        for e in every_check(&text) {
            prop_assert!(!e.is_empty() && !e.contains(['\n', '\r']), "{:?} from\n{}", e, text);
        }
    }
}
