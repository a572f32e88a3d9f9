//! `[agent.openai]`: the OpenAI Realtime agent's own settings (model, voice,
//! transcription, noise reduction, turn detection, tool choice, renewal, prices). The
//! shared `[agent]` keys (prompt, greeting, functions, url, ca_file, key_file, fallback)
//! come from `agent.rs`, so a Deepgram configuration switches to OpenAI with
//! `provider = "openai"` alone. The key comes from `OPENAI_API_KEY` or `agent.key_file`,
//! never from argv, and is never printed.

use super::error::{invalid, ConfigError};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use voice_ua_agent::openai::{Eagerness, NoiseReduction, Prices, ToolChoice, Transcription, TurnDetection};
use voice_ua_agent::{FunctionSpec, OpenAiConfig};

pub const KEY_ENV: &str = "OPENAI_API_KEY";

/// The hosts of the two providers' defaults: a URL left over from one provider is an
/// error under the other.
pub const DEEPGRAM_HOST: &str = "agent.deepgram.com";
pub const OPENAI_HOST: &str = "api.openai.com";

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiSection {
    pub model: Option<String>,
    pub voice: Option<String>,
    pub transcription_model: Option<String>,
    pub language: Option<String>,
    pub noise_reduction: Option<String>,
    pub turn_detection: Option<String>,
    pub vad_threshold: Option<f64>,
    pub prefix_padding_ms: Option<u32>,
    pub silence_duration_ms: Option<u32>,
    pub eagerness: Option<String>,
    pub tool_choice: Option<String>,
    pub renew_after_minutes: Option<u64>,
    #[serde(default)]
    pub prices: PricesSection,
}

/// `[agent.openai.prices]`: US dollars per million tokens.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricesSection {
    pub audio_in: Option<f64>,
    pub cached_in: Option<f64>,
    pub audio_out: Option<f64>,
    pub text_in: Option<f64>,
    pub text_out: Option<f64>,
}

/// What `[agent]` gives every provider, checked.
pub struct Shared<'a> {
    /// `reconnect_attempts`, `reconnect_window_ms`.
    pub reconnect: voice_ua_agent::ReconnectPolicy,
    pub url: Option<&'a str>,
    pub ca_file: Option<PathBuf>,
    pub prompt: Option<String>,
    pub greeting: Option<String>,
    pub functions: Vec<FunctionSpec>,
    /// `agent.end_of_turn_key`.
    pub end_of_turn_key: Option<char>,
}

