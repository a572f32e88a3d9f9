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

const USAGE: &str = "\
usage: fake-openai [--key KEY] [--tls] [--port PORT] [--greeting-ms MS] [--listen-frames N]
                   [--reply-ms MS] [--turns N] [--echo] [--delta-ms MS] [--threads N]

  --key KEY            the only API key accepted (default: $OPENAI_API_KEY)
  --tls                serve wss:// with a generated CA (its path is stdout's second line)
  --port PORT          listen on this port (default: a free one)
  --greeting-ms MS     greeting length, played when voice-ua asks for it (default 2000; 0: none)
  --listen-frames N    caller frames to wait for before each turn (default 250 = 5 s)
  --reply-ms MS        length of each spoken reply (default 3000)
  --turns N            caller turns + replies per session (default 720, about an hour)
  --echo               instead of the turns, answer each caller utterance with itself
  --delta-ms MS        audio per response.output_audio.delta (default 100)
  --threads N          tokio worker threads (default 1)

Prints its URL on stdout's first line; runs until SIGTERM or SIGINT.";

#[derive(Debug)]
struct Options {
    key: String,
    tls: bool,
    port: u16,
    greeting_ms: u32,
    listen_frames: usize,
    reply_ms: u32,
    turns: usize,
    echo: bool,
    delta_ms: u32,
    threads: usize,
}

fn parse_args(args: &[String], env_key: Option<String>) -> Result<Options, String> {
    let mut o = Options {
        key: env_key.unwrap_or_default(),
        tls: false,
        port: 0,
        greeting_ms: 2000,
        listen_frames: 250,
        reply_ms: 3000,
        turns: 720,
        echo: false,
        delta_ms: 100,
        threads: 1,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--tls" => o.tls = true,
            "--echo" => o.echo = true,
            "-h" | "--help" => return Err(String::new()),
            _ => {
                let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
                let number = || -> Result<u32, String> {
                    value.parse::<u32>().map_err(|_| format!("{flag}: {value:?} is not a whole number"))
                };
                match flag.as_str() {
                    "--key" => o.key = value.clone(),
                    "--port" => {
                        o.port =
                            u16::try_from(number()?).map_err(|_| format!("--port {value} is out of range"))?
                    }
                    "--greeting-ms" => o.greeting_ms = number()?,
                    "--listen-frames" => o.listen_frames = number()? as usize,
                    "--reply-ms" => o.reply_ms = number()?,
                    "--turns" => o.turns = number()? as usize,
                    "--delta-ms" => o.delta_ms = number()?.max(1),
                    "--threads" => o.threads = (number()? as usize).max(1),
                    other => return Err(format!("unknown argument {other:?}")),
                }
            }
        }
    }
    if o.key.trim().is_empty() {
        return Err("no key: pass --key KEY or set OPENAI_API_KEY".into());
    }
    o.key = o.key.trim().to_string();
    Ok(o)
}

/// The greeting when asked for, then `turns` × (listen, caller turn, reply), unless echo.
fn script(o: &Options) -> Vec<Step> {
    let mut steps = Vec::new();
    if o.greeting_ms > 0 {
        steps.push(Step::AwaitResponseCreate);
        steps.push(Step::speak("Hello, this is the benchmark agent. How can I help?", o.greeting_ms));
    }
    if o.echo {
        return steps;
    }
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
    let options = match parse_args(&args, std::env::var("OPENAI_API_KEY").ok()) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("fake-openai: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = voice_ua_fake_server::runtime(options.threads).and_then(|rt| rt.block_on(run(options)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake-openai: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(o: Options) -> Result<(), String> {
    let config =
        FakeConfig::new(&o.key).tls(o.tls).port(o.port).echo(o.echo).delta_ms(o.delta_ms).script(script(&o));
    let fake = FakeOpenAi::start(config).await.map_err(|e| e.to_string())?;
    let replies = if o.echo {
        "echo replies".to_owned()
    } else {
        format!(
            "{} turns of ({} caller frames, caller turn, reply {} ms)",
            o.turns, o.listen_frames, o.reply_ms
        )
    };
    eprintln!(
        "fake-openai: listening on {}; greeting {} ms when asked, then {replies}",
        fake.url(),
        o.greeting_ms
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
        assert_eq!(o.key, "k");
        let steps = script(&o);
        assert_eq!(steps.len(), 8);
        assert!(matches!(steps[0], Step::AwaitResponseCreate));
        assert!(matches!(steps[5], Step::WaitAudio { frames: 250, min_dbfs: None }));
        assert!(matches!(&steps[7], Step::Speak { ms: 500, finish: true, .. }));
        let o =
            parse_args(&args(&["--key", "flag", "--tls", "--echo", "--port", "8765"]), Some("env".into()))
                .expect("valid");
        assert_eq!((o.key.as_str(), o.tls, o.echo, o.port), ("flag", true, true, 8765));
        assert_eq!(script(&o).len(), 2, "echo: only the greeting is scripted");
        let o = parse_args(&args(&["--greeting-ms", "0", "--echo"]), Some("k".into())).expect("valid");
        assert!(script(&o).is_empty());
        assert!(parse_args(&args(&[]), None).is_err());
        assert!(parse_args(&args(&["--turns"]), Some("k".into())).is_err());
        assert!(parse_args(&args(&["--port", "70000"]), Some("k".into())).is_err());
        assert!(parse_args(&args(&["--bogus", "1"]), Some("k".into())).is_err());
    }
}
