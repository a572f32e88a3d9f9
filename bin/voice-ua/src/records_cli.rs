//! `voice-ua calls`: the newest call records, as a table or as JSON. Opens the
//! database read-only, so it works while the service runs.

use crate::config;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use voice_ua_records::{time, CallRecord, RecordStore};

#[derive(clap::Args, Debug)]
pub struct CallsArgs {
    /// The call records database [default: records.path from the configuration].
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// How many calls to show, newest first.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    last: u32,
    /// Print one JSON array with the full records (transcripts, tool calls, each turn's
    /// latency and the agent's stages, media figures, the agent's usage).
    #[arg(long)]
    json: bool,
}

pub fn run(args: &CallsArgs, config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let path = match &args.db {
        Some(p) => p.clone(),
        None => {
            let (source, file) = config::load(config_file)?;
            match config::records(&file)? {
                Some(r) => r.path,
                None => anyhow::bail!(
                    "call records are off (records.path = \"\" in {}); give --db PATH to read a database",
                    source.map(|p| p.display().to_string()).unwrap_or_else(|| "the configuration".into())
                ),
            }
        }
    };
    let store = RecordStore::open_read_only(&path)?;
    let calls = store.last(args.last as usize)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&calls)?);
    } else if calls.is_empty() {
        println!("no calls recorded yet in {}", path.display());
    } else {
        print!("{}", table(&calls));
    }
    Ok(ExitCode::SUCCESS)
}

const WIDTHS: [usize; 9] = [19, 8, 28, 15, 5, 8, 24, 8, 8];

/// Right-aligned columns: duration, lines, turn latency, tokens, cost.
const NUMBERS: [usize; 5] = [1, 4, 5, 7, 8];

/// One line per call: start (UTC), duration, caller, outcome, transcript lines, the
/// median turn latency (the caller's end of speech to the reply's first packet), tool
/// calls, the agent's tokens (input and output) and cost, record id. `-` where there is
/// nothing to show.
pub fn table(calls: &[CallRecord]) -> String {
    let mut out = String::new();
    row(
        &mut out,
        [
            "STARTED (UTC)",
            "DURATION",
            "CALLER",
            "OUTCOME",
            "LINES",
            "TURN P50",
            "TOOLS",
            "TOKENS",
            "COST",
            "ID",
        ]
        .map(String::from),
    );
    for c in calls {
        let caller = match &c.caller_display {
            Some(d) if !d.is_empty() => format!("{d} <{}>", c.caller),
            _ => c.caller.clone(),
        };
        let tools = if c.tool_calls.is_empty() {
            "-".to_string()
        } else {
            c.tool_calls.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(",")
        };
        row(
            &mut out,
            [
                time::utc_seconds(c.started),
                c.duration().map(duration).unwrap_or_else(|| "-".into()),
                caller,
                c.outcome.to_string(),
                c.transcript.len().to_string(),
                c.median_turn_latency_ms().map(|ms| format!("{ms} ms")).unwrap_or_else(|| "-".into()),
                tools,
                c.usage.map(|u| u.total_tokens().to_string()).unwrap_or_else(|| "-".into()),
                c.usage.and_then(|u| u.cost()).unwrap_or_else(|| "-".into()),
                c.id.clone(),
            ],
        );
    }
    out
}

fn row(out: &mut String, cells: [String; 10]) {
    for (i, cell) in cells.iter().enumerate() {
        let cell = clean(cell);
        match WIDTHS.get(i) {
            // Numbers to the right, text to the left; the last column as it is.
            Some(&w) if NUMBERS.contains(&i) => {
                let _ = write!(out, "{:>w$}  ", fit(&cell, w));
            }
            Some(&w) => {
                let _ = write!(out, "{:<w$}  ", fit(&cell, w));
            }
            None => out.push_str(&cell),
        }
    }
    // No trailing blanks when the id is empty.
    out.truncate(out.trim_end().len());
    out.push('\n');
}

/// Control characters (a hostile display name) must not reach the terminal.
fn clean(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// `0:42`, `12:05`, `1:02:03`.
fn duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn the_table_has_one_aligned_line_per_call() {
        let t = UNIX_EPOCH + Duration::from_secs(1_735_689_599);
        let mut a = CallRecord::new("id-a", "x", "1001", "9000", t);
        a.caller_display = Some("Front\nGate".into());
        a.ended = Some(t + Duration::from_secs(3723));
        a.outcome = voice_ua_records::CallOutcome::CallerHangup;
        a.usage = Some(voice_ua_records::AgentUsage {
            input_audio_tokens: 1100,
            input_text_tokens: 2500,
            cached_input_tokens: 1152,
            output_audio_tokens: 630,
            output_text_tokens: 105,
            cost_micro_usd: 12_300,
        });
        a.turns = [820, 1310, 400]
            .into_iter()
            .enumerate()
            .map(|(i, latency_ms)| voice_ua_records::TurnFigures {
                index: i as u32,
                at: t + Duration::from_secs(10 * i as u64),
                latency_ms,
                endpointing_ms: None,
                transcribe_ms: None,
                think_ms: None,
                speak_ms: None,
                agent_total_ms: None,
            })
            .collect();
        let b =
            CallRecord::new("id-b", "y", "a-very-long-caller-name-that-will-not-fit@example.com", "9000", t);
        let out = table(&[a, b]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].contains("TOOLS                       TOKENS      COST  ID"), "{out}");
        assert!(lines[0].contains("OUTCOME          LINES  TURN P50  TOOLS"), "{out}");
        assert!(lines[1].contains("caller_hangup        0    820 ms  -  "), "the median turn: {out}");
        assert!(lines[2].contains("in_progress          0         -  -  "), "no turns: {out}");
        assert!(lines[1].ends_with("    4335   $0.0123  id-a"), "tokens and cost, to the right: {out}");
        assert!(lines[2].ends_with("       -         -  id-b"), "no usage: {out}");
        assert!(lines[0].starts_with("STARTED (UTC)        DURATION  CALLER"), "{out}");
        assert!(
            lines[1].starts_with("2024-12-31 23:59:59   1:02:03  Front Gate <1001>"),
            "control characters cleaned: {out}"
        );
        assert!(lines[1].contains("caller_hangup") && lines[1].ends_with("id-a"), "{out}");
        assert!(lines[2].contains("        -  a-very-long-caller-name-tha…  in_progress"), "{out}");
        let id_col = lines[0].find("ID").expect("ID column");
        assert_eq!(lines[1].find("id-a"), Some(id_col), "aligned: {out}");
    }

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(duration(Duration::from_secs(42)), "0:42");
        assert_eq!(duration(Duration::from_secs(725)), "12:05");
        assert_eq!(duration(Duration::from_secs(3723)), "1:02:03");
    }
}
