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
use voice_ua_agent::deepgram::Flux;
use voice_ua_agent::tools::{filler::MAX_FILLER_PHRASE, Filler, DEFAULT_FILLER_AFTER};
use voice_ua_agent::{
    pipeline::PipelineConfig, AgentConfig, Builtin, DeepgramConfig, FunctionSpec, OpenAiConfig,
    ReconnectPolicy, ToolKind, WebSocketConfig,
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
    /// Deepgram and OpenAI: connection attempts when the agent's socket drops mid-call.
    pub reconnect_attempts: Option<u32>,
    /// Deepgram and OpenAI: the budget of one reconnect, from the drop.
    pub reconnect_window_ms: Option<u64>,
    /// A DTMF key that ends the caller's turn, for every provider.
    pub end_of_turn_key: Option<String>,
    /// How long a function may run before the caller hears its filler (default 700).
    pub filler_after_ms: Option<u64>,
    #[serde(default)]
    pub functions: Vec<FunctionSection>,
    /// `[agent.deepgram]`: Deepgram's own knobs (privacy, Flux).
    pub deepgram: Option<DeepgramSection>,
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
    /// A phrase (`"One moment."`), `true` (the hold tone) or `false` (nothing).
    pub filler: Option<toml::Value>,
    pub filler_after_ms: Option<u64>,
}

/// `[agent.deepgram]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeepgramSection {
    pub mip_opt_out: Option<bool>,
    pub keyterms: Option<Vec<String>>,
    pub eot_threshold: Option<f64>,
    pub eager_eot_threshold: Option<f64>,
    pub eot_timeout_ms: Option<u32>,
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
    let after = match a.filler_after_ms {
        None => DEFAULT_FILLER_AFTER,
        Some(ms) if ms <= MAX_FILLER_AFTER_MS => Duration::from_millis(ms),
        Some(ms) => {
            return Err(invalid("agent.filler_after_ms", &ms.to_string(), "use 0 to 10000 milliseconds"))
        }
    };
    let functions = a.functions.iter().map(|f| function(f, after)).collect::<Result<Vec<_>, _>>()?;
    Ok(Shared {
        reconnect: reconnect(a)?,
        url: a.url.as_deref(),
        ca_file: a.ca_file.clone(),
        prompt,
        greeting: a.greeting.clone().filter(|g| !g.is_empty()),
        functions,
        end_of_turn_key: dtmf_key("agent.end_of_turn_key", a.end_of_turn_key.as_deref())?,
    })
}

/// The longest filler threshold.
const MAX_FILLER_AFTER_MS: u64 = 10_000;

/// One DTMF key (`#`), or none for an empty or missing value.
pub(super) fn dtmf_key(key: &'static str, value: Option<&str>) -> Result<Option<char>, ConfigError> {
    match value {
        None | Some("") => Ok(None),
        Some(k) => {
            let mut chars = k.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if voice_ua_agent::Digit::new(c).is_ok() => Ok(Some(c)),
                _ => Err(invalid(key, k, "use one DTMF key: 0-9, *, #, A-D")),
            }
        }
    }
}

fn deepgram_config(a: &AgentSection, key: String) -> Result<DeepgramConfig, ConfigError> {
    let mut cfg = DeepgramConfig::new(key);
    let shared = shared(a)?;
    if let Some(url) = shared.url {
        cfg.url = url.to_owned();
    }
    cfg.extra_ca_file = shared.ca_file;
    cfg.reconnect = shared.reconnect;
    let d = AgentConfig::default();
    let listen_model = a.listen_model.clone().unwrap_or(d.listen_model);
    let dg = a.deepgram.clone().unwrap_or_default();
    let flux = deepgram_flux(&listen_model, &dg)?;
    let keyterms = dg.keyterms.clone().unwrap_or_default();
    if keyterms.len() > MAX_KEYTERMS
        || keyterms.iter().any(|k| k.trim().is_empty() || k.chars().count() > 100)
    {
        return Err(invalid(
            "agent.deepgram.keyterms",
            &keyterms.join(", "),
            "list at most 100 words or short phrases, none empty",
        ));
    }
    cfg.settings = AgentConfig {
        language: a.language.clone().unwrap_or(d.language),
        listen_model,
        think_provider: a.think_provider.clone().unwrap_or(d.think_provider),
        think_model: a.think_model.clone().unwrap_or(d.think_model),
        prompt: shared.prompt.unwrap_or(d.prompt),
        speak_model: a.speak_model.clone().unwrap_or(d.speak_model),
        greeting: shared.greeting,
        functions: shared.functions,
        experimental: d.experimental,
        flux,
        keyterms,
        mip_opt_out: dg.mip_opt_out.unwrap_or(d.mip_opt_out),
        end_of_turn_key: shared.end_of_turn_key,
    };
    Ok(cfg)
}

