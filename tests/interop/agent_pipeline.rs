//! The whole path on loopback with `agent.provider = "pipeline"` and real speech engines:
//! Kamailio as registrar and proxy, voice-ua registered as 9000, baresip as 1001 dialling
//! 9000 with piper's speech as its microphone and recording what it hears. voice-ua's
//! pipeline transcribes with Whisper tiny.en and speaks with piper (the ring's shared
//! speech server, `support/speech.rs`, at 16 kHz in and 22,050 Hz out) and thinks with
//! the scripted LLM (`fake-pipeline`, the binary of `crates/fake-pipeline`, only its
//! chat endpoint). The rig is `agent_e2e`'s.
//!
//! * `pipeline_caller_asks_for_the_gate_and_hears_it_opened`: the greeting is spoken by
//!   piper with no LLM; the caller says "Please open the main gate."; Whisper's
//!   transcript holds "open" and "gate", so the LLM calls the `http` function
//!   `open_gate` (the test's webhook gets `{"gate":"main"}`) and then answers "The main
//!   gate is open now. Welcome to Los Robles."; Whisper reads the greeting and the answer
//!   back from what baresip recorded (G.711 through Kamailio and RTP); the call record
//!   holds the caller's words, the answer, the tool call and the turn's stage figures.
//! * `pipeline_caller_talking_over_a_long_answer_stops_it`: the caller speaks again while
//!   a 9-sentence answer plays: voice-ua logs the barge-in and what was heard (a prefix
//!   of the answer), the speech baresip recorded is much shorter than the whole answer,
//!   and Whisper hears its first sentence but not its last.
//! * `pipeline_turn_latency_figures` (ignored; run it with `--ignored --nocapture`): one
//!   call with 10 caller utterances (`VOICE_UA_PIPELINE_TURNS=N` for more), 10 s apart;
//!   prints the turn latency p50/p95 per stage from the call record, the speech server's
//!   own figures, and voice-ua's CPU time and peak RSS over the call.
//!
//! Build the binaries first: `cargo build -p voice-ua -p voice-ua-fake-pipeline --bins`
//! (`$VOICE_UA_FAKE_PIPELINE_BIN` overrides where `fake-pipeline` is looked for).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::agent_e2e::{http_tool, open_gate_function, Agent, FakeAgent, Rig};
use crate::calls_baresip::{envelope, WINDOW_S};
use crate::support::process::Proc;
use crate::support::speech::{self, assert_key_words, missing_words, Speech};
use crate::support::voice_ua::{self, VoiceUa};
use crate::support::{calls, logs, wait_until, RunDir};

const GREETING: &str = "Hello, main gate.";
const CALLER_GATE: &str = "Please open the main gate.";
const GATE_REPLY: &str = "The main gate is open now. Welcome to Los Robles.";

/// When the caller starts speaking (s after the call is established): after the
/// greeting (about 1.3 s of speech once piper's first byte is in), with room for a slow
/// first byte on a loaded machine.
const SPEAK_AFTER_GREETING_S: f64 = 4.0;

// ------------------------------------------------------------ the pipeline

/// The scripted LLM in its own process, and voice-ua's `[agent]` section pointing its
/// three stages at it and at the speech server.
struct Pipeline {
    _proc: Proc,
    /// `[agent]` up to the functions, and the tables after them.
    head: String,
    tail: String,
    /// The fake's logs, the synthesized speech and the call records (kept when the test
    /// fails); dropped after the process.
    _run: RunDir,
}

impl FakeAgent for Pipeline {
    type Record = voice_ua_fake_bots::Record;
    const PROVIDER: &'static str = "pipeline";
    // The local servers take no key; voice-ua gets a variable it does not read.
    const KEY_ENV: &'static str = "PIPELINE_UNUSED_KEY";
    fn url(&self) -> String {
        String::new()
    }
    fn server(&self) -> Option<&voice_ua_fake_server::FakeServer<Self::Record>> {
        None
    }
    fn section(&self, functions: &str) -> String {
        format!("{}{functions}{}", self.head, self.tail)
    }
}

