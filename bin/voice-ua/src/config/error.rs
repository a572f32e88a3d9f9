//! `ConfigError`: every mistake in the configuration as one line naming the key or
//! file and the fix, and [`one_line`], which keeps values from the file on that line.

use std::path::PathBuf;

/// Every message is one line: paths and values from the file are shown with their
/// control characters escaped (see [`one_line`]).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", one_line(&.path.display().to_string()))]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {}, line {line}: {}", one_line(&.path.display().to_string()), one_line(.message))]
    Parse { path: PathBuf, line: usize, message: String },
    #[error("{key} = \"{}\" is not valid: {}", one_line(.value), one_line(.why))]
    Invalid { key: &'static str, value: String, why: String },
    #[error("no {what}: {fix}")]
    Missing { what: &'static str, fix: &'static str },
    #[error(
        "cannot read the SIP password file {}: {source}; check sip.password_file and its permissions",
        one_line(&.path.display().to_string())
    )]
    PasswordFile { path: PathBuf, source: std::io::Error },
    #[error(
        "cannot read the {what} file {}: {source}; check the path and its permissions",
        one_line(&.path.display().to_string())
    )]
    SecretFile { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error(
        "log filter \"{}\" is not valid: {}; use RUST_LOG syntax, e.g. info",
        one_line(.directives),
        one_line(.why)
    )]
    LogFilter { directives: String, why: String },
}

/// At most this many characters of a value in an error message.
pub(crate) const SHOWN_CHARS: usize = 120;

/// `s` fit for one line of an error message: control characters (a newline in a
/// value, an escape sequence) escaped, at most [`SHOWN_CHARS`] characters (cut on a
/// character boundary, marked with `…`).
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(SHOWN_CHARS * 4));
    for (i, c) in s.chars().enumerate() {
        if i == SHOWN_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The error for `key = value` that is not valid, and why.
pub fn invalid(key: &'static str, value: &str, why: &str) -> ConfigError {
    ConfigError::Invalid { key, value: value.to_string(), why: why.to_string() }
}
