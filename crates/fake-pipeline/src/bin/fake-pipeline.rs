//! `fake-pipeline`: the fake STT, chat-completions and TTS servers ([`FakePipeline`]) as a
//! process, for benchmarks and the interop ring (the scripted LLM beside real Whisper and
//! piper). Development only: it lives in the test-only crate `voice-ua-fake-pipeline`.
//!
//! ```text
//! cargo build --release -p voice-ua-fake-pipeline --bin fake-pipeline
//! target/release/fake-pipeline [--port 8000] [--dialect ollama] [--first-token-ms 300] \
//!     [--rule 'balance|get_balance|{"account":"main"}|Your balance is {result}.'] ...
//! ```
//!
//! It listens on 127.0.0.1 and prints its base URL (`http://127.0.0.1:PORT/v1`) as the
//! first line of stdout (with `--tls`, `https://` and a second line holding the test CA's
//! path). Each request that ends is logged on stderr; the requests it refused (the
//! client's mistakes) say `REFUSED`. SIGTERM or SIGINT stops it (status 0).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use voice_ua_fake_pipeline::{ChatScript, Dialect, Exchange, FakePipeline, Records, Settings, ToolRule};
use voice_ua_fake_server::number;

const USAGE: &str = "\
usage: fake-pipeline [--port N] [--tls] [--key KEY] [--idle-timeout-ms MS] [--threads N]
                     [--dialect openai|ollama] [--first-token-ms MS] [--chunk-ms MS]
                     [--reply TEMPLATE] [--rule 'KEYWORD|TOOL|ARGS_JSON|REPLY'] [--after-tool TEMPLATE]
                     [--transcript TEXT] [--tone-word HZ=WORD] [--silence-dbfs DB] [--stt-ms MS]
                     [--tts-rate HZ] [--tts-ms-per-char MS] [--tts-min-ms MS] [--tts-first-byte-ms MS]
                     [--tts-speedup X] [--tts-chunk-bytes N]

  --port N               port on 127.0.0.1 (default: a free one)
  --tls                  serve https:// with a generated CA (its path is stdout's second line)
  --key KEY              require `Authorization: Bearer KEY` (default: accept any or none)
  --idle-timeout-ms MS   close keep-alive connections idle this long (default: never)
  --threads N            tokio worker threads (default 1)
