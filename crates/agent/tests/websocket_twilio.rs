//! The Twilio dialect core in virtual time: every message voice-ua writes, byte for byte
//! as docs/websocket-bots.md documents it, and what the bot's messages do to the call.

use std::time::{Duration, Instant};

use base64::Engine as _;
use voice_ua_agent::websocket::session::{Closed, DialectCore, Transmit};
use voice_ua_agent::websocket::twilio::{custom_parameters, TwilioCore, TwilioIds};
use voice_ua_agent::{
    AgentEvent, AudioFormat, AudioFrame, CallFacts, CallInput, Digit, SessionEnd, TransferOutcome,
};

const STREAM: &str = "MZ00000000000000000000000000000001";
const CALL: &str = "CA00000000000000000000000000000002";
const ACCOUNT: &str = "AC00000000000000000000000000000003";

fn ids() -> TwilioIds {
    TwilioIds { stream_sid: STREAM.into(), call_sid: CALL.into(), account_sid: ACCOUNT.into() }
}

fn facts(format: AudioFormat) -> CallFacts {
    CallFacts {
        call_id: "abc@pbx".into(),
        caller_display: Some("Front Door".into()),
        caller_uri: "sip:2001@pbx.lan".into(),
        callee: "9000".into(),
        extension: "9000".into(),
        format,
    }
}

fn core(format: AudioFormat) -> TwilioCore {
    let params =
        custom_parameters(&facts(format), &[("tenant".into(), "acme".into()), ("caller".into(), "x".into())]);
    TwilioCore::new(format, ids(), params)
}

/// Everything queued to send, as text (binary never happens in this dialect).
fn sent(core: &mut TwilioCore) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(t) = core.poll_transmit(&mut buf) {
        match t {
            Transmit::Text => out.push(String::from_utf8(buf.clone()).expect("utf-8")),
            Transmit::Binary => panic!("Twilio sends no binary frames"),
            Transmit::Close => out.push("<close>".into()),
        }
    }
    out
}

