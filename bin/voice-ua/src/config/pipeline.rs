//! `[agent.pipeline]`: the on-prem pipeline agent's settings — the turn-taking knobs
//! (`[agent.pipeline.turn]`) and its three OpenAI-compatible endpoints
//! (`[agent.pipeline.stt]`, `.llm`, `.tts`). The shared `[agent]` keys (prompt,
//! greeting, functions, ca_file, fallback) come from `agent.rs`. Each endpoint's key, when
//! it needs one, comes from the environment variable named by `key_env` or from
//! `key_file`, never from the config text, and is never printed.

use super::error::{invalid, ConfigError};
use super::openai::Shared;
use super::read::{read_text_bounded, MAX_SECRET_FILE};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use voice_ua_agent::openai::ToolChoice;
use voice_ua_agent::pipeline::{
    endpoint_url, LlmConfig, LlmPrices, PipelineConfig, Stage, SttConfig, TtsConfig,
    DEFAULT_FIRST_TOKEN_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_HISTORY, DEFAULT_MAX_TOOL_ROUNDS,
    DEFAULT_STT_TIMEOUT, DEFAULT_TTS_TIMEOUT,
};
use voice_ua_media::EndpointSettings;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    pub end_of_turn_key: Option<String>,
    pub max_history_messages: Option<usize>,
    pub max_tool_rounds: Option<u32>,
    #[serde(default)]
    pub turn: TurnSection,
    pub stt: Option<SttSection>,
    pub llm: Option<LlmSection>,
    pub tts: Option<TtsSection>,
}

