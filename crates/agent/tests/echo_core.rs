//! The echo core on synthetic signals, in virtual time (one push = 20 ms).

mod common;

use common::{decode, formats, goertzel, Script};
use proptest::prelude::*;
use voice_ua_agent::echo::{LEAD_FRAMES, PREROLL_FRAMES, TAIL_FRAMES};
use voice_ua_agent::{AudioFormat, Digit, EchoConfig, EchoCore, EchoOutput};

/// -20 dBFS-ish peak for "speech", well above the -45 dBFS floor of detection.
const LOUD: f64 = 6000.0;
/// Onset run and hangover run of the default config, in frames.
const ONSET: usize = 3;
const HANGOVER: usize = 30;

fn quiet_config() -> EchoConfig {
    EchoConfig { greeting: false, ..EchoConfig::default() }
}

/// Everything the core produced, each with the frame count when it came out.
#[derive(Default)]
struct Run {
    outputs: Vec<(u64, EchoOutput)>,
}

impl Run {
    fn drain(&mut self, core: &mut EchoCore) {
        while let Some(out) = core.poll_output() {
            self.outputs.push((core.frames(), out));
        }
    }

    fn feed(&mut self, core: &mut EchoCore, bytes: &[u8]) {
        let fb = core.format().frame_bytes();
        self.drain(core);
        for frame in bytes.chunks(fb) {
            core.push_frame(frame);
            self.drain(core);
        }
    }

    fn audio(&self) -> Vec<u8> {
        self.audio_between(0, u64::MAX)
    }

    fn audio_between(&self, from: u64, to: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for (at, o) in &self.outputs {
            if let EchoOutput::Audio(f) = o {
                if (from..to).contains(at) {
                    out.extend_from_slice(f.as_bytes());
                }
            }
        }
        out
    }

    fn starts(&self) -> Vec<(u64, bool)> {
        self.outputs
            .iter()
            .filter_map(|(_, o)| match o {
                EchoOutput::SpeechStarted { frame, barge_in } => Some((*frame, *barge_in)),
                _ => None,
            })
            .collect()
    }

    fn ends(&self) -> Vec<(u64, usize, bool)> {
        self.outputs
            .iter()
            .filter_map(|(_, o)| match o {
                EchoOutput::SpeechEnded { frame, recorded_bytes, truncated } => {
                    Some((*frame, *recorded_bytes, *truncated))
                }
                _ => None,
            })
            .collect()
    }

    fn flushes(&self) -> Vec<u64> {
        let flush = |(at, o): &(u64, EchoOutput)| (*o == EchoOutput::FlushPlayback).then_some(*at);
        self.outputs.iter().filter_map(flush).collect()
    }
}

#[test]
fn low_noise_never_counts_as_speech() {
    for format in formats() {
        // Peak 300 uniform noise: about -46 dBFS RMS; then quieter noise, then digital silence.
        let script = Script::new(format).noise(300.0).quiet(500).noise(30.0).quiet(250).noise(0.0).quiet(250);
        let mut core = EchoCore::new(format, quiet_config()).expect("format");
        let mut run = Run::default();
        run.feed(&mut core, &script.bytes());
        assert!(run.outputs.is_empty(), "{format}: {:?}", &run.outputs[..run.outputs.len().min(5)]);
    }
}

#[test]
fn tone_in_noise_is_speech_from_onset_to_hangover() {
    for format in formats() {
        let script = Script::new(format).noise(300.0).quiet(100).tone(50, 440.0, LOUD).quiet(100);
        let mut core = EchoCore::new(format, quiet_config()).expect("format");
        let mut run = Run::default();
        run.feed(&mut core, &script.bytes());
        // Tone frames 100..150: onset completes on its third frame, speech ends 600 ms
        // (30 frames) after its last frame.
        assert_eq!(run.starts(), vec![(100 + ONSET as u64 - 1, false)], "{format}");
        let ends = run.ends();
        assert_eq!(ends.len(), 1, "{format}");
        assert_eq!(ends[0].0, 149 + HANGOVER as u64, "{format}");
    }
}

