//! The endpointer in virtual time: synthetic 20 ms frames (quiet noise, tones and noise
//! at given dBFS) pushed one by one, events checked at exact frame numbers. Each setting
//! has a case that fails if it is ignored; a property test feeds arbitrary frames,
//! playback flags, keys and resets.

use std::time::Duration;

use proptest::prelude::*;
use voice_ua_media::endpoint::{EndReason, EndpointEvent, EndpointSettings, Endpointer, TRAILING_KEEP_MS};
use voice_ua_media::pcm_level_dbfs;

/// A deterministic signal source; every frame it makes is one 20 ms frame at `rate`.
struct Gen {
    rate: u32,
    phase: f64,
    seed: u64,
}

impl Gen {
    fn new(rate: u32) -> Gen {
        Gen { rate, phase: 0.0, seed: 0x9E37_79B9_7F4A_7C15 }
    }

    fn frame_len(&self) -> usize {
        self.rate as usize / 50
    }

    /// A sine at `freq` Hz whose level is `dbfs` (relative to a full-scale square wave).
    fn tone(&mut self, freq: f64, dbfs: f64) -> Vec<i16> {
        let amplitude = 32768.0 * 2f64.sqrt() * 10f64.powf(dbfs / 20.0);
        let step = 2.0 * std::f64::consts::PI * freq / f64::from(self.rate);
        (0..self.frame_len())
            .map(|_| {
                self.phase = (self.phase + step) % (2.0 * std::f64::consts::PI);
                (amplitude * self.phase.sin()).round() as i16
            })
            .collect()
    }

    /// White noise whose level is `dbfs`.
    fn noise(&mut self, dbfs: f64) -> Vec<i16> {
        let amplitude = 32768.0 * 3f64.sqrt() * 10f64.powf(dbfs / 20.0);
        (0..self.frame_len())
            .map(|_| {
                self.seed ^= self.seed << 13;
                self.seed ^= self.seed >> 7;
                self.seed ^= self.seed << 17;
                let u = (self.seed >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
                (amplitude * (2.0 * u - 1.0)).round() as i16
            })
            .collect()
    }

    /// Speech stand-in: a 440 Hz tone at -20 dBFS.
    fn speech(&mut self) -> Vec<i16> {
        self.tone(440.0, -20.0)
    }

    /// The line between words: noise at -70 dBFS.
    fn quiet(&mut self) -> Vec<i16> {
        self.noise(-70.0)
    }
}

/// What a run produced: every frame pushed, and each non-`None` event with the index of
/// the frame that produced it.
struct Run {
    ep: Endpointer,
    input: Vec<i16>,
    events: Vec<(usize, EndpointEvent)>,
    pushed: usize,
}

impl Run {
    fn new(settings: EndpointSettings, rate: u32) -> Run {
        Run {
            ep: Endpointer::new(settings, rate).expect("valid settings"),
            input: Vec::new(),
            events: Vec::new(),
            pushed: 0,
        }
    }

    fn push(&mut self, frame: &[i16], playing: bool) -> EndpointEvent {
        let event = self.ep.push(frame, playing);
        self.input.extend_from_slice(frame);
        if event != EndpointEvent::None {
            self.events.push((self.pushed, event));
        }
        self.pushed += 1;
        event
    }

    fn feed(&mut self, frames: usize, playing: bool, mut make: impl FnMut() -> Vec<i16>) {
        for _ in 0..frames {
            self.push(&make(), playing);
        }
    }

    /// The first event matching `pred`, with its frame index.
    fn find(&self, pred: impl Fn(&EndpointEvent) -> bool) -> Option<(usize, EndpointEvent)> {
        self.events.iter().copied().find(|(_, e)| pred(e))
    }