/// What a test reads besides the rig: the speech server, the LLM's request log, the
/// call records, and the model names that mark this test's lines in the shared speech
/// server's log.
struct Files {
    speech: &'static Speech,
    /// fake-pipeline's stderr: one line per request once it has ended.
    llm_log: PathBuf,
    /// voice-ua's call records database.
    db: PathBuf,
    stt_model: String,
    tts_model: String,
}

/// `$VOICE_UA_FAKE_PIPELINE_BIN`, else `fake-pipeline` beside the voice-ua binary.
fn fake_pipeline_binary() -> PathBuf {
    let bin = std::env::var_os("VOICE_UA_FAKE_PIPELINE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| voice_ua::binary().with_file_name("fake-pipeline"));
    assert!(
        bin.is_file(),
        "fake-pipeline not found at {}: build it first: cargo build -p voice-ua-fake-pipeline --bin \
         fake-pipeline (or point VOICE_UA_FAKE_PIPELINE_BIN at it)",
        bin.display()
    );
    bin
}

/// fake-pipeline started in `run` with `llm_args`, and voice-ua's `[agent]` for the
/// pipeline: STT and TTS on `speech`, the LLM on the fake, the greeting if any, the call
/// records in `run`. Timeouts are generous: the tests share the speech server and 2
/// cores.
fn pipeline(
    test: &str,
    speech: &'static Speech,
    run: RunDir,
    greeting: Option<&str>,
    llm_args: &[&str],
) -> (Agent<Pipeline>, Files) {
    let mut cmd = Command::new(fake_pipeline_binary());
    cmd.args(llm_args);
    let proc = Proc::spawn("fake-pipeline", cmd, &run, true);
    let llm = wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        logs::read(&proc.stdout).lines().next().filter(|l| l.starts_with("http://")).map(str::to_owned)
    })
    .unwrap_or_else(|| panic!("fake-pipeline did not print its URL\n{}", logs::tail(&proc.stderr, 20)));
    let db = run.file("calls.db");
    let (stt_model, tts_model) = (format!("whisper-{test}"), format!("piper-{test}"));
    let greeting = greeting.map(|g| format!("greeting = \"{g}\"\n")).unwrap_or_default();
    let head = format!(
        "[agent]\nprovider = \"pipeline\"\nprompt = \"You answer the gate intercom of Los Robles.\"\n\
         {greeting}fallback_transfer = \"9001\"\n"
    );
    let tail = format!(
        "[agent.pipeline.stt]\nurl = \"{url}\"\nmodel = \"{stt_model}\"\nlanguage = \"en\"\n\
         sample_rate = 16000\ntimeout_ms = 30000\n\
         [agent.pipeline.llm]\nurl = \"{llm}\"\nmodel = \"scripted\"\n\
         [agent.pipeline.tts]\nurl = \"{url}\"\nmodel = \"{tts_model}\"\nvoice = \"joe\"\n\
         sample_rate = 22050\nfirst_byte_timeout_ms = 20000\n\
         [records]\npath = \"{}\"\n\
         [log]\ntranscripts = true\n",
        db.display(),
        url = speech.base_url(),
    );
    let files = Files { speech, llm_log: proc.stderr.clone(), db, stt_model, tts_model };
    let fake = Pipeline { _proc: proc, head, tail, _run: run };
    // The runtime is idle (the fake runs in its own process); `Agent` holds one.
    (Agent::new(fake, "", Agent::<Pipeline>::runtime()), files)
}

// ------------------------------------------------------------ the caller

/// piper's speech of `text` at 8 kHz, for the caller's microphone.
fn caller_speech(speech: &Speech, run: &RunDir, text: &str) -> Vec<i16> {
    let (samples, rate) = speech::read_wav(&speech.synthesize(run, text, 8000));
    assert_eq!(rate, 8000, "synthesize resamples to the rate asked for");
    samples
}

/// Length in seconds of 8 kHz samples.
fn secs(samples: &[i16]) -> f64 {
    samples.len() as f64 / 8000.0
}

