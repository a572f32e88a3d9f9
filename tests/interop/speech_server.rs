//! The speech server of the interop ring checked on its own (`support/speech.rs`,
//! `support/speech_server.py`): it is the instrument the pipeline tests measure voice-ua
//! with, so it must be proven first.
//!
//! * `speech_server_reads_back_piper_speech`: piper's speech of a phrase, resampled to
//!   8 kHz (and 16 kHz) as a caller or voice-ua would send it, comes back from
//!   `/v1/audio/transcriptions` with its key words (also with `response_format=text`
//!   and a chunked request body, and from the command line); silence gives no text.
//! * `speech_server_streams_pcm_sentence_by_sentence`: `/v1/audio/speech` answers a
//!   3-sentence input with a chunked body, one chunk per sentence, the first arriving
//!   before the last; the bytes are PCM16 at 22,050 Hz of a plausible length, which
//!   Whisper reads back, and the same text gives the same bytes; one keep-alive
//!   connection serves several requests.
//! * `speech_server_stops_a_cancelled_stream`: a client that closes after the first
//!   chunk (a barge-in) stops the synthesis: the server logs it cancelled.
//! * `speech_server_rejects_bad_requests`: wrong formats, rates, fields and bodies get
//!   400 (404 for an unknown path) with an OpenAI-style error naming the parameter.
//! * `speech_server_figures` (ignored; run it with `--ignored --nocapture`): model load,
//!   Whisper's decode time and piper's time to first byte, medians of a few runs.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::speech::http::{multipart, Conn, Part, Response};
use crate::support::speech::{assert_key_words, read_wav, wav_bytes, words, Speech, TTS_RATE};
use crate::support::{wait_until, RunDir};

const THREE: &str =
    "Your table is booked for seven tonight. The kitchen closes at ten. Please call us if you are late.";
const ONE: &str = "Your delivery will arrive tomorrow morning.";

/// A `/v1/audio/speech` request body for `input`, with `model` naming the test (to find
/// its line in the shared server's log).
fn speech_body(model: &str, input: &str) -> Vec<u8> {
    json!({"model": model, "input": input, "voice": "alloy", "response_format": "pcm", "sample_rate": TTS_RATE})
        .to_string()
        .into_bytes()
}

/// The server's log line for the request made with `model` (written once the response
/// is over, so it may come a moment after the client read the end).
fn log_line(speech: &Speech, model: &str) -> String {
    let tag = format!("model=\"{model}\"");
    wait_until(Duration::from_secs(30), Duration::from_millis(20), || {
        speech.log().into_iter().rev().find(|l| l.contains(&tag))
    })
    .unwrap_or_else(|| panic!("no log line for {model}\n{}", speech.log_tail(20)))
}

/// The value of `key=` in a log line.
fn field(line: &str, key: &str) -> String {
    let at = line.find(&format!(" {key}=")).unwrap_or_else(|| panic!("no {key} in {line}"));
    let rest = &line[at + key.len() + 2..];
    if let Some(quoted) = rest.strip_prefix('"') {
        quoted.split('"').next().unwrap_or("").to_string()
    } else {
        rest.split(' ').next().unwrap_or("").to_string()
    }
}