#[test]
fn tone_bursts_separated_by_silence_are_separate_utterances() {
    let format = AudioFormat::Ulaw8k;
    let mut script = Script::new(format).quiet(50);
    for _ in 0..3 {
        script = script.tone(25, 1000.0, LOUD).quiet(75);
    }
    // Short gaps (300 ms) inside one utterance do not split it.
    script = script.tone(20, 500.0, LOUD).quiet(15).tone(20, 500.0, LOUD).quiet(60);
    let mut core = EchoCore::new(format, quiet_config()).expect("format");
    let mut run = Run::default();
    run.feed(&mut core, &script.bytes());
    let starts: Vec<u64> = run.starts().iter().map(|s| s.0).collect();
    assert_eq!(starts, vec![52, 152, 252, 352]);
    let ends: Vec<u64> = run.ends().iter().map(|e| e.0).collect();
    assert_eq!(ends, vec![74 + 30, 174 + 30, 274 + 30, 404 + 30]);
}

#[test]
fn a_quiet_short_blip_is_not_speech() {
    // Two loud frames are shorter than the 60 ms onset.
    let format = AudioFormat::Alaw8k;
    let script = Script::new(format).quiet(20).tone(2, 800.0, LOUD).quiet(50);
    let mut core = EchoCore::new(format, quiet_config()).expect("format");
    let mut run = Run::default();
    run.feed(&mut core, &script.bytes());
    assert!(run.starts().is_empty());
}

#[test]
fn playback_is_the_recording_byte_for_byte_and_starts_after_the_pause() {
    for format in formats() {
        let fb = format.frame_bytes();
        let script = Script::new(format).noise(40.0).quiet(50).voice(100, LOUD).quiet(200);
        let input = script.bytes();
        let mut core = EchoCore::new(format, quiet_config()).expect("format");
        let mut run = Run::default();
        run.feed(&mut core, &input);

        let (end_frame, recorded, truncated) = run.ends()[0];
        assert_eq!(end_frame, 149 + HANGOVER as u64);
        assert!(!truncated);
        // Nothing plays before the caller's pause has been heard out.
        assert!(run.audio_between(0, end_frame + 1).is_empty(), "{format}");
        let first = 50 - PREROLL_FRAMES;
        let last = 150 + TAIL_FRAMES; // exclusive
        let expected = &input[first * fb..last * fb];
        assert_eq!(recorded, expected.len());
        let played = run.audio();
        assert!(played == expected, "{format}: playback differs from the recording");
        // Paced: never more than LEAD_FRAMES ahead of real time.
        let mut sent = 0usize;
        for (at, out) in &run.outputs {
            if let EchoOutput::Audio(f) = out {
                sent += f.len();
                let elapsed = at - (end_frame + 1);
                assert!(sent <= (elapsed + LEAD_FRAMES) as usize * fb, "{format}: ahead at {at}");
            }
        }
    }
}

#[test]
fn new_speech_during_playback_flushes_and_records_again() {
    let format = AudioFormat::Ulaw8k;
    let fb = format.frame_bytes();
    // Utterance 1 (frames 20..120) plays back from frame 150 for 2.3 s; the caller
    // speaks again at frame 170 (400 ms into the playback).
    let script = Script::new(format).quiet(20).voice(100, LOUD).quiet(50).tone(40, 700.0, LOUD).quiet(150);
    let input = script.bytes();
    let mut core = EchoCore::new(format, quiet_config()).expect("format");
    let mut run = Run::default();
    run.feed(&mut core, &input);

    assert_eq!(run.starts(), vec![(22, false), (172, true)]);
    assert_eq!(run.flushes(), vec![173]);
    // FlushPlayback comes before the SpeechStarted it causes, and no first-utterance
    // audio follows it.
    let flush_idx = run.outputs.iter().position(|(_, o)| *o == EchoOutput::FlushPlayback).expect("flush");
    assert!(matches!(run.outputs[flush_idx + 1].1, EchoOutput::SpeechStarted { barge_in: true, .. }));
    let first_playback = run.audio_between(0, 173);
    assert_eq!(first_playback, input[16 * fb..(16 + first_playback.len() / fb) * fb]);
    // The second utterance plays back in full.
    let (end2, _, _) = run.ends()[1];
    assert_eq!(end2, 209 + HANGOVER as u64);
    assert_eq!(
        run.audio_between(end2, u64::MAX),
        input[(170 - PREROLL_FRAMES) * fb..(210 + TAIL_FRAMES) * fb]
    );
}

