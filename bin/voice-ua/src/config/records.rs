//! The `[records]` section: where the call records database is, how long calls and
//! recordings are kept, and whether calls are recorded.

use super::error::{invalid, ConfigError};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsSection {
    pub path: Option<String>,
    pub retention_days: Option<u32>,
    pub recordings: Option<bool>,
    pub recordings_dir: Option<String>,
    pub recordings_retention_days: Option<u32>,
    /// A WAV (or raw μ-law) file played before the agent's first words (read by
    /// `super::prompt`).
    pub consent_prompt: Option<PathBuf>,
}

/// The call records settings, validated (`None` from [`records`]: records are off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSettings {
    /// The SQLite database (relative paths are relative to the working directory).
    pub path: PathBuf,
    /// Days calls and recordings are kept (0: forever), and where recordings go:
    /// `recordings_dir` is `Some` exactly when recordings are on.
    pub retention: voice_ua_records::Retention,
}

/// The directory systemd gives the service (`StateDirectory=voice-ua`).
pub const STATE_DIR: &str = "/var/lib/voice-ua";

/// Where the call records go when `records.path` is not set:
/// `$STATE_DIRECTORY/calls.db` under systemd (it sets STATE_DIRECTORY from the unit's
/// StateDirectory), else `/var/lib/voice-ua/calls.db` when that directory exists (the
/// package is installed: `voice-ua calls` run by an administrator finds the
/// service's records), else `./calls.db` (a developer's run).
pub fn default_records_path(state_directory: Option<&str>, state_dir_exists: bool) -> PathBuf {
    // STATE_DIRECTORY may list several directories separated by ':'; ours is the first.
    match state_directory.and_then(|s| s.split(':').next()).filter(|s| !s.is_empty()) {
        Some(dir) => Path::new(dir).join("calls.db"),
        None if state_dir_exists => Path::new(STATE_DIR).join("calls.db"),
        None => PathBuf::from("calls.db"),
    }
}

/// Validate the `[records]` section. `None`: records are off (`path = ""`).
pub fn settings(r: &RecordsSection) -> Result<Option<RecordSettings>, ConfigError> {
    settings_with(r, std::env::var("STATE_DIRECTORY").ok().as_deref(), Path::new(STATE_DIR).is_dir())
}

pub(super) fn settings_with(
    r: &RecordsSection,
    state_directory: Option<&str>,
    state_dir_exists: bool,
) -> Result<Option<RecordSettings>, ConfigError> {
    let path = match r.path.as_deref() {
        None => default_records_path(state_directory, state_dir_exists),
        Some("") => {
            if r.recordings == Some(true) {
                return Err(invalid(
                    "records.recordings",
                    "true",
                    "recordings belong to call records, which records.path = \"\" turns off; set records.path, or recordings = false",
                ));
            }
            return Ok(None);
        }
        Some(p) if p.ends_with('/') || Path::new(p).is_dir() => {
            return Err(invalid(
                "records.path",
                p,
                "give the database file, e.g. /var/lib/voice-ua/calls.db, not a directory",
            ))
        }
        Some(p) => PathBuf::from(p),
    };
    let retention_days = r.retention_days.unwrap_or(90);
    if retention_days > 36_500 {
        return Err(invalid(
            "records.retention_days",
            &retention_days.to_string(),
            "use 0 (keep forever) to 36500 days",
        ));
    }
    let recordings_retention_days = r.recordings_retention_days.unwrap_or(30);
    if recordings_retention_days > 36_500 {
        return Err(invalid(
            "records.recordings_retention_days",
            &recordings_retention_days.to_string(),
            "use 0 (keep forever) to 36500 days",
        ));
    }
    let recordings_dir = match (r.recordings.unwrap_or(false), r.recordings_dir.as_deref()) {
        (false, _) => None,
        (true, Some("")) => {
            return Err(invalid(
                "records.recordings_dir",
                "",
                "give a directory, or leave it out for <database directory>/recordings",
            ))
        }
        (true, Some(d)) => Some(PathBuf::from(d)),
        (true, None) => Some(path.parent().unwrap_or(Path::new("")).join("recordings")),
    };
    let retention = voice_ua_records::Retention {
        call_days: retention_days,
        recordings_dir,
        recording_days: recordings_retention_days,
    };
    Ok(Some(RecordSettings { path, retention }))
}