/// `[agent.pipeline.turn]`: the endpointer (defaults in `voice_ua_media::EndpointSettings`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnSection {
    pub min_speech_ms: Option<u32>,
    pub end_silence_ms: Option<u32>,
    pub max_utterance_ms: Option<u32>,
    pub prefix_padding_ms: Option<u32>,
    pub noise_gate_dbfs: Option<f32>,
    pub barge_in_min_ms: Option<u32>,
    pub playback_margin_db: Option<f32>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SttSection {
    pub url: Option<String>,
    pub model: Option<String>,
    pub key_env: Option<String>,
    pub key_file: Option<PathBuf>,
    pub language: Option<String>,
    pub prompt: Option<String>,
    pub sample_rate: Option<u32>,
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSection {
    pub url: Option<String>,
    pub model: Option<String>,
    pub key_env: Option<String>,
    pub key_file: Option<PathBuf>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub tool_choice: Option<String>,
    pub first_token_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub prices: Option<LlmPricesSection>,
}

/// `[agent.pipeline.llm.prices]`: US dollars per million tokens.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmPricesSection {
    pub input: Option<f64>,
    pub cached_input: Option<f64>,
    pub output: Option<f64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TtsSection {
    pub url: Option<String>,
    pub model: Option<String>,
    pub voice: Option<String>,
    pub key_env: Option<String>,
    pub key_file: Option<PathBuf>,
    pub sample_rate: Option<u32>,
    pub send_sample_rate: Option<bool>,
    pub speed: Option<f32>,
    pub instructions: Option<String>,
    pub first_byte_timeout_ms: Option<u64>,
}

/// A timeout in ms within 100 ms – 2 min.
fn timeout(key: &'static str, ms: Option<u64>, default: Duration) -> Result<Duration, ConfigError> {
    match ms {
        None => Ok(default),
        Some(ms) if (100..=120_000).contains(&ms) => Ok(Duration::from_millis(ms)),
        Some(ms) => Err(invalid(key, &ms.to_string(), "use 100 to 120000 ms")),
    }
}

/// A stage's key: from the named environment variable, or the file; none when neither is
/// set. A named variable that is unset is an error (a typo would otherwise go unnoticed).
fn key(
    what: &'static str,
    key_env: &Option<String>,
    key_file: &Option<PathBuf>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, ConfigError> {
    match (key_env, key_file) {
        (Some(_), Some(_)) => Err(invalid(what, "(key_env and key_file)", "set one of them, not both")),
        (Some(name), None) => match env(name).map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()) {
            Some(k) => Ok(Some(k)),
            None => {
                Err(invalid(what, name, "this environment variable is not set: export it, or remove key_env"))
            }
        },
        (None, Some(path)) => read_text_bounded(path, MAX_SECRET_FILE)
            .map(|k| Some(k.trim().to_owned()).filter(|k| !k.is_empty()))
            .map_err(|source| ConfigError::SecretFile {
                what: "pipeline API key",
                path: path.clone(),
                source,
            }),
        (None, None) => Ok(None),
    }
}

fn required(what: &'static str, value: &Option<String>, fix: &'static str) -> Result<String, ConfigError> {
    value.clone().filter(|v| !v.trim().is_empty()).ok_or(ConfigError::Missing { what, fix })
}

fn url(
    stage: Stage,
    key: &'static str,
    value: &Option<String>,
    fix: &'static str,
) -> Result<String, ConfigError> {
    let url = required(key, value, fix)?;
    endpoint_url(stage, &url).map_err(|e| invalid(key, &url, &e.to_string()))?;
    Ok(url)
}

/// The pipeline for `[agent]` (`shared`) and `[agent.pipeline]` (`p`); `env` reads an
/// environment variable.
pub fn config(
    shared: Shared<'_>,
    p: &PipelineSection,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PipelineConfig, ConfigError> {
    if shared.url.is_some() {
        return Err(invalid(
            "agent.url",
            shared.url.unwrap_or_default(),
            "the pipeline has one URL per stage: set agent.pipeline.stt.url, .llm.url and .tts.url instead",
        ));
    }
    let stt = p.stt.clone().unwrap_or_default();
    let llm = p.llm.clone().unwrap_or_default();
    let tts = p.tts.clone().unwrap_or_default();
    let language = match &stt.language {
        Some(l) if (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_lowercase()) => Some(l.clone()),
        Some(l) => {
            return Err(invalid("agent.pipeline.stt.language", l, "use an ISO-639-1 code such as en or es"))
        }
        None => None,
    };
    let stt = SttConfig {
        url: url(
            Stage::Stt,
            "agent.pipeline.stt.url",
            &stt.url,
            "set agent.pipeline.stt.url = \"http://127.0.0.1:8000/v1\" (an OpenAI-compatible /v1/audio/transcriptions)",
        )?,
        model: required("agent.pipeline.stt.model", &stt.model, "set agent.pipeline.stt.model (e.g. whisper-1)")?,
        api_key: key("agent.pipeline.stt.key_env", &stt.key_env, &stt.key_file, env)?,
        language,
        prompt: stt.prompt.clone().filter(|p| !p.is_empty()),
        sample_rate: match stt.sample_rate {
            None => 16000,
            Some(r @ (8000 | 16000)) => r,
            Some(r) => return Err(invalid("agent.pipeline.stt.sample_rate", &r.to_string(), "use 8000 or 16000")),
        },
        timeout: timeout("agent.pipeline.stt.timeout_ms", stt.timeout_ms, DEFAULT_STT_TIMEOUT)?,
    };
    let prices = match &llm.prices {
        None => None,
        Some(p) => {
            let price = |key: &'static str, v: Option<f64>| match v {
                None => Ok(0.0),
                Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
                Some(x) => Err(invalid(
                    key,
                    &x.to_string(),
                    "use a price in US dollars per million tokens, 0 or more",
                )),
            };
            let input = price("agent.pipeline.llm.prices.input", p.input)?;
            Some(LlmPrices {
                input,
                cached_input: p
                    .cached_input
                    .map_or(Ok(input), |x| price("agent.pipeline.llm.prices.cached_input", Some(x)))?,
                output: price("agent.pipeline.llm.prices.output", p.output)?,
            })
        }
    };
    if let Some(t) = llm.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(invalid("agent.pipeline.llm.temperature", &t.to_string(), "use 0.0 to 2.0"));
        }
    }
    let tool_choice = match llm.tool_choice.as_deref() {
        None => None,
        Some("auto") => Some(ToolChoice::Auto),
        Some("none") => Some(ToolChoice::None),
        Some("required") => Some(ToolChoice::Required),
        Some(other) => {
            return Err(invalid(
                "agent.pipeline.llm.tool_choice",
                other,
                "use auto, none or required, or leave it out (Ollama ignores it; vLLM needs --enable-auto-tool-choice for auto)",
            ))
        }
    };
    let llm = LlmConfig {
        url: url(
            Stage::Llm,
            "agent.pipeline.llm.url",
            &llm.url,
            "set agent.pipeline.llm.url = \"http://127.0.0.1:11434/v1\" (any OpenAI-compatible /v1/chat/completions)",
        )?,
        model: required("agent.pipeline.llm.model", &llm.model, "set agent.pipeline.llm.model (e.g. llama3.2)")?,
        api_key: key("agent.pipeline.llm.key_env", &llm.key_env, &llm.key_file, env)?,
        temperature: llm.temperature,
        max_tokens: llm.max_tokens,
        tool_choice,
        first_token_timeout: timeout(
            "agent.pipeline.llm.first_token_timeout_ms",
            llm.first_token_timeout_ms,
            DEFAULT_FIRST_TOKEN_TIMEOUT,
        )?,
        idle_timeout: timeout("agent.pipeline.llm.idle_timeout_ms", llm.idle_timeout_ms, DEFAULT_IDLE_TIMEOUT)?,
        prices,
    };
    let tts = TtsConfig {
        url: url(
            Stage::Tts,
            "agent.pipeline.tts.url",
            &tts.url,
            "set agent.pipeline.tts.url = \"http://127.0.0.1:8880/v1\" (an OpenAI-compatible /v1/audio/speech)",
        )?,
        model: required("agent.pipeline.tts.model", &tts.model, "set agent.pipeline.tts.model (e.g. kokoro or tts-1)")?,
        voice: required("agent.pipeline.tts.voice", &tts.voice, "set agent.pipeline.tts.voice (e.g. af_heart or alloy)")?,
        api_key: key("agent.pipeline.tts.key_env", &tts.key_env, &tts.key_file, env)?,
        sample_rate: match tts.sample_rate {
            None => 24000,
            Some(r @ (8000 | 16000 | 22050 | 24000 | 44100 | 48000)) => r,
            Some(r) => {
                return Err(invalid(
                    "agent.pipeline.tts.sample_rate",
                    &r.to_string(),
                    "use the rate the server's PCM has: 24000 (OpenAI, Kokoro), 22050 (piper), 16000, 8000, 44100 or 48000",
                ))
            }
        },
        send_sample_rate: tts.send_sample_rate.unwrap_or(false),
        speed: match tts.speed {
            Some(s) if !(0.25..=4.0).contains(&s) => {
                return Err(invalid("agent.pipeline.tts.speed", &s.to_string(), "use 0.25 to 4.0"))
            }
            s => s,
        },
        instructions: tts.instructions.clone().filter(|i| !i.is_empty()),
        first_byte_timeout: timeout(
            "agent.pipeline.tts.first_byte_timeout_ms",
            tts.first_byte_timeout_ms,
            DEFAULT_TTS_TIMEOUT,
        )?,
    };
    // `[agent] end_of_turn_key` works for every provider; the pipeline's own older key
    // still does, and the two must agree.
    let own = super::agent::dtmf_key("agent.pipeline.end_of_turn_key", p.end_of_turn_key.as_deref())?;
    let end_of_turn_key = match (own, shared.end_of_turn_key) {
        (Some(a), Some(b)) if a != b => {
            return Err(invalid(
                "agent.pipeline.end_of_turn_key",
                &a.to_string(),
                &format!("agent.end_of_turn_key is \"{b}\": set the key once, in [agent]"),
            ))
        }
        (own, shared) => own.or(shared),
    };
    let t = &p.turn;
    let d = EndpointSettings::default();
    let turn = EndpointSettings {
        min_speech_ms: t.min_speech_ms.unwrap_or(d.min_speech_ms),
        end_silence_ms: t.end_silence_ms.unwrap_or(d.end_silence_ms),
        max_utterance_ms: t.max_utterance_ms.unwrap_or(d.max_utterance_ms),
        prefix_padding_ms: t.prefix_padding_ms.unwrap_or(d.prefix_padding_ms),
        noise_gate_dbfs: t.noise_gate_dbfs.unwrap_or(d.noise_gate_dbfs),
        barge_in_min_ms: t.barge_in_min_ms.unwrap_or(d.barge_in_min_ms),
        playback_margin_db: t.playback_margin_db.unwrap_or(d.playback_margin_db),
    };
    if let Err(e) = turn.validate() {
        return Err(invalid("agent.pipeline.turn", "(the table)", &e.to_string()));
    }
    let max_history_messages = match p.max_history_messages {
        None => DEFAULT_MAX_HISTORY,
        Some(n) if (2..=500).contains(&n) => n,
        Some(n) => {
            return Err(invalid("agent.pipeline.max_history_messages", &n.to_string(), "use 2 to 500"))
        }
    };
    let max_tool_rounds = match p.max_tool_rounds {
        None => DEFAULT_MAX_TOOL_ROUNDS,
        Some(n) if (1..=16).contains(&n) => n,
        Some(n) => return Err(invalid("agent.pipeline.max_tool_rounds", &n.to_string(), "use 1 to 16")),
    };
    let config = PipelineConfig {
        stt,
        llm,
        tts,
        turn,
        end_of_turn_key,
        instructions: shared.prompt.unwrap_or_else(|| {
            "You are a helpful phone assistant. Answer in one or two short spoken sentences, without lists or markdown."
                .to_owned()
        }),
        greeting: shared.greeting,
        functions: shared.functions,
        max_history_messages,
        max_tool_rounds,
        extra_ca_file: shared.ca_file,
    };
    config.check().map_err(|e| invalid("agent.pipeline", "(the table)", &e.to_string()))?;
    Ok(config)
}