/// A name OpenAI would take as it is: letters, digits, `.`, `_` and `-`.
fn word(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// The OpenAI agent for `[agent]` (`shared`) and `[agent.openai]` (`s`) with `key`.
pub fn config(shared: Shared<'_>, s: &OpenAiSection, key: String) -> Result<OpenAiConfig, ConfigError> {
    let mut c = OpenAiConfig::new(key);
    if let Some(url) = shared.url {
        if url.contains(DEEPGRAM_HOST) {
            return Err(invalid(
                "agent.url",
                url,
                "this is Deepgram's endpoint but agent.provider is \"openai\": remove agent.url (each provider has its own default) or point it at an OpenAI Realtime endpoint",
            ));
        }
        c.url = url.to_owned();
    }
    c.extra_ca_file = shared.ca_file;
    c.end_of_turn_key = shared.end_of_turn_key;
    if let Some(prompt) = shared.prompt {
        c.instructions = prompt;
    }
    c.greeting = shared.greeting;
    if let Some(model) = &s.model {
        if !word(model) {
            return Err(invalid("agent.openai.model", model, "use a model name such as gpt-realtime"));
        }
        c.model = model.clone();
    }
    if let Some(voice) = &s.voice {
        if !word(voice) {
            return Err(invalid("agent.openai.voice", voice, "use a voice name such as marin or cedar"));
        }
        c.voice = voice.clone();
    }
    let language = match &s.language {
        Some(l) if (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_lowercase()) => Some(l.clone()),
        Some(l) => {
            return Err(invalid("agent.openai.language", l, "use an ISO-639-1 code such as en or es"));
        }
        None => None,
    };
    c.transcription = match s.transcription_model.as_deref() {
        Some("" | "none" | "off") => {
            if language.is_some() {
                return Err(invalid(
                    "agent.openai.language",
                    language.as_deref().unwrap_or_default(),
                    "it sets the transcription's language, which transcription_model turns off",
                ));
            }
            None
        }
        Some(model) if !word(model) => {
            return Err(invalid(
                "agent.openai.transcription_model",
                model,
                "use a model such as gpt-4o-mini-transcribe, or \"none\" to turn transcription off",
            ));
        }
        model => Some(Transcription {
            model: model.unwrap_or(voice_ua_agent::openai::DEFAULT_TRANSCRIPTION_MODEL).to_owned(),
            language,
        }),
    };
    c.noise_reduction = match s.noise_reduction.as_deref() {
        None | Some("near_field") => NoiseReduction::NearField,
        Some("far_field") => NoiseReduction::FarField,
        Some("off") => NoiseReduction::Off,
        Some(other) => {
            return Err(invalid("agent.openai.noise_reduction", other, "use near_field, far_field or off"));
        }
    };
    c.turn_detection = turn_detection(s)?;
    c.tool_choice = match s.tool_choice.as_deref() {
        None | Some("auto") => ToolChoice::Auto,
        Some("none") => ToolChoice::None,
        Some("required") => ToolChoice::Required,
        Some(name) if shared.functions.iter().any(|f| f.name == name) => {
            ToolChoice::Function(name.to_owned())
        }
        Some(other) => {
            return Err(invalid(
                "agent.openai.tool_choice",
                other,
                "use auto, none, required or the name of one of the [[agent.functions]]",
            ));
        }
    };
    c.functions = shared.functions;
    c.reconnect = shared.reconnect;
    if let Some(minutes) = s.renew_after_minutes {
        let hard = voice_ua_agent::openai::RENEW_HARD_LIMIT.as_secs() / 60;
        if !(1..=hard).contains(&minutes) {
            return Err(invalid(
                "agent.openai.renew_after_minutes",
                &minutes.to_string(),
                &format!("use 1 to {hard} (OpenAI ends a session at 60 minutes)"),
            ));
        }
        c.renew_after = Duration::from_secs(minutes * 60);
    }
    c.prices = prices(&s.prices)?;
    Ok(c)
}

fn turn_detection(s: &OpenAiSection) -> Result<TurnDetection, ConfigError> {
    let server = s.turn_detection.as_deref().is_none_or(|t| t == "server_vad");
    match s.turn_detection.as_deref() {
        None | Some("server_vad" | "semantic_vad") => {}
        Some(other) => {
            return Err(invalid("agent.openai.turn_detection", other, "use server_vad or semantic_vad"));
        }
    }
    if server {
        if let Some(e) = &s.eagerness {
            return Err(invalid(
                "agent.openai.eagerness",
                e,
                "it applies to turn_detection = \"semantic_vad\" only",
            ));
        }
        use voice_ua_agent::openai::{VAD_PREFIX_PADDING_MS, VAD_SILENCE_DURATION_MS, VAD_THRESHOLD};
        let threshold = match s.vad_threshold {
            Some(t) if (0.0..=1.0).contains(&t) => t,
            Some(t) => {
                return Err(invalid(
                    "agent.openai.vad_threshold",
                    &t.to_string(),
                    "use 0.0 to 1.0 (default 0.5)",
                ));
            }
            None => VAD_THRESHOLD,
        };
        let prefix_padding_ms = match s.prefix_padding_ms {
            Some(ms) if ms <= 5000 => ms,
            Some(ms) => {
                return Err(invalid(
                    "agent.openai.prefix_padding_ms",
                    &ms.to_string(),
                    "use 0 to 5000 (default 300)",
                ));
            }
            None => VAD_PREFIX_PADDING_MS,
        };
        let silence_duration_ms = match s.silence_duration_ms {
            Some(ms) if (100..=10_000).contains(&ms) => ms,
            Some(ms) => {
                return Err(invalid(
                    "agent.openai.silence_duration_ms",
                    &ms.to_string(),
                    "use 100 to 10000 (default 500)",
                ));
            }
            None => VAD_SILENCE_DURATION_MS,
        };
        return Ok(TurnDetection::ServerVad { threshold, prefix_padding_ms, silence_duration_ms });
    }
    for (key, set) in [
        ("agent.openai.vad_threshold", s.vad_threshold.is_some()),
        ("agent.openai.prefix_padding_ms", s.prefix_padding_ms.is_some()),
        ("agent.openai.silence_duration_ms", s.silence_duration_ms.is_some()),
    ] {
        if set {
            return Err(invalid(key, "(set)", "it applies to turn_detection = \"server_vad\" only"));
        }
    }
    let eagerness = match s.eagerness.as_deref() {
        None | Some("auto") => Eagerness::Auto,
        Some("low") => Eagerness::Low,
        Some("medium") => Eagerness::Medium,
        Some("high") => Eagerness::High,
        Some(other) => return Err(invalid("agent.openai.eagerness", other, "use low, medium, high or auto")),
    };
    Ok(TurnDetection::SemanticVad { eagerness })
}

fn prices(p: &PricesSection) -> Result<Prices, ConfigError> {
    let d = Prices::default();
    let price = |key: &'static str, v: Option<f64>, default: f64| match v {
        None => Ok(default),
        Some(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Some(v) => Err(invalid(key, &v.to_string(), "use US dollars per million tokens, 0 or more")),
    };
    Ok(Prices {
        audio_in: price("agent.openai.prices.audio_in", p.audio_in, d.audio_in)?,
        cached_in: price("agent.openai.prices.cached_in", p.cached_in, d.cached_in)?,
        audio_out: price("agent.openai.prices.audio_out", p.audio_out, d.audio_out)?,
        text_in: price("agent.openai.prices.text_in", p.text_in, d.text_in)?,
        text_out: price("agent.openai.prices.text_out", p.text_out, d.text_out)?,
    })
}

/// The OpenAI agent's line for `voice-ua check` (the key masked).
pub fn describe(c: &OpenAiConfig) -> String {
    let turn = match c.turn_detection {
        TurnDetection::ServerVad { threshold, prefix_padding_ms, silence_duration_ms } => format!(
            "server_vad (threshold {threshold}, prefix {prefix_padding_ms} ms, silence {silence_duration_ms} ms)"
        ),
        TurnDetection::SemanticVad { eagerness } => format!("semantic_vad (eagerness {})", eagerness.as_str()),
    };
    let transcription = match &c.transcription {
        Some(t) => {
            format!("{}{}", t.model, t.language.as_deref().map(|l| format!(" ({l})")).unwrap_or_default())
        }
        None => "off".into(),
    };
    let noise = match c.noise_reduction {
        NoiseReduction::NearField => "near_field",
        NoiseReduction::FarField => "far_field",
        NoiseReduction::Off => "off",
    };
    let p = c.prices;
    format!(
        "openai at {} (key {:?}), model {}, voice {}, turn detection {turn}, transcription {transcription}, \
         noise reduction {noise}, renew after {} min, prices per 1M tokens: audio ${}/{}/{} (in/cached/out), \
         text ${}/{} (in/out), functions [{}]",
        c.request_url(),
        "********",
        c.model,
        c.voice,
        c.renew_after.as_secs() / 60,
        p.audio_in,
        p.cached_in,
        p.audio_out,
        p.text_in,
        p.text_out,
        c.functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::super::agent::{choose, AgentChoice, AgentSection, EnvKeys};
    use super::*;
    use voice_ua_agent::{Builtin, ToolKind};

    fn section(text: &str) -> AgentSection {
        toml::from_str(text).expect("parses")
    }

    fn keys(deepgram: Option<&str>, openai: Option<&str>) -> EnvKeys {
        EnvKeys { deepgram: deepgram.map(Into::into), openai: openai.map(Into::into) }
    }

    fn openai(text: &str) -> OpenAiConfig {
        match choose(&section(text), keys(None, Some("sk-test-0123456789abcdef"))).expect(text).0 {
            AgentChoice::OpenAi(c) => *c,
            other => panic!("openai expected, got {other:?}"),
        }
    }

    /// A Deepgram configuration as the gate concierge has it.
    const DEEPGRAM: &str = r#"
        url = "wss://agent.deepgram.com/v1/agent/converse"
        language = "en"
        listen_model = "nova-3"
        think_provider = "open_ai"
        think_model = "gpt-4o-mini"
        speak_model = "aura-2-thalia-en"
        greeting = "Hello, Los Robles gate."
        prompt = "You are the concierge."
        fallback_transfer = "9001"
        [[functions]]
        name = "transfer_to_guard"
        description = "Guard"
        kind = "transfer"
        target = "9001"
    "#;

    #[test]
    fn switching_from_deepgram_is_one_line() {
        // With the url left to each provider's default.
        let text = DEEPGRAM.replace("url = \"wss://agent.deepgram.com/v1/agent/converse\"", "");
        let (dg, _) = choose(&section(&text), keys(Some("dg-key"), None)).expect("deepgram");
        assert!(matches!(dg, AgentChoice::Deepgram(_)));
        let c = openai(&format!("provider = \"openai\"\n{text}"));
        assert_eq!(c.instructions, "You are the concierge.");
        assert_eq!(c.greeting.as_deref(), Some("Hello, Los Robles gate."));
        assert_eq!(c.functions.len(), 1);
        assert!(
            matches!(&c.functions[0].kind, ToolKind::Builtin(Builtin::Transfer { target }) if target == "9001")
        );
        assert_eq!(c.request_url(), "wss://api.openai.com/v1/realtime?model=gpt-realtime");
        assert_eq!((c.model.as_str(), c.voice.as_str()), ("gpt-realtime", "marin"));
        assert_eq!(c.api_key, "sk-test-0123456789abcdef");
        assert_eq!(c.turn_detection, TurnDetection::default());
        assert_eq!(c.noise_reduction, NoiseReduction::NearField);
        assert_eq!(c.transcription.as_ref().map(|t| t.model.as_str()), Some("gpt-4o-mini-transcribe"));
        assert_eq!(c.renew_after, Duration::from_secs(55 * 60));
        assert_eq!(c.prices, Prices::GPT_REALTIME);
    }

    #[test]
    fn a_deepgram_url_left_behind_is_a_clear_mistake_either_way() {
        let e = choose(&section(&format!("provider = \"openai\"\n{DEEPGRAM}")), keys(None, Some("k")))
            .expect_err("deepgram url");
        let line = e.to_string();
        assert!(line.starts_with("agent.url = \"wss://agent.deepgram.com/v1/agent/converse\" is not valid: this is Deepgram's endpoint but agent.provider is \"openai\": remove agent.url"), "{line}");
        let text = "provider = \"deepgram\"\nurl = \"wss://api.openai.com/v1/realtime\"";
        let e = choose(&section(text), keys(Some("k"), None)).expect_err("openai url");
        assert!(
            e.to_string().contains("this is OpenAI's endpoint but agent.provider is \"deepgram\""),
            "{e}"
        );
    }

    #[test]
    fn the_key_comes_from_openai_api_key_or_the_key_file_never_deepgrams() {
        let text = "provider = \"openai\"";
        let e = choose(&section(text), keys(Some("dg-key"), None)).expect_err("no OpenAI key");
        assert_eq!(
            e.to_string(),
            "no OpenAI API key: set OPENAI_API_KEY or agent.key_file (or agent.provider = \"echo\")"
        );
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("key");
        std::fs::write(&file, "  sk-from-file-0123456789\n").expect("write");
        let text = format!("provider = \"openai\"\nkey_file = \"{}\"", file.display());
        let (c, _) = choose(&section(&text), keys(None, None)).expect("key file");
        let AgentChoice::OpenAi(c) = c else { panic!("openai") };
        assert_eq!(c.api_key, "sk-from-file-0123456789");
        let (c, _) = choose(&section(&text), keys(None, Some(" sk-env "))).expect("env");
        let AgentChoice::OpenAi(c) = c else { panic!("openai") };
        assert_eq!(c.api_key, "sk-env", "the environment wins over the file");
        assert_eq!(c.api_key.len(), 6);
        assert!(!super::super::agent::describe(&AgentChoice::OpenAi(c.clone())).contains("sk-env"));
        assert!(!format!("{c:?}").contains("sk-env"));
    }

    #[test]
    fn the_openai_table_sets_every_knob() {
        let c = openai(
            r#"
            provider = "openai"
            prompt_file = "/etc/hostname"
            [[functions]]
            name = "open_gate"
            description = "Open"
            kind = "http"
            url = "http://127.0.0.1:8088/open_gate"
            [openai]
            model = "gpt-realtime-mini"
            voice = "cedar"
            transcription_model = "gpt-4o-transcribe"
            language = "es"
            noise_reduction = "far_field"
            turn_detection = "semantic_vad"
            eagerness = "high"
            tool_choice = "open_gate"
            renew_after_minutes = 30
            [openai.prices]
            audio_in = 10
            cached_in = 0.3
            audio_out = 20
            text_in = 0.6
            text_out = 2.4
            "#,
        );
        assert_eq!(c.request_url(), "wss://api.openai.com/v1/realtime?model=gpt-realtime-mini");
        assert_eq!(c.voice, "cedar");
        assert_eq!(
            c.transcription,
            Some(Transcription { model: "gpt-4o-transcribe".into(), language: Some("es".into()) })
        );
        assert_eq!(c.noise_reduction, NoiseReduction::FarField);
        assert_eq!(c.turn_detection, TurnDetection::SemanticVad { eagerness: Eagerness::High });
        assert_eq!(c.tool_choice, ToolChoice::Function("open_gate".into()));
        assert_eq!(c.renew_after, Duration::from_secs(30 * 60));
        assert_eq!(
            c.prices,
            Prices { audio_in: 10.0, cached_in: 0.3, audio_out: 20.0, text_in: 0.6, text_out: 2.4 }
        );
        assert!(!c.instructions.is_empty(), "prompt_file is the instructions");
        let c = openai(
            "provider = \"openai\"\n[openai]\nvad_threshold = 0.7\nprefix_padding_ms = 200\nsilence_duration_ms = 800\n\
             transcription_model = \"none\"\nnoise_reduction = \"off\"\ntool_choice = \"required\"",
        );
        assert_eq!(
            c.turn_detection,
            TurnDetection::ServerVad { threshold: 0.7, prefix_padding_ms: 200, silence_duration_ms: 800 }
        );
        assert_eq!(
            (c.transcription, c.noise_reduction, c.tool_choice),
            (None, NoiseReduction::Off, ToolChoice::Required)
        );
    }

    #[test]
    fn mistakes_are_one_line_naming_the_key() {
        for (table, expect) in [
            ("model = \"gpt realtime\"", "agent.openai.model"),
            ("voice = \"\"", "agent.openai.voice"),
            ("language = \"English\"", "agent.openai.language"),
            ("transcription_model = \"none\"\nlanguage = \"en\"", "agent.openai.language"),
            ("transcription_model = \"a/b\"", "agent.openai.transcription_model"),
            ("noise_reduction = \"loud\"", "agent.openai.noise_reduction"),
            ("turn_detection = \"manual\"", "agent.openai.turn_detection"),
            ("vad_threshold = 1.5", "agent.openai.vad_threshold"),
            ("prefix_padding_ms = 9000", "agent.openai.prefix_padding_ms"),
            ("silence_duration_ms = 50", "agent.openai.silence_duration_ms"),
            ("eagerness = \"high\"", "it applies to turn_detection = \"semantic_vad\" only"),
            ("turn_detection = \"semantic_vad\"\nvad_threshold = 0.5", "agent.openai.vad_threshold"),
            ("turn_detection = \"semantic_vad\"\neagerness = \"eager\"", "agent.openai.eagerness"),
            ("tool_choice = \"open_gate\"", "agent.openai.tool_choice"),
            ("renew_after_minutes = 59", "use 1 to 58"),
            ("renew_after_minutes = 0", "agent.openai.renew_after_minutes"),
            ("[openai.prices]\naudio_in = -1", "agent.openai.prices.audio_in"),
        ] {
            let text = format!("provider = \"openai\"\n[openai]\n{table}");
            let e = choose(&section(&text), keys(None, Some("k"))).expect_err(&text);
            let line = e.to_string();
            assert!(line.contains(expect), "{text}: {line}");
            assert!(!line.contains('\n'));
            // Found even before the switch, while another agent answers.
            let text = format!("provider = \"echo\"\n[openai]\n{table}");
            assert!(choose(&section(&text), keys(None, None)).is_err(), "{text}");
        }
        let e = toml::from_str::<AgentSection>("[openai]\ntemperature = 0.8").expect_err("unknown key");
        assert!(e.to_string().contains("unknown field `temperature`"), "{e}");
    }

    #[test]
    fn check_describes_the_openai_agent_with_the_key_masked() {
        let (c, _) =
            choose(&section("provider = \"openai\""), keys(None, Some("sk-secret-0123456789"))).expect("ok");
        let line = super::super::agent::describe(&c);
        assert_eq!(
            line,
            "openai at wss://api.openai.com/v1/realtime?model=gpt-realtime (key \"********\"), model gpt-realtime, \
             voice marin, turn detection server_vad (threshold 0.5, prefix 300 ms, silence 500 ms), transcription \
             gpt-4o-mini-transcribe, noise reduction near_field, renew after 55 min, prices per 1M tokens: audio \
             $32/0.4/64 (in/cached/out), text $4/16 (in/out), functions []"
        );
        assert_eq!(c.name(), "openai");
    }
}
