//! The `[agent]` section: which agent answers calls (Deepgram, OpenAI Realtime, or the
//! echo test when no key is configured), what every provider shares (prompt, greeting,
//! functions, url, CA file, key file), Deepgram's own models, and what the caller hears
//! when the agent fails (a short prompt, then a transfer to a human or a polite hang-up).
//! OpenAI's own knobs are `[agent.openai]` ([`super::openai`]), so switching providers is
//! the one line `provider = "openai"`. The key comes from `DEEPGRAM_API_KEY` /
//! `OPENAI_API_KEY` or `agent.key_file`, never from argv, and is never printed.

use super::error::{invalid, ConfigError};
use super::openai::{self, OpenAiSection, Shared, OPENAI_HOST};
use super::pipeline::{self, PipelineSection};
use super::read::{read_bounded, read_text_bounded, MAX_SECRET_FILE};
use super::websocket::{self, WebSocketSection};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use voice_ua_agent::{
    pipeline::PipelineConfig, AgentConfig, Builtin, DeepgramConfig, FunctionSpec, OpenAiConfig, ToolKind,
    WebSocketConfig,
};

pub const KEY_ENV: &str = "DEEPGRAM_API_KEY";
pub use super::openai::KEY_ENV as OPENAI_KEY_ENV;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    pub provider: Option<String>,
    pub url: Option<String>,
    pub key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub language: Option<String>,
    pub listen_model: Option<String>,
    pub think_provider: Option<String>,
    pub think_model: Option<String>,
    pub prompt: Option<String>,
    pub prompt_file: Option<PathBuf>,
    pub speak_model: Option<String>,
    pub greeting: Option<String>,
    pub fallback_audio: Option<PathBuf>,
    pub fallback_transfer: Option<String>,
    #[serde(default)]
    pub functions: Vec<FunctionSection>,
    /// `[agent.openai]`: used when `provider = "openai"`.
    pub openai: Option<OpenAiSection>,
    /// `[agent.websocket]`: a WebSocket bot.
    pub websocket: Option<WebSocketSection>,
    /// `[agent.pipeline]`: the on-prem pipeline (STT, LLM, TTS endpoints).
    pub pipeline: Option<PipelineSection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSection {
    pub name: String,
    pub description: String,
    pub kind: String,
    pub url: Option<String>,
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub parameters: Option<toml::Value>,
    pub target: Option<String>,
}

/// Which agent answers.
#[derive(Debug, Clone)]
pub enum AgentChoice {
    Echo,
    Deepgram(Box<DeepgramConfig>),
    OpenAi(Box<OpenAiConfig>),
    WebSocket(Box<WebSocketConfig>),
    Pipeline(Box<PipelineConfig>),
}

impl AgentChoice {
    /// The agent's name in logs and call records: `echo`, `deepgram`, `openai`,
    /// `websocket-twilio`, `websocket-asp`, `pipeline`.
    pub fn name(&self) -> String {
        match self {
            AgentChoice::Echo => "echo".into(),
            AgentChoice::Deepgram(_) => "deepgram".into(),
            AgentChoice::OpenAi(_) => "openai".into(),
            AgentChoice::WebSocket(w) => format!("websocket-{}", w.dialect),
            AgentChoice::Pipeline(_) => "pipeline".into(),
        }
    }
}

/// The API keys from the environment, when set (`DEEPGRAM_API_KEY`, `OPENAI_API_KEY`).
#[derive(Debug, Default, Clone)]
pub struct EnvKeys {
    pub deepgram: Option<String>,
    pub openai: Option<String>,
}

/// What the caller hears, and where they go, when the agent fails (the call core's type).
pub use voice_ua_call::Fallback;

/// The longest fallback prompt read: 10 minutes of 8 kHz μ-law.
const MAX_FALLBACK_AUDIO: u64 = 10 * 60 * 8000;

/// The largest prompt file read.
const MAX_PROMPT_FILE: u64 = 1024 * 1024;

/// The fallback prompt shipped with voice-ua (μ-law, 8 kHz, spoken with espeak-ng).
const BUILTIN_FALLBACK: &[u8] = include_bytes!("../../../../conf/fallback-en.ulaw");

/// Resolve `[agent]` into the agent to use, with the keys from the environment.
pub fn choose(a: &AgentSection, env: EnvKeys) -> Result<(AgentChoice, Fallback), ConfigError> {
    choose_with_env(a, env, &|name| std::env::var(name).ok())
}

