//! The ASP dialect core in virtual time: the handshake in the order theo-ai-voice-agent's
//! code uses, the 12-byte audio header both ways, our VAD's `audio.end`, barge-in,
//! `call.action`, the end, and every way the handshake can fail.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::Script;
use voice_ua_agent::websocket::asp::{self, AspCore, State};
use voice_ua_agent::websocket::session::{Closed, DialectCore, Transmit};
use voice_ua_agent::{AgentEvent, AudioFormat, AudioFrame, CallFacts, CallInput, Role, SessionEnd};

const CAPS: &str = r#"{"type":"protocol.capabilities","version":"1.0.0","capabilities":{"version":"1.0.0","supported_sample_rates":[8000,16000],"supported_encodings":["pcm_s16le","mulaw","alaw"],"supported_frame_durations":[10,20,30],"vad_configurable":true,"max_session_duration_seconds":3600,"features":["barge_in","streaming_tts","sentence_pipeline"]},"timestamp":"2026-02-06T00:00:00.000Z","server_id":"ai-agent"}"#;
const FRAME: Duration = Duration::from_millis(20);

fn facts(format: AudioFormat) -> CallFacts {
    CallFacts {
        call_id: "abc@pbx".into(),
        caller_display: None,
        caller_uri: "sip:2001@pbx.lan".into(),
        callee: "9000".into(),
        extension: "9000".into(),
        format,
    }
}

/// 2026-02-06T00:00:00.000Z
fn wall() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_770_336_000)
}

struct Rig {
    core: AspCore,
    now: Instant,
}

#[derive(Debug, PartialEq)]
enum Out {
    Text(String),
    Binary(Vec<u8>),
    Close,
}

impl Rig {
    fn new(format: AudioFormat) -> Rig {
        let now = Instant::now();
        let mut core = AspCore::with_clock(now, wall(), &facts(format), [0xab; 16]);
        core.handle_connected(now);
        Rig { core, now }
    }

    /// Connected, capabilities, session.start, session.started: streaming.
    fn streaming(format: AudioFormat) -> Rig {
        let mut r = Rig::new(format);
        r.text(CAPS);
        let _ = r.sent();
        let started = format!(
            r#"{{"type":"session.started","session_id":"{}","status":"accepted","negotiated":{{"audio":{{"sample_rate":8000,"encoding":"pcm_s16le","channels":1,"frame_duration_ms":20}},"adjustments":[]}}}}"#,
            r.core.session_id()
        );
        r.text(&started);
        assert_eq!(r.core.state(), State::Streaming);
        let _ = r.events();
        r
    }

    fn text(&mut self, t: &str) {
        self.core.handle_text(self.now, t);
    }

    fn sent(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(t) = self.core.poll_transmit(&mut buf) {
            out.push(match t {
                Transmit::Text => Out::Text(String::from_utf8(buf.clone()).expect("utf-8")),
                Transmit::Binary => Out::Binary(buf.clone()),
                Transmit::Close => Out::Close,
            });
        }
        out
    }

    fn texts(&mut self) -> Vec<String> {
        self.sent().into_iter().filter_map(|o| if let Out::Text(t) = o { Some(t) } else { None }).collect()
    }

    fn events(&mut self) -> Vec<AgentEvent> {
        std::iter::from_fn(|| self.core.poll_event()).collect()
    }

    fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        while let Some(t) = self.core.poll_timeout().filter(|t| *t <= until) {
            self.now = t.max(self.now);
            self.core.handle_timeout(self.now);
        }
        self.now = until;
    }

    /// One 20 ms caller frame, the clock moved on.
    fn frame(&mut self, bytes: &[u8]) {
        self.core.handle_input(self.now, CallInput::Audio(AudioFrame::new(bytes).expect("frame")));
        self.advance(FRAME);
    }

    /// The agent's audio frame with our hash.
    fn agent_audio(&mut self, pcm: &[u8]) {
        let mut frame = vec![asp::AUDIO_MAGIC, asp::DIRECTION_OUTBOUND];
        frame.extend_from_slice(&self.core.hash());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(pcm);
        self.core.handle_binary(self.now, &frame);
    }

    fn response(&mut self, text: &str, pcm_bytes: usize) -> Vec<u32> {
        let id = self.core.session_id().to_owned();
        self.text(&format!(r#"{{"type":"response.start","session_id":"{id}","text":"{text}"}}"#));
        for chunk in vec![0x10u8; pcm_bytes].chunks(2000) {
            self.agent_audio(chunk);
        }
        self.text(&format!(r#"{{"type":"response.end","session_id":"{id}"}}"#));
        self.events()
            .iter()
            .filter_map(|e| if let AgentEvent::Mark(m) = e { Some(*m) } else { None })
            .collect()
    }

    fn played(&mut self, marks: &[u32]) {
        for &id in marks {
            self.core.handle_input(self.now, CallInput::MarkPlayed { id, cleared: false });
        }
    }
}

fn speech(format: AudioFormat, frames: usize) -> Vec<Vec<u8>> {
    let bytes = Script::new(format).voice(frames, 8000.0).bytes();
    bytes.chunks(format.frame_bytes()).map(<[u8]>::to_vec).collect()
}

#[test]
fn the_handshake_is_capabilities_then_session_start_then_started() {
    let mut r = Rig::new(AudioFormat::Ulaw8k);
    assert!(r.sent().is_empty(), "the agent speaks first");
    r.advance(Duration::from_millis(40));
    r.text(CAPS);
    let id = r.core.session_id().to_owned();
    assert_eq!(id, "abababab-abab-4bab-abab-abababababab");
    assert_eq!(
        r.texts(),
        [format!(
            concat!(
                r#"{{"type":"session.start","session_id":"{id}","#,
                r#""audio":{{"sample_rate":8000,"encoding":"pcm_s16le","channels":1,"frame_duration_ms":20}},"#,
                r#""vad":{{"enabled":true,"silence_threshold_ms":500,"min_speech_ms":250,"threshold":0.5,"ring_buffer_frames":5,"speech_ratio":0.4,"prefix_padding_ms":300}},"#,
                r#""timestamp":"2026-02-06T00:00:00.040Z","call_id":"abc@pbx","#,
                r#""metadata":{{"source":"voice-ua","caller":"2001","caller_uri":"sip:2001@pbx.lan","callee":"9000","extension":"9000"}}}}"#
            ),
            id = id
        )]
    );
    assert_eq!(r.core.state(), State::AwaitingStarted);
    // Audio before session.started goes nowhere (the agent would drop it: unknown hash).
    r.frame(&[0xFF; 160]);
    assert!(r.sent().is_empty());
    r.text(&format!(
        r#"{{"type":"session.started","session_id":"{id}","status":"accepted_with_changes","negotiated":{{"adjustments":[{{"field":"vad.threshold","requested":2,"applied":1,"reason":"clamped"}}]}}}}"#
    ));
    assert_eq!(r.core.state(), State::Streaming);
    assert_eq!(r.events(), [AgentEvent::SessionOpened { id }]);
    assert!(!r.core.legacy());
}

#[test]
fn a_rejected_session_fails_the_call_over_to_the_fallback() {
    let mut r = Rig::new(AudioFormat::Ulaw8k);
    r.text(CAPS);
    let _ = r.sent();
    let id = r.core.session_id().to_owned();
    r.text(&format!(
        r#"{{"type":"session.started","session_id":"{id}","status":"rejected","errors":[{{"code":"UNSUPPORTED_SAMPLE_RATE","category":"audio","message":"no","recoverable":false}}]}}"#
    ));
    let ev = r.events();
    let [AgentEvent::Ended(SessionEnd::Failed(e))] = &ev[..] else { panic!("{ev:?}") };
    assert_eq!(e.code(), Some("SESSION_REJECTED"));
    assert!(e.to_string().contains("UNSUPPORTED_SAMPLE_RATE"), "{e}");
    assert_eq!(r.sent(), [Out::Close]);
}

#[test]
fn without_capabilities_in_5_s_the_peer_is_legacy_and_session_start_goes_anyway() {
    let mut r = Rig::new(AudioFormat::Ulaw8k);
    r.advance(Duration::from_millis(4999));
    assert!(r.sent().is_empty());
    r.advance(Duration::from_millis(1));
    let texts = r.texts();
    assert!(texts.len() == 1 && texts[0].starts_with(r#"{"type":"session.start""#), "{texts:?}");
    assert!(r.core.legacy());
    // A legacy peer answers without a status.
    let id = r.core.session_id().to_owned();
    r.text(&format!(r#"{{"type":"session.started","session_id":"{id}"}}"#));
    assert_eq!(r.core.state(), State::Streaming);
}

#[test]
fn a_handshake_that_never_completes_fails_after_10_s() {
    let mut r = Rig::new(AudioFormat::Ulaw8k);
    r.text(CAPS);
    let _ = r.sent();
    r.advance(Duration::from_millis(9999));
    assert!(r.events().is_empty());
    r.advance(Duration::from_millis(1));
    let ev = r.events();
    let [AgentEvent::Ended(SessionEnd::Failed(e))] = &ev[..] else { panic!("{ev:?}") };
    assert_eq!(e.code(), Some("HANDSHAKE_TIMEOUT"));
    let out = r.sent();
    assert!(
        matches!(&out[..], [Out::Text(t), Out::Close] if t.contains(r#""type":"session.end""#) && t.contains(r#""reason":"error""#)),
        "{out:?}"
    );
    // Closed during the handshake: a failure, even with code 1000.
    let mut r = Rig::new(AudioFormat::Ulaw8k);
    r.core.handle_closed(r.now, Closed::Frame { code: 1000, reason: String::new() });
    let ev = r.events();
    assert!(matches!(&ev[..], [AgentEvent::Ended(SessionEnd::Failed(_))]), "{ev:?}");
}

#[test]
fn caller_audio_carries_the_12_byte_header_and_pcm16() {
    for format in [AudioFormat::Ulaw8k, AudioFormat::Alaw8k] {
        let mut r = Rig::streaming(format);
        r.advance(asp::GREETING_WAIT);
        assert!(r.core.capturing(), "no greeting: the caller's audio starts after 30 s");
        let silence = AudioFrame::silence(format);
        r.frame(silence.as_bytes());
        let out = r.sent();
        let [Out::Binary(b)] = &out[..] else { panic!("{out:?}") };
        assert_eq!(b.len(), 12 + 320);
        assert_eq!(&b[..2], [0x01, 0x00], "magic, inbound");
        assert_eq!(b[2..10], asp::session_hash(r.core.session_id()));
        assert_eq!(&b[10..12], [0, 0]);
        assert!(b[12..].iter().all(|&x| x == 0 || x == 0xFF || x == 0x07 || x == 0x08), "near-zero PCM16");
    }
}

#[test]
fn agent_audio_is_checked_converted_and_cut_into_frames() {
    let mut r = Rig::streaming(AudioFormat::Ulaw8k);
    let id = r.core.session_id().to_owned();
    r.text(&format!(r#"{{"type":"response.start","session_id":"{id}","text":"Olá! Como posso ajudar?"}}"#));
    let ev = r.events();
    assert!(matches!(&ev[0], AgentEvent::ReplyStarted(_)), "{ev:?}");
    assert!(
        matches!(&ev[1], AgentEvent::Transcript { role: Role::Agent, text, .. } if text == "Olá! Como posso ajudar?")
    );
    // 2000 bytes of PCM16 (125 ms) → 6 frames of 160 μ-law bytes and one of 40, then a mark.
    let pcm: Vec<u8> = (0..1000).flat_map(|_| 1000i16.to_le_bytes()).collect();
    r.agent_audio(&pcm);
    let ev = r.events();
    let lens: Vec<usize> =
        ev.iter().filter_map(|e| if let AgentEvent::Audio(f) = e { Some(f.len()) } else { None }).collect();
    assert_eq!(lens, [160, 160, 160, 160, 160, 160, 40]);
    assert!(matches!(ev.last(), Some(AgentEvent::Mark(_))), "{ev:?}");
    // Another session's hash, an inbound direction byte, a short frame: dropped.
    let mut foreign = vec![0x01, 0x01, 9, 9, 9, 9, 9, 9, 9, 9, 0, 0];
    foreign.extend_from_slice(&pcm[..320]);
    r.core.handle_binary(r.now, &foreign);
    let mut wrong_dir = vec![0x01, 0x00];
    wrong_dir.extend_from_slice(&r.core.hash());
    wrong_dir.extend_from_slice(&[0, 0, 1, 2]);
    r.core.handle_binary(r.now, &wrong_dir);
    r.core.handle_binary(r.now, &[0x01, 0x01, 0]);
    assert!(r.events().is_empty());
}

#[test]
fn the_callers_audio_starts_after_the_greeting_and_pauses_while_a_response_plays() {
    let mut r = Rig::streaming(AudioFormat::Ulaw8k);
    let quiet = [0xFFu8; 160];
    r.frame(&quiet);
    assert!(r.sent().is_empty(), "not before the greeting");
    let marks = r.response("Olá", 8000);
    assert_eq!(marks.len(), 4, "a mark after each burst frame");
    r.frame(&quiet);
    assert!(r.sent().is_empty(), "not while the greeting plays");
    r.played(&marks[..3]);
    r.frame(&quiet);
    assert!(r.sent().is_empty());
    r.played(&marks[3..]);
    assert!(r.core.capturing());
    r.frame(&quiet);
    assert!(matches!(&r.sent()[..], [Out::Binary(_)]));
    // The next response pauses it again.
    let marks = r.response("Resposta", 4000);
    r.frame(&quiet);
    assert!(r.sent().is_empty());
    r.played(&marks);
    r.frame(&quiet);
    assert_eq!(r.sent().len(), 1);
}

#[test]
fn end_of_speech_after_500_ms_of_silence_sends_audio_end() {
    let mut r = Rig::streaming(AudioFormat::Ulaw8k);
    let marks = r.response("Olá", 320);
    r.played(&marks);
    let id = r.core.session_id().to_owned();
    let quiet = [0xFFu8; 160];
    for _ in 0..10 {
        r.frame(&quiet);
    }
    for f in speech(AudioFormat::Ulaw8k, 30) {
        r.frame(&f);
    }
    let _ = r.sent();
    // 24 quiet frames: still speaking; the 25th (500 ms) ends the utterance.
    for _ in 0..24 {
        r.frame(&quiet);
    }
    assert!(r.texts().is_empty());
    r.frame(&quiet);
    let out = r.sent();
    assert!(matches!(&out[0], Out::Binary(_)), "the frame first, then the end: {out:?}");
    assert_eq!(out[1], Out::Text(format!(r#"{{"type":"audio.end","session_id":"{id}"}}"#)));
    // A cough (160 ms of speech) is not a turn.
    for f in speech(AudioFormat::Ulaw8k, 8) {
        r.frame(&f);
    }
    for _ in 0..40 {
        r.frame(&quiet);
    }
    assert!(r.texts().is_empty(), "less than 250 ms of speech sends no audio.end");
}

#[test]
fn barge_in_flushes_a_playing_response_but_not_the_greeting_nor_silence() {
    let mut r = Rig::streaming(AudioFormat::Ulaw8k);
    let greeting = r.response("Olá", 16000);
    let talk = speech(AudioFormat::Ulaw8k, 20);
    for f in &talk {
        r.frame(f);
    }
    assert!(!r.events().contains(&AgentEvent::FlushPlayback), "the greeting is not interrupted");
    r.played(&greeting);
    let quiet = [0xFFu8; 160];
    for _ in 0..30 {
        r.frame(&quiet);
    }
    let _ = r.sent();
    // Idle: speech is a turn, not a barge-in.
    for f in &talk {
        r.frame(f);
    }
    assert!(!r.events().contains(&AgentEvent::FlushPlayback));
    for _ in 0..30 {
        r.frame(&quiet);
    }
    // A response plays; the caller talks over it: flushed on the third loud frame (60 ms).
    let _marks = r.response("Uma resposta longa", 40000);
    let _ = r.sent();
    r.frame(&talk[0]);
    r.frame(&talk[1]);
    assert!(r.events().is_empty());
    r.frame(&talk[2]);
    assert_eq!(r.events(), [AgentEvent::FlushPlayback]);
    assert!(r.core.capturing(), "the caller's words go to the agent from there on");
    assert_eq!(r.sent().len(), 1, "the barge-in frame itself is sent");
}

#[test]
fn call_actions_hang_up_after_playback_or_transfer() {
    let mut r = Rig::streaming(AudioFormat::Ulaw8k);
    let id = r.core.session_id().to_owned();
    r.text(&format!(
        r#"{{"type":"call.action","session_id":"{id}","action":"transfer","timestamp":"2026-02-06T00:00:01.000Z","target":"1001","reason":"teste"}}"#
    ));
    assert_eq!(r.events(), [AgentEvent::Transfer { target: "1001".into() }]);
    r.text(&format!(
        r#"{{"type":"call.action","session_id":"{id}","action":"transfer","target":"1001\r\nX"}}"#
    ));
    r.text(&format!(r#"{{"type":"call.action","session_id":"{id}","action":"dance"}}"#));
    assert!(r.events().is_empty());
    r.text(&format!(r#"{{"type":"call.action","session_id":"{id}","action":"hangup","reason":"fim"}}"#));
    assert_eq!(r.events(), [AgentEvent::HangUp { after_playback: true, reason: "fim".into() }]);
}

#[test]
fn the_call_ending_sends_session_end_and_closes_after_session_ended_or_300_ms() {
    let mut r = Rig::streaming(AudioFormat::Ulaw8k);
    let id = r.core.session_id().to_owned();
    r.advance(Duration::from_secs(2));
    r.core.handle_input(r.now, CallInput::CallEnded);
    assert_eq!(r.events(), [AgentEvent::Ended(SessionEnd::CallEnded)]);
    assert_eq!(
        r.texts(),
        [format!(
            r#"{{"type":"session.end","session_id":"{id}","timestamp":"2026-02-06T00:00:02.000Z","reason":"hangup"}}"#
        )]
    );
    r.text(&format!(
        r#"{{"type":"session.ended","session_id":"{id}","duration_seconds":2.0,"statistics":{{}}}}"#
    ));
    assert_eq!(r.sent(), [Out::Close]);
    let mut r = Rig::streaming(AudioFormat::Ulaw8k);
    r.core.handle_input(r.now, CallInput::CallEnded);
    let _ = r.sent();
    r.advance(Duration::from_millis(299));
    assert!(r.sent().is_empty());
    r.advance(Duration::from_millis(1));
    assert_eq!(r.sent(), [Out::Close]);
}

#[test]
fn errors_protocol_errors_unknown_types_and_garbage() {
    let mut r = Rig::streaming(AudioFormat::Ulaw8k);
    let id = r.core.session_id().to_owned();
    r.text(&format!(
        r#"{{"type":"error","session_id":"{id}","code":"PIPELINE_ERROR","message":"stt down"}}"#
    ));
    r.text(&format!(r#"{{"type":"audio.speech_start","session_id":"{id}"}}"#));
    r.text(&format!(r#"{{"type":"protocol.error","session_id":"{id}","error":{{"code":"X","category":"y","message":"z","recoverable":true}}}}"#));
    assert!(r.events().is_empty(), "a turn's error, an unknown type and a recoverable error keep the call");
    r.text(&format!(
        r#"{{"type":"protocol.error","session_id":"{id}","error":{{"code":"INTERNAL","category":"server","message":"bye","recoverable":false}}}}"#
    ));
    let ev = r.events();
    let [AgentEvent::Ended(SessionEnd::Failed(e))] = &ev[..] else { panic!("{ev:?}") };
    assert_eq!(e.code(), Some("BOT_ERROR"));
    assert!(e.to_string().contains("INTERNAL"), "{e}");

    let mut r = Rig::streaming(AudioFormat::Ulaw8k);
    for _ in 0..5 {
        r.text("][");
    }
    let ev = r.events();
    let [AgentEvent::Ended(SessionEnd::Failed(e))] = &ev[..] else { panic!("{ev:?}") };
    assert_eq!(e.code(), Some("MALFORMED_MESSAGES"));
    let out = r.sent();
    assert!(matches!(&out[..], [Out::Text(t), Out::Close] if t.contains("session.end")), "{out:?}");
}

#[test]
fn session_ended_from_the_agent_or_a_normal_close_mid_call_hang_up_politely() {
    let mut r = Rig::streaming(AudioFormat::Ulaw8k);
    r.core.handle_closed(r.now, Closed::Frame { code: 1000, reason: String::new() });
    let ev = r.events();
    assert!(matches!(&ev[0], AgentEvent::HangUp { after_playback: true, .. }), "{ev:?}");
    let mut r = Rig::streaming(AudioFormat::Ulaw8k);
    r.core.handle_closed(r.now, Closed::Lost("reset".into()));
    let ev = r.events();
    let [AgentEvent::Ended(SessionEnd::Failed(e))] = &ev[..] else { panic!("{ev:?}") };
    assert_eq!(e.code(), Some("CONNECTION_LOST"));
}
