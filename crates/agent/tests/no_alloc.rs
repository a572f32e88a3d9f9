//! The per-frame paths of the agent cores allocate nothing in steady state: the echo
//! core's speech, recording, playback, barge-in and digit read-back (on buffers reserved
//! in `EchoCore::new`), and the Deepgram session's caller audio on its way out (by value
//! through the output queue, then as a WebSocket payload split off one reused buffer). (A separate test binary: allocation-counter replaces the
//! global allocator wherever it is linked.)

mod common;

use common::Script;
use std::time::{Duration, Instant};

use voice_ua_agent::deepgram::session::{DeepgramSession, Output};
use voice_ua_agent::{AudioFormat, AudioFrame, DeepgramConfig, Digit, EchoConfig, EchoCore, EchoOutput};

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

#[test]
fn the_deepgram_session_sends_caller_audio_without_allocating() {
    let format = AudioFormat::Ulaw8k;
    let t0 = Instant::now();
    let mut s = DeepgramSession::new(t0, format, DeepgramConfig::new("k").settings_message(format));
    s.handle_text(t0, r#"{"type":"Welcome","request_id":"r1"}"#);
    s.handle_text(t0, r#"{"type":"SettingsApplied"}"#);
    while s.poll_output().is_some() {}
    let frame = AudioFrame::silence(format);
    // The queue's first use reserves its room.
    s.handle_call_audio(t0, &frame);
    while s.poll_output().is_some() {}
    let mut t = t0;
    let mut bytes = 0;
    let info = allocation_counter::measure(|| {
        // 10 s of caller audio, with the timer checked every tick as the shell does.
        for _ in 0..500 {
            t += Duration::from_millis(20);
            s.handle_call_audio(t, &frame);
            if s.poll_timeout().is_some_and(|due| due <= t) {
                s.handle_timeout(t);
            }
            while let Some(out) = s.poll_output() {
                if let Output::SendAudio(f) = out {
                    bytes += f.len();
                }
            }
        }
    });
    assert_eq!(bytes, 500 * 160, "every frame went out");
    assert_eq!(info.count_total, 0, "{} allocations", info.count_total);
}

#[test]
fn audio_payloads_for_the_websocket_reuse_one_buffer() {
    use voice_ua_agent::deepgram::audio_out::AudioOut;
    let mut out = AudioOut::new(voice_ua_agent::provider::MAX_FRAME_BYTES);
    let frame = [0x55u8; 160];
    // The first payload may settle the buffer; every later one reuses it once the one
    // before has been dropped (as tungstenite drops it inside `send`).
    drop(out.payload(&frame));
    let mut sent = 0usize;
    let info = allocation_counter::measure(|| {
        for _ in 0..500 {
            let p = out.payload(&frame);
            sent += p.len();
            drop(p);
        }
    });
    assert_eq!(sent, 500 * 160);
    assert_eq!(info.count_total, 0, "allocations for 500 payloads: {info:?}");
}