/// `reconnect_attempts` (0 to 10; 0: never reconnect) and `reconnect_window_ms` (100 to
/// 30000), the defaults where left out.
fn reconnect(a: &AgentSection) -> Result<ReconnectPolicy, ConfigError> {
    let mut policy = ReconnectPolicy::default();
    if let Some(n) = a.reconnect_attempts {
        if n > 10 {
            return Err(invalid("agent.reconnect_attempts", &n.to_string(), "use 0 (never) to 10"));
        }
        policy.attempts = n;
    }
    if let Some(ms) = a.reconnect_window_ms {
        if !(100..=30_000).contains(&ms) {
            return Err(invalid("agent.reconnect_window_ms", &ms.to_string(), "use 100 to 30000"));
        }
        policy.window = Duration::from_millis(ms);
    }
    Ok(policy)
}

/// The most `agent.deepgram.keyterms`.
const MAX_KEYTERMS: usize = 100;

/// Flux when the listen model is one (`flux-general-en`), with its end-of-turn knobs;
/// the knobs without a Flux model are a mistake.
fn deepgram_flux(listen_model: &str, dg: &DeepgramSection) -> Result<Option<Flux>, ConfigError> {
    let knobs = dg.eot_threshold.is_some() || dg.eager_eot_threshold.is_some() || dg.eot_timeout_ms.is_some();
    if !listen_model.starts_with("flux-") {
        if knobs {
            return Err(invalid(
                "agent.deepgram.eot_threshold",
                listen_model,
                "the end-of-turn settings are Flux's: set agent.listen_model = \"flux-general-en\" (or remove them)",
            ));
        }
        return Ok(None);
    }
    let eot = dg.eot_threshold;
    if let Some(t) = eot.filter(|t| !(0.5..=0.9).contains(t)) {
        return Err(invalid(
            "agent.deepgram.eot_threshold",
            &t.to_string(),
            "use 0.5 to 0.9 (Deepgram's default 0.7)",
        ));
    }
    if let Some(t) = dg.eager_eot_threshold {
        if !(0.3..=0.9).contains(&t) || t > eot.unwrap_or(0.7) {
            return Err(invalid(
                "agent.deepgram.eager_eot_threshold",
                &t.to_string(),
                "use 0.3 to 0.9, at most eot_threshold",
            ));
        }
    }
    if let Some(ms) = dg.eot_timeout_ms.filter(|ms| !(500..=10_000).contains(ms)) {
        return Err(invalid(
            "agent.deepgram.eot_timeout_ms",
            &ms.to_string(),
            "use 500 to 10000 milliseconds",
        ));
    }
    Ok(Some(Flux {
        model: listen_model.to_owned(),
        eot_threshold: eot,
        eager_eot_threshold: dg.eager_eot_threshold,
        eot_timeout_ms: dg.eot_timeout_ms,
    }))
}

fn read_text(key: &'static str, path: &Path) -> Result<String, ConfigError> {
    read_text_bounded(path, MAX_PROMPT_FILE)
        .map_err(|e| invalid(key, &path.display().to_string(), &format!("cannot read it: {e}")))
}

fn function(f: &FunctionSection, default_after: Duration) -> Result<FunctionSpec, ConfigError> {
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
    let filler = filler(f, &kind, default_after)?;
    Ok(FunctionSpec { name: f.name.clone(), description: f.description.clone(), parameters, kind, filler })
}