/// One line for `voice-ua check`.
pub fn describe(r: Option<&RecordSettings>) -> String {
    let Some(r) = r else { return "off (records.path = \"\")".into() };
    let keep = |days: u32| if days == 0 { "forever".to_string() } else { format!("{days} days") };
    let recordings = match &r.retention.recordings_dir {
        None => "recordings off".to_string(),
        Some(d) => format!("stereo recordings in {}, kept {}", d.display(), keep(r.retention.recording_days)),
    };
    format!("{}, kept {}; {recordings}", r.path.display(), keep(r.retention.call_days))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, FileConfig};

    fn records_with(
        file: &FileConfig,
        state_directory: Option<&str>,
        state_dir_exists: bool,
    ) -> Result<Option<RecordSettings>, ConfigError> {
        settings_with(&file.records, state_directory, state_dir_exists)
    }

    #[test]
    fn records_default_to_the_state_directory_and_can_be_turned_off() {
        let defaults = |state: Option<&str>, exists| {
            records_with(&FileConfig::default(), state, exists).expect("valid").expect("on")
        };
        let r = defaults(Some("/var/lib/voice-ua"), true);
        assert_eq!(r.path, PathBuf::from("/var/lib/voice-ua/calls.db"));
        assert_eq!(
            (r.retention.call_days, r.retention.recordings_dir.clone(), r.retention.recording_days),
            (90, None, 30)
        );
        assert_eq!(defaults(Some("/srv/state:/other"), false).path, PathBuf::from("/srv/state/calls.db"));
        assert_eq!(defaults(None, true).path, PathBuf::from("/var/lib/voice-ua/calls.db"));
        assert_eq!(defaults(None, false).path, PathBuf::from("calls.db"));
        assert_eq!(describe(Some(&defaults(None, false))), "calls.db, kept 90 days; recordings off");

        let cfg = parse("[records]\npath = \"/data/v/calls.db\"\nrecordings = true\nretention_days = 0\n")
            .expect("ok");
        let r = records_with(&cfg, None, false).expect("valid").expect("on");
        assert_eq!(
            r.retention.recordings_dir,
            Some(PathBuf::from("/data/v/recordings")),
            "next to the database"
        );
        assert_eq!(r.retention.call_days, 0);
        assert_eq!(
            describe(Some(&r)),
            "/data/v/calls.db, kept forever; stereo recordings in /data/v/recordings, kept 30 days"
        );
        let cfg =
            parse("[records]\nrecordings = true\nrecordings_dir = \"/rec\"\nrecordings_retention_days = 7\n")
                .expect("ok");
        let r = records_with(&cfg, None, false).expect("valid").expect("on");
        assert_eq!(
            (r.retention.recordings_dir, r.retention.recording_days),
            (Some(PathBuf::from("/rec")), 7)
        );

        let off = parse("[records]\npath = \"\"\n").expect("ok");
        assert_eq!(records_with(&off, Some("/var/lib/voice-ua"), true).expect("valid"), None);
        assert_eq!(describe(None), "off (records.path = \"\")");
    }

    #[test]
    fn records_mistakes_are_one_clear_line() {
        for (text, start) in [
            (
                "path = \"\"\nrecordings = true",
                "records.recordings = \"true\" is not valid: recordings belong",
            ),
            ("retention_days = 40000", "records.retention_days = \"40000\""),
            ("recordings_retention_days = 99999", "records.recordings_retention_days = \"99999\""),
            ("recordings = true\nrecordings_dir = \"\"", "records.recordings_dir = \"\""),
            (
                "path = \"/var/lib/voice-ua/\"",
                "records.path = \"/var/lib/voice-ua/\" is not valid: give the database file",
            ),
        ] {
            let cfg = parse(&format!("[records]\n{text}\n")).expect("parses");
            let e = records_with(&cfg, None, false).expect_err(text);
            assert!(e.to_string().starts_with(start), "{e}");
            assert!(!e.to_string().contains('\n'));
        }
        let (line, msg) = parse("[records]\nretention = 5\n").expect_err("unknown key");
        assert!(line == 2 && msg.contains("retention"), "{line} {msg}");
        assert!(parse("[records]\nretention_days = -1\n").is_err(), "negative days refused");
    }
}
