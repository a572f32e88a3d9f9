//! Sessions end to end through their channels, on tokio's paused clock: the echo provider
//! as a call would drive it, and the contract's backpressure and ending rules.

mod common;

use std::time::Duration;

use common::Script;
use tokio::sync::oneshot;
use voice_ua_agent::echo::{PREROLL_FRAMES, TAIL_FRAMES};
use voice_ua_agent::provider::INPUT_CAPACITY;
use voice_ua_agent::{
    AgentError, AgentEvent, AgentProvider, AgentSession, AudioFormat, AudioFrame, CallFacts, CallInput,
    Digit, EchoConfig, EchoProvider, SessionEnd,
};

fn facts(format: AudioFormat) -> CallFacts {
    CallFacts {
        call_id: "a84b4c76e66710@pbx".into(),
        caller_display: Some("Alice".into()),
        caller_uri: "sip:2001@192.0.2.10".into(),
        callee: "9000".into(),
        extension: "9000".into(),
        format,
    }
}

/// Drain every event that is ready without waiting.
fn ready(session: &mut AgentSession, into: &mut Vec<AgentEvent>) {
    while let Some(event) = session.try_event() {
        into.push(event);
    }
}

fn audio(events: &[AgentEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        if let AgentEvent::Audio(f) = e {
            out.extend_from_slice(f.as_bytes());
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn echo_provider_plays_the_caller_back_through_the_channels() {
    let format = AudioFormat::Ulaw8k;
    let fb = format.frame_bytes();
    let provider = EchoProvider::default();
    assert_eq!(provider.name(), "echo");
    let mut session = provider.open(facts(format)).await.expect("open");

    let script = Script::new(format).quiet(50).voice(60, 6000.0).quiet(120);
    let input = script.bytes();
    let mut events = Vec::new();
    for frame in input.chunks(fb) {
        session.send_audio(AudioFrame::new(frame).expect("frame")).expect("send");
        tokio::time::sleep(Duration::from_millis(20)).await; // the call's 20 ms tick
        ready(&mut session, &mut events);
    }
    session.send_digit(Digit::new('5').expect("digit")).expect("digit");
    tokio::time::sleep(Duration::from_millis(20)).await;
    for _ in 0..20 {
        session.send_audio(AudioFrame::silence(format)).expect("send");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ready(&mut session, &mut events);
    session.end_call();
    while let Some(event) = session.event().await {
        events.push(event);
    }

    // Greeting (480 ms), then the utterance, byte for byte, then the digit's tone.
    let played = audio(&events);
    let greeting = 480 * 8;
    let utterance = &input[(50 - PREROLL_FRAMES) * fb..(110 + TAIL_FRAMES) * fb];
    assert_eq!(&played[greeting..greeting + utterance.len()], utterance);
    assert_eq!(played.len(), greeting + utterance.len() + 160 * 8);
    assert_eq!(events.last(), Some(&AgentEvent::Ended(SessionEnd::CallEnded)));
    assert!(!events.contains(&AgentEvent::FlushPlayback));
    assert_eq!(session.stats().input_frames(), input.len() as u64 / fb as u64 + 20);
    assert_eq!(session.stats().input_frames_dropped(), 0);
    assert!(session.event().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_stalled_agent_loses_audio_not_digits_and_the_call_never_waits() {
    let (got_tx, got_rx) = oneshot::channel();
    let mut session = AgentSession::spawn("stalled", |mut io| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let mut got = Vec::new();
        while let Some(input) = io.recv().await {
            got.push(input);
            if input == CallInput::CallEnded {
                break;
            }
        }
        let _ = got_tx.send(got);
    });
    // 80 frames (1.6 s), numbered by their first byte, a digit after frame 30.
    for i in 0..80u8 {
        session.send_audio(AudioFrame::new(&[i; 160]).expect("frame")).expect("never waits");
        if i == 30 {
            session.send_digit(Digit::new('#').expect("digit")).expect("digit fits");
        }
    }
    // The channel is full: another digit is refused with a loggable error.
    let full = session.send_digit(Digit::new('1').expect("digit"));
    let Err(error @ AgentError::InputFull { .. }) = full else { panic!("{full:?}") };
    assert_eq!(error.to_string().lines().count(), 1);
    session.end_call();

    let got = got_rx.await.expect("agent result");
    let frames: Vec<u8> = got
        .iter()
        .filter_map(|i| if let CallInput::Audio(f) = i { Some(f.as_bytes()[0]) } else { None })
        .collect();
    // The '#' and CallEnded came through; audio kept its order; every lost frame was counted.
    assert!(got.contains(&CallInput::Digit(Digit::new('#').expect("digit"))));
    assert!(frames.windows(2).all(|w| w[0] < w[1]), "{frames:?}");
    assert!(frames.len() < INPUT_CAPACITY);
    assert_eq!(session.stats().input_frames(), 80);
    assert_eq!(session.stats().input_frames_dropped(), 80 - frames.len() as u64);
    // The backlog was trimmed from the oldest end.
    assert_eq!(frames.last(), Some(&48));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_session_aborts_the_agent() {
    let (alive_tx, alive_rx) = oneshot::channel::<()>();
    let session = AgentSession::spawn("forever", |_io| async move {
        let _alive = alive_tx; // dropped when the task is aborted
        std::future::pending::<()>().await;
    });
    tokio::task::yield_now().await;
    drop(session);
    assert!(alive_rx.await.is_err(), "the agent task is gone");
}

#[tokio::test(start_paused = true)]
async fn finish_gives_the_agent_its_grace_period() {
    let (done_tx, done_rx) = oneshot::channel();
    let session = AgentSession::spawn("polite", |mut io| async move {
        while let Some(input) = io.recv().await {
            if input == CallInput::CallEnded {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // say goodbye upstream
        let _ = done_tx.send(());
    });
    session.finish(Duration::from_secs(1)).await;
    assert!(done_rx.await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_stops_silently_is_reported_once() {
    let mut session = AgentSession::spawn("quitter", |_io| async {});
    let event = session.event().await.expect("one report");
    let AgentEvent::Ended(SessionEnd::Failed(error)) = &event else { panic!("{event:?}") };
    assert_eq!(
        error.to_string(),
        "agent quitter stopped without an end event: see the log lines before this one"
    );
    assert!(session.event().await.is_none());
    assert!(session.try_event().is_none());
    let closed = session.send_audio(AudioFrame::silence(AudioFormat::Alaw8k));
    assert_eq!(closed, Err(AgentError::Closed { side: "agent" }));
}

#[tokio::test(start_paused = true)]
async fn agent_audio_of_any_length_arrives_in_order_in_frames() {
    let reply: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let sent = reply.clone();
    let mut session = AgentSession::spawn("talker", |io| async move {
        io.send_audio(&sent, 160).await.expect("call listening");
        io.send(AgentEvent::HangUp { after_playback: true, reason: "done".into() }).await.expect("send");
        io.send(AgentEvent::Ended(SessionEnd::AgentFinished { reason: "said goodbye".into() }))
            .await
            .expect("send");
    });
    let mut events = Vec::new();
    while let Some(e) = session.event().await {
        events.push(e);
    }
    assert_eq!(audio(&events), reply);
    assert!(events.iter().all(|e| !matches!(e, AgentEvent::Audio(f) if f.len() > 160)));
    let end = events.last().expect("ended");
    assert!(matches!(end, AgentEvent::Ended(e) if e.to_string() == "agent finished: said goodbye"));
}

#[tokio::test]
async fn unsupported_formats_are_refused_at_open() {
    let provider = EchoProvider::new(EchoConfig::default());
    let err = provider.open(facts(AudioFormat::Linear16 { rate_hz: 48000 })).await.err();
    assert_eq!(err, Some(AgentError::UnsupportedFormat { format: AudioFormat::Linear16 { rate_hz: 48000 } }));
}
