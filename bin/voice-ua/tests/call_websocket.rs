//! The binary bridged to the fake WebSocket bots, end to end over real sockets: the fake
//! PBX calls voice-ua (PCMU), voice-ua connects to the bot. Per dialect: the bot's audio
//! reaches the caller byte for byte, the caller's audio reaches the bot, Twilio's marks
//! come back once played and `clear` flushes, hangup and transfer (ASP's `call.action`)
//! are carried out, and a bot that fails leaves the caller with the fallback prompt and a
//! REFER to the human.

mod common;

use common::{complete_transfer, exact_matches, finished_record, reply, Call, Received};
use std::time::Duration;
use voice_ua_agent::AudioFormat;
use voice_ua_fake_bots::{tone, BotConfig, FakeBot, Record, Step};
use voice_ua_records::{CallOutcome, CallRecord};

const TOKEN: &str = "Bearer e2e-bot-token-0123456789";

fn bot_config(bot: &FakeBot, dialect: &str, extra: &str) -> String {
    let ca = bot.ca_file().map(|p| format!("ca_file = \"{}\"\n", p.display())).unwrap_or_default();
    format!(
        "[agent]\nfallback_transfer = \"9001\"\n[agent.websocket]\nurl = \"{}\"\ndialect = \"{dialect}\"\n\
         headers = {{ Authorization = \"env:E2E_BOT_TOKEN\" }}\n{ca}{extra}",
        bot.url()
    )
}

async fn records(bot: &FakeBot) -> Vec<Record> {
    bot.wait_records(1, Duration::from_secs(5)).await
}

fn agent_packets(got: &[Received]) -> usize {
    got.iter().filter(|p| p.3.iter().any(|&b| b != 0xff)).count()
}

