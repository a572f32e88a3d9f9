//! The interop ring's real speech engines: Whisper tiny.en (speech-to-text) and piper's
//! en_US-joe-medium voice (text-to-speech) behind our OpenAI-compatible test server
//! (`speech_server.py`, in the venv `speech-venv.sh` makes under the target dir).
//!
//! [`Speech::shared`] starts one server per test process (the tests run in parallel and
//! share it; the models load once, about 1 s) and hands it out, or prints a SKIP line
//! when the venv cannot be made (a failure under `VOICE_UA_REQUIRE_INTEROP=1`).
//! [`Speech::start`] starts a private one, stopped on drop. A shared server is never
//! dropped: it exits when its stdin closes, i.e. when the test process ends.
//!
//! A test uses it to make a caller's speech ([`Speech::synthesize`]: a WAV for baresip
//! or sipp to play), to read back what a caller heard ([`Speech::transcribe`]) and to
//! check its key words ([`missing_words`]); voice-ua's pipeline points at
//! [`Speech::base_url`] for both `/v1/audio/transcriptions` and `/v1/audio/speech`.

pub mod http;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::RunDir;
use http::{multipart, Conn, Part};

/// piper's voice speaks PCM16 mono at this rate; the server's `/v1/audio/speech`
/// answers at it and refuses any other `sample_rate`.
pub const TTS_RATE: u32 = 22_050;

/// How long the server may take to load both models and print `ready` (about 1 s on
/// an idle machine; the interop tests load the 2 cores heavily).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