/// The pipeline's line for `voice-ua check` (keys never shown).
pub fn describe(c: &PipelineConfig) -> String {
    let key = |k: &Option<String>| if k.is_some() { " (key set)" } else { "" };
    format!(
        "pipeline: stt {} model {}{}, llm {} model {}{}, tts {} model {} voice {} at {} Hz{}, functions [{}]",
        c.stt.url,
        c.stt.model,
        key(&c.stt.api_key),
        c.llm.url,
        c.llm.model,
        key(&c.llm.api_key),
        c.tts.url,
        c.tts.model,
        c.tts.voice,
        c.tts.sample_rate,
        key(&c.tts.api_key),
        c.functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::super::agent::{choose_with_env, AgentChoice, AgentSection, EnvKeys};

    const BASE: &str = r#"
        provider = "pipeline"
        prompt = "You answer the gate."
        [pipeline.stt]
        url = "http://127.0.0.1:8000/v1"
        model = "whisper-1"
        [pipeline.llm]
        url = "http://192.168.1.20:11434/v1"
        model = "llama3.2"
        [pipeline.tts]
        url = "http://127.0.0.1:8880/v1"
        model = "kokoro"
        voice = "af_heart"
    "#;

    fn choose(text: &str, env: &[(&str, &str)]) -> Result<AgentChoice, String> {
        let a: AgentSection = toml::from_str(text).map_err(|e| e.to_string())?;
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        choose_with_env(&a, EnvKeys::default(), &lookup).map(|(c, _)| c).map_err(|e| e.to_string())
    }

    fn pipeline(text: &str, env: &[(&str, &str)]) -> voice_ua_agent::pipeline::PipelineConfig {
        match choose(text, env).expect(text) {
            AgentChoice::Pipeline(p) => *p,
            other => panic!("pipeline expected, got {other:?}"),
        }
    }

    #[test]
    fn the_defaults_fill_in_and_the_table_alone_chooses_the_pipeline() {
        let p = pipeline(BASE, &[]);
        assert_eq!((p.stt.sample_rate, p.tts.sample_rate), (16000, 24000));
        assert_eq!(p.llm.tool_choice, None, "not sent unless configured (Ollama, vLLM)");
        assert_eq!(p.turn, voice_ua_media::EndpointSettings::default());
        assert_eq!(p.instructions, "You answer the gate.");
        let without = BASE.replace("provider = \"pipeline\"", "");
        assert!(matches!(choose(&without, &[]), Ok(AgentChoice::Pipeline(_))));
    }

    #[test]
    fn turn_knobs_keys_and_rates_are_read() {
        let text = format!("{BASE}\n[pipeline.turn]\nend_silence_ms = 900\nnoise_gate_dbfs = -38.5\n")
            .replace("[pipeline.stt]", "[pipeline]\nend_of_turn_key = \"#\"\n[pipeline.stt]")
            .replace(
                "model = \"llama3.2\"",
                "model = \"llama3.2\"\nkey_env = \"ROUTER_KEY\"\ntool_choice = \"auto\"",
            );
        let p = pipeline(&text, &[("ROUTER_KEY", " sk-or-123 ")]);
        assert_eq!((p.turn.end_silence_ms, p.turn.noise_gate_dbfs), (900, -38.5));
        assert_eq!(p.end_of_turn_key, Some('#'));
        assert_eq!(p.llm.api_key.as_deref(), Some("sk-or-123"));
        assert!(!super::describe(&p).contains("sk-or-123"), "the key is never shown");
        // The key set once in [agent] works for the pipeline too; both set must agree.
        let shared = BASE.replace("provider", "end_of_turn_key = \"*\"\nprovider");
        assert_eq!(pipeline(&shared, &[]).end_of_turn_key, Some('*'));
        let both = shared.replace("[pipeline.stt]", "[pipeline]\nend_of_turn_key = \"#\"\n[pipeline.stt]");
        let e = choose(&both, &[]).expect_err("two keys");
        assert!(e.contains("set the key once"), "{e}");
        let same = shared.replace("[pipeline.stt]", "[pipeline]\nend_of_turn_key = \"*\"\n[pipeline.stt]");
        assert_eq!(pipeline(&same, &[]).end_of_turn_key, Some('*'));
    }

    #[test]
    fn mistakes_are_one_line_naming_the_key() {
        let cases = [
            (BASE.replace("model = \"whisper-1\"", ""), "agent.pipeline.stt.model"),
            (BASE.replace("http://127.0.0.1:8880/v1", "ws://127.0.0.1:8880/v1"), "agent.pipeline.tts.url"),
            (format!("{BASE}\nsample_rate = 11025\n"), "agent.pipeline.tts.sample_rate"),
            (BASE.replace("model = \"llama3.2\"", "model = \"llama3.2\"\nkey_env = \"NOPE\""), "NOPE"),
            (
                BASE.replace("model = \"llama3.2\"", "model = \"l\"\ntool_choice = \"sometimes\""),
                "tool_choice",
            ),
            (format!("{BASE}\n[pipeline.turn]\nend_silence_ms = 5\n"), "end_silence_ms"),
            (
                BASE.replace("[pipeline.stt]", "[pipeline]\nend_of_turn_key = \"##\"\n[pipeline.stt]"),
                "end_of_turn_key",
            ),
            (BASE.replace("provider", "url = \"wss://x/y\"\nprovider"), "one URL per stage"),
        ];
        for (text, names) in cases {
            let e = choose(&text, &[]).expect_err(&text);
            assert!(e.contains(names) && !e.contains('\n'), "{names}: {e}");
        }
        // A key over plain http to a public address is refused.
        let public = BASE
            .replace("192.168.1.20", "8.8.8.8")
            .replace("model = \"llama3.2\"", "model = \"llama3.2\"\nkey_env = \"K\"");
        let e = choose(&public, &[("K", "secret")]).expect_err("public http");
        assert!(e.contains("https://") && !e.contains("secret"), "{e}");
    }
}