/// An 8 kHz microphone: each `(at_s, samples)` placed at `at_s`, silence elsewhere.
fn mic(parts: &[(f64, &[i16])]) -> Vec<i16> {
    let mut out = Vec::new();
    for (at, samples) in parts {
        let from = (at * 8000.0).round() as usize;
        if out.len() < from + samples.len() {
            out.resize(from + samples.len(), 0);
        }
        out[from..from + samples.len()].copy_from_slice(samples);
    }
    out
}

// ------------------------------------------------------------ what happened

/// voice-ua's `transcript` lines as (role, text), in order; role `user` or `agent`.
fn transcripts(ua: &VoiceUa) -> Vec<(String, String)> {
    ua.events_with("transcript", Some("INFO"))
        .iter()
        .filter(|e| logs::message(e) == Some("transcript"))
        .map(|e| {
            let text = |k| logs::field(e, k).and_then(Value::as_str).unwrap_or_default().to_string();
            (text("role").to_lowercase(), text("text"))
        })
        .collect()
}

/// voice-ua's `turn` lines: one per reply to the caller's speech, with its figures.
fn turn_lines(ua: &VoiceUa) -> Vec<Value> {
    ua.events_with("turn", Some("INFO")).into_iter().filter(|e| logs::message(e) == Some("turn")).collect()
}

/// The shared speech server's log lines for `event` (`speech`, `transcription`) of
/// requests made with `model`.
fn speech_lines(speech: &Speech, event: &str, model: &str) -> Vec<String> {
    let prefix = format!("speech_server: {event} model=\"{model}\"");
    speech.log().into_iter().filter(|l| l.starts_with(&prefix)).collect()
}

/// The value of `key=` in a speech server log line (a JSON string unquoted).
fn field(line: &str, key: &str) -> Option<String> {
    let at = line.find(&format!(" {key}="))?;
    let rest = &line[at + key.len() + 2..];
    if rest.starts_with('"') {
        serde_json::Deserializer::from_str(rest).into_iter::<String>().next()?.ok()
    } else {
        rest.split(' ').next().map(str::to_owned)
    }
}

/// Seconds of audio in speech server `speech` lines.
fn audio_s(lines: &[String]) -> f64 {
    lines.iter().filter_map(|l| field(l, "audio_s")?.parse::<f64>().ok()).sum()
}

/// The newest call record in `db` once its call is over (`voice-ua calls --json`).
fn call_record(db: &Path) -> Value {
    let mut last = String::new();
    let record = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        let out = Command::new(voice_ua::binary())
            .args(["calls", "--json", "--last", "1", "--db"])
            .arg(db)
            .output()
            .ok()?;
        last = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let calls: Value = serde_json::from_slice(&out.stdout).ok()?;
        let call = calls.as_array()?.first()?.clone();
        (call["outcome"].as_str()? != "in_progress").then_some(call)
    });
    record.unwrap_or_else(|| panic!("no finished call record in {} within 10 s: {last}", db.display()))
}

/// fake-pipeline's request lines (`request N: chat (…) -> …`) once `n` chats ended.
fn llm_requests(files: &Files, n: usize) -> Vec<String> {
    let lines = || -> Vec<String> {
        logs::read(&files.llm_log).lines().filter(|l| l.starts_with("request ")).map(str::to_owned).collect()
    };
    // It logs every 500 ms.
    wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        let all = lines();
        (all.iter().filter(|l| l.contains(": chat (")).count() >= n).then_some(all)
    })
    .unwrap_or_else(|| panic!("fake-pipeline logged fewer than {n} chats: {:?}", lines()))
}

/// The text Whisper reads in `samples` (baresip's recording) from `from_s` to `to_s`.
fn read_back(speech: &Speech, samples: &[f64], rate: u32, from_s: f64, to_s: f64) -> String {
    let a = ((from_s * f64::from(rate)) as usize).min(samples.len());
    let b = ((to_s * f64::from(rate)) as usize).clamp(a, samples.len());
    let pcm: Vec<u8> = samples[a..b]
        .iter()
        .flat_map(|s| (s.round().clamp(-32768.0, 32767.0) as i16).to_le_bytes())
        .collect();
    speech.transcribe_bytes(&speech::wav_bytes(&pcm, rate))
}