#[test]
fn speech_server_reads_back_piper_speech() {
    const TEST: &str = "speech_server_reads_back";
    let Some(speech) = Speech::shared(TEST) else { return };
    let run = RunDir::new(TEST);
    let phrase = "Can you transfer me to the billing department, please?";
    for rate in [8000, 16000] {
        let wav = speech.synthesize(&run, phrase, rate);
        let (samples, got_rate) = read_wav(&wav);
        assert_eq!(got_rate, rate, "{} is at the asked rate", wav.display());
        let secs = samples.len() as f64 / f64::from(rate);
        assert!((1.5..6.0).contains(&secs), "{phrase:?} lasts {secs:.2} s at {rate} Hz");
        let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!(peak > 8000, "piper's speech is loud enough: peak {peak}");
        let heard = speech.transcribe(&wav);
        eprintln!("{TEST}: {secs:.2} s at {rate} Hz read back as {heard:?}");
        assert_key_words(&heard, &["transfer", "billing", "department"]);
        if rate == 8000 {
            // The command-line reader (its own Whisper) agrees.
            let out = std::process::Command::new(speech.python())
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/interop/support/speech_server.py"))
                .arg("transcribe")
                .arg(&wav)
                .output()
                .expect("run speech_server.py transcribe");
            let cli = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            assert_key_words(&cli, &["transfer", "billing", "department"]);
        }
    }

    // response_format=text: the text alone, then a newline; this request's body goes
    // chunked (Transfer-Encoding), in two chunks.
    let wav = speech.synthesize(&run, "Please open the gate.", 8000);
    let data = std::fs::read(&wav).expect("read the synthesized WAV");
    let (ct, body) = multipart(&[
        ("file", Part::File { filename: "a.wav", content_type: "audio/wav", data: &data }),
        ("model", Part::Text("whisper-1")),
        ("language", Part::Text("en")),
        ("prompt", Part::Text("A caller at a gate.")),
        ("response_format", Part::Text("text")),
    ]);
    let mut conn = Conn::connect(speech.port());
    let (a, b) = body.split_at(body.len() / 2);
    let head = format!(
        "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ct}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let chunked = [head.as_bytes(), format!("{:x}\r\n", a.len()).as_bytes(), a, b"\r\n"]
        .into_iter()
        .chain([format!("{:X};ext=1\r\n", b.len()).as_bytes(), b, b"\r\n0\r\n\r\n"])
        .collect::<Vec<&[u8]>>()
        .concat();
    conn.send_raw(&chunked);
    let resp = conn.read_response();
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(&resp.body));
    assert!(resp.head.header("content-type").is_some_and(|v| v.starts_with("text/plain")), "{:?}", resp.head);
    let text = String::from_utf8(resp.body).expect("a text transcription is UTF-8");
    assert!(text.ends_with('\n') && !text.trim_start().starts_with('{'), "{text:?}");
    assert_key_words(&text, &["open", "gate"]);

    // Silence is not speech: an empty text, not a hallucination.
    let silence = wav_bytes(&[0; 2 * 8000], 8000);
    assert_eq!(speech.transcribe_bytes(&silence), "", "1 s of silence has no words");
}