/// What the caller hears while `f` runs: a phrase, the tone (`true`, the default) or
/// nothing (`false`); after `filler_after_ms`, else the agent's. Built-ins have none.
fn filler(f: &FunctionSection, kind: &ToolKind, default_after: Duration) -> Result<Filler, ConfigError> {
    if matches!(kind, ToolKind::Builtin(_)) {
        if f.filler.is_some() || f.filler_after_ms.is_some() {
            return Err(invalid(
                "agent.functions.filler",
                &f.name,
                "only http functions have a filler (a transfer announces itself, hangup and send_dtmf answer at once)",
            ));
        }
        return Ok(Filler::Off);
    }
    let after = match f.filler_after_ms {
        None => default_after,
        Some(ms) if ms <= MAX_FILLER_AFTER_MS => Duration::from_millis(ms),
        Some(ms) => {
            return Err(invalid(
                "agent.functions.filler_after_ms",
                &ms.to_string(),
                "use 0 to 10000 milliseconds",
            ))
        }
    };
    Ok(match &f.filler {
        None | Some(toml::Value::Boolean(true)) => Filler::Tone { after },
        Some(toml::Value::Boolean(false)) => Filler::Off,
        Some(toml::Value::String(text)) if !text.trim().is_empty() && text.chars().count() <= MAX_FILLER_PHRASE => {
            Filler::Phrase { after, text: text.trim().to_owned() }
        }
        Some(other) => {
            return Err(invalid(
                "agent.functions.filler",
                &other.to_string(),
                "use a short phrase (\"One moment, I'm opening the gate.\", at most 200 characters), true (the hold tone) or false (nothing)",
            ))
        }
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
    fn reconnect_keys_reach_both_providers_and_are_checked() {
        let (c, _) = choose(&AgentSection::default(), dg("key".into())).expect("ok");
        let AgentChoice::Deepgram(d) = c else { panic!("deepgram") };
        assert_eq!(d.reconnect, ReconnectPolicy { attempts: 3, window: Duration::from_millis(2000) });
        let a = section("reconnect_attempts = 5\nreconnect_window_ms = 4000\n");
        let (c, _) = choose(&a, dg("key".into())).expect("ok");
        let AgentChoice::Deepgram(d) = c else { panic!("deepgram") };
        assert_eq!(d.reconnect, ReconnectPolicy { attempts: 5, window: Duration::from_millis(4000) });
        let a = section("provider = \"openai\"\nreconnect_attempts = 0\n");
        let keys = EnvKeys { deepgram: None, openai: Some("sk-test".into()) };
        let (c, _) = choose(&a, keys).expect("ok");
        let AgentChoice::OpenAi(o) = c else { panic!("openai") };
        assert!(!o.reconnect.enabled(), "0 attempts: never reconnect");
        for (text, expect) in [
            ("reconnect_attempts = 11", "agent.reconnect_attempts"),
            ("reconnect_window_ms = 50", "use 100 to 30000"),
        ] {
            let e = choose(&section(text), dg("key".into())).expect_err(text).to_string();
            assert!(e.contains(expect) && !e.contains('\n'), "{text}: {e}");
        }
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

    #[test]
    fn fillers_come_from_each_function_and_the_agent_default() {
        let a = section(
            r#"
            filler_after_ms = 900
            [[functions]]
            name = "open_gate"
            description = "d"
            kind = "http"
            url = "http://127.0.0.1:8088/g"
            filler = "One moment, I'm opening the gate."
            [[functions]]
            name = "lookup"
            description = "d"
            kind = "http"
            url = "http://127.0.0.1:8088/l"
            [[functions]]
            name = "quick"
            description = "d"
            kind = "http"
            url = "http://127.0.0.1:8088/q"
            filler = false
            [[functions]]
            name = "tone"
            description = "d"
            kind = "http"
            url = "http://127.0.0.1:8088/t"
            filler = true
            filler_after_ms = 0
            [[functions]]
            name = "to_guard"
            description = "d"
            kind = "transfer"
            target = "9001"
            "#,
        );
        let (c, _) = choose(&a, dg("key".into())).expect("ok");
        let AgentChoice::Deepgram(d) = c else { panic!("deepgram") };
        let f: Vec<&Filler> = d.settings.functions.iter().map(|f| &f.filler).collect();
        let ms = Duration::from_millis;
        assert_eq!(
            f,
            [
                &Filler::Phrase { after: ms(900), text: "One moment, I'm opening the gate.".into() },
                &Filler::Tone { after: ms(900) },
                &Filler::Off,
                &Filler::Tone { after: ms(0) },
                &Filler::Off,
            ]
        );
        // Without the agent-wide key: 700 ms.
        let a = section(
            "[[functions]]\nname = \"x\"\ndescription = \"d\"\nkind = \"http\"\nurl = \"http://h/x\"\n",
        );
        let (c, _) = choose(&a, dg("key".into())).expect("ok");
        let AgentChoice::Deepgram(d) = c else { panic!("deepgram") };
        assert_eq!(d.settings.functions[0].filler, Filler::Tone { after: ms(700) });
        for (text, expect) in [
            ("[[functions]]\nname = \"t\"\ndescription = \"d\"\nkind = \"transfer\"\ntarget = \"1\"\nfiller = \"x\"", "only http functions"),
            ("[[functions]]\nname = \"x\"\ndescription = \"d\"\nkind = \"http\"\nurl = \"http://h/x\"\nfiller = 3", "agent.functions.filler"),
            ("[[functions]]\nname = \"x\"\ndescription = \"d\"\nkind = \"http\"\nurl = \"http://h/x\"\nfiller = \"\"", "a short phrase"),
            ("filler_after_ms = 20000", "agent.filler_after_ms"),
        ] {
            let e = choose(&section(text), dg("key".into())).expect_err(text).to_string();
            assert!(e.contains(expect) && !e.contains('\n'), "{text}: {e}");
        }
    }

    #[test]
    fn the_end_of_turn_key_flux_and_mip_opt_out() {
        let (c, _) = choose(&AgentSection::default(), dg("key".into())).expect("ok");
        let AgentChoice::Deepgram(d) = c else { panic!("deepgram") };
        assert!(d.settings.mip_opt_out, "opted out by default");
        assert_eq!((d.settings.flux.clone(), d.settings.end_of_turn_key), (None, None));

        let a = section(
            "end_of_turn_key = \"#\"\nlisten_model = \"flux-general-en\"\n[deepgram]\nmip_opt_out = false\nkeyterms = [\"Acme\"]\neot_threshold = 0.8\neager_eot_threshold = 0.6\neot_timeout_ms = 3000\n",
        );
        let (c, _) = choose(&a, dg("key".into())).expect("ok");
        let AgentChoice::Deepgram(d) = c else { panic!("deepgram") };
        assert!(!d.settings.mip_opt_out);
        assert_eq!(d.settings.end_of_turn_key, Some('#'));
        assert_eq!(d.settings.keyterms, ["Acme"]);
        assert_eq!(
            d.settings.flux,
            Some(Flux {
                model: "flux-general-en".into(),
                eot_threshold: Some(0.8),
                eager_eot_threshold: Some(0.6),
                eot_timeout_ms: Some(3000)
            })
        );
        // The key reaches OpenAI too.
        let keys = EnvKeys { deepgram: None, openai: Some("sk".into()) };
        let (c, _) = choose(&section("provider = \"openai\"\nend_of_turn_key = \"*\"\n"), keys).expect("ok");
        let AgentChoice::OpenAi(o) = c else { panic!("openai") };
        assert_eq!(o.end_of_turn_key, Some('*'));

        for (text, expect) in [
            ("end_of_turn_key = \"##\"", "agent.end_of_turn_key"),
            ("end_of_turn_key = \"x\"", "use one DTMF key"),
            ("[deepgram]\neot_threshold = 0.7", "set agent.listen_model = \"flux-general-en\""),
            ("listen_model = \"flux-general-en\"\n[deepgram]\neot_threshold = 0.95", "use 0.5 to 0.9"),
            ("listen_model = \"flux-general-en\"\n[deepgram]\neager_eot_threshold = 0.8\neot_threshold = 0.6", "at most eot_threshold"),
            ("listen_model = \"flux-general-en\"\n[deepgram]\neot_timeout_ms = 50", "agent.deepgram.eot_timeout_ms"),
            ("[deepgram]\nkeyterms = [\"\"]", "agent.deepgram.keyterms"),
            ("[deepgram]\nsmart_format = true", "smart_format"),
        ] {
            let e = match toml::from_str::<AgentSection>(text) {
                Err(e) => e.to_string(),
                Ok(a) => choose(&a, dg("key".into())).expect_err(text).to_string(),
            };
            assert!(e.contains(expect), "{text}: {e}");
        }
    }
}