/// A 20 ms window of speech: RMS over this (-40 dBFS; G.711's idle noise is a few
/// units, piper's speech a few thousand).
const VOICED_RMS: f64 = 330.0;

/// Per 20 ms window: does it hold speech?
fn voiced(samples: &[f64], rate: u32) -> Vec<bool> {
    envelope(samples, rate).into_iter().map(|rms| rms > VOICED_RMS).collect()
}

/// Waits until the reply to the caller has played: its first packet left (voice-ua's
/// `turn` line), piper spoke every sentence of this test (its `speech` lines, the
/// greeting's first when there is one, cover `chars` characters), and from the first
/// packet as long as the reply's speech lasts, plus a second. The reply's seconds.
fn wait_reply_played(rig: &Rig<Pipeline>, files: &Files, chars: usize, greeting: bool) -> f64 {
    let first = wait_until(Duration::from_secs(40), Duration::from_millis(50), || {
        (!turn_lines(&rig.ua).is_empty()).then(Instant::now)
    })
    .unwrap_or_else(|| panic!("voice-ua logged no turn: no reply started\n{}", rig.diag()));
    let lines = wait_until(Duration::from_secs(40), Duration::from_millis(100), || {
        let lines: Vec<String> = speech_lines(files.speech, "speech", &files.tts_model)
            .into_iter()
            .filter(|l| field(l, "status").as_deref() == Some("complete"))
            .collect();
        let done: usize = lines.iter().filter_map(|l| field(l, "chars")?.parse::<usize>().ok()).sum();
        (done >= chars).then_some(lines)
    })
    .unwrap_or_else(|| {
        panic!("piper did not speak {chars} characters\n{}\n{}", files.speech.log_tail(20), rig.diag())
    });
    let reply_s = audio_s(&lines[usize::from(greeting).min(lines.len())..]);
    let played = first + Duration::from_secs_f64(reply_s + 1.0);
    std::thread::sleep(played.saturating_duration_since(Instant::now()));
    reply_s
}

/// Characters of `texts` other than whitespace: fewer than piper's `chars` for them
/// however they are split into sentences.
fn non_space(texts: &[&str]) -> usize {
    texts.iter().map(|t| t.chars().filter(|c| !c.is_whitespace()).count()).sum()
}

// ------------------------------------------------------------ tests

