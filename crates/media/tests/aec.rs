//! The echo canceller on the synthetic caller line (`aec::echo_path`): speech-like
//! playback echoed back 20–150 ms late at -6 to -20 dB with -50 dBFS noise. It finds
//! the delay, takes the echo down (the linear filter and the whole chain, measured on
//! the echo-only part after convergence), leaves no run of frames the caller-speech
//! detector would take for a barge-in, and lets the caller's own speech through. The
//! thresholds sit a few dB under what `examples/aec_eval.rs` measures (the figures are
//! in docs/performance.md).

use voice_ua_media::aec::echo_path::{erle_db, EchoLine, EchoSettings, Talker};
use voice_ua_media::{pcm_level_dbfs, EchoCanceller, MediaError, SpeechOverEcho};

/// What one run of echo (then the caller talking over it) gave.
struct Run {
    delay_ms: Option<u128>,
    echo_found: bool,
    erle_linear: f32,
    /// The echo's reduction by the whole chain over the echo-only part's last 4 s.
    erle_total: f64,
    /// The most frames taken for caller speech within any 500 ms of echo only.
    false_run: usize,
    /// The caller's speech level in and out while they talk over the echo (loud frames).
    talk_in_out: (f64, f64),
}

fn run(rate: u32, delay_ms: u32, atten_db: f64, echo_seconds: usize) -> Run {
    let n = rate as usize / 50;
    let mut far_talker = Talker::new(rate, -18.0, 11);
    let mut caller = Talker::new(rate, -24.0, 99);
    let mut line = EchoLine::new(EchoSettings { rate, delay_ms, atten_db, noise_dbfs: -50.0, seed: 5 });
    let mut aec = EchoCanceller::new(rate).expect("8 or 16 kHz");
    let mut det = SpeechOverEcho::new();
    let (mut far, mut echo, mut near, mut talk) =
        (vec![0i16; n], vec![0i16; n], vec![0i16; n], vec![0i16; n]);
    let echo_frames = echo_seconds * 50;
    let (mut before, mut after, mut talk_in, mut talk_out) = (vec![], vec![], vec![], vec![]);
    let mut heard = Vec::new();
    let mut erle_linear = 0.0;
    for k in 0..echo_frames + 100 {
        far_talker.fill(&mut far);
        let talking = k >= echo_frames;
        if talking {
            caller.fill(&mut talk);
        }
        line.frame(&far, if talking { &talk } else { &[] }, &mut echo, &mut near);
        let input = near.clone();
        aec.process(&far, &mut near);
        let speech = det.push(&near, aec.echo_bound_dbfs());
        if !talking {
            heard.push(speech);
            if k + 200 >= echo_frames && pcm_level_dbfs(&echo) > -40.0 {
                before.extend_from_slice(&input);
                after.extend_from_slice(&near);
            }
            if k + 1 == echo_frames {
                erle_linear = aec.erle_db();
            }
        } else if pcm_level_dbfs(&talk) > -30.0 {
            talk_in.extend_from_slice(&talk);
            talk_out.extend_from_slice(&near);
        }
    }
    let false_run = (0..heard.len())
        .map(|i| heard[i.saturating_sub(24)..=i].iter().filter(|&&s| s).count())
        .max()
        .unwrap_or(0);
    Run {
        delay_ms: aec.delay_estimate().map(|d| d.as_millis()),
        echo_found: aec.echo_found() == Some(true),
        erle_linear,
        erle_total: erle_db(&before, &after),
        false_run,
        talk_in_out: (pcm_level_dbfs(&talk_in).into(), pcm_level_dbfs(&talk_out).into()),
    }
}

#[test]
fn only_8_and_16_khz_are_accepted() {
    assert!(EchoCanceller::new(8000).is_ok());
    assert!(EchoCanceller::new(16000).is_ok());
    assert_eq!(EchoCanceller::new(44100).err(), Some(MediaError::EchoRate(44100)));
    let e = EchoCanceller::new(48000).expect_err("refused");
    assert!(e.to_string().contains("resample"), "{e}");
}

