//! The binary bridged to the fake Deepgram agent, end to end over real sockets: while a
//! slow HTTP function runs the caller hears the hold tone (425 Hz beeps), not dead air,
//! and the fake gets `mip_opt_out: true`; and the consent prompt plays before the
//! greeting. What decides (the threshold, one hold for several functions, the phrase)
//! is proven in virtual time by voice-ua-agent's tests; these check the wiring.

mod common;

use common::agent::talk_and_keep_the_record;
use common::{exact_matches, Received};
use std::time::Duration;
use voice_ua_agent::AudioFormat;
use voice_ua_fake_deepgram::{tone, FakeConfig, FakeDeepgram, Step};

const KEY: &str = "test-deepgram-key-0123456789";
const ENV: &[(&str, &str)] = &[("DEEPGRAM_API_KEY", KEY)];

/// An HTTP function that answers `{"ok":true}` after `delay`.
fn slow_tool(delay: Duration) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind the HTTP tool server");
    let port = listener.local_addr().expect("local address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let (mut buf, mut chunk) = (Vec::new(), [0u8; 4096]);
            while let Ok(n) = stream.read(&mut chunk) {
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                let complete = text.find("\r\n\r\n").is_some_and(|end| {
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned)
                        })
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    buf.len() >= end + 4 + len
                });
                if n == 0 || complete {
                    break;
                }
            }
            std::thread::sleep(delay);
            let body = r#"{"ok":true}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn agent_config(fake: &FakeDeepgram, extra: &str) -> String {
    format!("[agent]\nurl = \"{}\"\ngreeting = \"Hello\"\n{extra}", fake.url())
}

fn decode(payload: &[u8]) -> Vec<f64> {
    payload.iter().map(|&b| f64::from(voice_ua_media::g711::ulaw_decode(b))).collect()
}

fn rms_dbfs(x: &[f64]) -> f64 {
    let rms = (x.iter().map(|s| s * s).sum::<f64>() / x.len().max(1) as f64).sqrt();
    20.0 * (rms / 32768.0).max(1e-9).log10()
}

/// The power of `x` at `hz` (Goertzel), 8 kHz samples.
fn power_at(x: &[f64], hz: f64) -> f64 {
    let w = std::f64::consts::TAU * hz / 8000.0;
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = v + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2
}