/// A call of `packets` silent packets that ends in a transfer voice-ua carries out: what
/// the caller heard, the REFER and the call's record.
async fn transferred_call(
    name: &'static str,
    config: String,
    packets: u32,
) -> (Vec<Received>, String, CallRecord) {
    tokio::task::spawn_blocking(move || {
        let mut call = Call::start(name, &config, &[("E2E_BOT_TOKEN", TOKEN)]);
        let mut got = Vec::new();
        call.talk_silence(0, packets, &mut got);
        let (refer, _) = complete_transfer(&mut call, Duration::from_secs(6));
        let record = finished_record(&call.dir.join("calls.db"));
        let _ = call.stop();
        (got, refer, record)
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_bot_talks_listens_echoes_marks_and_hangs_up_over_wss() {
    let script = vec![
        Step::speak("Hello", 1000),
        Step::mark("greeting"),
        Step::WaitMark("greeting".into()),
        Step::WaitAudio { frames: 10, min_dbfs: Some(-30.0) },
        Step::speak("Reply", 400),
        Step::mark("reply"),
        Step::WaitMark("reply".into()),
        Step::Hangup("goodbye said".into()),
    ];
    let bot =
        FakeBot::start(BotConfig::twilio().tls(true).authorization(TOKEN).script(script)).await.expect("bot");
    let config = bot_config(&bot, "twilio", "custom_parameters = { tenant = \"e2e\" }\n");
    let (got, record, status, logs) = tokio::task::spawn_blocking(move || {
        let call = Call::start("ws-twilio", &config, &[("E2E_BOT_TOKEN", TOKEN)]);
        let mut got = Vec::new();
        // 1.2-1.8 s: the caller speaks, after the greeting.
        call.talk(0, 120, &mut got, |i| (60..90).contains(&i));
        let bye = call.wait_request("BYE", Duration::from_secs(4));
        call.send(&reply(&bye, "200 OK", ""));
        let record = finished_record(&call.dir.join("calls.db"));
        let (status, logs) = call.stop();
        (got, record, status, logs)
    })
    .await
    .expect("join");
    assert!(status.success(), "{status:?}");
    let greeting = tone(AudioFormat::Ulaw8k, 1000);
    let chunks: Vec<&[u8]> = greeting.chunks(160).collect();
    let heard = exact_matches(&got, &chunks);
    assert!(heard >= 45, "the 50 greeting packets reach the caller unchanged: {heard}");
    let r = &records(&bot).await[0];
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(r.script_done && r.stopped, "{r:?}");
    assert_eq!(r.authorization.as_deref(), Some(TOKEN), "the header's secret came from the environment");
    assert_eq!(r.marks_echoed, ["greeting", "reply"], "each mark once its audio had played");
    assert!(r.audio_frames >= 60, "the caller's audio streamed: {}", r.audio_frames);
    let start = r.start.as_ref().expect("start");
    assert_eq!(start["start"]["customParameters"]["tenant"], "e2e");
    assert_eq!(start["start"]["customParameters"]["extension"], "9000");
    assert_eq!(
        (record.outcome, record.hung_up_by.as_str()),
        (CallOutcome::AgentHangup, "agent"),
        "{record:?}"
    );
    assert_eq!(record.agent.as_deref(), Some("websocket-twilio"));
    assert!(logs.iter().any(|l| l.contains("calls are answered by the WebSocket bot")));
    assert!(!logs.iter().any(|l| l.contains("e2e-bot-token")), "the token never reaches the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_clear_flushes_and_the_transfer_is_carried_out_and_reported() {
    let script = vec![
        Step::speak("A long answer", 5000),
        Step::mark("long"),
        Step::Pause(Duration::from_millis(1000)),
        Step::Clear,
        Step::WaitMark("long".into()),
        Step::Transfer("9001".into()),
        Step::WaitTransferResult,
        Step::Pause(Duration::from_secs(2)),
    ];
    let bot = FakeBot::start(BotConfig::twilio().script(script)).await.expect("bot");
    let config = bot_config(&bot, "twilio", "");
    let (got, refer, record) = transferred_call("ws-twilio-clear", config, 100).await;
    let played = agent_packets(&got);
    assert!((40..=70).contains(&played), "about 1 s of the 5 s answer before the clear: {played} packets");
    assert!(common::header(&refer, "Refer-To").is_some_and(|t| t.contains("sip:9001@")), "{refer}");
    let r = &records(&bot).await[0];
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(r.marks_echoed, ["long"], "the cleared mark comes back too");
    assert_eq!(r.barge_ins.len(), 1, "the clear's instant is recorded");
    assert_eq!(r.transfer_results.len(), 1, "{r:?}");
    assert_eq!(r.transfer_results[0]["outcome"], "completed");
    assert_eq!(r.transfer_results[0]["succeeded"], true);
    assert_eq!((record.outcome, record.hung_up_by.as_str()), (CallOutcome::Transferred, "voice-ua"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asp_agent_greets_hears_the_turn_answers_and_transfers() {
    let script = vec![
        Step::speak("Olá! Como posso ajudá-lo?", 1000),
        Step::WaitAudioEnd,
        Step::speak("Vou transferir", 400),
        Step::Transfer("9001".into()),
        Step::Pause(Duration::from_secs(5)),
    ];
    let bot = FakeBot::start(BotConfig::asp().script(script)).await.expect("bot");
    let config = bot_config(&bot, "asp", "");
    let (got, record) = tokio::task::spawn_blocking(move || {
        let mut call = Call::start("ws-asp", &config, &[("E2E_BOT_TOKEN", TOKEN)]);
        let mut got = Vec::new();
        // 1.5-2.1 s: the caller's turn, after the greeting has played.
        call.talk(0, 180, &mut got, |i| (75..105).contains(&i));
        complete_transfer(&mut call, Duration::from_secs(6));
        let record = finished_record(&call.dir.join("calls.db"));
        let _ = call.stop();
        (got, record)
    })
    .await
    .expect("join");
    let greeting = tone(AudioFormat::Ulaw8k, 1000);
    let chunks: Vec<&[u8]> = greeting.chunks(160).collect();
    let heard = exact_matches(&got, &chunks);
    assert!(heard >= 45, "the greeting (PCM16 from the agent) reaches the caller as μ-law: {heard}");
    let r = &records(&bot).await[0];
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(r.audio_ends, 1, "one turn: {r:?}");
    assert!(r.audio_frames >= 30, "{}", r.audio_frames);
    assert!(r.stopped, "session.end when the call ended");
    assert_eq!(record.agent.as_deref(), Some("websocket-asp"));
    assert_eq!((record.outcome, record.hung_up_by.as_str()), (CallOutcome::Transferred, "voice-ua"));
    let lines: Vec<(&str, &str)> =
        record.transcript.iter().map(|l| (l.role.as_str(), l.text.as_str())).collect();
    assert_eq!(lines, [("agent", "Olá! Como posso ajudá-lo?"), ("agent", "Vou transferir")]);
    assert!(record.agent_session_id.is_some(), "{record:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asp_agent_hangs_up_after_its_goodbye() {
    let script = vec![Step::speak("Até logo", 600), Step::Hangup("fim".into())];
    let bot = FakeBot::start(BotConfig::asp().tls(true).script(script)).await.expect("bot");
    let config = bot_config(&bot, "asp", "");
    let (got, record) = tokio::task::spawn_blocking(move || {
        let call = Call::start("ws-asp-bye", &config, &[("E2E_BOT_TOKEN", TOKEN)]);
        let mut got = Vec::new();
        call.talk_silence(0, 20, &mut got);
        let bye = call.wait_request("BYE", Duration::from_secs(4));
        call.send(&reply(&bye, "200 OK", ""));
        call.drain_rtp(&mut got, Duration::from_millis(100));
        let record = finished_record(&call.dir.join("calls.db"));
        let _ = call.stop();
        (got, record)
    })
    .await
    .expect("join");
    assert!(agent_packets(&got) >= 27, "the goodbye played before the BYE: {}", agent_packets(&got));
    assert_eq!(
        (record.outcome, record.hung_up_by.as_str()),
        (CallOutcome::AgentHangup, "agent"),
        "{record:?}"
    );
    let r = &records(&bot).await[0];
    assert!(r.violations.is_empty() && r.stopped, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_that_breaks_mid_call_leaves_the_fallback_prompt_and_a_refer() {
    let script = vec![
        Step::speak("Hello", 200),
        Step::Pause(Duration::from_millis(300)),
        Step::Close(1011, "crash".into()),
    ];
    let bot = FakeBot::start(BotConfig::twilio().script(script)).await.expect("bot");
    let config = bot_config(&bot, "twilio", "");
    let (got, refer, record) = transferred_call("ws-fallback", config, 420).await;
    let prompt = include_bytes!("../../../conf/fallback-en.ulaw");
    let chunks: Vec<&[u8]> = prompt.chunks(160).filter(|c| c.len() == 160).collect();
    let heard = exact_matches(&got, &chunks);
    assert!(heard >= chunks.len() * 9 / 10, "the fallback prompt is heard: {heard} of {}", chunks.len());
    assert!(common::header(&refer, "Refer-To").is_some_and(|t| t.contains("sip:9001@")), "{refer}");
    assert_eq!((record.outcome, record.hung_up_by.as_str()), (CallOutcome::Transferred, "voice-ua"));
}