#[test]
fn pipeline_caller_asks_for_the_gate_and_hears_it_opened() {
    const TEST: &str = "pipeline_gate";
    let Some(speech) = Speech::shared(TEST) else { return };
    let run = RunDir::new(&format!("{TEST}-pipeline"));
    let said = caller_speech(speech, &run, CALLER_GATE);
    let rule = format!("gate|open_gate|{{\"gate\":\"main\"}}|{GATE_REPLY}");
    let (agent, files) = pipeline(TEST, speech, run, Some(GREETING), &["--rule", &rule]);
    let (http_port, http_rx) = http_tool();
    let mic = mic(&[(SPEAK_AFTER_GREETING_S, &said)]);
    let Some(mut rig) = Rig::call_with_mic(TEST, agent, &open_gate_function(http_port), false, &mic) else {
        return;
    };
    let seen = http_rx.recv_timeout(Duration::from_secs(40));
    let reply_s = wait_reply_played(&rig, &files, non_space(&[GREETING, GATE_REPLY]), true);
    rig.baresip.command("/hangup");
    calls::wait_calls_ended(&rig.ua, 1, Duration::from_secs(5));
    rig.baresip.quit();
    let took = rig.started.elapsed().as_secs_f64();

    // The tool: the webhook got the LLM's arguments.
    let seen = seen.unwrap_or_else(|e| panic!("open_gate was not called: {e}\n{}", rig.diag()));
    eprintln!("{TEST}: the webhook got {seen:?}");
    assert!(seen.head.starts_with("POST /gates/open HTTP/1.1"), "{seen:?}");
    assert!(seen.head.lines().any(|l| l.eq_ignore_ascii_case("x-gate-key: gk-1")), "{seen:?}");
    let args: Value =
        serde_json::from_str(&seen.body).unwrap_or_else(|e| panic!("the body is not JSON: {e}: {seen:?}"));
    assert_eq!(args, serde_json::json!({"gate": "main"}), "the LLM's arguments reach the function");

    // Whisper heard the caller at 16 kHz; the LLM called the tool, then answered.
    let stt = speech_lines(speech, "transcription", &files.stt_model);
    eprintln!("{TEST}: Whisper's requests: {stt:?}");
    assert!(!stt.is_empty(), "voice-ua sent no utterance to Whisper\n{}", speech.log_tail(20));
    assert!(
        stt.iter().all(|l| field(l, "rate").as_deref() == Some("16000")),
        "utterances at 16 kHz: {stt:?}"
    );
    let llm = llm_requests(&files, 2);
    eprintln!("{TEST}: the LLM's requests: {llm:#?}");
    let chats: Vec<&String> = llm.iter().filter(|l| l.contains(": chat (")).collect();
    assert_eq!(chats.len(), 2, "one turn, two rounds (the greeting needs no LLM): {llm:?}");
    assert!(chats[0].ends_with("-> calls open_gate"), "the first round calls the tool: {llm:?}");
    assert!(chats[1].contains("Welcome to Los Robles"), "the second round answers: {llm:?}");
    assert!(llm.iter().all(|l| !l.contains("REFUSED")), "{llm:?}");
    assert!(llm.len() == chats.len(), "only the fake's chat endpoint is used: {llm:?}");

    // voice-ua's log: the caller's words as Whisper heard them, and the answer.
    let lines = transcripts(&rig.ua);
    eprintln!("{TEST}: voice-ua's transcript lines {lines:?}");
    let user: Vec<&str> = lines.iter().filter(|l| l.0 == "user").map(|l| l.1.as_str()).collect();
    assert_eq!(user.len(), 1, "one caller utterance: {lines:?}");
    assert_key_words(user[0], &["open", "gate"]);
    assert!(
        lines.iter().any(|(role, text)| role == "agent" && text.contains("Welcome to Los Robles")),
        "the answer is logged: {lines:?}"
    );

    // The call record: the same conversation, the tool call and the turn's figures.
    let record = call_record(&files.db);
    let transcript = record["transcript"].as_array().cloned().unwrap_or_default();
    let said: Vec<(String, String)> = transcript
        .iter()
        .map(|l| (l["role"].as_str().unwrap_or("").to_owned(), l["text"].as_str().unwrap_or("").to_owned()))
        .collect();
    eprintln!(
        "{TEST}: the record's transcript {said:?}, tool calls {}, turns {}",
        record["tool_calls"], record["turns"]
    );
    assert_eq!(record["outcome"], "caller_hangup", "{record}");
    let pos = |role: &str, words: &[&str]| {
        said.iter().position(|(r, t)| r == role && missing_words(t, words).is_empty())
    };
    let (greeted, asked, answered) = (
        pos("agent", &["hello", "main", "gate"]),
        pos("user", &["open", "gate"]),
        pos("agent", &["welcome", "robles"]),
    );
    assert!(
        greeted.is_some() && greeted < asked && asked < answered,
        "greeting, the caller's words, the answer, in order: {said:?}"
    );
    let tools = record["tool_calls"].as_array().cloned().unwrap_or_default();
    assert!(
        tools
            .iter()
            .any(|t| t["name"] == "open_gate" && t["result"].as_str().is_some_and(|r| r.contains("ok"))),
        "the record holds the tool call: {tools:?}"
    );
    let turns = record["turns"].as_array().cloned().unwrap_or_default();
    assert_eq!(turns.len(), 1, "one turn answered the caller: {turns:?}");
    for stage in ["latency_ms", "endpointing_ms", "transcribe_ms", "think_ms", "speak_ms"] {
        assert!(turns[0][stage].is_u64(), "the turn has its {stage}: {}", turns[0]);
    }

    // What the caller heard, read back by Whisper: the greeting before they spoke, the
    // answer after.
    let (heard, rate, dec) = rig.baresip.heard();
    let end_s = heard.len() as f64 / f64::from(rate);
    let greeting_heard = read_back(speech, &heard, rate, 0.0, SPEAK_AFTER_GREETING_S);
    let answer_heard = read_back(speech, &heard, rate, SPEAK_AFTER_GREETING_S, end_s);
    eprintln!(
        "{TEST}: baresip heard {end_s:.1} s ({}): before the caller spoke {greeting_heard:?}, after {answer_heard:?}; \
         the answer is {reply_s:.1} s of speech; turn {}; {took:.1} s in all",
        dec.display(),
        turns[0]
    );
    assert_key_words(&greeting_heard, &["hello", "gate"]);
    assert_key_words(&answer_heard, &["gate", "open", "welcome"]);
}