/// [`choose`], with the environment `[agent.websocket]` header secrets are read from.
pub fn choose_with_env(
    a: &AgentSection,
    env: EnvKeys,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(AgentChoice, Fallback), ConfigError> {
    let file_key = match &a.key_file {
        Some(path) => Some(
            read_text_bounded(path, MAX_SECRET_FILE)
                .map_err(|source| ConfigError::SecretFile {
                    what: "agent API key",
                    path: path.clone(),
                    source,
                })?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let key = |env: Option<String>| {
        env.filter(|k| !k.trim().is_empty()).map(|k| k.trim().to_string()).or(file_key.clone())
    };
    let fallback = Fallback {
        ulaw: match &a.fallback_audio {
            Some(p) => read_bounded(p, MAX_FALLBACK_AUDIO).map_err(|e| {
                invalid("agent.fallback_audio", &p.display().to_string(), &format!("cannot read it: {e}"))
            })?,
            None => BUILTIN_FALLBACK.to_vec(),
        },
        transfer: a.fallback_transfer.clone().filter(|t| !t.is_empty()),
    };
    let deepgram_key = key(env.deepgram);
    let default = match (&a.websocket, &deepgram_key) {
        _ if a.pipeline.is_some() => "pipeline",
        (Some(_), _) => "websocket",
        (None, Some(_)) => "deepgram",
        (None, None) => "echo",
    };
    let provider = a.provider.as_deref().unwrap_or(default);
    if a.openai.is_some() && provider != "openai" {
        // Checked all the same, so `voice-ua check` finds their mistakes before the switch.
        let others = Shared { url: None, ..shared(a)? };
        openai::config(others, a.openai.as_ref().unwrap_or(&OpenAiSection::default()), String::new())?;
    }
    // The Deepgram settings are checked even when another agent is chosen, so
    // `voice-ua check` finds their mistakes before a key is added.
    let deepgram = deepgram_config(a, deepgram_key.clone().unwrap_or_default())?;
    let choice = match provider {
        "echo" => AgentChoice::Echo,
        "deepgram" => {
            if deepgram_key.as_deref().is_none_or(str::is_empty) {
                return Err(ConfigError::Missing {
                    what: "Deepgram API key",
                    fix: "set DEEPGRAM_API_KEY or agent.key_file (or agent.provider = \"echo\")",
                });
            }
            if a.url.as_deref().is_some_and(|u| u.contains(OPENAI_HOST)) {
                return Err(invalid(
                    "agent.url",
                    a.url.as_deref().unwrap_or_default(),
                    "this is OpenAI's endpoint but agent.provider is \"deepgram\": remove agent.url (each provider has its own default) or point it at a Deepgram Voice Agent endpoint",
                ));
            }
            AgentChoice::Deepgram(Box::new(deepgram))
        }
        "openai" => {
            let Some(openai_key) = key(env.openai).filter(|k| !k.is_empty()) else {
                return Err(ConfigError::Missing {
                    what: "OpenAI API key",
                    fix: "set OPENAI_API_KEY or agent.key_file (or agent.provider = \"echo\")",
                });
            };
            let section = a.openai.as_ref().map_or_else(OpenAiSection::default, |s| s.clone());
            AgentChoice::OpenAi(Box::new(openai::config(shared(a)?, &section, openai_key)?))
        }
        "websocket" => {
            let section = a.websocket.as_ref().ok_or(ConfigError::Missing {
                what: "[agent.websocket] table",
                fix: "add [agent.websocket] with url and dialect (or choose another agent.provider)",
            })?;
            AgentChoice::WebSocket(Box::new(websocket::config(section, lookup)?))
        }
        "pipeline" => {
            let section = a.pipeline.as_ref().ok_or(ConfigError::Missing {
                what: "[agent.pipeline] table",
                fix: "add [agent.pipeline.stt], [agent.pipeline.llm] and [agent.pipeline.tts] with url and model (or choose another agent.provider)",
            })?;
            AgentChoice::Pipeline(Box::new(pipeline::config(shared(a)?, section, lookup)?))
        }
        other => {
            return Err(invalid("agent.provider", other, "use deepgram, openai, websocket, pipeline or echo"))
        }
    };
    Ok((choice, fallback))
}

/// The agent's line for `voice-ua check` (the key masked).
pub fn describe(choice: &AgentChoice) -> String {
    match choice {
        AgentChoice::Echo => "echo (no Deepgram key configured)".into(),
        AgentChoice::Deepgram(d) => format!(
            "deepgram at {} (key {:?}), listen {}, think {}/{}, speak {}, functions [{}]",
            d.url,
            "********",
            d.settings.listen_model,
            d.settings.think_provider,
            d.settings.think_model,
            d.settings.speak_model,
            d.settings.functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
        ),
        AgentChoice::OpenAi(o) => openai::describe(o),
        AgentChoice::WebSocket(w) => websocket::describe(w),
        AgentChoice::Pipeline(p) => pipeline::describe(p),
    }
}

/// The fallback's line for `voice-ua check`.
pub fn describe_fallback(fallback: &Fallback) -> String {
    format!(
        "{:.1} s prompt, then {}",
        fallback.ulaw.len() as f64 / 8000.0,
        fallback.transfer.as_deref().map(|t| format!("transfer to {t}")).unwrap_or_else(|| "hang up".into())
    )
}

/// The `[agent]` keys every provider uses, checked: url, CA file, prompt, greeting,
/// functions.
fn shared(a: &AgentSection) -> Result<Shared<'_>, ConfigError> {
    if let Some(url) = &a.url {
        if !(url.starts_with("wss://") || url.starts_with("ws://")) {
            return Err(invalid("agent.url", url, "expected wss://host/path"));
        }
    }
    if let Some(ca) = &a.ca_file {
        if !ca.is_file() {
            return Err(invalid(
                "agent.ca_file",
                &ca.display().to_string(),
                "no such file (a PEM CA certificate)",
            ));
        }
    }
    let prompt = match (&a.prompt, &a.prompt_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "agent.prompt_file",
                "(both set)",
                "set agent.prompt or agent.prompt_file, not both",
            ))
        }
        (Some(p), None) => Some(p.clone()),
        (None, Some(path)) => Some(read_text("agent.prompt_file", path)?),
        (None, None) => None,
    };
    let functions = a.functions.iter().map(function).collect::<Result<Vec<_>, _>>()?;
    Ok(Shared {
        url: a.url.as_deref(),
        ca_file: a.ca_file.clone(),
        prompt,
        greeting: a.greeting.clone().filter(|g| !g.is_empty()),
        functions,
    })
}