#[test]
fn recording_stops_at_the_cap() {
    let format = AudioFormat::Alaw8k;
    let fb = format.frame_bytes();
    let config = EchoConfig { max_utterance_ms: 1000, ..quiet_config() };
    let script = Script::new(format).quiet(10).voice(150, LOUD).quiet(100);
    let input = script.bytes();
    let mut core = EchoCore::new(format, config).expect("format");
    assert_eq!(core.recording_capacity(), 50 * fb);
    let mut run = Run::default();
    run.feed(&mut core, &input);
    let (_, recorded, truncated) = run.ends()[0];
    assert!(truncated);
    assert_eq!(recorded, 50 * fb);
    let start = 10 - PREROLL_FRAMES;
    let (played, want) = (run.audio(), &input[start * fb..(start + 50) * fb]);
    let diff = played.iter().zip(want).position(|(a, b)| a != b);
    assert!(played == want, "len {} vs {}, first diff {diff:?}", played.len(), want.len());

    // The default cap is 15 s.
    let core = EchoCore::new(format, quiet_config()).expect("format");
    assert_eq!(core.recording_capacity(), 15 * 8000);
}

const LOW: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const HIGH: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];

#[test]
fn digits_are_read_back_as_their_q23_pair() {
    for format in formats() {
        let rate = f64::from(format.sample_rate());
        for (key, row, col) in [
            ('1', 0, 0),
            ('2', 0, 1),
            ('3', 0, 2),
            ('A', 0, 3),
            ('4', 1, 0),
            ('5', 1, 1),
            ('6', 1, 2),
            ('B', 1, 3),
            ('7', 2, 0),
            ('8', 2, 1),
            ('9', 2, 2),
            ('C', 2, 3),
            ('*', 3, 0),
            ('0', 3, 1),
            ('#', 3, 2),
            ('D', 3, 3),
        ] {
            let mut core = EchoCore::new(format, quiet_config()).expect("format");
            let mut run = Run::default();
            core.push_digit(Digit::new(key).expect("digit"));
            run.feed(&mut core, &Script::new(format).quiet(20).bytes());
            let pcm = decode(format, &run.audio());
            // 100 ms of tone + 60 ms of silence.
            assert_eq!(pcm.len(), format.sample_rate() as usize * 160 / 1000, "{format} {key}");
            let tone = &pcm[..format.sample_rate() as usize / 10];
            let power = |hz: f64| goertzel(tone, hz, rate);
            let want = (power(LOW[row]), power(HIGH[col]));
            for (i, (&lo, &hi)) in LOW.iter().zip(&HIGH).enumerate() {
                if i != row {
                    assert!(want.0 > 50.0 * power(lo), "{format} {key}: {lo} Hz too strong");
                }
                if i != col {
                    assert!(want.1 > 50.0 * power(hi), "{format} {key}: {hi} Hz too strong");
                }
            }
            // Both components at a similar level (twist under 3 dB).
            let twist = 10.0 * (want.0 / want.1).log10();
            assert!(twist.abs() < 3.0, "{format} {key}: twist {twist} dB");
            // Then silence.
            assert!(pcm[tone.len() + 40..].iter().all(|x| x.abs() <= 8), "{format} {key}");
        }
    }
}