#[test]
fn the_echo_is_found_and_taken_down_at_8_and_16_khz() {
    for rate in [8000u32, 16000] {
        for (delay, atten) in [(20u32, 6.0), (80, 12.0), (150, 20.0), (150, 6.0)] {
            let r = run(rate, delay, atten, 10);
            let found = r.delay_ms.expect("a delay estimate");
            assert!(r.echo_found, "{rate} Hz {delay} ms: the line echoes");
            assert!(found.abs_diff(u128::from(delay)) <= 10, "{rate} Hz {delay} ms: found {found} ms");
            assert!(
                r.erle_total >= 20.0,
                "{rate} Hz {delay} ms {atten} dB: echo down {:.1} dB",
                r.erle_total
            );
            // The linear filter alone: limited by the line's noise on the quieter lines.
            let linear_min = if atten <= 6.0 { 12.0 } else { 3.0 };
            assert!(
                r.erle_linear >= linear_min,
                "{rate} Hz {delay} ms {atten} dB: ERLE {:.1} dB",
                r.erle_linear
            );
            // Never 200 ms of "caller speech" within 500 ms of echo alone.
            assert!(
                r.false_run < 10,
                "{rate} Hz {delay} ms {atten} dB: {} false frames in 500 ms",
                r.false_run
            );
            // The caller talking over the echo comes through within a few dB.
            let (i, o) = r.talk_in_out;
            assert!(
                o > i - 4.0,
                "{rate} Hz {delay} ms {atten} dB: the caller's speech {i:.1} dBFS came out at {o:.1}"
            );
        }
    }
}

#[test]
fn without_playback_the_callers_audio_passes_untouched() {
    for rate in [8000u32, 16000] {
        let n = rate as usize / 50;
        let mut aec = EchoCanceller::new(rate).expect("rate");
        let mut caller = Talker::new(rate, -20.0, 4);
        let silence = vec![0i16; n];
        for _ in 0..100 {
            let frame = caller.take(n);
            let mut near = frame.clone();
            aec.process(&silence, &mut near);
            assert_eq!(near, frame);
        }
        assert_eq!(aec.delay_estimate(), None);
        assert_eq!(aec.echo_bound_dbfs(), voice_ua_media::vad::SILENCE_DBFS);
    }
}

#[test]
fn frames_of_the_wrong_length_pass_untouched() {
    let mut aec = EchoCanceller::new(8000).expect("rate");
    let mut near: Vec<i16> = (0..320).map(|i| i as i16).collect();
    let want = near.clone();
    aec.process(&[1000; 320], &mut near);
    assert_eq!(near, want);
    aec.process(&[1000; 160], &mut near[..100]);
    assert_eq!(near, want);
}

#[test]
fn on_a_line_without_echo_a_caller_quieter_than_the_playback_is_heard_after_a_second() {
    let n = 160;
    let mut aec = EchoCanceller::new(8000).expect("rate");
    let mut det = SpeechOverEcho::new();
    let mut agent = Talker::new(8000, -12.0, 3);
    let mut caller = Talker::new(8000, -24.0, 4);
    let mut line =
        EchoLine::new(EchoSettings { rate: 8000, delay_ms: 60, atten_db: 200.0, noise_dbfs: -50.0, seed: 1 });
    let (mut far, mut echo, mut near) = (vec![0i16; n], vec![0i16; n], vec![0i16; n]);
    let mut heard = |seconds: usize, talking: bool, aec: &mut EchoCanceller, det: &mut SpeechOverEcho| {
        let mut frames = 0;
        for _ in 0..seconds * 50 {
            agent.fill(&mut far);
            let talk = if talking { caller.take(n) } else { Vec::new() };
            line.frame(&far, &talk, &mut echo, &mut near);
            aec.process(&far, &mut near);
            frames += usize::from(det.push(&near, aec.echo_bound_dbfs()));
        }
        frames
    };
    // The first second (the agent talking in less than 50 of its frames): nothing is
    // known of the line, and the caller 12 dB under the playback is not taken for
    // speech over it (it could be a 6 dB echo).
    assert_eq!(heard(1, true, &mut aec, &mut det), 0);
    assert_eq!(aec.delay_estimate(), None, "there is no echo to find");
    assert_eq!(aec.echo_found(), None, "under a second of playback is not enough to tell");
    // After a second of playback without an echo, the same caller is heard.
    heard(1, false, &mut aec, &mut det);
    assert_eq!(aec.echo_found(), Some(false));
    let frames = heard(2, true, &mut aec, &mut det);
    assert!(frames > 50, "the caller heard in {frames} of 100 frames");
}
