//! The echo core's per-frame path allocates nothing once the core exists: speech,
//! recording, playback, barge-in and digit read-back all run on buffers reserved in
//! `EchoCore::new`. (A separate test binary: allocation-counter replaces the global
//! allocator wherever it is linked.)

mod common;

use common::Script;
use voice_ua_agent::{AudioFormat, Digit, EchoConfig, EchoCore, EchoOutput};

fn drive(core: &mut EchoCore, input: &[u8], digit_at: usize) -> usize {
    let fb = core.format().frame_bytes();
    let mut audio = 0;
    for (i, frame) in input.chunks(fb).enumerate() {
        core.push_frame(frame);
        if i == digit_at {
            core.push_digit(Digit::new('7').unwrap_or_else(|e| panic!("{e}")));
        }
        while let Some(out) = core.poll_output() {
            if let EchoOutput::Audio(f) = out {
                audio += f.len();
            }
        }
    }
    audio
}

#[test]
fn the_echo_core_does_not_allocate_per_frame() {
    for format in [AudioFormat::Ulaw8k, AudioFormat::Linear16 { rate_hz: 16000 }] {
        // Two utterances, the second barging in on the playback of the first, a digit
        // during the second playback, and one utterance longer than the cap.
        let script = Script::new(format)
            .noise(50.0)
            .quiet(30)
            .voice(100, 6000.0)
            .quiet(50)
            .voice(40, 6000.0)
            .quiet(60)
            .voice(200, 6000.0)
            .quiet(150);
        let input = script.bytes();
        let config = EchoConfig { max_utterance_ms: 2000, ..EchoConfig::default() };
        let mut core = EchoCore::new(format, config).unwrap_or_else(|e| panic!("{e}"));
        let mut played = 0;
        let info = allocation_counter::measure(|| {
            played = drive(&mut core, &input, 280);
        });
        assert!(played > 0);
        // The counter works: one allocation is seen.
        let one = allocation_counter::measure(|| {
            std::hint::black_box(Vec::<u8>::with_capacity(8));
        });
        assert_eq!(one.count_total, 1);
        assert_eq!(info.count_total, 0, "{format}: {} allocations", info.count_total);
    }
}
