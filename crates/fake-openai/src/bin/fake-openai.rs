//! `fake-openai`: the fake OpenAI Realtime server ([`FakeOpenAi`]) as a standalone
//! process, for benchmarks (`scripts/bench-calls.py --agent openai`) and manual runs.
//! Development only: it lives in the test-only crate `voice-ua-fake-openai`.
//!
//! ```text
//! cargo build --release -p voice-ua-fake-openai --bin fake-openai
//! OPENAI_API_KEY=bench-key target/release/fake-openai [--tls] [--port 8765] [--echo] ...
//! ```
//!
//! It listens on 127.0.0.1 (`--port`, else a free port) and prints its URL as the first
//! line of stdout (`ws://127.0.0.1:PORT/v1/realtime`, or `wss://` with `--tls`, followed
//! by a second line holding the path of the test CA to give voice-ua as `agent.ca_file`).
//! Every session, once voice-ua's `session.update` is in:
//!
//! 1. the greeting: when voice-ua asks for it (`response.create`; configure a greeting),
//!    `--greeting-ms` of 440 Hz tone;
//! 2. then either `--turns` times: wait for `--listen-frames` 20 ms frames of caller audio
//!    (250 is 5 s), the caller's turn (speech started/stopped, a transcript), and a reply
//!    of `--reply-ms` of tone, sent at once in `--delta-ms` deltas the way OpenAI runs
//!    ahead of real time;
//! 3. or, with `--echo`, echo-like replies: each caller utterance (found by level) is
//!    answered with the caller's own audio, like the echo agent.
//!
//! With the defaults a turn takes 5 s and the script lasts about an hour. The reply
//! (3 s) ends before the next turn, so no barge-in happens.
//!
//! Each session that ends is logged on stderr (`session ...: end=..., errors=[...]`); on
//! SIGTERM or SIGINT a summary line follows and the process exits with status 0.

use std::process::ExitCode;

use voice_ua_fake_openai::{FakeConfig, FakeOpenAi, Record, Step};
use voice_ua_fake_server::{number, Load, LOAD_USAGE};

const USAGE: &str = "\
usage: fake-openai [--key KEY] [--tls] [--port PORT] [--greeting-ms MS] [--listen-frames N]
                   [--reply-ms MS] [--turns N] [--echo] [--delta-ms MS] [--threads N]

";

const OWN_USAGE: &str = "  --port PORT          listen on this port (default: a free one)
  --echo               instead of the turns, answer each caller utterance with itself
  --delta-ms MS        audio per response.output_audio.delta (default 100)

The greeting plays when voice-ua asks for it (configure a greeting); --greeting-ms 0: none.
Prints its URL on stdout's first line; runs until SIGTERM or SIGINT.";

#[derive(Debug)]
struct Options {
    load: Load,
    port: u16,
    echo: bool,
    delta_ms: u32,
}

fn parse_args(args: &[String], env_key: Option<String>) -> Result<Options, String> {
    let (mut port, mut echo, mut delta_ms) = (0, false, 100);
    let load = Load::parse(args, "OPENAI_API_KEY", env_key, |flag, value| {
        match flag {
            "--echo" => echo = true,
            "--port" => port = number(flag, &value()?)?,
            "--delta-ms" => delta_ms = number::<u32>(flag, &value()?)?.max(1),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(Options { load, port, echo, delta_ms })
}

fn usage() -> String {
    format!("{USAGE}{}\n{OWN_USAGE}", LOAD_USAGE.replace("KEY_ENV", "OPENAI_API_KEY"))
}

/// The greeting when asked for, then `turns` × (listen, caller turn, reply), unless echo.
fn script(o: &Options) -> Vec<Step> {
    let (load, mut steps) = (&o.load, Vec::new());
    if load.greeting_ms > 0 {
        steps.push(Step::AwaitResponseCreate);
        steps.push(Step::speak("Hello, this is the benchmark agent. How can I help?", load.greeting_ms));
    }
    if o.echo {
        return steps;
    }
    let o = load;
    for turn in 1..=o.turns {
        steps.push(Step::WaitAudio { frames: o.listen_frames, min_dbfs: None });
        steps.push(Step::user_says(&format!("caller turn {turn}")));
        steps.push(Step::speak(&format!("reply {turn}"), o.reply_ms));
    }
    steps
}

fn describe(n: usize, r: &Record) -> String {
    let refused = r.refused.map(|code| format!(", refused={code}")).unwrap_or_default();
    let violations =
        if r.violations.is_empty() { String::new() } else { format!(", violations={:?}", r.violations) };
    format!(
        "session {n}: end={:?}, appends_in={}, audio_bytes_in={}, truncates={}, errors={:?}{refused}{violations}",
        r.end,
        r.appends,
        r.audio_bytes,
        r.truncates.len(),
        r.errors_sent
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = parse_args(&args, std::env::var("OPENAI_API_KEY").ok());
    let threads = parsed.as_ref().map_or(1, |o| o.load.threads);
    voice_ua_fake_server::run_main("fake-openai", &usage(), parsed, threads, |o| Box::pin(run(o)))
}

async fn run(o: Options) -> Result<(), String> {
    let load = &o.load;
    let config = FakeConfig::new(&load.key)
        .tls(load.tls)
        .port(o.port)
        .echo(o.echo)
        .delta_ms(o.delta_ms)
        .script(script(&o));
    let fake = FakeOpenAi::start(config).await.map_err(|e| e.to_string())?;
    let replies = if o.echo {
        "echo replies".to_owned()
    } else {
        format!(
            "{} turns of ({} caller frames, caller turn, reply {} ms)",
            load.turns, load.listen_frames, load.reply_ms
        )
    };
    eprintln!(
        "fake-openai: listening on {}; greeting {} ms when asked, then {replies}",
        fake.url(),
        load.greeting_ms
    );
    let records =
        voice_ua_fake_server::serve_until_signal(&fake.url(), fake.ca_file(), || fake.records(), describe)
            .await?;
    let failed = records.iter().filter(|r| !r.errors_sent.is_empty() || r.refused.is_some()).count();
    eprintln!("fake-openai: stopping; {} sessions ended ({failed} with an error or refused)", records.len());
    drop(fake); // removes the CA file
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn key_from_flag_or_env_and_script_shape() {
        let o = parse_args(&args(&["--turns", "2", "--reply-ms", "500"]), Some(" k ".into())).expect("valid");
        assert_eq!(o.load.key, "k");
        let steps = script(&o);
        assert_eq!(steps.len(), 8);
        assert!(matches!(steps[0], Step::AwaitResponseCreate));
        assert!(matches!(steps[5], Step::WaitAudio { frames: 250, min_dbfs: None }));
        assert!(matches!(&steps[7], Step::Speak { ms: 500, finish: true, .. }));
        let o =
            parse_args(&args(&["--key", "flag", "--tls", "--echo", "--port", "8765"]), Some("env".into()))
                .expect("valid");
        assert_eq!((o.load.key.as_str(), o.load.tls, o.echo, o.port), ("flag", true, true, 8765));
        assert_eq!(script(&o).len(), 2, "echo: only the greeting is scripted");
        let o = parse_args(&args(&["--greeting-ms", "0", "--echo"]), Some("k".into())).expect("valid");
        assert!(script(&o).is_empty());
        assert!(parse_args(&args(&[]), None).is_err());
        assert!(parse_args(&args(&["--turns"]), Some("k".into())).is_err());
        assert!(parse_args(&args(&["--port", "70000"]), Some("k".into())).is_err());
        assert!(parse_args(&args(&["--bogus", "1"]), Some("k".into())).is_err());
    }
}