fn events(core: &mut TwilioCore) -> Vec<AgentEvent> {
    std::iter::from_fn(|| core.poll_event()).collect()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn connected_and_start_come_first_byte_for_byte() {
    let mut c = core(AudioFormat::Ulaw8k);
    let out = sent(&mut c);
    assert_eq!(out[0], r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#);
    assert_eq!(
        out[1],
        format!(
            concat!(
                r#"{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"{a}","streamSid":"{s}","callSid":"{c}","#,
                r#""tracks":["inbound"],"customParameters":{{"caller":"2001","caller_uri":"sip:2001@pbx.lan","caller_name":"Front Door","#,
                r#""callee":"9000","call_id":"abc@pbx","extension":"9000","tenant":"acme"}},"#,
                r#""mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}},"streamSid":"{s}"}}"#
            ),
            a = ACCOUNT,
            s = STREAM,
            c = CALL
        ),
        "our parameters win over a configured one of the same name"
    );
    assert_eq!(out.len(), 2);
}

#[test]
fn caller_audio_is_media_with_sequence_chunk_and_timestamp() {
    let mut c = core(AudioFormat::Ulaw8k);
    let _ = sent(&mut c);
    let now = Instant::now();
    let a = [0x11u8; 160];
    let b = [0x22u8; 160];
    c.handle_input(now, CallInput::Audio(AudioFrame::new(&a).expect("frame")));
    c.handle_input(now, CallInput::Audio(AudioFrame::new(&b).expect("frame")));
    let out = sent(&mut c);
    assert_eq!(
        out[0],
        format!(
            r#"{{"event":"media","sequenceNumber":"2","media":{{"track":"inbound","chunk":"1","timestamp":"0","payload":"{}"}},"streamSid":"{STREAM}"}}"#,
            b64(&a)
        )
    );
    assert_eq!(
        out[1],
        format!(
            r#"{{"event":"media","sequenceNumber":"3","media":{{"track":"inbound","chunk":"2","timestamp":"20","payload":"{}"}},"streamSid":"{STREAM}"}}"#,
            b64(&b)
        )
    );
    assert_eq!(b64(&a).len(), 216, "20 ms of μ-law is 216 base64 characters");
}

#[test]
fn an_a_law_call_is_transcoded_both_ways() {
    let mut c = core(AudioFormat::Alaw8k);
    let _ = sent(&mut c);
    let now = Instant::now();
    // A-law silence goes out as its μ-law transcoding (G.711's table: 0xD5 → 0xFE).
    c.handle_input(now, CallInput::Audio(AudioFrame::silence(AudioFormat::Alaw8k)));
    let out = sent(&mut c);
    assert_eq!(voice_ua_media::g711::alaw_to_ulaw(0xD5), 0xFE);
    assert!(out[0].contains(&b64(&[0xFE; 160])), "{}", out[0]);
    // μ-law from the bot comes in as A-law.
    c.handle_text(
        now,
        &format!(
            r#"{{"event":"media","streamSid":"{STREAM}","media":{{"payload":"{}"}}}}"#,
            b64(&[0xFF; 160])
        ),
    );
    let ev = events(&mut c);
    assert!(matches!(&ev[..], [AgentEvent::Audio(f)] if f.as_bytes() == [0xD5; 160]), "{ev:?}");
}

#[test]
fn bot_media_of_any_length_is_cut_into_call_frames() {
    let mut c = core(AudioFormat::Ulaw8k);
    let now = Instant::now();
    let audio: Vec<u8> = (0..400u32).map(|i| i as u8).collect();
    c.handle_text(
        now,
        &format!(r#"{{"event":"media","streamSid":"{STREAM}","media":{{"payload":"{}"}}}}"#, b64(&audio)),
    );
    let lens: Vec<usize> =
        events(&mut c).iter().map(|e| if let AgentEvent::Audio(f) = e { f.len() } else { 0 }).collect();
    assert_eq!(lens, [160, 160, 80]);
    // A 1 s chunk (Pipecat sends what its TTS made) and an escaped slash (some JSON writers).
    let second = vec![0x7Fu8; 8000];
    let payload = b64(&second).replace('/', "\\/");
    c.handle_text(now, &format!(r#"{{"event":"media","media":{{"payload":"{payload}"}}}}"#));
    assert_eq!(events(&mut c).len(), 50);
}

#[test]
fn a_mark_is_echoed_once_played_and_marks_cleared_by_clear_are_echoed_too() {
    let mut c = core(AudioFormat::Ulaw8k);
    let _ = sent(&mut c);
    let now = Instant::now();
    let media =
        format!(r#"{{"event":"media","streamSid":"{STREAM}","media":{{"payload":"{}"}}}}"#, b64(&[1; 160]));
    c.handle_text(now, &media);
    c.handle_text(now, &format!(r#"{{"event":"mark","streamSid":"{STREAM}","mark":{{"name":"greeting"}}}}"#));
    c.handle_text(now, &media);
    c.handle_text(now, &format!(r#"{{"event":"mark","streamSid":"{STREAM}","mark":{{"name":"reply-1"}}}}"#));
    c.handle_text(now, &format!(r#"{{"event":"mark","streamSid":"{STREAM}","mark":{{"name":"reply-2"}}}}"#));
    let ids: Vec<u32> = events(&mut c)
        .iter()
        .filter_map(|e| if let AgentEvent::Mark(id) = e { Some(*id) } else { None })
        .collect();
    assert_eq!(ids.len(), 3);
    // The call played the greeting: its mark comes back, named as the bot named it.
    c.handle_input(now, CallInput::MarkPlayed { id: ids[0], cleared: false });
    let out = sent(&mut c);
    assert_eq!(
        out,
        [format!(
            r#"{{"event":"mark","sequenceNumber":"2","streamSid":"{STREAM}","mark":{{"name":"greeting"}}}}"#
        )]
    );
    // Barge-in: `clear` flushes the call's playback, which answers the rest as cleared.
    c.handle_text(now, &format!(r#"{{"event":"clear","streamSid":"{STREAM}"}}"#));
    assert_eq!(events(&mut c), [AgentEvent::FlushPlayback]);
    c.handle_input(now, CallInput::MarkPlayed { id: ids[1], cleared: true });
    c.handle_input(now, CallInput::MarkPlayed { id: ids[2], cleared: true });
    c.handle_input(now, CallInput::PlaybackFlushed { played_samples: 320 });
    let out = sent(&mut c);
    assert_eq!(out.len(), 2);
    assert!(out[0].contains(r#""sequenceNumber":"3""#) && out[0].contains(r#""name":"reply-1""#), "{out:?}");
    assert!(out[1].contains(r#""sequenceNumber":"4""#) && out[1].contains(r#""name":"reply-2""#), "{out:?}");
}

#[test]
fn a_digit_is_a_dtmf_message() {
    let mut c = core(AudioFormat::Ulaw8k);
    let _ = sent(&mut c);
    c.handle_input(Instant::now(), CallInput::Digit(Digit::new('#').expect("digit")));
    assert_eq!(
        sent(&mut c),
        [format!(
            r##"{{"event":"dtmf","streamSid":"{STREAM}","sequenceNumber":"2","dtmf":{{"track":"inbound_track","digit":"#"}}}}"##
        )]
    );
}

#[test]
fn the_call_ending_sends_stop_then_closes() {
    let mut c = core(AudioFormat::Ulaw8k);
    let _ = sent(&mut c);
    let now = Instant::now();
    c.handle_input(now, CallInput::CallEnded);
    assert_eq!(
        sent(&mut c),
        [
            format!(
                r#"{{"event":"stop","sequenceNumber":"2","streamSid":"{STREAM}","stop":{{"accountSid":"{ACCOUNT}","callSid":"{CALL}"}}}}"#
            ),
            "<close>".to_string()
        ]
    );
    assert_eq!(events(&mut c), [AgentEvent::Ended(SessionEnd::CallEnded)]);
    // Nothing after the end.
    c.handle_input(now, CallInput::Audio(AudioFrame::silence(AudioFormat::Ulaw8k)));
    assert!(sent(&mut c).is_empty());
}

#[test]
fn hangup_and_transfer_extensions() {
    let mut c = core(AudioFormat::Ulaw8k);
    let _ = sent(&mut c);
    let now = Instant::now();
    c.handle_text(now, r#"{"event":"transfer","streamSid":"MZ","transfer":{"target":"9001"}}"#);
    assert_eq!(events(&mut c), [AgentEvent::Transfer { target: "9001".into() }]);
    c.handle_input(now, CallInput::TransferResult(TransferOutcome::Failed { status: 486 }));
    assert_eq!(
        sent(&mut c),
        [format!(
            r#"{{"event":"transfer_result","sequenceNumber":"2","streamSid":"{STREAM}","transfer_result":{{"target":"9001","outcome":"failed","succeeded":false,"sipStatus":486,"description":"failed: the line is busy (SIP 486)"}}}}"#
        )]
    );
    // A target that could smuggle SIP is refused at once.
    c.handle_text(now, r#"{"event":"transfer","transfer":{"target":"9001\r\nX: y"}}"#);
    assert!(events(&mut c).is_empty());
    let out = sent(&mut c);
    assert!(out[0].contains(r#""outcome":"invalid_target""#), "{out:?}");
    c.handle_text(now, r#"{"event":"hangup","hangup":{"reason":"goodbye said"}}"#);
    assert_eq!(
        events(&mut c),
        [
            AgentEvent::HangUp { after_playback: true, reason: "goodbye said".into() },
            AgentEvent::Ended(SessionEnd::AgentFinished { reason: "goodbye said".into() })
        ]
    );
    let out = sent(&mut c);
    assert!(out[0].starts_with(r#"{"event":"stop""#) && out[1] == "<close>", "{out:?}");
}

#[test]
fn unknown_events_are_ignored_and_repeated_garbage_fails() {
    let mut c = core(AudioFormat::Ulaw8k);
    let _ = sent(&mut c);
    let now = Instant::now();
    for i in 0..100 {
        c.handle_text(now + Duration::from_millis(i), r#"{"event":"karaoke","song":"x"}"#);
    }
    c.handle_binary(now, &[1, 2, 3]);
    assert!(events(&mut c).is_empty() && sent(&mut c).is_empty());
    for _ in 0..4 {
        c.handle_text(now, "{not json");
    }
    c.handle_text(now, r#"{"event":"clear"}"#);
    assert_eq!(events(&mut c), [AgentEvent::FlushPlayback], "a good message resets the run");
    for _ in 0..5 {
        c.handle_text(now, "{not json");
    }
    let ev = events(&mut c);
    let [AgentEvent::Ended(SessionEnd::Failed(e))] = &ev[..] else { panic!("{ev:?}") };
    assert_eq!(e.code(), Some("MALFORMED_MESSAGES"));
    let out = sent(&mut c);
    assert!(out[0].starts_with(r#"{"event":"stop""#) && out[1] == "<close>", "{out:?}");
}

#[test]
fn a_normal_close_is_a_polite_hang_up_and_an_abnormal_one_a_failure() {
    let mut c = core(AudioFormat::Ulaw8k);
    c.handle_closed(Instant::now(), Closed::Frame { code: 1000, reason: "bye".into() });
    let ev = events(&mut c);
    assert!(
        matches!(&ev[0], AgentEvent::HangUp { after_playback: true, reason } if reason.contains("bye")),
        "{ev:?}"
    );
    assert!(matches!(&ev[1], AgentEvent::Ended(SessionEnd::AgentFinished { .. })), "{ev:?}");
    assert_eq!(sent(&mut c), ["<close>"], "nothing is written to a closed socket");
    let mut c = core(AudioFormat::Ulaw8k);
    c.handle_closed(Instant::now(), Closed::Frame { code: 1011, reason: "crash".into() });
    let ev = events(&mut c);
    let [AgentEvent::Ended(SessionEnd::Failed(e))] = &ev[..] else { panic!("{ev:?}") };
    assert_eq!(e.code(), Some("CLOSED_ABNORMALLY"));
}

#[test]
fn ids_follow_the_call() {
    let f = facts(AudioFormat::Ulaw8k);
    let a = TwilioIds::for_call(&f, [1; 16]);
    let b = TwilioIds::for_call(&f, [2; 16]);
    assert_eq!(a.call_sid, b.call_sid, "the same call, the same callSid");
    assert_ne!(a.stream_sid, b.stream_sid);
    for sid in [&a.stream_sid, &a.call_sid, &a.account_sid] {
        assert_eq!(sid.len(), 34, "{sid}");
        assert!(sid[2..].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{sid}");
    }
}
