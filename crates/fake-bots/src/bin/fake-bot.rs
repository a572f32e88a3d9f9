//! `fake-bot`: a fake WebSocket voice bot ([`FakeBot`]) as a process, for benchmarks
//! (`scripts/bench-calls.py`) and manual runs. Development only.
//!
//! ```text
//! cargo build --release -p voice-ua-fake-bots --bin fake-bot
//! target/release/fake-bot --dialect twilio [--port 8765] [--tls] [--greeting-ms 2000] [--echo] ...
//! ```
//!
//! It listens on 127.0.0.1 and prints its URL as the first line of stdout (with `--tls`,
//! a second line holds the test CA's path, for voice-ua's `agent.websocket.ca_file`).
//! Every session: the greeting (`--greeting-ms` of tone; for Twilio followed by a mark),
//! then `--turns` times: wait for `--listen-frames` caller frames (250 = 5 s), then a reply:
//! `--reply-ms` of tone, or with `--echo` the caller's own audio of that turn.
//! Each session that ends is logged on stderr; SIGTERM or SIGINT stops it (status 0).

use std::process::ExitCode;

use voice_ua_fake_bots::{BotConfig, BotDialect, FakeBot, Record, Step};

const USAGE: &str = "\
usage: fake-bot --dialect twilio|asp [--port N] [--tls] [--greeting-ms MS] [--listen-frames N]
                [--reply-ms MS] [--turns N] [--echo] [--threads N]

  --dialect D          twilio (Twilio Media Streams) or asp (theo-ai-voice-agent's ASP)
  --port N             port on 127.0.0.1 (default: a free one)
  --tls                serve wss:// with a generated CA (its path is stdout's second line)
  --greeting-ms MS     greeting length (default 2000)
  --listen-frames N    caller frames to wait for before each reply (default 250 = 5 s)
  --reply-ms MS        length of each reply (default 3000)
  --turns N            replies per session (default 720, about an hour)
  --echo               reply with the caller's own audio of the turn instead of a tone
  --threads N          tokio worker threads (default 1)

Prints its URL on stdout's first line; runs until SIGTERM or SIGINT.";

#[derive(Debug)]
struct Options {
    dialect: BotDialect,
    port: u16,
    tls: bool,
    greeting_ms: u32,
    listen_frames: usize,
    reply_ms: u32,
    turns: usize,
    echo: bool,
    threads: usize,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        dialect: BotDialect::Twilio,
        port: 0,
        tls: false,
        greeting_ms: 2000,
        listen_frames: 250,
        reply_ms: 3000,
        turns: 720,
        echo: false,
        threads: 1,
    };
    let mut dialect = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--tls" => o.tls = true,
            "--echo" => o.echo = true,
            "-h" | "--help" => return Err(String::new()),
            _ => {
                let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
                let number = || -> Result<u64, String> {
                    value.parse::<u64>().map_err(|_| format!("{flag}: {value:?} is not a whole number"))
                };
                let small = |n: u64| u32::try_from(n).map_err(|e| format!("{flag}: {e}"));
                match flag.as_str() {
                    "--dialect" => {
                        dialect = Some(match value.as_str() {
                            "twilio" => BotDialect::Twilio,
                            "asp" => BotDialect::Asp,
                            other => return Err(format!("--dialect {other:?}: use twilio or asp")),
                        })
                    }
                    "--port" => o.port = u16::try_from(number()?).map_err(|e| format!("--port: {e}"))?,
                    "--greeting-ms" => o.greeting_ms = small(number()?)?,
                    "--listen-frames" => o.listen_frames = number()? as usize,
                    "--reply-ms" => o.reply_ms = small(number()?)?,
                    "--turns" => o.turns = number()? as usize,
                    "--threads" => o.threads = (number()? as usize).max(1),
                    other => return Err(format!("unknown argument {other:?}")),
                }
            }
        }
    }
    o.dialect = dialect.ok_or("--dialect twilio|asp is required")?;
    Ok(o)
}

/// Greeting, then `turns` × (listen, reply).
fn script(o: &Options) -> Vec<Step> {
    let mut steps = vec![Step::speak("Hello, this is the benchmark bot. How can I help?", o.greeting_ms)];
    if o.dialect == BotDialect::Twilio {
        steps.push(Step::mark("greeting"));
    }
    for turn in 1..=o.turns {
        steps.push(Step::WaitAudio { frames: o.listen_frames, min_dbfs: None });
        steps.push(if o.echo { Step::EchoBack } else { Step::speak(&format!("reply {turn}"), o.reply_ms) });
    }
    steps
}

fn describe(n: usize, r: &Record) -> String {
    let violations =
        if r.violations.is_empty() { String::new() } else { format!(", violations={:?}", r.violations) };
    format!(
        "session {n}: end={:?}, audio_frames_in={}, marks_echoed={}, audio_ends={}{violations}",
        r.end,
        r.audio_frames,
        r.marks_echoed.len(),
        r.audio_ends
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = parse_args(&args);
    let threads = parsed.as_ref().map_or(1, |o| o.threads);
    voice_ua_fake_server::run_main("fake-bot", USAGE, parsed, threads, |o| Box::pin(run(o)))
}

async fn run(o: Options) -> Result<(), String> {
    let config = BotConfig::new(o.dialect).tls(o.tls).script(script(&o));
    let bot = FakeBot::start_on(config, o.port).await.map_err(|e| e.to_string())?;
    eprintln!("fake-bot: {:?} bot listening on {}", o.dialect, bot.url());
    let records =
        voice_ua_fake_server::serve_until_signal(&bot.url(), bot.ca_file(), || bot.records(), describe)
            .await?;
    eprintln!("fake-bot: stopping; {} sessions ended", records.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_and_script() {
        let o = parse_args(&args(&["--dialect", "asp", "--turns", "2", "--echo"])).expect("valid");
        assert_eq!((o.dialect, o.echo), (BotDialect::Asp, true));
        let steps = script(&o);
        assert_eq!(steps.len(), 5);
        assert!(matches!(steps[4], Step::EchoBack));
        let o = parse_args(&args(&["--dialect", "twilio", "--turns", "1"])).expect("valid");
        assert!(matches!(&script(&o)[1], Step::Mark(n) if n == "greeting"));
        assert!(parse_args(&args(&[])).is_err(), "the dialect is required");
        assert!(parse_args(&args(&["--dialect", "sip"])).is_err());
        assert!(parse_args(&args(&["--dialect", "asp", "--bogus", "1"])).is_err());
    }
}