    /// Push frames from `make` until a `TurnEnded` or `Discarded`; returns it and its
    /// frame index (at most `limit` frames).
    fn until_end(
        &mut self,
        limit: usize,
        playing: bool,
        mut make: impl FnMut() -> Vec<i16>,
    ) -> (usize, EndpointEvent) {
        for _ in 0..limit {
            let index = self.pushed;
            let e = self.push(&make(), playing);
            if matches!(e, EndpointEvent::TurnEnded { .. } | EndpointEvent::Discarded { .. }) {
                return (index, e);
            }
        }
        panic!("no end of turn within {limit} frames: {:?}", self.events);
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// 1 s of quiet, `speech_frames` of speech, then quiet until the turn ends.
fn one_turn(settings: EndpointSettings, speech_frames: usize) -> (Run, usize, EndpointEvent) {
    let mut g = Gen::new(8000);
    let mut run = Run::new(settings, 8000);
    run.feed(50, false, || g.quiet());
    run.feed(speech_frames, false, || g.speech());
    let (at, e) = run.until_end(2000, false, || g.quiet());
    (run, at, e)
}

#[test]
fn a_turn_ends_after_end_silence() {
    // Speech in frames 50..100; the 35th quiet frame (index 134) ends the turn.
    let (run, at, e) = one_turn(EndpointSettings::default(), 50);
    assert_eq!(run.find(|e| *e == EndpointEvent::SpeechStarted).map(|(i, _)| i), Some(52), "onset run of 3");
    assert_eq!(at, 134);
    assert_eq!(
        e,
        EndpointEvent::TurnEnded {
            reason: EndReason::Silence,
            speech: ms(1000),
            prefix: ms(300),
            trailing_silence: ms(200),
            endpointing: ms(700),
        }
    );
    assert_eq!(run.ep.utterance().len(), (15 + 50 + 10) * 160);
    assert!(!run.ep.speaking());

    let (_, at, e) = one_turn(EndpointSettings { end_silence_ms: 300, ..Default::default() }, 50);
    assert_eq!(at, 114);
    assert!(matches!(e, EndpointEvent::TurnEnded { endpointing, .. } if endpointing == ms(300)), "{e:?}");
}

#[test]
fn pauses_shorter_than_end_silence_stay_in_one_turn() {
    let mut g = Gen::new(8000);
    let mut run = Run::new(EndpointSettings::default(), 8000);
    run.feed(20, false, || g.quiet());
    run.feed(25, false, || g.speech());
    run.feed(30, false, || g.quiet()); // 600 ms pause < 700 ms
    run.feed(25, false, || g.speech());
    let (_, e) = run.until_end(100, false, || g.quiet());
    assert!(matches!(e, EndpointEvent::TurnEnded { speech, .. } if speech == ms(1600)), "{e:?}");
    assert_eq!(run.events.iter().filter(|(_, e)| *e == EndpointEvent::SpeechStarted).count(), 1);
}

#[test]
fn a_100_ms_click_is_discarded() {
    let (run, _, e) = one_turn(EndpointSettings::default(), 5);
    assert_eq!(e, EndpointEvent::Discarded { speech: ms(100) });
    assert!(run.ep.utterance().is_empty());
    assert!(run.find(|e| *e == EndpointEvent::SpeechStarted).is_some(), "the click did start speech");
}

#[test]
fn min_speech_decides_what_is_discarded() {
    // 300 ms of speech: an utterance by default, a cough with min_speech_ms = 400.
    let (_, _, e) = one_turn(EndpointSettings::default(), 15);
    assert!(matches!(e, EndpointEvent::TurnEnded { .. }), "{e:?}");
    let (_, _, e) = one_turn(EndpointSettings { min_speech_ms: 400, ..Default::default() }, 15);
    assert_eq!(e, EndpointEvent::Discarded { speech: ms(300) });
    // And the 100 ms click passes with min_speech_ms = 0.
    let (_, _, e) = one_turn(EndpointSettings { min_speech_ms: 0, ..Default::default() }, 5);
    assert!(matches!(e, EndpointEvent::TurnEnded { speech, .. } if speech == ms(100)), "{e:?}");
}

#[test]
fn prefix_padding_includes_the_onset_audio() {
    for (padding_ms, padding_frames) in [(300u32, 15usize), (0, 0), (110, 6)] {
        let settings = EndpointSettings { prefix_padding_ms: padding_ms, ..Default::default() };
        let (run, _, e) = one_turn(settings, 40);
        let EndpointEvent::TurnEnded { prefix, .. } = e else { panic!("{e:?}") };
        assert_eq!(prefix, ms(padding_frames as u64 * 20));
        // Onset at frame 50: the utterance is the input from 50 - padding to 10 frames
        // after the last loud frame (89), sample for sample.
        let from = (50 - padding_frames) * 160;
        let to = (90 + 10) * 160;
        assert_eq!(run.ep.utterance(), &run.input[from..to], "padding {padding_ms} ms");
        // The onset run (the 60 ms before SpeechStarted) is in it, loud.
        let onset = &run.ep.utterance()[padding_frames * 160..(padding_frames + 1) * 160];
        assert!(pcm_level_dbfs(onset) > -21.0);
    }
}

#[test]
fn the_prefix_never_reaches_into_the_previous_turn() {
    let mut g = Gen::new(8000);
    let mut run = Run::new(EndpointSettings::default(), 8000);
    run.feed(50, false, || g.quiet());
    run.feed(20, false, || g.speech());
    run.until_end(100, false, || g.quiet());
    run.feed(5, false, || g.quiet());
    run.feed(20, false, || g.speech());
    let (_, e) = run.until_end(100, false, || g.quiet());
    assert!(matches!(e, EndpointEvent::TurnEnded { prefix, .. } if prefix == ms(100)), "{e:?}");
}

#[test]
fn max_length_ends_the_turn_while_the_caller_talks() {
    let settings = EndpointSettings { max_utterance_ms: 2000, ..Default::default() };
    let mut g = Gen::new(8000);
    let mut run = Run::new(settings, 8000);
    run.feed(50, false, || g.quiet());
    // Onset at frame 50; the 100th frame from it (index 149) ends the turn.
    let (at, e) = run.until_end(1000, false, || g.speech());
    assert_eq!(at, 149);
    assert_eq!(
        e,
        EndpointEvent::TurnEnded {
            reason: EndReason::MaxLength,
            speech: ms(2000),
            prefix: ms(300),
            trailing_silence: ms(0),
            endpointing: ms(0),
        }
    );
    assert_eq!(run.ep.utterance(), &run.input[35 * 160..150 * 160]);
    // Still talking: the next frame starts the next utterance at once, without prefix.
    assert_eq!(run.push(&g.speech(), false), EndpointEvent::SpeechStarted);
    assert!(run.ep.utterance().is_empty(), "valid only until the next push");
    run.feed(9, false, || g.speech());
    let (_, e) = run.until_end(100, false, || g.quiet());
    assert!(
        matches!(e, EndpointEvent::TurnEnded { speech, prefix, .. } if speech == ms(200) && prefix == ms(0))
    );

    // The default 15 s limit does not cut 3 s of speech.
    let (_, _, e) = one_turn(EndpointSettings::default(), 150);
    assert!(
        matches!(e, EndpointEvent::TurnEnded { reason: EndReason::Silence, speech, .. } if speech == ms(3000))
    );
}

#[test]
fn the_key_ends_the_turn_at_once() {
    let mut g = Gen::new(8000);
    let mut run = Run::new(EndpointSettings::default(), 8000);
    run.feed(50, false, || g.quiet());
    assert_eq!(run.ep.end_turn_now(), None, "no speech yet");
    run.feed(30, false, || g.speech());
    run.feed(5, false, || g.quiet());
    assert!(run.ep.speaking());
    assert_eq!(
        run.ep.end_turn_now(),
        Some(EndpointEvent::TurnEnded {
            reason: EndReason::Key,
            speech: ms(600),
            prefix: ms(300),
            trailing_silence: ms(100),
            endpointing: ms(100),
        })
    );
    assert_eq!(run.ep.utterance(), &run.input[35 * 160..85 * 160]);
    assert!(!run.ep.speaking());
    assert_eq!(run.ep.end_turn_now(), None, "the turn is already over");
    assert!(run.ep.utterance().is_empty());
    // Silence afterwards ends nothing more.
    run.feed(100, false, || g.quiet());
    assert_eq!(run.events.len(), 1, "{:?}", run.events);
    // A key after a click discards it.
    run.feed(4, false, || g.speech());
    assert_eq!(run.ep.end_turn_now(), Some(EndpointEvent::Discarded { speech: ms(80) }));
}

#[test]
fn barge_in_needs_playback_and_barge_in_min() {
    for (barge_in_min_ms, expected) in [(300u32, 64usize), (500, 74)] {
        let settings = EndpointSettings { barge_in_min_ms, ..Default::default() };
        let mut g = Gen::new(8000);
        let mut run = Run::new(settings, 8000);
        run.feed(50, true, || g.quiet());
        run.feed(100, true, || g.speech());
        let barge_ins: Vec<usize> =
            run.events.iter().filter(|(_, e)| *e == EndpointEvent::BargeIn).map(|(i, _)| *i).collect();
        // Onset at 50: the 15th (25th) loud frame is index 64 (74); once per utterance.
        assert_eq!(barge_ins, vec![expected], "{barge_in_min_ms} ms");
    }
    // Not playing: speech, but no barge-in.
    let mut g = Gen::new(8000);
    let mut run = Run::new(EndpointSettings::default(), 8000);
    run.feed(50, false, || g.quiet());
    run.feed(100, false, || g.speech());
    assert!(run.find(|e| *e == EndpointEvent::SpeechStarted).is_some());
    assert!(run.find(|e| *e == EndpointEvent::BargeIn).is_none());
    // Playback starting mid-utterance: barge-in on the first loud frame while playing.
    run.feed(5, true, || g.speech());
    assert_eq!(run.events.last(), Some(&(150, EndpointEvent::BargeIn)));
}

#[test]
fn a_short_interjection_during_playback_is_no_barge_in() {
    let mut g = Gen::new(8000);
    let mut run = Run::new(EndpointSettings::default(), 8000);
    run.feed(50, true, || g.quiet());
    run.feed(12, true, || g.speech()); // 240 ms "uh-huh"
    let (_, e) = run.until_end(100, true, || g.quiet());
    assert!(matches!(e, EndpointEvent::TurnEnded { .. }));
    assert!(run.find(|e| *e == EndpointEvent::BargeIn).is_none());
}

#[test]
fn playback_margin_raises_the_threshold() {
    // A voice at -42 dBFS: over the -45 dBFS gate, under it plus 6 dB.
    let run_at = |margin: f32, playing: bool| {
        let settings = EndpointSettings { playback_margin_db: margin, ..Default::default() };
        let mut g = Gen::new(8000);
        let mut run = Run::new(settings, 8000);
        run.feed(50, playing, || g.quiet());
        run.feed(50, playing, || g.tone(300.0, -42.0));
        run.events.iter().map(|(_, e)| *e).collect::<Vec<_>>()
    };
    assert_eq!(run_at(6.0, true), vec![], "6 dB margin while playing");
    assert_eq!(run_at(6.0, false), vec![EndpointEvent::SpeechStarted], "not playing");
    assert_eq!(run_at(2.0, true), vec![EndpointEvent::SpeechStarted, EndpointEvent::BargeIn], "2 dB margin");
}

#[test]
fn noise_below_the_gate_never_starts_speech() {
    // Street noise at -50 dBFS (well above the initial floor + 12 dB) for 20 s, and a
    // tone at -47 dBFS: never speech with the gate at -45.
    let run_noise = |gate: f32| {
        let settings = EndpointSettings { noise_gate_dbfs: gate, ..Default::default() };
        let mut g = Gen::new(8000);
        let mut run = Run::new(settings, 8000);
        run.feed(1000, false, || g.noise(-50.0));
        run.feed(100, false, || g.tone(1000.0, -47.0));
        run.events.len()
    };
    assert_eq!(run_noise(-45.0), 0);
    assert!(run_noise(-55.0) > 0, "with the gate under the noise, the noise starts speech");
    // Speech over that noise still gets through.
    let mut g = Gen::new(8000);
    let mut run = Run::new(EndpointSettings::default(), 8000);
    run.feed(1000, false, || g.noise(-50.0));
    run.feed(50, false, || g.speech());
    let (_, e) = run.until_end(100, false, || g.noise(-50.0));
    assert!(matches!(e, EndpointEvent::TurnEnded { speech, .. } if speech == ms(1000)), "{e:?}");
}

#[test]
fn reset_drops_the_partial_utterance() {
    let mut g = Gen::new(8000);
    let mut run = Run::new(EndpointSettings::default(), 8000);
    run.feed(50, false, || g.quiet());
    run.feed(20, false, || g.speech());
    assert!(run.ep.speaking());
    run.ep.reset();
    assert!(!run.ep.speaking());
    assert_eq!(run.ep.end_turn_now(), None);
    // The caller goes on talking: a new utterance from the next loud frame, no prefix.
    assert_eq!(run.push(&g.speech(), false), EndpointEvent::SpeechStarted);
    run.feed(19, false, || g.speech());
    let (_, e) = run.until_end(100, false, || g.quiet());
    assert!(
        matches!(e, EndpointEvent::TurnEnded { speech, prefix, .. } if speech == ms(400) && prefix == ms(0))
    );
}

#[test]
fn sixteen_khz_frames() {
    let mut g = Gen::new(16000);
    let mut run = Run::new(EndpointSettings::default(), 16000);
    run.feed(50, false, || g.quiet());
    run.feed(50, false, || g.tone(1000.0, -25.0));
    let (at, e) = run.until_end(100, false, || g.quiet());
    assert_eq!(at, 134);
    assert!(matches!(e, EndpointEvent::TurnEnded { speech, .. } if speech == ms(1000)));
    assert_eq!(run.ep.utterance(), &run.input[35 * 320..110 * 320]);
}

#[test]
fn odd_frame_lengths_count_as_one_frame() {
    let mut g = Gen::new(8000);
    let mut ep = Endpointer::new(EndpointSettings::default(), 8000).expect("valid");
    for _ in 0..50 {
        ep.push(&[], false);
    }
    let mut events = Vec::new();
    for _ in 0..50 {
        let mut long = g.speech();
        long.extend(g.speech());
        events.push(ep.push(&long, false));
        events.push(ep.push(&g.speech()[..100], false));
    }
    let end = (0..40).map(|_| ep.push(&[0; 7], false)).find(|e| *e != EndpointEvent::None);
    assert!(matches!(end, Some(EndpointEvent::TurnEnded { speech, .. }) if speech == ms(2000)), "{end:?}");
    assert_eq!(ep.utterance().len(), (15 + 100 + 10) * 160);
    assert_eq!(events.iter().filter(|e| **e != EndpointEvent::None).count(), 1, "{events:?}");
}

fn settings_strategy() -> impl Strategy<Value = EndpointSettings> {
    (0u32..1000, 100u32..2000, 1000u32..4000, 0u32..600, -80.0f32..-20.0, 20u32..1000, 0.0f32..20.0).prop_map(
        |(
            min_speech_ms,
            end_silence_ms,
            max_utterance_ms,
            prefix_padding_ms,
            gate,
            barge_in_min_ms,
            margin,
        )| {
            EndpointSettings {
                min_speech_ms,
                end_silence_ms,
                max_utterance_ms,
                prefix_padding_ms,
                noise_gate_dbfs: gate,
                barge_in_min_ms,
                playback_margin_db: margin,
            }
        },
    )
}

#[derive(Debug, Clone)]
enum Step {
    /// `n` frames of a level (dBFS, -100 for digital silence), playing or not.
    Level(f64, u16, bool),
    /// One frame of arbitrary samples, any length.
    Raw(Vec<i16>, bool),
    Key,
    Reset,
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (-100.0f64..0.0, 1u16..200, any::<bool>()).prop_map(|(l, n, p)| Step::Level(l, n, p)),
        2 => (prop::collection::vec(any::<i16>(), 0..700), any::<bool>()).prop_map(|(v, p)| Step::Raw(v, p)),
        1 => Just(Step::Key),
        1 => Just(Step::Reset),
    ]
}

fn check_event(ep: &Endpointer, e: EndpointEvent, cap: usize) -> Result<(), TestCaseError> {
    let fl = ep.frame_len();
    prop_assert!(ep.utterance().len() <= cap);
    match e {
        EndpointEvent::TurnEnded { reason, speech, prefix, trailing_silence, endpointing } => {
            let frames = (prefix + speech + trailing_silence).as_millis() as usize / 20;
            prop_assert_eq!(ep.utterance().len(), frames * fl);
            prop_assert!(trailing_silence <= endpointing);
            prop_assert!(trailing_silence <= ms(u64::from(TRAILING_KEEP_MS)));
            prop_assert!(prefix <= ms(u64::from(ep.settings().prefix_padding_ms.div_ceil(20) * 20)));
            if reason != EndReason::MaxLength {
                prop_assert!(speech.as_millis() as u32 >= ep.settings().min_speech_ms.div_ceil(20) * 20);
            }
            if reason == EndReason::Silence {
                prop_assert_eq!(
                    endpointing.as_millis() as u32,
                    ep.settings().end_silence_ms.div_ceil(20) * 20
                );
            }
            prop_assert!(!ep.speaking());
        }
        EndpointEvent::Discarded { .. } => {
            prop_assert!(ep.utterance().is_empty());
            prop_assert!(!ep.speaking());
        }
        EndpointEvent::SpeechStarted | EndpointEvent::BargeIn => prop_assert!(ep.speaking()),
        EndpointEvent::None => prop_assert!(ep.utterance().is_empty()),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_frames_never_panic_and_stay_bounded(
        settings in settings_strategy(),
        wide in any::<bool>(),
        steps in prop::collection::vec(step_strategy(), 0..40),
    ) {
        let rate = if wide { 16000 } else { 8000 };
        let mut ep = Endpointer::new(settings, rate).expect("valid settings");
        let cap = (settings.prefix_padding_ms.div_ceil(20) + settings.max_utterance_ms.div_ceil(20)) as usize
            * ep.frame_len();
        let mut g = Gen::new(rate);
        for step in steps {
            match step {
                Step::Level(level, n, playing) => {
                    for _ in 0..n {
                        let frame = if level <= -99.0 { vec![0; ep.frame_len()] } else { g.noise(level) };
                        let e = ep.push(&frame, playing);
                        check_event(&ep, e, cap)?;
                    }
                }
                Step::Raw(frame, playing) => {
                    let e = ep.push(&frame, playing);
                    check_event(&ep, e, cap)?;
                }
                Step::Key => {
                    let was = ep.speaking();
                    let e = ep.end_turn_now();
                    prop_assert_eq!(e.is_some(), was);
                    if let Some(e) = e {
                        let by_key =
                            matches!(e, EndpointEvent::TurnEnded { reason: EndReason::Key, .. } | EndpointEvent::Discarded { .. });
                        prop_assert!(by_key, "{:?}", e);
                        check_event(&ep, e, cap)?;
                    }
                }
                Step::Reset => {
                    ep.reset();
                    prop_assert!(!ep.speaking() && ep.utterance().is_empty());
                }
            }
        }
    }
}