/// The packets with sound that are none of the agent's audio (`agent`): the hold tone.
fn not_agent<'a>(got: &'a [Received], agent: &[&[u8]]) -> Vec<&'a Received> {
    got.iter().filter(|p| !agent.contains(&p.3.as_slice()) && rms_dbfs(&decode(&p.3)) > -40.0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_function_gets_the_hold_tone_instead_of_dead_air() {
    let port = slow_tool(Duration::from_millis(2000));
    let script = vec![
        Step::speak("Hello", 400, true),
        Step::WaitAudio { frames: 10, min_dbfs: None },
        Step::call("fc_1", "lookup", "{}"),
        Step::speak("Done", 400, true),
    ];
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).script(script)).await.expect("fake agent");
    let functions = format!(
        "[[agent.functions]]\nname = \"lookup\"\ndescription = \"Look it up\"\nkind = \"http\"\n\
         url = \"http://127.0.0.1:{port}/lookup\"\ntimeout_ms = 5000\n"
    );
    let config = agent_config(&fake, &functions);
    let (got, (record, _), status, logs) =
        talk_and_keep_the_record("dg-hold-tone", config, ENV, 250, |_| false).await;
    assert!(status.success(), "{status:?}");
    let agent_audio = tone(AudioFormat::Ulaw8k, 400);
    let chunks: Vec<&[u8]> = agent_audio.chunks(160).collect();
    assert!(exact_matches(&got, &chunks) >= 36, "the greeting and the answer reach the caller");
    let hold = not_agent(&got, &chunks);
    // The function takes 2 s; the tone starts at +700 ms with a 200 ms beep (10 packets).
    assert!(hold.len() >= 8, "the caller heard the hold tone while the function ran: {} packets", hold.len());
    let samples: Vec<f64> = hold.iter().take(10).flat_map(|p| decode(&p.3)).collect();
    let (at_425, at_440) = (power_at(&samples, 425.0), power_at(&samples, 440.0));
    assert!(at_425 > 4.0 * at_440, "a 425 Hz beep, not the agent's 440 Hz: {at_425:e} vs {at_440:e}");
    let level = rms_dbfs(&samples);
    assert!((-30.0..-18.0).contains(&level), "a soft tone (about -24 dBFS): {level:.1} dBFS");
    // It came between the greeting and the answer: the first answer packet follows it.
    let first_hold = got.iter().position(|p| std::ptr::eq(p, hold[0])).expect("in the stream");
    let last_hold =
        got.iter().position(|p| std::ptr::eq(p, *hold.last().expect("one"))).expect("in the stream");
    let answer = got.iter().rposition(|p| chunks.contains(&p.3.as_slice())).expect("the answer");
    assert!(first_hold < answer && last_hold < answer, "the tone stops before the answer plays");
    assert!(logs.iter().any(|l| l.contains("hold tone on")), "the call logs the hold");
    let tools: Vec<(&str, &str)> =
        record.tool_calls.iter().map(|t| (t.name.as_str(), t.result.as_str())).collect();
    assert_eq!(tools, [("lookup", "ok")]);
    let r = &fake.wait_records(1, Duration::from_secs(3)).await[0];
    assert!(r.violations.is_empty() && r.script_done, "{r:?}");
    assert!(r.settings.as_ref().is_some_and(|s| s.mip_opt_out), "opted out by default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consent_prompt_plays_before_the_greeting_and_transcripts_stay_out_of_the_log() {
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).script(vec![Step::speak("Hello there", 400, true)]))
        .await
        .expect("fake agent");
    // One second of a 300 Hz tone as the consent prompt, a raw μ-law file.
    let prompt: Vec<u8> = (0..8000)
        .map(|n| {
            let x = (std::f64::consts::TAU * 300.0 * f64::from(n) / 8000.0).sin() * 6000.0;
            voice_ua_media::g711::ulaw_encode(x as i16)
        })
        .collect();
    let path = std::env::temp_dir().join(format!("voice-ua-consent-{}.ulaw", std::process::id()));
    std::fs::write(&path, &prompt).expect("write the prompt");
    let config = format!("{}\n[records]\nconsent_prompt = \"{}\"\n", agent_config(&fake, ""), path.display());
    let (got, (record, _), status, logs) =
        talk_and_keep_the_record("dg-consent", config, ENV, 120, |_| false).await;
    let _ = std::fs::remove_file(&path);
    assert!(status.success(), "{status:?}");
    let prompt_chunks: Vec<&[u8]> = prompt.chunks(160).collect();
    let greeting = tone(AudioFormat::Ulaw8k, 400);
    let greeting_chunks: Vec<&[u8]> = greeting.chunks(160).collect();
    let first_prompt = got.iter().position(|p| prompt_chunks.contains(&p.3.as_slice())).expect("the prompt");
    let last_prompt = got.iter().rposition(|p| prompt_chunks.contains(&p.3.as_slice())).expect("the prompt");
    let first_greeting =
        got.iter().position(|p| greeting_chunks.contains(&p.3.as_slice())).expect("the greeting");
    assert!(exact_matches(&got, &prompt_chunks) >= 45, "the whole prompt");
    assert!(first_prompt < first_greeting && last_prompt < first_greeting, "the prompt, then the greeting");
    assert!(!logs.iter().any(|l| l.contains("Hello there")), "no transcript text in the log by default");
    assert_eq!(
        record.transcript.first().map(|l| l.text.as_str()),
        Some("Hello there"),
        "the record keeps it"
    );
}