#[test]
fn speech_server_streams_pcm_sentence_by_sentence() {
    const TEST: &str = "speech_server_streams";
    let Some(speech) = Speech::shared(TEST) else { return };
    let mut conn = Conn::connect(speech.port());

    let sent = Instant::now();
    let three = conn.request("POST", "/v1/audio/speech", Some("application/json"), &speech_body(TEST, THREE));
    assert_eq!(three.status(), 200, "{}", String::from_utf8_lossy(&three.body));
    assert_eq!(three.head.header("content-type"), Some("audio/pcm"), "{:?}", three.head);
    assert!(three.head.is_chunked(), "streamed, not buffered: {:?}", three.head);
    assert_eq!(three.head.header("content-length"), None, "{:?}", three.head);
    let sizes: Vec<usize> = three.chunks.iter().map(|c| c.data.len()).collect();
    let arrived: Vec<f64> = three.chunks.iter().map(|c| (c.at - sent).as_secs_f64() * 1000.0).collect();
    eprintln!("{TEST}: 3 sentences: chunks of {sizes:?} bytes, arriving at {arrived:.0?} ms");
    assert_eq!(sizes.len(), 3, "one chunk per sentence");
    let (first, last) = (&three.chunks[0], &three.chunks[2]);
    assert!(first.at < last.at, "the first sentence arrived before the answer was whole");
    assert!(sizes.iter().all(|n| n % 2 == 0 && *n > TTS_RATE as usize / 2), "each chunk is >0.25 s of PCM16");
    let secs = three.body.len() as f64 / 2.0 / f64::from(TTS_RATE);
    // About 14 characters a second of speech: 98 characters are 5-9 s.
    assert!((4.0..10.0).contains(&secs), "{} bytes are {secs:.2} s at 22,050 Hz", three.body.len());
    let line = log_line(speech, TEST);
    assert_eq!(field(&line, "status"), "complete", "{line}");
    assert_eq!(field(&line, "sentences"), "3", "{line}");
    assert_eq!(field(&line, "bytes"), three.body.len().to_string(), "{line}");

    // Same connection: a one-sentence answer is one chunk, shorter.
    let model_one = format!("{TEST}-one");
    let one =
        conn.request("POST", "/v1/audio/speech", Some("application/json"), &speech_body(&model_one, ONE));
    assert_eq!(one.status(), 200, "{}", String::from_utf8_lossy(&one.body));
    assert_eq!(one.chunks.len(), 1, "one sentence, one chunk");
    let one_secs = one.body.len() as f64 / 2.0 / f64::from(TTS_RATE);
    assert!((1.5..5.0).contains(&one_secs) && one_secs < secs, "{one_secs:.2} s");
    // piper speaks without random noise: the same text, the same samples.
    let again =
        conn.request("POST", "/v1/audio/speech", Some("application/json"), &speech_body(&model_one, ONE));
    assert!(again.body == one.body, "the same text gave different audio");

    // The bytes are speech at 22,050 Hz: Whisper reads them back (on the same
    // connection, through the transcription endpoint).
    let wav = wav_bytes(&three.body, TTS_RATE);
    let (ct, body) = multipart(&[
        ("file", Part::File { filename: "answer.wav", content_type: "audio/wav", data: &wav }),
        ("model", Part::Text("whisper-1")),
    ]);
    let read = conn.request("POST", "/v1/audio/transcriptions", Some(&ct), &body);
    assert_eq!(read.status(), 200, "{}", String::from_utf8_lossy(&read.body));
    let heard = read.json()["text"].as_str().unwrap_or_default().to_string();
    eprintln!("{TEST}: the 3-sentence answer read back as {heard:?}");
    assert_key_words(&heard, &["table", "booked", "kitchen", "closes", "call", "late"]);
}

#[test]
fn speech_server_stops_a_cancelled_stream() {
    const TEST: &str = "speech_server_cancelled";
    let Some(speech) = Speech::shared(TEST) else { return };
    let long: String = (1..=12).map(|i| format!("This is sentence number {i} of a long answer. ")).collect();
    let mut conn = Conn::connect(speech.port());
    conn.send("POST", "/v1/audio/speech", Some("application/json"), &speech_body(TEST, &long));
    let head = conn.read_head();
    assert_eq!(head.status, 200);
    assert!(conn.read_chunk().is_some_and(|c| !c.data.is_empty()), "the first sentence came");
    drop(conn); // the caller barged in: the client drops the stream

    let line = log_line(speech, TEST);
    eprintln!("{TEST}: {line}");
    assert_eq!(field(&line, "status"), "cancelled", "{line}");
    let sentences: u32 = field(&line, "sentences").parse().expect("a sentence count");
    assert!((1..12).contains(&sentences), "synthesis stopped before the 12th sentence: {sentences}");
}