/// Nine sentences, about 20 s of piper's speech.
const LONG_REPLY: &str = "Thank you for calling Los Robles. The office is open from eight in the morning until six \
                          in the evening. Deliveries go to the service entrance on the north side. Visitors can park \
                          beside the fountain. The guard will meet you at the front door. On weekends the office \
                          closes at noon. The swimming pool is for residents only. Pets must be kept on a leash in \
                          the garden. Please have your identification ready.";

#[test]
fn pipeline_caller_talking_over_a_long_answer_stops_it() {
    const TEST: &str = "pipeline_barge_in";
    let Some(speech) = Speech::shared(TEST) else { return };
    let run = RunDir::new(&format!("{TEST}-pipeline"));
    // The caller's two utterances and the whole answer, synthesized side by side (piper
    // loads in each; about 2 s for the answer). The second utterance is long enough
    // (about 3.5 s) that no second answer starts before the hangup.
    let (first, second, (whole, whole_rate)) = std::thread::scope(|s| {
        let first = s.spawn(|| caller_speech(speech, &run, "Hello, when is the office open?"));
        let second = s.spawn(|| {
            caller_speech(speech, &run, "Sorry, I only need to know where the delivery entrance is, please.")
        });
        let whole = speech::read_wav(&speech.synthesize(&run, LONG_REPLY, 8000));
        let join = |h: std::thread::ScopedJoinHandle<Vec<i16>>| {
            h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
        };
        (join(first), join(second), whole)
    });
    let whole: Vec<f64> = whole.into_iter().map(f64::from).collect();
    // The answer starts a few seconds after the caller's first words end (endpointing,
    // Whisper, piper's first byte) and lasts about 20 s; the caller speaks again 7 s
    // after those words, well inside it.
    let second_at = 1.0 + secs(&first) + 7.0;
    let (agent, files) = pipeline(TEST, speech, run, None, &["--reply", LONG_REPLY]);
    let mic = mic(&[(1.0, &first), (second_at, &second)]);
    let Some(mut rig) = Rig::call_with_mic(TEST, agent, "", false, &mic) else { return };
    let barged = wait_until(Duration::from_secs(40), Duration::from_millis(50), || {
        rig.ua_events("barge-in: the caller spoke over the agent").into_iter().next()
    });
    let heard_line = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        rig.ua_events("the caller heard this much of the reply").into_iter().next()
    });
    // Hang up before a second answer could start (the caller is still talking).
    std::thread::sleep(Duration::from_millis(1000));
    rig.baresip.command("/hangup");
    calls::wait_calls_ended(&rig.ua, 1, Duration::from_secs(5));
    rig.baresip.quit();
    let took = rig.started.elapsed().as_secs_f64();

    assert!(barged.is_some(), "voice-ua logged no barge-in\n{}", rig.diag());
    let heard_line =
        heard_line.unwrap_or_else(|| panic!("no \"heard\" line after the barge-in\n{}", rig.diag()));
    let heard_text = logs::field(&heard_line, "heard").and_then(Value::as_str).unwrap_or_default().to_owned();
    let (heard_words, all_words) = (speech::words(&heard_text), speech::words(LONG_REPLY));
    eprintln!("{TEST}: voice-ua says the caller heard {heard_text:?}");
    assert!(
        !heard_words.is_empty() && heard_words.len() < all_words.len() && all_words.starts_with(&heard_words),
        "the history keeps a prefix of the answer: {heard_text:?}"
    );

    // baresip recorded only the agent: its speech is the cut answer, much shorter than
    // the whole answer (the same measure on piper's speech of all of it).
    let (heard, rate, dec) = rig.baresip.heard();
    let got = voiced(&heard, rate);
    let full = voiced(&whole, whole_rate);
    let (got_n, full_n) = (got.iter().filter(|&&v| v).count(), full.iter().filter(|&&v| v).count());
    let first_s = got.iter().position(|&v| v).map_or(0.0, |i| i as f64 * WINDOW_S);
    let last_s = got.iter().rposition(|&v| v).map_or(0.0, |i| (i + 1) as f64 * WINDOW_S);
    let read = read_back(speech, &heard, rate, 0.0, heard.len() as f64 / f64::from(rate));
    let report = format!(
        "baresip heard {:.1} s of speech ({first_s:.1}-{last_s:.1} s) of the answer's {:.1} s; Whisper: {read:?}; {}",
        got_n as f64 * WINDOW_S,
        full_n as f64 * WINDOW_S,
        dec.display()
    );
    eprintln!("{TEST}: {report}; the caller spoke again at {second_at:.1} s; {took:.1} s in all");
    assert!(got_n > 0 && full_n > 0, "{report}");
    assert!((got_n as f64) < 0.6 * full_n as f64, "the answer did not stop early: {report}");
    assert_key_words(&read, &["thank", "calling"]);
    assert_eq!(
        missing_words(&read, &["identification"]).len(),
        1,
        "the last sentence was not heard: {report}"
    );
    let tts = speech_lines(speech, "speech", &files.tts_model);
    eprintln!("{TEST}: piper's requests: {tts:#?}");
}

