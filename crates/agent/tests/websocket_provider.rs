//! WebSocketProvider through its real shell (tokio-tungstenite, rustls) against the fake
//! bots on 127.0.0.1, both dialects, ws:// and wss://: the conversation both ways, marks,
//! clear, DTMF, hangup and transfer, the end; and everything a bot can get wrong.

mod common;

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use voice_ua_agent::{
    AgentEvent, AgentProvider, AgentSession, AudioFormat, AudioFrame, CallFacts, CallInput, Dialect, Digit,
    Role, SessionEnd, TransferOutcome, WebSocketConfig, WebSocketProvider,
};
use voice_ua_fake_bots::{tone, BotConfig, FakeBot, Step};

const LIMIT: Duration = Duration::from_secs(15);
const TOKEN: &str = "Bearer bot-secret-0123456789";

fn facts(format: AudioFormat) -> CallFacts {
    CallFacts {
        call_id: "ws-test@pbx".into(),
        caller_display: Some("Door".into()),
        caller_uri: "sip:2001@127.0.0.1".into(),
        callee: "9000".into(),
        extension: "9000".into(),
        format,
    }
}

fn config_for(bot: &FakeBot, dialect: Dialect) -> WebSocketConfig {
    let mut c = WebSocketConfig::new(bot.url(), dialect).header("Authorization", TOKEN);
    c.extra_ca_file = bot.ca_file().map(Into::into);
    c.custom_parameters = vec![("tenant".into(), "acme".into())];
    c
}

async fn open(bot: &FakeBot, dialect: Dialect, format: AudioFormat) -> AgentSession {
    let provider = WebSocketProvider::new(config_for(bot, dialect)).expect("provider");
    provider.open(facts(format)).await.expect("open")
}

/// The call's side: a frame every 10 ms (`loud(n)` says which are speech), every mark
/// answered as played at once, until `done` or the end.
async fn drive(
    session: &mut AgentSession,
    format: AudioFormat,
    loud: impl Fn(usize) -> bool,
    done: impl FnMut(&[AgentEvent]) -> bool,
) -> Vec<AgentEvent> {
    let speech = tone(format, 20);
    let frame =
        |n| if loud(n) { AudioFrame::new(&speech).expect("frame") } else { AudioFrame::silence(format) };
    common::drive(session, frame, LIMIT, done).await
}

fn audio(events: &[AgentEvent]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| if let AgentEvent::Audio(f) = e { Some(f.as_bytes().to_vec()) } else { None })
        .flatten()
        .collect()
}

fn failure_code(events: &[AgentEvent]) -> String {
    match events.last() {
        Some(AgentEvent::Ended(SessionEnd::Failed(e))) => e.code().unwrap_or("(none)").to_owned(),
        other => panic!("expected Ended(Failed), got {other:?} after {events:?}"),
    }
}

async fn end(session: &mut AgentSession) -> Vec<AgentEvent> {
    session.end_call();
    let mut rest = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(LIMIT, session.event()).await {
        rest.push(event);
    }
    rest
}