#[test]
fn speech_server_rejects_bad_requests() {
    const TEST: &str = "speech_server_rejects";
    let Some(speech) = Speech::shared(TEST) else { return };
    let mut conn = Conn::connect(speech.port());

    // /v1/audio/speech: (body, the parameter the error names)
    let good = json!({"model": "tts-1", "input": "Hi.", "voice": "alloy", "response_format": "pcm"});
    let with = |key: &str, value: Value| {
        let mut v = good.clone();
        v[key] = value;
        v
    };
    let without = |key: &str| {
        let mut v = good.clone();
        v.as_object_mut().expect("an object").remove(key);
        v
    };
    let speech_cases: Vec<(Value, Option<&str>)> = vec![
        (with("response_format", json!("mp3")), Some("response_format")),
        (with("response_format", json!("wav")), Some("response_format")),
        (without("response_format"), Some("response_format")), // OpenAI's default is mp3
        (with("sample_rate", json!(8000)), Some("sample_rate")),
        (with("sample_rate", json!(24000)), Some("sample_rate")),
        (with("speed", json!(10)), Some("speed")),
        (with("stream_format", json!("sse")), Some("stream_format")),
        (without("input"), Some("input")),
        (with("input", json!("")), Some("input")),
        (without("model"), Some("model")),
        (with("voice", json!(3)), Some("voice")),
        (with("colour", json!("blue")), Some("colour")),
        (json!(["not", "an", "object"]), None),
    ];
    for (body, param) in &speech_cases {
        let resp =
            conn.request("POST", "/v1/audio/speech", Some("application/json"), body.to_string().as_bytes());
        expect_400(&resp, *param, &body.to_string());
    }
    let resp = conn.request("POST", "/v1/audio/speech", Some("application/json"), b"{not json");
    expect_400(&resp, None, "not JSON");
    let resp = conn.request("POST", "/v1/audio/speech", Some("text/plain"), good.to_string().as_bytes());
    expect_400(&resp, None, "text/plain");

    // /v1/audio/transcriptions
    let wav = wav_bytes(&[0; 2 * 8000], 8000);
    let stereo = {
        let mut w = wav_bytes(&[0; 4 * 8000], 8000);
        w[22] = 2; // channels
        w
    };
    let short = wav_bytes(&[0; 2 * 400], 8000); // 50 ms
    let (wav, stereo, short) = (&wav[..], &stereo[..], &short[..]);
    // (the form's fields, the parameter the error names)
    let cases: Vec<(Form<'_>, Option<&str>)> = vec![
        (vec![("file", file(wav))], Some("model")),
        (vec![("model", Part::Text("whisper-1"))], Some("file")),
        (vec![("file", file(b"ID3 this is an mp3")), ("model", Part::Text("whisper-1"))], Some("file")),
        (vec![("file", file(stereo)), ("model", Part::Text("whisper-1"))], Some("file")),
        (vec![("file", file(short)), ("model", Part::Text("whisper-1"))], Some("file")),
        (vec![("file", Part::Text("RIFF")), ("model", Part::Text("whisper-1"))], Some("file")),
        (
            vec![
                ("file", file(wav)),
                ("model", Part::Text("whisper-1")),
                ("response_format", Part::Text("srt")),
            ],
            Some("response_format"),
        ),
        (
            vec![("file", file(wav)), ("model", Part::Text("whisper-1")), ("language", Part::Text("de"))],
            Some("language"),
        ),
        (
            vec![("file", file(wav)), ("model", Part::Text("whisper-1")), ("stream", Part::Text("true"))],
            Some("stream"),
        ),
        (
            vec![("file", file(wav)), ("model", Part::Text("whisper-1")), ("model", Part::Text("whisper-1"))],
            Some("model"),
        ),
    ];
    for (parts, param) in &cases {
        let (ct, body) = multipart(parts);
        let resp = conn.request("POST", "/v1/audio/transcriptions", Some(&ct), &body);
        let names: Vec<&str> = parts.iter().map(|(n, _)| *n).collect();
        expect_400(&resp, *param, &format!("{names:?}"));
    }
    // Broken multipart: no closing boundary; not multipart at all.
    let (ct, mut body) = multipart(&[("file", file(wav)), ("model", Part::Text("whisper-1"))]);
    body.truncate(body.len() - 30);
    let resp = conn.request("POST", "/v1/audio/transcriptions", Some(&ct), &body);
    expect_400(&resp, None, "no closing boundary");
    let resp = conn.request("POST", "/v1/audio/transcriptions", Some("application/json"), b"{}");
    expect_400(&resp, None, "JSON to the transcription endpoint");

    // The connection survived every 400 (each body was read whole).
    let health = conn.request("GET", "/health", None, b"");
    assert_eq!(health.status(), 200);
    assert_eq!(health.json()["sample_rate"], TTS_RATE);

    // An unknown path: 404, and the server closes the connection (it did not read the
    // body, so the stream cannot be trusted).
    let resp = conn.request("POST", "/v1/chat/completions", Some("application/json"), b"{}");
    assert_eq!(resp.status(), 404);
    assert!(resp.json()["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(resp.head.header("connection"), Some("close"), "{:?}", resp.head);
    assert!(conn.is_closed_by_peer(), "closed after a body it did not read");
}

/// A multipart form's fields.
type Form<'a> = Vec<(&'a str, Part<'a>)>;

/// A WAV upload of `data`.
fn file(data: &[u8]) -> Part<'_> {
    Part::File { filename: "a.wav", content_type: "audio/wav", data }
}

/// A 400 with an OpenAI-style error body naming `param` (when given).
fn expect_400(resp: &Response, param: Option<&str>, what: &str) {
    let body = String::from_utf8_lossy(&resp.body);
    assert_eq!(resp.status(), 400, "{what}: {body}");
    let err = &resp.json()["error"];
    assert_eq!(err["type"], "invalid_request_error", "{what}: {body}");
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
    if let Some(param) = param {
        assert_eq!(err["param"], param, "{what}: {body}");
    }
}

/// Median of `xs` (sorted here).
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[test]
#[ignore = "measurements for docs/performance.md: --ignored --nocapture"]
fn speech_server_figures() {
    const TEST: &str = "speech_server_figures";
    const RUNS: usize = 7;
    let Some(python) = crate::support::speech::python(TEST) else { return };
    let started = Instant::now();
    let speech = Speech::start(&python);
    let ready_s = started.elapsed().as_secs_f64();
    let loaded = speech.log().into_iter().find(|l| l.contains(" loaded ")).expect("a loaded line");
    println!("{TEST}: ready after {ready_s:.2} s (process start to `ready`); {loaded}");

    let run = RunDir::new(TEST);
    let wav = speech.synthesize(&run, "I would like to check my billing statement, please.", 8000);
    let data = std::fs::read(&wav).expect("read the WAV");
    let audio_s = (data.len() - 44) as f64 / 16000.0;
    let mut decode = Vec::new();
    let mut round_trip = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let text = speech.transcribe_bytes(&data);
        round_trip.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(words(&text).contains(&"billing".to_string()), "{text:?}");
        let line = speech.log().into_iter().rev().find(|l| l.contains(" transcription ")).expect("a line");
        decode.push(field(&line, "decode_ms").parse().expect("decode_ms"));
    }
    println!(
        "{TEST}: Whisper tiny.en, {audio_s:.2} s at 8 kHz: decode {:.0} ms, HTTP round trip {:.0} ms (medians of {RUNS})",
        median(decode),
        median(round_trip)
    );

    for (name, input) in [("one sentence", ONE), ("three sentences", THREE)] {
        let (mut ttfb, mut total, mut server_ttfb) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..RUNS {
            let model = format!("{TEST}-{i}-{}", name.len());
            let mut conn = Conn::connect(speech.port());
            let t = Instant::now();
            let resp = conn.request(
                "POST",
                "/v1/audio/speech",
                Some("application/json"),
                &speech_body(&model, input),
            );
            assert_eq!(resp.status(), 200);
            ttfb.push((resp.chunks[0].at - t).as_secs_f64() * 1000.0);
            total.push(t.elapsed().as_secs_f64() * 1000.0);
            server_ttfb.push(field(&log_line(&speech, &model), "ttfb_ms").parse().expect("ttfb_ms"));
        }
        println!(
            "{TEST}: piper, {name} ({} chars): first chunk after {:.0} ms at the client ({:.0} ms at the server), whole answer {:.0} ms (medians of {RUNS})",
            input.len(),
            median(ttfb),
            median(server_ttfb),
            median(total)
        );
    }
}