#[test]
fn a_digit_interrupts_playback_and_digits_queue_up() {
    let format = AudioFormat::Ulaw8k;
    let script = Script::new(format).quiet(10).voice(50, LOUD).quiet(40);
    let mut core = EchoCore::new(format, quiet_config()).expect("format");
    let mut run = Run::default();
    run.feed(&mut core, &script.bytes());
    assert!(core.is_playing());
    core.push_digit(Digit::new('1').expect("digit"));
    core.push_digit(Digit::new('2').expect("digit"));
    let before = run.outputs.len();
    run.feed(&mut core, &Script::new(format).quiet(30).bytes());
    let after: Vec<&EchoOutput> = run.outputs[before..].iter().map(|(_, o)| o).collect();
    assert_eq!(*after[0], EchoOutput::FlushPlayback);
    let digits = after.iter().filter(|o| matches!(o, EchoOutput::DigitRead { queued: true, .. })).count();
    assert_eq!(digits, 2);
    let tones: usize =
        after.iter().filter_map(|o| if let EchoOutput::Audio(f) = o { Some(f.len()) } else { None }).sum();
    assert_eq!(tones, 2 * 160 * 8);
}

#[test]
fn greeting_is_two_short_440_hz_beeps() {
    let format = AudioFormat::Ulaw8k;
    let mut core = EchoCore::new(format, EchoConfig::default()).expect("format");
    assert!(core.is_playing());
    let mut run = Run::default();
    run.feed(&mut core, &Script::new(format).quiet(40).bytes());
    let pcm = decode(format, &run.audio());
    assert_eq!(pcm.len(), 480 * 8);
    let beep = |k: usize| &pcm[k * 960..k * 960 + 960];
    for k in [0, 2] {
        assert!(goertzel(beep(k), 440.0, 8000.0) > 100.0 * goertzel(beep(k), 1000.0, 8000.0));
        assert!(goertzel(beep(k), 440.0, 8000.0) > 1e5);
    }
    for k in [1, 3] {
        assert!(beep(k).iter().all(|x| x.abs() <= 8));
    }
    assert!(!core.is_playing());
}

#[test]
fn speaking_over_the_greeting_flushes_it() {
    let format = AudioFormat::Ulaw8k;
    let mut core = EchoCore::new(format, EchoConfig::default()).expect("format");
    let mut run = Run::default();
    run.feed(&mut core, &Script::new(format).tone(10, 300.0, LOUD).bytes());
    assert_eq!(run.flushes(), vec![3]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_input_never_panics_and_output_stays_bounded(
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..800), 0..200),
        digits in proptest::collection::vec(proptest::sample::select(&['1', '#', 'D', '0'][..]), 0..20),
        linear in any::<bool>(),
    ) {
        let format = if linear { AudioFormat::Linear16 { rate_hz: 8000 } } else { AudioFormat::Ulaw8k };
        let mut core = EchoCore::new(format, EchoConfig::default()).expect("format");
        let mut digits = digits.into_iter();
        for frame in &frames {
            core.push_frame(frame);
            if frame.first() == Some(&0) {
                if let Some(d) = digits.next() {
                    core.push_digit(Digit::new(d).expect("digit"));
                }
            }
            let mut audio = 0;
            while let Some(out) = core.poll_output() {
                if let EchoOutput::Audio(f) = out {
                    prop_assert!(f.len() <= format.frame_bytes());
                    audio += 1;
                }
            }
            prop_assert!(audio <= LEAD_FRAMES as usize + 1);
        }
    }
}

#[test]
fn extreme_settings_are_clamped_not_fatal() {
    let config = EchoConfig {
        onset_ms: u32::MAX,
        hangover_ms: u32::MAX,
        max_utterance_ms: u32::MAX,
        tone_ms: u32::MAX,
        ..EchoConfig::default()
    };
    for format in formats() {
        let mut core = EchoCore::new(format, config.clone()).expect("a core");
        let cap = voice_ua_agent::echo::MAX_UTTERANCE_MS as usize * format.bytes_per_second() / 1000;
        assert!(core.recording_capacity() <= cap, "{format}: {}", core.recording_capacity());
        core.push_digit(Digit::new('5').expect("digit"));
        core.push_frame(&vec![0x55; format.frame_bytes()]);
        while core.poll_output().is_some() {}
    }
}