fn script(name: &str) -> String {
    format!("{}/interop/support/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The speech venv's python, made once per test process (a first install takes
/// ~20 s and ~650 MB); `None` after a SKIP line when it cannot be made, a panic
/// instead under `VOICE_UA_REQUIRE_INTEROP=1`.
pub fn python(test: &str) -> Option<PathBuf> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    super::venv_python(test, "speech-venv.sh", "speech (Whisper, piper)", &PYTHON)
}

/// A running speech server (and the venv's python, for the command-line tools).
pub struct Speech {
    python: PathBuf,
    child: Mutex<Child>,
    /// Held open: the server exits when it closes (`--exit-on-stdin-eof`).
    _stdin: ChildStdin,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Speech {
    /// The server shared by every test of this process, started on first use; `None`
    /// after a SKIP line when there is no venv (see [`python`]).
    pub fn shared(test: &str) -> Option<&'static Speech> {
        static SHARED: OnceLock<Speech> = OnceLock::new();
        let python = python(test)?;
        Some(SHARED.get_or_init(|| Speech::start(&python)))
    }

    /// A server of its own on a free port, once it printed `ready` (panics with its
    /// log when it does not). Stopped on drop.
    pub fn start(python: &Path) -> Speech {
        let mut child = Command::new(python)
            .arg(script("speech_server.py"))
            .args(["serve", "--port", "0", "--exit-on-stdin-eof"])
            .env("HF_HUB_OFFLINE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} speech_server.py: {e}", python.display()));
        let stdin = child.stdin.take().expect("the server's stdin is piped");
        let stdout = child.stdout.take().expect("the server's stdout is piped");
        let stderr = child.stderr.take().expect("the server's stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let drain = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let port = rx
            .recv_timeout(READY_TIMEOUT)
            .ok()
            .and_then(|l| l.strip_prefix("ready http://127.0.0.1:")?.trim().parse::<u16>().ok());
        let Some(port) = port else {
            // Its whole log: stop it, then read its stderr to the end.
            let _ = child.kill();
            let status = child.wait();
            let _ = drain.join();
            let log = log.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
            panic!("the speech server did not print `ready` (it exited, or {READY_TIMEOUT:?} passed: {status:?})\n{log}");
        };
        Speech { python: python.to_path_buf(), child: Mutex::new(child), _stdin: stdin, port, log }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The OpenAI-style base URL: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The venv's python (for `speech_server.py synth|transcribe`).
    pub fn python(&self) -> &Path {
        &self.python
    }

    /// Every line the server logged so far (one `speech_server: EVENT key=value…` line
    /// per request: `transcription … decode_ms= text=`, `speech … ttfb_ms= total_ms=
    /// sentences= status="complete"|"cancelled"`, `error … status= message=`).
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The last `n` lines of the server's log, for a failure message.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        log[log.len().saturating_sub(n)..].join("\n")
    }

    /// piper's speech of `text` as a PCM16 mono WAV at `rate` Hz (resampled from
    /// 22,050 Hz with libswresample) in `run`'s directory, for a caller to play. Runs
    /// the command-line tool (about 1 s: it loads piper itself).
    pub fn synthesize(&self, run: &RunDir, text: &str, rate: u32) -> PathBuf {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out = run.file(&format!("speech-{n}-{rate}.wav"));
        let done = Command::new(&self.python)
            .arg(script("speech_server.py"))
            .args(["synth", text])
            .arg(&out)
            .args(["--rate", &rate.to_string()])
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap_or_else(|e| panic!("cannot run speech_server.py synth: {e}"));
        assert!(
            done.status.success() && out.is_file(),
            "speech_server.py synth {text:?} failed: {}",
            String::from_utf8_lossy(&done.stderr)
        );
        out
    }

    /// Whisper's text of a PCM16 mono WAV file (8–48 kHz), through the server's
    /// `/v1/audio/transcriptions`.
    pub fn transcribe(&self, wav: &Path) -> String {
        let data = std::fs::read(wav).unwrap_or_else(|e| panic!("cannot read {}: {e}", wav.display()));
        self.transcribe_bytes(&data)
    }

    /// [`Speech::transcribe`] of a WAV file's bytes.
    pub fn transcribe_bytes(&self, wav: &[u8]) -> String {
        let (ct, body) = multipart(&[
            ("file", Part::File { filename: "speech.wav", content_type: "audio/wav", data: wav }),
            ("model", Part::Text("whisper-1")),
        ]);
        let resp = Conn::connect(self.port).request("POST", "/v1/audio/transcriptions", Some(&ct), &body);
        assert_eq!(
            resp.status(),
            200,
            "transcription failed: {}\n{}",
            String::from_utf8_lossy(&resp.body),
            self.log_tail(10)
        );
        resp.json()["text"].as_str().expect("a transcription's text is a string").to_string()
    }
}

impl Drop for Speech {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The words of `text`: lowercase, apostrophes dropped ("don't" is "dont"), any other
/// character that is not a letter or digit a separator.
pub fn words(text: &str) -> Vec<String> {
    let cleaned: String = text
        .chars()
        .filter(|c| !matches!(c, '\'' | '’'))
        .map(|c| if c.is_alphanumeric() { c.to_ascii_lowercase() } else { ' ' })
        .collect();
    cleaned.split_whitespace().map(str::to_string).collect()
}

/// The key words (each normalised as [`words`] does) that `heard` lacks; empty when
/// all are there. Prefer words over numbers: Whisper writes "four five" as "45".
pub fn missing_words(heard: &str, key_words: &[&str]) -> Vec<String> {
    let heard = words(heard);
    key_words.iter().flat_map(|k| words(k)).filter(|k| !heard.contains(k)).collect()
}

/// Panics, naming what was heard, unless `heard` holds every key word.
pub fn assert_key_words(heard: &str, key_words: &[&str]) {
    let missing = missing_words(heard, key_words);
    assert!(missing.is_empty(), "heard {heard:?}: missing the key word(s) {missing:?} of {key_words:?}");
}

/// A PCM16 mono WAV file's bytes holding `pcm` (raw little-endian samples) at `rate`.
pub fn wav_bytes(pcm: &[u8], rate: u32) -> Vec<u8> {
    let len = u32::try_from(pcm.len()).expect("a WAV under 4 GB");
    let mut out = Vec::with_capacity(44 + pcm.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(pcm);
    out
}

/// The samples and rate of a PCM16 mono WAV file (as `synthesize` writes them), e.g.
/// for a caller's microphone.
pub fn read_wav(path: &Path) -> (Vec<i16>, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let bad = |why: &str| -> ! { panic!("{}: {why}", path.display()) };
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        bad("not RIFF/WAVE");
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let mut rate = None;
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let len = u32_at(at + 4) as usize;
        let body = at + 8;
        if body + len > bytes.len() {
            bad("a chunk runs past the end");
        }
        match &bytes[at..at + 4] {
            b"fmt " if len >= 16 => {
                if (u16_at(body), u16_at(body + 2), u16_at(body + 14)) != (1, 1, 16) {
                    bad("not PCM16 mono");
                }
                rate = Some(u32_at(body + 4));
            }
            b"data" => {
                let rate = rate.unwrap_or_else(|| bad("data before fmt"));
                let samples = bytes[body..body + len]
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect();
                return (samples, rate);
            }
            _ => {}
        }
        at = body + len + (len & 1);
    }
    bad("no data chunk")
}

#[cfg(test)]
mod tests {
    use super::{missing_words, wav_bytes, words};

    #[test]
    fn words_are_lowercase_without_punctuation() {
        assert_eq!(words("Hello, World! Don't   stop—now."), ["hello", "world", "dont", "stop", "now"]);
        assert!(words(" ... ").is_empty());
    }

    #[test]
    fn missing_words_names_only_the_absent_ones() {
        let heard = "Please open the gate, for me.";
        assert!(missing_words(heard, &["open", "Gate"]).is_empty());
        assert_eq!(missing_words(heard, &["open", "garage", "door"]), ["garage", "door"]);
        // A word must be whole: "gat" is not in "gate".
        assert_eq!(missing_words(heard, &["gat"]), ["gat"]);
    }

    #[test]
    fn wav_bytes_has_a_44_byte_header() {
        let wav = wav_bytes(&[1, 0, 2, 0], 8000);
        assert_eq!(wav.len(), 48);
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]), 8000);
        assert_eq!(u32::from_le_bytes([wav[40], wav[41], wav[42], wav[43]]), 4);
    }
}
