//! The echo canceller on the synthetic caller line (figures in docs/performance.md,
//! "Echo cancellation (issue 14)"): for each rate, delay and echo level, 12 s of
//! speech-like playback echoed back with -50 dBFS noise, then the caller talking over
//! it. Prints the delay found and when, the linear filter's ERLE, the whole echo
//! reduction (filter and suppressor) over the echo-only part after convergence, the
//! frames [`SpeechOverEcho`] wrongly took for the caller, and how soon it heard the
//! caller's real speech.
//!
//! Run: `cargo run --release -p voice-ua-media --example aec_eval`

use voice_ua_media::aec::echo_path::{erle_db, EchoLine, EchoSettings, Talker};
use voice_ua_media::{EchoCanceller, SpeechOverEcho};

struct Outcome {
    delay_ms: Option<u128>,
    found_at_s: Option<f64>,
    erle_linear: f32,
    erle_total: f64,
    false_frames: usize,
    frames: usize,
    talk_heard_ms: Option<usize>,
    /// The same without any echo (the talker's own onset).
    baseline_ms: Option<usize>,
    /// The most speech frames wrongly heard within any 500 ms of echo only.
    false_run: usize,
    talk_frames: usize,
}

/// When 200 ms (10 frames) of speech had been heard within 500 ms, in ms from the start.
fn first_200_ms(frames: &[bool]) -> Option<usize> {
    (0..frames.len())
        .find(|&i| frames[i.saturating_sub(24)..=i].iter().filter(|&&s| s).count() >= 10)
        .map(|i| (i + 1) * 20)
}

fn run(rate: u32, delay_ms: u32, atten_db: f64, talk_dbfs: f64) -> Outcome {
    let n = rate as usize / 50;
    let mut far_talker = Talker::new(rate, -18.0, 11);
    let mut caller = Talker::new(rate, talk_dbfs, 99);
    let mut line = EchoLine::new(EchoSettings { rate, delay_ms, atten_db, noise_dbfs: -50.0, seed: 5 });
    let mut aec = EchoCanceller::new(rate).expect("8 or 16 kHz");
    let mut det = SpeechOverEcho::new();
    let (mut far, mut echo, mut near, mut talk) =
        (vec![0i16; n], vec![0i16; n], vec![0i16; n], vec![0i16; n]);
    let echo_only_frames = 12 * 50;
    let talk_frames = 3 * 50;
    let (mut before, mut after) = (Vec::new(), Vec::new());
    let mut found_at = None;
    let mut false_frames = 0;
    let mut heard = Vec::new();
    let mut echo_only = Vec::new();
    let mut baseline = Vec::new();
    let mut plain = SpeechOverEcho::new();
    let mut quiet_line =
        EchoLine::new(EchoSettings { rate, delay_ms, atten_db: 200.0, noise_dbfs: -50.0, seed: 5 });
    let mut plain_out = vec![0i16; n];
    let mut erle_linear = 0.0;
    for k in 0..echo_only_frames + talk_frames {
        far_talker.fill(&mut far);
        let talking = k >= echo_only_frames;
        if talking {
            caller.fill(&mut talk);
        }
        line.frame(&far, if talking { &talk } else { &[] }, &mut echo, &mut near);
        let input = near.clone();
        aec.process(&far, &mut near);
        let speech = det.push(&near, aec.echo_bound_dbfs());
        if std::env::var("TRACE").is_ok() && k >= echo_only_frames - 5 && k < echo_only_frames + 40 {
            eprintln!(
                "{k} talk {:6.1} in {:6.1} out {:6.1} bound {:6.1} floor {:6.1} erle {:5.1} dt {} speech {speech}",
                voice_ua_media::pcm_level_dbfs(&talk),
                voice_ua_media::pcm_level_dbfs(&input),
                voice_ua_media::pcm_level_dbfs(&near),
                aec.echo_bound_dbfs(),
                det.floor_dbfs(),
                aec.erle_db(),
                aec.double_talk()
            );
        }
        if k == echo_only_frames - 1 {
            erle_linear = aec.erle_db();
        }
        if found_at.is_none() && aec.delay_estimate().is_some() {
            found_at = Some(k as f64 / 50.0);
        }
        quiet_line.frame(&far, if talking { &talk } else { &[] }, &mut echo.clone(), &mut plain_out);
        let plain_speech = plain.push(&plain_out, -100.0);
        if !talking {
            echo_only.push(speech);
            if speech && std::env::var("FALSE").is_ok() {
                eprintln!(
                    "false {k}: in {:6.1} out {:6.1} bound {:6.1} erl {:5.1} erle {:5.1} dt {}",
                    voice_ua_media::pcm_level_dbfs(&input),
                    voice_ua_media::pcm_level_dbfs(&near),
                    aec.echo_bound_dbfs(),
                    aec.erl_db(),
                    aec.erle_db(),
                    aec.double_talk()
                );
            }
            false_frames += usize::from(speech);
            // The echo-only part after convergence: the last 4 s, frames with echo.
            if k >= echo_only_frames - 200 && voice_ua_media::pcm_level_dbfs(&echo) > -40.0 {
                before.extend_from_slice(&input);
                after.extend_from_slice(&near);
            }
        } else {
            heard.push(speech);
            baseline.push(plain_speech);
        }
    }
    // When 200 ms (10 frames) of caller speech had been heard within 500 ms.
    let talk_heard = first_200_ms(&heard);
    let false_run = (0..echo_only.len())
        .map(|i| echo_only[i.saturating_sub(24)..=i].iter().filter(|&&s| s).count())
        .max()
        .unwrap_or(0);
    Outcome {
        delay_ms: aec.delay_estimate().map(|d| d.as_millis()),
        found_at_s: found_at,
        erle_linear,
        erle_total: erle_db(&before, &after),
        false_frames,
        frames: echo_only_frames,
        talk_heard_ms: talk_heard,
        baseline_ms: first_200_ms(&baseline),
        false_run,
        talk_frames: heard.iter().filter(|&&s| s).count(),
    }
}

fn main() {
    println!("rate  delay atten | found(ms) at(s) | ERLE lin  total | false frames, most in 500 ms | caller: 200 ms heard after (no echo), frames heard/150");
    if let Ok(one) = std::env::var("TRACE") {
        let v: Vec<f64> = one.split(',').map(|x| x.parse().expect("rate,delay,atten")).collect();
        run(v[0] as u32, v[1] as u32, v[2], -24.0);
        return;
    }
    for rate in [8000u32, 16000] {
        for delay in [20u32, 60, 100, 150] {
            for atten in [6.0, 12.0, 20.0] {
                let o = run(rate, delay, atten, -24.0);
                println!(
                    "{rate:5} {delay:4}ms {atten:4.0}dB | {:>8} {:>5} | {:6.1} {:6.1} | {:4}/{}, {:2} | {:>6} ms ({:>4} ms), {:3}",
                    o.delay_ms.map_or("-".into(), |d| d.to_string()),
                    o.found_at_s.map_or("-".into(), |t| format!("{t:.2}")),
                    o.erle_linear,
                    o.erle_total,
                    o.false_frames,
                    o.frames,
                    o.false_run,
                    o.talk_heard_ms.map_or("never".into(), |t| t.to_string()),
                    o.baseline_ms.map_or("-".into(), |t| t.to_string()),
                    o.talk_frames,
                );
            }
        }
    }
}
