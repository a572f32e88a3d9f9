//! The `[log]` section and the `--log-format` / `--log` flags: the log format and the
//! filter in effect, checked before anything starts (so `voice-ua check` finds a bad
//! value too), and the line `voice-ua check` prints for them.

use super::error::{invalid, ConfigError};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    pub format: Option<String>,
    pub filter: Option<String>,
    /// Log what the caller and the agent say (default false: the record keeps it).
    pub transcripts: Option<bool>,
}

/// The log format on stderr (`--log-format`, else `log.format`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// The format in effect: the flag, else `log.format`, else human.
pub fn format(l: &LogSection, flag: Option<LogFormat>) -> Result<LogFormat, ConfigError> {
    match flag {
        Some(f) => Ok(f),
        None => match l.format.as_deref() {
            None | Some("human") => Ok(LogFormat::Human),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => Err(invalid("log.format", other, "use human or json")),
        },
    }
}

/// The log filter in effect: RUST_LOG, else `--log` / `log.filter`, else info; rsipstack
/// logs every packet at info, so it stays at warn unless named.
pub fn directives(filter: Option<String>) -> String {
    let default = filter.unwrap_or_else(|| "info".into());
    let directives = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()).unwrap_or(default);
    if directives.contains("rsipstack") {
        directives
    } else {
        format!("{directives},rsipstack=warn")
    }
}

/// The filter the [`directives`] describe, or what is wrong with them.
pub fn filter(directives: &str) -> Result<tracing_subscriber::EnvFilter, ConfigError> {
    tracing_subscriber::EnvFilter::try_new(directives)
        .map_err(|e| ConfigError::LogFilter { directives: directives.to_string(), why: e.to_string() })
}

/// One line for `voice-ua check`.
pub fn describe(format: LogFormat, directives: &str) -> String {
    format!("{format:?}, filter \"{directives}\"")
}