async fn twilio_conversation(tls: bool, format: AudioFormat) {
    let script = vec![
        Step::speak("Hello", 1000),
        Step::mark("greeting"),
        Step::WaitMark("greeting".into()),
        Step::WaitAudio { frames: 10, min_dbfs: Some(-30.0) },
        Step::SendRaw(r#"{"event":"karaoke"}"#.into()),
        Step::speak("Sure", 300),
        Step::mark("reply"),
    ];
    let bot =
        FakeBot::start(BotConfig::twilio().tls(tls).authorization(TOKEN).script(script)).await.expect("bot");
    let mut session = open(&bot, Dialect::Twilio, format).await;
    let want = 1300 * 8;
    let events = drive(
        &mut session,
        format,
        |n| n >= 20,
        |ev| audio(ev).len() >= want && ev.iter().filter(|e| matches!(e, AgentEvent::Mark(_))).count() == 2,
    )
    .await;
    let heard = audio(&events);
    assert_eq!(heard.len(), want, "greeting + reply, nothing lost");
    let expect: Vec<u8> = {
        let mut out = Vec::new();
        voice_ua_agent::websocket::audio::convert(
            AudioFormat::Ulaw8k,
            format,
            &tone(AudioFormat::Ulaw8k, 1000),
            &mut out,
        );
        out
    };
    assert_eq!(&heard[..8000], &expect[..], "the greeting arrives as the bot sent it ({format})");
    session.send_digit(Digit::new('5').expect("digit")).expect("digit");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(end(&mut session).await.last(), Some(&AgentEvent::Ended(SessionEnd::CallEnded)));
    let records = bot.wait_records(1, LIMIT).await;
    let r = &records[0];
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(r.script_done, "{r:?}");
    assert_eq!(r.authorization.as_deref(), Some(TOKEN));
    assert_eq!(r.marks_echoed, ["greeting", "reply"]);
    assert_eq!(r.digits, "5");
    assert!(r.stopped, "stop when the call ended");
    assert!(r.audio_frames >= 30, "{}", r.audio_frames);
    let start = r.start.as_ref().expect("start");
    assert_eq!(start["start"]["customParameters"]["tenant"], "acme");
    assert_eq!(start["start"]["customParameters"]["caller"], "2001");
    assert_eq!(r.end, "client closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_conversation_over_ws_ulaw() {
    twilio_conversation(false, AudioFormat::Ulaw8k).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_conversation_over_wss_alaw() {
    twilio_conversation(true, AudioFormat::Alaw8k).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_clear_transfer_and_hangup() {
    let script = vec![
        Step::speak("long", 3000),
        Step::mark("long"),
        Step::Clear,
        Step::Transfer("9001".into()),
        Step::WaitTransferResult,
        Step::speak("bye", 200),
        Step::Hangup("done".into()),
    ];
    let bot = FakeBot::start(BotConfig::twilio().script(script)).await.expect("bot");
    let mut session = open(&bot, Dialect::Twilio, AudioFormat::Ulaw8k).await;
    // Play like a call: marks wait for the flush, which answers them as cleared.
    let mut events = Vec::new();
    let until = tokio::time::Instant::now() + LIMIT;
    let mut pending = Vec::new();
    while tokio::time::Instant::now() < until {
        let _ = session.send_audio(AudioFrame::silence(AudioFormat::Ulaw8k));
        tokio::time::sleep(Duration::from_millis(10)).await;
        while let Some(e) = session.try_event() {
            match &e {
                AgentEvent::Mark(id) => pending.push(*id),
                AgentEvent::FlushPlayback => {
                    for id in pending.drain(..) {
                        session.send_playback(CallInput::MarkPlayed { id, cleared: true }).expect("report");
                    }
                    session.send_playback(CallInput::PlaybackFlushed { played_samples: 0 }).expect("report");
                }
                AgentEvent::Transfer { .. } => {
                    session.send_transfer_result(TransferOutcome::Failed { status: 486 }).expect("result")
                }
                _ => {}
            }
            events.push(e);
        }
        if matches!(events.last(), Some(AgentEvent::Ended(_))) {
            break;
        }
    }
    assert!(events.contains(&AgentEvent::FlushPlayback), "{events:?}");
    assert!(events.contains(&AgentEvent::Transfer { target: "9001".into() }));
    let n = events.len();
    assert_eq!(events[n - 2], AgentEvent::HangUp { after_playback: true, reason: "done".into() });
    assert!(matches!(&events[n - 1], AgentEvent::Ended(SessionEnd::AgentFinished { .. })));
    let records = bot.wait_records(1, LIMIT).await;
    let r = &records[0];
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(r.marks_echoed, ["long"], "a cleared mark is echoed too");
    assert_eq!(r.transfer_results.len(), 1);
    assert_eq!(r.transfer_results[0]["outcome"], "failed");
    assert_eq!(r.transfer_results[0]["sipStatus"], 486);
    assert!(r.stopped && r.script_done, "{r:?}");
}

async fn asp_conversation(tls: bool) {
    let script = vec![
        Step::speak("Olá! Como posso ajudá-lo?", 500),
        Step::WaitAudioEnd,
        Step::speak("Resposta", 300),
        Step::Hangup("fim".into()),
    ];
    let bot = FakeBot::start(BotConfig::asp().tls(tls).script(script)).await.expect("bot");
    let mut session = open(&bot, Dialect::Asp, AudioFormat::Ulaw8k).await;
    // Quiet while the greeting plays, 600 ms of speech, then quiet for the end of turn.
    let events = drive(
        &mut session,
        AudioFormat::Ulaw8k,
        |n| (60..120).contains(&n),
        |ev| ev.iter().any(|e| matches!(e, AgentEvent::HangUp { .. })),
    )
    .await;
    assert_eq!(audio(&events).len(), 800 * 8, "greeting and reply");
    let lines: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Transcript { role: Role::Agent, text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(lines, ["Olá! Como posso ajudá-lo?", "Resposta"]);
    assert!(events.contains(&AgentEvent::HangUp { after_playback: true, reason: "fim".into() }));
    assert!(matches!(&events[0], AgentEvent::SessionOpened { .. }), "{:?}", events[0]);
    assert_eq!(end(&mut session).await.last(), Some(&AgentEvent::Ended(SessionEnd::CallEnded)));
    let records = bot.wait_records(1, LIMIT).await;
    let r = &records[0];
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(r.script_done && r.stopped, "session.end sent: {r:?}");
    assert_eq!(r.audio_ends, 1);
    assert!(r.audio_frames >= 40, "{}", r.audio_frames);
    let start = r.start.as_ref().expect("session.start");
    assert_eq!(start["call_id"], "ws-test@pbx");
    assert_eq!(start["metadata"]["extension"], "9000");
    assert_eq!(r.end, "client closed", "closed after session.ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asp_conversation_over_ws() {
    asp_conversation(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asp_conversation_over_wss() {
    asp_conversation(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asp_rejection_and_a_silent_agent_fail_with_typed_codes() {
    let mut config = BotConfig::asp();
    config.reject = true;
    let bot = FakeBot::start(config).await.expect("bot");
    let mut session = open(&bot, Dialect::Asp, AudioFormat::Ulaw8k).await;
    let events = drive(&mut session, AudioFormat::Ulaw8k, |_| false, |_| false).await;
    assert_eq!(failure_code(&events), "SESSION_REJECTED");
    let mut config = BotConfig::asp();
    config.never_start = true;
    let bot = FakeBot::start(config).await.expect("bot");
    let mut session = open(&bot, Dialect::Asp, AudioFormat::Ulaw8k).await;
    let started = std::time::Instant::now();
    let events = drive(&mut session, AudioFormat::Ulaw8k, |_| false, |_| false).await;
    assert_eq!(failure_code(&events), "HANDSHAKE_TIMEOUT");
    assert!(started.elapsed() >= Duration::from_secs(10), "{:?}", started.elapsed());
}

/// What a bot can break: each gives the call its typed failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bots_end_the_session_with_typed_codes() {
    let greeting = || vec![Step::speak("Hello", 200)];
    let cases: Vec<(&str, Vec<Step>, &str)> = vec![
        ("garbage", [greeting(), vec![Step::SendRaw("{oops".into()); 5]].concat(), "MALFORMED_MESSAGES"),
        (
            "oversized",
            [
                greeting(),
                vec![Step::SendRaw(format!("{{\"event\":\"x\",\"pad\":\"{}\"}}", "a".repeat(1 << 20)))],
            ]
            .concat(),
            "MESSAGE_TOO_LARGE",
        ),
        (
            "abnormal close",
            [greeting(), vec![Step::Close(1011, "internal error".into())]].concat(),
            "CLOSED_ABNORMALLY",
        ),
        ("dropped", [greeting(), vec![Step::CloseAbruptly]].concat(), "CONNECTION_LOST"),
    ];
    for (name, script, code) in cases {
        let bot = FakeBot::start(BotConfig::twilio().script(script)).await.expect("bot");
        let mut session = open(&bot, Dialect::Twilio, AudioFormat::Ulaw8k).await;
        let events = drive(&mut session, AudioFormat::Ulaw8k, |_| false, |_| false).await;
        assert_eq!(failure_code(&events), code, "{name}: {events:?}");
        assert_eq!(audio(&events).len(), 1600, "{name}: the greeting came first");
    }
    // A normal close is the bot hanging up after its audio.
    let bot = FakeBot::start(
        BotConfig::twilio().script(vec![Step::speak("Bye", 200), Step::Close(1000, String::new())]),
    )
    .await
    .expect("bot");
    let mut session = open(&bot, Dialect::Twilio, AudioFormat::Ulaw8k).await;
    let events = drive(&mut session, AudioFormat::Ulaw8k, |_| false, |_| false).await;
    assert!(
        matches!(&events[events.len() - 2], AgentEvent::HangUp { after_playback: true, .. }),
        "{events:?}"
    );
    assert!(matches!(events.last(), Some(AgentEvent::Ended(SessionEnd::AgentFinished { .. }))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_have_typed_codes_and_keep_the_secret_out() {
    // Refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let config = WebSocketConfig::new(format!("ws://127.0.0.1:{port}/media"), Dialect::Twilio);
    let mut session = WebSocketProvider::new(config)
        .expect("provider")
        .open(facts(AudioFormat::Ulaw8k))
        .await
        .expect("open");
    assert_eq!(failure_code(&end(&mut session).await), "CONNECT_REFUSED");
    // Wrong credentials: the upgrade is refused; the token is not in the message.
    let bot = FakeBot::start(BotConfig::twilio().authorization("Bearer other")).await.expect("bot");
    let mut session = open(&bot, Dialect::Twilio, AudioFormat::Ulaw8k).await;
    let events = end(&mut session).await;
    assert_eq!(failure_code(&events), "UPGRADE_REFUSED");
    assert!(!format!("{events:?}").contains("bot-secret"), "{events:?}");
    // A server that accepts TCP and never answers the upgrade.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/media", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 1024];
        while tcp.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    });
    let mut config = WebSocketConfig::new(url, Dialect::Asp);
    config.connect_timeout = Duration::from_millis(300);
    let mut session = WebSocketProvider::new(config)
        .expect("provider")
        .open(facts(AudioFormat::Ulaw8k))
        .await
        .expect("open");
    assert_eq!(failure_code(&end(&mut session).await), "CONNECT_TIMEOUT");
    // Plain ws:// to another host, a header that cannot be sent, an unsupported format.
    let e = WebSocketProvider::new(WebSocketConfig::new("ws://192.0.2.1/x", Dialect::Twilio))
        .expect_err("ws to a LAN host");
    assert!(e.to_string().contains("wss://"), "{e}");
    let e = WebSocketProvider::new(
        WebSocketConfig::new("wss://bot.example/x", Dialect::Twilio).header("Authorization", "a\nb"),
    )
    .expect_err("bad header value");
    assert!(!e.to_string().contains("a\nb"), "{e}");
    let provider = WebSocketProvider::new(WebSocketConfig::new("wss://bot.example/x", Dialect::Twilio))
        .expect("provider");
    assert!(provider.open(facts(AudioFormat::Linear16 { rate_hz: 12000 })).await.is_err());
}