chat (/v1/chat/completions):
  --dialect D            openai (default) or ollama (tool calls whole, tool_choice refused)
  --first-token-ms MS    delay before the first chunk (default 0)
  --chunk-ms MS          delay between chunks (default 0)
  --reply TEMPLATE       the reply when no rule applies; {user} is the caller's words
                         (default \"You said: {user}. Anything else?\")
  --rule SPEC            KEYWORD|TOOL|ARGS_JSON|REPLY: when the caller's latest words contain
                         KEYWORD, call TOOL with ARGS_JSON, then say REPLY ({result} is the
                         tool's result); repeatable, tried in order
  --after-tool TEMPLATE  the reply to tool results no rule explains (default \"Done: {result}\")
transcriptions (/v1/audio/transcriptions):
  --transcript TEXT      a transcript to return, in order; repeatable
  --tone-word HZ=WORD    a tone that stands for a word, once the transcripts run out; repeatable
  --silence-dbfs DB      audio below this RMS level is silence, text \"\" (default -50)
  --stt-ms MS            time to answer (default 0)
speech (/v1/audio/speech, response_format pcm):
  --tts-rate HZ          PCM rate (default 24000; 22050 or 16000 mimic piper or others)
  --tts-ms-per-char MS   audio per character (default 55)
  --tts-min-ms MS        shortest audio (default 200)
  --tts-first-byte-ms MS delay before the first audio byte (default 0)
  --tts-speedup X        send audio X times faster than real time (default 4; 0: at once)
  --tts-chunk-bytes N    bytes per chunk (default 4801)

Prints its base URL on stdout's first line; runs until SIGTERM or SIGINT.";

#[derive(Debug)]
struct Options {
    settings: Settings,
    threads: usize,
}

fn ms(flag: &str, value: &str) -> Result<Duration, String> {
    Ok(Duration::from_millis(number(flag, value)?))
}

fn rule(spec: &str) -> Result<ToolRule, String> {
    let mut parts = spec.splitn(4, '|');
    let (keyword, tool, args, reply) = (parts.next(), parts.next(), parts.next(), parts.next());
    match (keyword, tool, args, reply) {
        (Some(k), Some(t), Some(a), Some(r)) if !k.is_empty() && !t.is_empty() => {
            serde_json::from_str::<serde_json::Value>(a)
                .map_err(|e| format!("--rule {spec:?}: the arguments are not JSON ({e})"))?;
            Ok(ToolRule::new(k, t, a).then_reply(r))
        }
        _ => Err(format!("--rule {spec:?}: use KEYWORD|TOOL|ARGS_JSON|REPLY")),
    }
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut s = Settings::new();
    let mut script = ChatScript::new();
    let mut threads = 1;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--tls" => s.tls = true,
            _ => {
                let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
                match flag.as_str() {
                    "--port" => s.port = number(flag, v)?,
                    "--key" => s.api_key = Some(v.clone()),
                    "--idle-timeout-ms" => s.idle_timeout = Some(ms(flag, v)?),
                    "--threads" => threads = number::<usize>(flag, v)?.max(1),
                    "--dialect" => {
                        s.chat.dialect = match v.as_str() {
                            "openai" => Dialect::OpenAi,
                            "ollama" => Dialect::Ollama,
                            other => return Err(format!("--dialect {other:?}: use openai or ollama")),
                        }
                    }
                    "--first-token-ms" => s.chat.first_token_delay = ms(flag, v)?,
                    "--chunk-ms" => s.chat.chunk_interval = ms(flag, v)?,
                    "--reply" => script.default_reply = v.clone(),
                    "--after-tool" => script.after_tool = v.clone(),
                    "--rule" => script.rules.push(rule(v)?),
                    "--transcript" => s.stt.transcripts.push(v.clone()),
                    "--tone-word" => {
                        let (hz, word) =
                            v.split_once('=').ok_or_else(|| format!("--tone-word {v:?}: use HZ=WORD"))?;
                        let hz: f64 =
                            hz.parse().map_err(|_| format!("--tone-word {v:?}: {hz:?} is not a number"))?;
                        s.stt.tone_words.push((hz, word.to_owned()));
                    }
                    "--silence-dbfs" => {
                        s.stt.silence_dbfs =
                            v.parse().map_err(|_| format!("--silence-dbfs: {v:?} is not a number"))?
                    }
                    "--stt-ms" => s.stt.delay = ms(flag, v)?,
                    "--tts-rate" => {
                        s.tts.sample_rate = number(flag, v)?;
                        if !(8000..=48_000).contains(&s.tts.sample_rate) {
                            return Err(format!("--tts-rate {v}: 8000 to 48000"));
                        }
                    }
                    "--tts-ms-per-char" => s.tts.ms_per_char = number(flag, v)?,
                    "--tts-min-ms" => s.tts.min_ms = number(flag, v)?,
                    "--tts-first-byte-ms" => s.tts.first_byte_delay = ms(flag, v)?,
                    "--tts-speedup" => {
                        s.tts.speedup =
                            v.parse().map_err(|_| format!("--tts-speedup: {v:?} is not a number"))?
                    }
                    "--tts-chunk-bytes" => s.tts.chunk_bytes = number::<usize>(flag, v)?.max(1),
                    other => return Err(format!("unknown argument {other:?}")),
                }
            }
        }
    }
    s.chat.script = script;
    Ok(Options { settings: s, threads })
}

fn exchange(h: &Exchange) -> String {
    let status = h.status.map_or_else(|| "none".to_owned(), |s| s.to_string());
    let refused = h.refused.as_ref().map(|e| format!(" REFUSED: {}", e.message)).unwrap_or_default();
    let injected = h.injected.as_ref().map(|f| format!(" injected={f:?}")).unwrap_or_default();
    let cut = if h.closed_early { " cut by the client" } else { "" };
    format!("conn {} status {status}, {} bytes out{cut}{injected}{refused}", h.connection, h.bytes_sent)
}

/// One line per request, in arrival order, up to the first still running.
fn lines(r: &Records) -> Vec<String> {
    let mut all: Vec<(Instant, bool, String)> = Vec::new();
    for t in &r.transcriptions {
        let text = t.text.as_deref().map(|t| format!(" -> {t:?}")).unwrap_or_default();
        let audio = t
            .duration_ms
            .map(|d| format!(" {d} ms at {} Hz", t.sample_rate.unwrap_or(0)))
            .unwrap_or_default();
        all.push((
            t.http.received_at,
            t.http.finished(),
            format!("transcription{audio}: {}{text}", exchange(&t.http)),
        ));
    }
    for c in &r.chats {
        let messages = c.messages().len();
        let said = match &c.answer {
            Some(a) if !a.calls.is_empty() => {
                format!(
                    " -> calls {}",
                    a.calls.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                )
            }
            Some(a) => format!(" -> {:?}", a.content),
            None => String::new(),
        };
        all.push((
            c.http.received_at,
            c.http.finished(),
            format!("chat ({messages} messages): {}{said}", exchange(&c.http)),
        ));
    }
    for s in &r.speeches {
        let input = s.input().map(|i| format!(" {i:?}")).unwrap_or_default();
        all.push((s.http.received_at, s.http.finished(), format!("speech{input}: {}", exchange(&s.http))));
    }
    for o in &r.other {
        all.push((o.received_at, o.finished(), format!("{} {}: {}", o.method, o.path, exchange(o))));
    }
    all.sort_by_key(|a| a.0);
    all.into_iter().take_while(|a| a.1).map(|a| a.2).collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = parse_args(&args);
    let threads = parsed.as_ref().map_or(1, |o| o.threads);
    voice_ua_fake_server::run_main("fake-pipeline", USAGE, parsed, threads, |o| Box::pin(run(o)))
}

async fn run(o: Options) -> Result<(), String> {
    let fake = FakePipeline::start(o.settings).await.map_err(|e| e.to_string())?;
    let s = fake.settings();
    eprintln!(
        "fake-pipeline: listening on {}; chat {:?} with {} rules, first token {} ms; TTS pcm at {} Hz",
        fake.base_url(),
        s.chat.dialect,
        s.chat.script.rules.len(),
        s.chat.first_token_delay.as_millis(),
        s.tts.sample_rate
    );
    let logged = voice_ua_fake_server::serve_until_signal(
        &fake.base_url(),
        fake.ca_file(),
        || lines(&fake.records()),
        |n, line| format!("request {n}: {line}"),
    )
    .await?;
    let refused = fake.records().refused().len();
    eprintln!("fake-pipeline: stopping; {} requests ended ({refused} refused)", logged.len());
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
    fn flags() {
        let o = parse_args(&args(&[
            "--dialect",
            "ollama",
            "--first-token-ms",
            "250",
            "--rule",
            r#"balance|get_balance|{"account":"main"}|Your balance is {result}."#,
            "--transcript",
            "hello",
            "--tone-word",
            "500=check",
            "--tts-rate",
            "22050",
            "--port",
            "8123",
        ]))
        .expect("valid");
        let s = &o.settings;
        assert_eq!((s.chat.dialect, s.chat.first_token_delay), (Dialect::Ollama, Duration::from_millis(250)));
        assert_eq!(
            s.chat.script.rules,
            vec![ToolRule::new("balance", "get_balance", r#"{"account":"main"}"#)
                .then_reply("Your balance is {result}.")]
        );
        assert_eq!(
            (s.stt.transcripts.clone(), s.stt.tone_words.clone()),
            (vec!["hello".to_owned()], vec![(500.0, "check".to_owned())])
        );
        assert_eq!((s.tts.sample_rate, s.port), (22_050, 8123));
        assert!(parse_args(&args(&["--rule", "a|b|not json|c"])).is_err());
        assert!(parse_args(&args(&["--rule", "a|b"])).is_err());
        assert!(parse_args(&args(&["--dialect", "vllm"])).is_err());
        assert!(parse_args(&args(&["--tts-rate", "96000"])).is_err());
        assert!(parse_args(&args(&["--port"])).is_err());
        assert!(parse_args(&args(&["--bogus", "1"])).is_err());
        assert_eq!(parse_args(&args(&["--help"])).map(|_| ()), Err(String::new()));
    }
}
