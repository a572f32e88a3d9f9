//! The per-frame paths of the agent cores allocate nothing in steady state: the echo
//! core's speech, recording, playback, barge-in and digit read-back (on buffers reserved
//! in `EchoCore::new`), the Deepgram session's caller audio on its way out (by value
//! through the output queue, then as a WebSocket payload split off one reused buffer),
//! both WebSocket bot dialects both ways, and the OpenAI session's both ways (caller frames batched by value, then written as an
//! append event into the reused buffer; agent deltas parsed borrowed, decoded into one
//! buffer, queued as frames), and the pipeline's turn machine on the caller's frames
//! (decoded into a reused buffer, through the endpointer; only a finished utterance
//! allocates, for its WAV). (A separate test binary: allocation-counter replaces the
//! global allocator wherever it is linked.)

mod common;

use common::Script;
use std::time::{Duration, Instant};

use base64::Engine;
use voice_ua_agent::deepgram::session::{DeepgramSession, Output};
use voice_ua_agent::openai::messages::{append_json, append_json_len};
use voice_ua_agent::openai::session::{OpenAiSession, Output as OpenAiOutput, MAX_APPEND_BYTES};
use voice_ua_agent::OpenAiConfig;
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

/// The WebSocket bots' per-frame paths: 10 s of caller audio out (Twilio: JSON + base64
/// into the shell's buffer; ASP: header + PCM16), and the bot's audio in (a Twilio `media`
/// message, an ASP binary burst) cut into frames for the call, marks included.
#[test]
fn the_websocket_dialects_carry_audio_both_ways_without_allocating() {
    use base64::Engine as _;
    use voice_ua_agent::websocket::asp::AspCore;
    use voice_ua_agent::websocket::session::DialectCore;
    use voice_ua_agent::websocket::twilio::{TwilioCore, TwilioIds};
    use voice_ua_agent::{CallFacts, CallInput};

    let facts = |format| CallFacts {
        call_id: "c@pbx".into(),
        caller_display: None,
        caller_uri: "sip:2001@pbx".into(),
        callee: "9000".into(),
        extension: "9000".into(),
        format,
    };
    let payload = base64::engine::general_purpose::STANDARD.encode([0x55u8; 800]);
    let media = format!(r#"{{"event":"media","streamSid":"MZ1","media":{{"payload":"{payload}"}}}}"#);
    for format in [AudioFormat::Ulaw8k, AudioFormat::Alaw8k] {
        let t0 = Instant::now();
        let ids = TwilioIds::for_call(&facts(format), [7; 16]);
        let mut twilio = TwilioCore::new(format, ids, Vec::new());
        let mut asp = AspCore::new(t0, &facts(format), [9; 16]);
        asp.handle_connected(t0);
        asp.handle_text(t0, r#"{"type":"protocol.capabilities","version":"1.0.0"}"#);
        let id = asp.session_id().to_owned();
        asp.handle_text(
            t0,
            &format!(r#"{{"type":"session.started","session_id":"{id}","status":"accepted"}}"#),
        );
        asp.handle_text(t0, &format!(r#"{{"type":"response.start","session_id":"{id}"}}"#));
        asp.handle_text(t0, &format!(r#"{{"type":"response.end","session_id":"{id}"}}"#));
        let mut burst = vec![0x01, 0x01];
        burst.extend_from_slice(&asp.hash());
        burst.extend_from_slice(&[0, 0]);
        burst.extend_from_slice(&[0x10; 2000]);
        let frame = AudioFrame::silence(format);
        let mut out = Vec::with_capacity(2048);
        let mut run = |twilio: &mut TwilioCore, asp: &mut AspCore, n: u32| {
            let (mut sent, mut got) = (0, 0);
            for i in 0..n {
                let t = t0 + Duration::from_millis(20 * u64::from(i));
                for core in [twilio as &mut dyn DialectCore, asp as &mut dyn DialectCore] {
                    core.handle_input(t, CallInput::Audio(frame));
                    while core.poll_transmit(&mut out).is_some() {
                        sent += out.len();
                    }
                }
                if i % 25 == 0 {
                    twilio.handle_text(t, &media);
                    asp.handle_binary(t, &burst);
                }
                for core in [twilio as &mut dyn DialectCore, asp as &mut dyn DialectCore] {
                    while let Some(event) = core.poll_event() {
                        if let voice_ua_agent::AgentEvent::Mark(id) = event {
                            core.handle_input(t, CallInput::MarkPlayed { id, cleared: false });
                        }
                        got += 1;
                    }
                }
            }
            (sent, got)
        };
        // The first frames settle the buffers and queues.
        let _ = run(&mut twilio, &mut asp, 30);
        let mut counts = (0, 0);
        let info = allocation_counter::measure(|| counts = run(&mut twilio, &mut asp, 500));
        assert!(counts.0 > 500 * 300 && counts.1 >= 20 * 13, "{format}: audio went both ways: {counts:?}");
        assert_eq!(info.count_total, 0, "{format}: {} allocations", info.count_total);
    }
}

fn openai_streaming(t0: Instant) -> OpenAiSession {
    let mut s = OpenAiSession::new(t0, AudioFormat::Ulaw8k, &OpenAiConfig::new("k"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    s.handle_text(t0, r#"{"type":"session.created","session":{"type":"realtime","id":"s"}}"#);
    s.handle_text(t0, r#"{"type":"session.updated","session":{"type":"realtime"}}"#);
    while s.poll_output().is_some() {}
    s
}

#[test]
fn the_openai_session_appends_caller_audio_without_allocating() {
    use voice_ua_agent::ws::AudioOut;
    let t0 = Instant::now();
    let mut s = openai_streaming(t0);
    let frame = AudioFrame::silence(AudioFormat::Ulaw8k);
    let mut out = AudioOut::new(append_json_len(MAX_APPEND_BYTES));
    let drive = |s: &mut OpenAiSession, t: Instant, out: &mut AudioOut| {
        s.handle_call_audio(t, &frame);
        if s.poll_timeout().is_some_and(|due| due <= t) {
            s.handle_timeout(t);
        }
        let mut bytes = 0;
        while let Some(o) = s.poll_output() {
            if let OpenAiOutput::SendAudio(batch) = o {
                let audio = batch.as_bytes();
                let payload = out.build(append_json_len(audio.len()), |b| append_json(audio, b));
                bytes += payload.len();
                drop(payload); // as tungstenite does inside send
            }
        }
        bytes
    };
    // The first append settles the queue and the buffer.
    let mut t = t0;
    for _ in 0..4 {
        t += Duration::from_millis(20);
        drive(&mut s, t, &mut out);
    }
    let mut bytes = 0;
    let info = allocation_counter::measure(|| {
        for _ in 0..500 {
            t += Duration::from_millis(20);
            bytes += drive(&mut s, t, &mut out);
        }
    });
    assert_eq!(bytes, 250 * append_json_len(320), "every frame went out, two per append");
    assert_eq!(info.count_total, 0, "{} allocations", info.count_total);
}

#[test]
fn the_openai_session_plays_agent_deltas_without_allocating() {
    let t0 = Instant::now();
    let mut s = openai_streaming(t0);
    let b64 = base64::engine::general_purpose::STANDARD.encode([0x55u8; 800]);
    let delta = format!(
        r#"{{"type":"response.output_audio.delta","event_id":"event_123","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0,"delta":"{b64}"}}"#
    );
    // The first delta names the item (its id is kept) and sizes the buffers.
    s.handle_text(t0, &delta);
    while s.poll_output().is_some() {}
    let mut bytes = 0;
    let mut t = t0;
    let info = allocation_counter::measure(|| {
        for _ in 0..500 {
            t += Duration::from_millis(100);
            s.handle_text(t, &delta);
            while let Some(o) = s.poll_output() {
                if let OpenAiOutput::Event(voice_ua_agent::AgentEvent::Audio(f)) = o {
                    bytes += f.len();
                }
            }
        }
    });
    assert_eq!(bytes, 500 * 800, "every delta reached the call");
    assert_eq!(info.count_total, 0, "{} allocations", info.count_total);
}

#[test]
fn the_pipeline_takes_caller_frames_without_allocating() {
    use std::sync::Arc;
    use voice_ua_agent::pipeline::PipelineCore;
    let config = common::pipeline::config("http://127.0.0.1:9/v1");
    let format = AudioFormat::Ulaw8k;
    // Noise, then speech that has not ended yet (an utterance in progress).
    let input = Script::new(format).noise(50.0).quiet(100).voice(300, 6000.0).bytes();
    let frames: Vec<AudioFrame> = input
        .chunks(format.frame_bytes())
        .map(|c| AudioFrame::new(c).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let mut core = PipelineCore::new(Arc::new(config), format).unwrap_or_else(|e| panic!("{e}"));
    let t0 = Instant::now();
    // Warm up: the output queue's first growth.
    core.audio(t0, &frames[0]);
    while core.poll_output().is_some() {}
    let info = allocation_counter::measure(|| {
        for (i, f) in frames.iter().enumerate().skip(1) {
            core.audio(t0 + Duration::from_millis(20 * i as u64), f);
            while core.poll_output().is_some() {}
        }
    });
    assert_eq!(info.count_total, 0, "{} allocations over {} frames", info.count_total, frames.len());
}