// ------------------------------------------------------------ measurement

/// A column's `n`, p50, p95, min and max (nearest rank); `None` when it is empty.
fn spread(mut v: Vec<u64>) -> Option<(usize, u64, u64, u64, u64)> {
    v.sort_unstable();
    let n = v.len();
    let rank = |p: f64| v[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    (n > 0).then(|| (n, rank(0.5), rank(0.95), v[0], v[n - 1]))
}

/// A process's CPU time (user + system) in seconds, from /proc.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<f64> = after.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // After the name: state (not a number, skipped), ppid, … utime and stime are the
    // 14th and 15th fields, 10th and 11th of the numbers here.
    let ticks = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    (f.get(10).copied().unwrap_or(0.0) + f.get(11).copied().unwrap_or(0.0)) / ticks
}

/// A line of /proc/PID/status in kB (`VmRSS`, `VmHWM`).
fn status_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "a measurement: run it by hand with --ignored --nocapture"]
fn pipeline_turn_latency_figures() {
    const TEST: &str = "pipeline_figures";
    // A caller utterance every EVERY_S: room for the endpointing, Whisper, the reply
    // (about 2 s) and a pause, so no turn talks over the last.
    const EVERY_S: f64 = 10.0;
    const PHRASES: [&str; 5] = [
        "I have a delivery for apartment twelve.",
        "Can you tell the guard that I am here?",
        "My name is Maria Lopez.",
        "I am visiting my sister on the third floor.",
        "How long will it take?",
    ];
    let n: usize = std::env::var("VOICE_UA_PIPELINE_TURNS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let Some(speech) = Speech::shared(TEST) else { return };
    let run = RunDir::new(&format!("{TEST}-pipeline"));
    let said: Vec<Vec<i16>> = PHRASES.iter().map(|p| caller_speech(speech, &run, p)).collect();
    let parts: Vec<(f64, &[i16])> =
        (0..n).map(|i| (1.0 + i as f64 * EVERY_S, said[i % said.len()].as_slice())).collect();
    let (agent, files) = pipeline(TEST, speech, run, None, &["--reply", "All right, I will tell the guard."]);
    // baresip hangs up when its microphone's file ends: silence after the last turn.
    let mut microphone = mic(&parts);
    microphone.resize(((n as f64 * EVERY_S + 15.0) * 8000.0) as usize, 0);
    let Some(mut rig) = Rig::call_with_mic(TEST, agent, "", false, &microphone) else { return };
    let pid = rig.ua.pid();
    let (cpu_before, rss_before_kb, call_start) = (cpu_s(pid), status_kb(pid, "VmRSS"), Instant::now());
    let all =
        wait_until(Duration::from_secs_f64(n as f64 * EVERY_S + 60.0), Duration::from_millis(200), || {
            (turn_lines(&rig.ua).len() >= n).then_some(())
        });
    std::thread::sleep(Duration::from_secs(3));
    let (cpu, call_s) = (cpu_s(pid) - cpu_before, call_start.elapsed().as_secs_f64());
    let (rss_kb, hwm_kb) = (status_kb(pid, "VmRSS"), status_kb(pid, "VmHWM"));
    rig.baresip.command("/hangup");
    calls::wait_calls_ended(&rig.ua, 1, Duration::from_secs(5));
    rig.baresip.quit();
    assert!(
        all.is_some(),
        "voice-ua answered {} of {n} utterances\n{}",
        turn_lines(&rig.ua).len(),
        rig.diag()
    );

    let record = call_record(&files.db);
    let turns = record["turns"].as_array().cloned().unwrap_or_default();
    let column = |key: &str| turns.iter().filter_map(|t| t[key].as_u64()).collect::<Vec<u64>>();
    let stt = speech_lines(speech, "transcription", &files.stt_model);
    let tts = speech_lines(speech, "speech", &files.tts_model);
    let server = |lines: &[String], key: &str| {
        lines.iter().filter_map(|l| field(l, key)?.parse::<u64>().ok()).collect::<Vec<u64>>()
    };
    // What the stages do not account for: hand-offs between them, resampling, encoding,
    // the pacer's next 20 ms tick.
    let rest: Vec<u64> = turns
        .iter()
        .filter_map(|t| {
            let stages = ["endpointing_ms", "transcribe_ms", "think_ms", "speak_ms"];
            let sum = stages.iter().map(|k| t[*k].as_u64()).sum::<Option<u64>>()?;
            Some(t["latency_ms"].as_u64()?.saturating_sub(sum))
        })
        .collect();
    let rows = [
        ("endpointing (voice-ua)", column("endpointing_ms")),
        ("transcribe (Whisper tiny.en, HTTP)", column("transcribe_ms")),
        ("think (scripted LLM, first token)", column("think_ms")),
        ("speak (piper, first byte)", column("speak_ms")),
        ("turn latency (end of speech to first RTP)", column("latency_ms")),
        ("rest (latency minus the four stages)", rest),
        ("  server: Whisper decode", server(&stt, "decode_ms")),
        ("  server: Whisper wait + decode + I/O", server(&stt, "total_ms")),
        ("  server: piper first byte", server(&tts, "ttfb_ms")),
    ];
    println!("\n{TEST}: {} turns in one call ({} caller utterances), {call_s:.0} s", turns.len(), n);
    println!("| stage | n | p50 ms | p95 ms | min ms | max ms |\n|---|---|---|---|---|---|");
    for (name, values) in rows {
        match spread(values) {
            Some((n, p50, p95, min, max)) => println!("| {name} | {n} | {p50} | {p95} | {min} | {max} |"),
            None => println!("| {name} | 0 | - | - | - | - |"),
        }
    }
    println!(
        "voice-ua over the call: {cpu:.2} s CPU in {call_s:.0} s ({:.1}% of one core); RSS {:.1} MB as the call \
         began, {:.1} MB at its end, peak {:.1} MB",
        100.0 * cpu / call_s,
        rss_before_kb as f64 / 1024.0,
        rss_kb as f64 / 1024.0,
        hwm_kb as f64 / 1024.0
    );
    assert_eq!(turns.len(), n, "every utterance is a turn in the record: {}", record["turns"]);
    for stage in ["endpointing_ms", "transcribe_ms", "think_ms", "speak_ms"] {
        assert_eq!(column(stage).len(), n, "every turn has its {stage}: {}", record["turns"]);
    }
}
