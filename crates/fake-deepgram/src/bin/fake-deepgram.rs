//! `fake-deepgram`: the fake Deepgram Voice Agent server ([`FakeDeepgram`]) as a
//! standalone process, for benchmarks (`scripts/bench-calls.py --agent deepgram`) and
//! manual runs. Development only: it lives in the test-only crate `voice-ua-fake-deepgram`.
//!
//! ```text
//! cargo build --release -p voice-ua-fake-deepgram --bin fake-deepgram
//! DEEPGRAM_API_KEY=bench-key target/release/fake-deepgram [--tls] [--reply-ms 3000] ...
//! ```
//!
//! It listens on 127.0.0.1 (a free port) and prints its URL as the first line of stdout
//! (`ws://127.0.0.1:PORT/v1/agent/converse`, or `wss://` with `--tls`, followed by a
//! second line holding the path of the test CA to give voice-ua as `agent.ca_file`).
//! Every session plays a conversation meant for load, after `SettingsApplied`:
//!
//! 1. the greeting: `--greeting-ms` of tone, then `AgentAudioDone`;
//! 2. `--turns` times: wait for `--listen-frames` client audio frames (voice-ua sends one
//!    every 20 ms, so 250 is 5 s), `UserStartedSpeaking` + the user's `ConversationText`,
//!    then a reply of `--reply-ms` of tone (sent at once, 100 ms per binary frame, the
//!    way Deepgram's TTS runs ahead of real time), then `AgentAudioDone`.
//!
//! With the defaults a turn takes 5 s and the script lasts about an hour. The reply
//! (3 s) ends before the next `UserStartedSpeaking`, so no barge-in flush happens.
//!
//! **Idle timeout.** The fake closes a session with `CLIENT_MESSAGE_TIMEOUT` when the
//! client sends nothing for `--idle-timeout` seconds (default 60; the library's default
//! is 10 s, like Deepgram's). voice-ua sends caller audio every 20 ms and a `KeepAlive`
//! after 5 s without a frame, so neither fires in a normal call; the wider default
//! keeps a saturated benchmark machine from ending sessions that real Deepgram would
//! keep. A fired timeout shows in the session's line on stderr.
//!
//! Each session that ends is logged on stderr (`session ...: end=..., errors=[...]`); on
//! SIGTERM or SIGINT a summary line follows and the process exits with status 0.

use std::process::ExitCode;
use std::time::Duration;

use voice_ua_fake_deepgram::{FakeConfig, FakeDeepgram, Record, Step};
use voice_ua_fake_server::{number, Load, LOAD_USAGE};

const ENDING: &str = "Prints its URL on stdout's first line; runs until SIGTERM or SIGINT.";

fn usage_lines() -> String {
    LOAD_USAGE.replace("KEY_ENV", "DEEPGRAM_API_KEY")
}

const USAGE: &str = "\
usage: fake-deepgram [--key KEY] [--tls] [--greeting-ms MS] [--listen-frames N] [--reply-ms MS]
                     [--turns N] [--idle-timeout SECS] [--threads N]
";

const IDLE_USAGE: &str =
    "  --idle-timeout SECS  close a session the client leaves silent this long (default 60)";

#[derive(Debug)]
struct Options {
    load: Load,
    idle_timeout: Duration,
}

fn parse_args(args: &[String], env_key: Option<String>) -> Result<Options, String> {
    let mut idle_timeout = Duration::from_secs(60);
    let load = Load::parse(args, "DEEPGRAM_API_KEY", env_key, |flag, value| {
        if flag != "--idle-timeout" {
            return Ok(false);
        }
        idle_timeout = Duration::from_secs(number::<u64>(flag, &value()?)?.max(1));
        Ok(true)
    })?;
    Ok(Options { load, idle_timeout })
}

/// Greeting, then `turns` × (listen, user turn, reply).
fn script(o: &Load) -> Vec<Step> {
    let mut steps = Vec::with_capacity(1 + 3 * o.turns);
    steps.push(Step::speak("Hello, this is the benchmark agent. How can I help?", o.greeting_ms, true));
    for turn in 1..=o.turns {
        steps.push(Step::WaitAudio { frames: o.listen_frames, min_dbfs: None });
        steps.push(Step::user_says(&format!("caller turn {turn}")));
        steps.push(Step::speak(&format!("reply {turn}"), o.reply_ms, true));
    }
    steps
}

fn describe(n: usize, r: &Record) -> String {
    let refused = r.refused.map(|code| format!(", refused={code}")).unwrap_or_default();
    let violations =
        if r.violations.is_empty() { String::new() } else { format!(", violations={:?}", r.violations) };
    format!(
        "session {n}: end={:?}, audio_frames_in={}, keepalives={}, errors={:?}{refused}{violations}",
        r.end, r.audio_frames, r.keepalives, r.errors_sent
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = parse_args(&args, std::env::var("DEEPGRAM_API_KEY").ok());
    let threads = parsed.as_ref().map_or(1, |o| o.load.threads);
    let usage = format!("{USAGE}\n{}\n{IDLE_USAGE}\n\n{ENDING}", usage_lines());
    voice_ua_fake_server::run_main("fake-deepgram", &usage, parsed, threads, |o| Box::pin(run(o)))
}

async fn run(options: Options) -> Result<(), String> {
    let o = &options.load;
    let steps = script(o);
    let config = FakeConfig::new(&o.key).tls(o.tls).idle_timeout(options.idle_timeout).script(steps);
    let fake = FakeDeepgram::start(config).await.map_err(|e| e.to_string())?;
    eprintln!(
        "fake-deepgram: listening on {}; script: greeting {} ms, then {} turns of ({} client frames, \
         user turn, reply {} ms); idle timeout {} s",
        fake.url(),
        o.greeting_ms,
        o.turns,
        o.listen_frames,
        o.reply_ms,
        options.idle_timeout.as_secs()
    );
    let records =
        voice_ua_fake_server::serve_until_signal(&fake.url(), fake.ca_file(), || fake.records(), describe)
            .await?;
    let failed = records.iter().filter(|r| !r.errors_sent.is_empty() || r.refused.is_some()).count();
    let timeouts =
        records.iter().filter(|r| r.errors_sent.iter().any(|c| c == "CLIENT_MESSAGE_TIMEOUT")).count();
    eprintln!(
        "fake-deepgram: stopping; {} sessions ended ({failed} with an error or refused, {timeouts} idle timeouts)",
        records.len()
    );
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
        let o = parse_args(
            &args(&["--turns", "2", "--reply-ms", "500", "--idle-timeout", "5"]),
            Some(" k ".into()),
        )
        .expect("valid arguments");
        assert_eq!((o.load.key.as_str(), o.idle_timeout), ("k", Duration::from_secs(5)));
        let steps = script(&o.load);
        assert_eq!(steps.len(), 7);
        assert!(matches!(steps[4], Step::WaitAudio { frames: 250, min_dbfs: None }));
        assert!(matches!(&steps[6], Step::Speak { ms: 500, done: true, .. }));
        let o = parse_args(&args(&["--key", "flag", "--tls"]), Some("env".into())).expect("valid");
        assert_eq!((o.load.key.as_str(), o.load.tls), ("flag", true));
        assert!(parse_args(&args(&[]), None).is_err());
        assert!(parse_args(&args(&["--turns"]), Some("k".into())).is_err());
        assert!(parse_args(&args(&["--bogus", "1"]), Some("k".into())).is_err());
    }
}