fn deepgram_config(a: &AgentSection, key: String) -> Result<DeepgramConfig, ConfigError> {
    let mut cfg = DeepgramConfig::new(key);
    let shared = shared(a)?;
    if let Some(url) = shared.url {
        cfg.url = url.to_owned();
    }
    cfg.extra_ca_file = shared.ca_file;
    let d = AgentConfig::default();
    cfg.settings = AgentConfig {
        language: a.language.clone().unwrap_or(d.language),
        listen_model: a.listen_model.clone().unwrap_or(d.listen_model),
        think_provider: a.think_provider.clone().unwrap_or(d.think_provider),
        think_model: a.think_model.clone().unwrap_or(d.think_model),
        prompt: shared.prompt.unwrap_or(d.prompt),
        speak_model: a.speak_model.clone().unwrap_or(d.speak_model),
        greeting: shared.greeting,
        functions: shared.functions,
        experimental: d.experimental,
    };
    Ok(cfg)
}

fn read_text(key: &'static str, path: &Path) -> Result<String, ConfigError> {
    read_text_bounded(path, MAX_PROMPT_FILE)
        .map_err(|e| invalid(key, &path.display().to_string(), &format!("cannot read it: {e}")))
}

fn function(f: &FunctionSection) -> Result<FunctionSpec, ConfigError> {
    if f.name.is_empty() || !f.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(invalid("agent.functions.name", &f.name, "use letters, digits, _ and -"));
    }
    let parameters = match &f.parameters {
        Some(v) => serde_json::to_value(v).map_err(|e| {
            invalid("agent.functions.parameters", &f.name, &format!("not JSON-compatible: {e}"))
        })?,
        None => serde_json::json!({"type": "object", "properties": {}}),
    };
    let kind = match f.kind.as_str() {
        "http" => {
            let url =
                f.url.clone().filter(|u| u.starts_with("http://") || u.starts_with("https://")).ok_or_else(
                    || {
                        invalid(
                            "agent.functions.url",
                            f.url.as_deref().unwrap_or(""),
                            "kind = \"http\" needs url = \"http(s)://...\"",
                        )
                    },
                )?;
            ToolKind::Http {
                url,
                headers: f.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                timeout: Duration::from_millis(f.timeout_ms.unwrap_or(5000).clamp(100, 60_000)),
            }
        }
        "transfer" => ToolKind::Builtin(Builtin::Transfer {
            target: f.target.clone().filter(|t| !t.is_empty()).ok_or_else(|| {
                invalid("agent.functions.target", &f.name, "kind = \"transfer\" needs target = \"9001\"")
            })?,
        }),
        "hangup" => ToolKind::Builtin(Builtin::Hangup),
        "send_dtmf" => ToolKind::Builtin(Builtin::SendDtmf),
        other => {
            return Err(invalid("agent.functions.kind", other, "use http, transfer, hangup or send_dtmf"))
        }
    };
    Ok(FunctionSpec {
        name: f.name.clone(),
        description: f.description.clone(),
        parameters,
        kind,
        filler: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> AgentSection {
        toml::from_str(text).expect("parses")
    }

    fn dg(key: String) -> EnvKeys {
        EnvKeys { deepgram: Some(key), openai: None }
    }

    #[test]
    fn no_key_means_echo_and_a_key_means_deepgram() {
        let (c, fb) = choose(&AgentSection::default(), EnvKeys::default()).expect("ok");
        assert!(matches!(c, AgentChoice::Echo));
        assert!(fb.ulaw.len() > 8000, "the shipped fallback prompt is at least a second long");
        let (c, _) = choose(&AgentSection::default(), dg("k".repeat(40))).expect("ok");
        let AgentChoice::Deepgram(d) = c else { panic!("deepgram expected") };
        assert_eq!(d.url, "wss://agent.deepgram.com/v1/agent/converse");
        assert!(!format!("{d:?}").contains(&"k".repeat(40)), "the key is never printed");
        let e = choose(&section("provider = \"deepgram\""), EnvKeys::default()).expect_err("no key");
        assert!(e.to_string().contains("DEEPGRAM_API_KEY"), "{e}");
    }

    #[test]
    fn settings_and_functions_come_from_the_section() {
        let a = section(
            r#"
            language = "es"
            speak_model = "aura-2-luna-es"
            prompt = "Eres el conserje."
            greeting = "Hola"
            fallback_transfer = "9001"
            [[functions]]
            name = "open_gate"
            description = "Open the gate"
            kind = "http"
            url = "http://127.0.0.1:8088/open_gate"
            timeout_ms = 2000
            headers = { "X-Api-Key" = "k1" }
            parameters = { type = "object", properties = { gate = { type = "string" } }, required = ["gate"] }
            [[functions]]
            name = "transfer_to_guard"
            description = "Guard"
            kind = "transfer"
            target = "9001"
            "#,
        );
        let (c, fb) = choose(&a, dg("key".into())).expect("ok");
        assert_eq!(fb.transfer.as_deref(), Some("9001"));
        let AgentChoice::Deepgram(d) = c else { panic!("deepgram") };
        assert_eq!(d.settings.language, "es");
        assert_eq!(d.settings.speak_model, "aura-2-luna-es");
        assert_eq!(d.settings.greeting.as_deref(), Some("Hola"));
        let f = &d.settings.functions;
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].parameters["required"][0], "gate");
        assert!(
            matches!(&f[0].kind, ToolKind::Http { timeout, headers, .. } if *timeout == Duration::from_millis(2000) && headers[0].0 == "X-Api-Key")
        );
        assert!(matches!(&f[1].kind, ToolKind::Builtin(Builtin::Transfer { target }) if target == "9001"));
    }

    #[test]
    fn an_agent_websocket_table_chooses_the_websocket_bot() {
        let a = section(
            "fallback_transfer = \"9001\"\n[websocket]\nurl = \"ws://127.0.0.1:8765/media\"\ndialect = \"asp\"\n",
        );
        let keys = EnvKeys { deepgram: Some("dg-key".into()), openai: None };
        let (c, fb) = choose_with_env(&a, keys, &|_| None).expect("ok");
        assert_eq!(c.name(), "websocket-asp", "the table wins over a Deepgram key");
        assert_eq!(fb.transfer.as_deref(), Some("9001"), "the shared fallback keys apply");
        assert!(
            describe(&c).starts_with("websocket bot (asp) at ws://127.0.0.1:8765/media"),
            "{}",
            describe(&c)
        );
        let a = section("provider = \"echo\"\n[websocket]\nurl = \"wss://b/x\"\ndialect = \"twilio\"\n");
        assert_eq!(choose_with_env(&a, EnvKeys::default(), &|_| None).expect("ok").0.name(), "echo");
    }

    #[test]
    fn mistakes_are_one_line() {
        for (text, expect) in [
            ("provider = \"gpt\"", "use deepgram, openai, websocket, pipeline or echo"),
            ("provider = \"websocket\"", "[agent.websocket]"),
            ("[websocket]\ndialect = \"asp\"", "agent.websocket.url"),
            ("url = \"https://x\"", "agent.url"),
            ("[[functions]]\nname = \"x\"\ndescription = \"d\"\nkind = \"http\"", "agent.functions.url"),
            (
                "[[functions]]\nname = \"x\"\ndescription = \"d\"\nkind = \"transfer\"",
                "agent.functions.target",
            ),
            ("[[functions]]\nname = \"x y\"\ndescription = \"d\"\nkind = \"hangup\"", "agent.functions.name"),
            ("[[functions]]\nname = \"x\"\ndescription = \"d\"\nkind = \"teleport\"", "agent.functions.kind"),
            ("prompt = \"a\"\nprompt_file = \"/etc/hostname\"", "not both"),
            ("key_file = \"/nonexistent/key\"", "/nonexistent/key"),
        ] {
            let e = choose(&section(text), EnvKeys::default()).expect_err(text);
            let line = e.to_string();
            assert!(line.contains(expect), "{text}: {line}");
            assert!(!line.contains('\n'));
        }
    }
}
