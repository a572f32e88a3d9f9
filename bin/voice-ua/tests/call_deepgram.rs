//! The binary bridged to the fake Deepgram agent (ring 2): the caller hears the
//! agent's greeting byte for byte (PCMU passes through untranscoded) over wss:// with
//! a CA made at test time; and when the agent fails mid-call, the caller hears the
//! fallback prompt and is transferred with REFER to the configured human.

mod common;

use common::{exact_matches, reply, Call, Received};
use std::time::Duration;
use voice_ua_agent::fake_server::{tone, FakeConfig, FakeDeepgram, Step};
use voice_ua_agent::AudioFormat;

const KEY: &str = "test-deepgram-key-0123456789";

fn agent_config(fake: &FakeDeepgram, extra: &str) -> String {
    let ca = fake.ca_file().map(|p| format!("ca_file = \"{}\"\n", p.display())).unwrap_or_default();
    format!("[agent]\nurl = \"{}\"\n{ca}greeting = \"Hello\"\n{extra}", fake.url())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_hears_the_agent_greeting_over_wss() {
    let fake =
        FakeDeepgram::start(FakeConfig::new(KEY).tls(true).script(vec![Step::speak("Hello", 1000, true)]))
            .await
            .expect("fake agent");
    let config = agent_config(&fake, "");
    let (got, status, logs) = tokio::task::spawn_blocking(move || {
        let call = Call::start("dg-greeting", &config, &[("DEEPGRAM_API_KEY", KEY)]);
        let mut got: Vec<Received> = Vec::new();
        call.talk_silence(0, 120, &mut got);
        call.send(&call.in_dialog("BYE", 2, "", ""));
        let _ = call.recv(Duration::from_secs(3));
        let (status, logs) = call.stop();
        (got, status, logs)
    })
    .await
    .expect("join");
    assert!(status.success(), "{status:?}");
    let greeting = tone(AudioFormat::Ulaw8k, 1000);
    let chunks: Vec<&[u8]> = greeting.chunks(160).collect();
    let heard = exact_matches(&got, &chunks);
    assert!(heard >= 45, "the 50 greeting packets reach the caller unchanged: {heard} found");
    let records = fake.wait_records(1, Duration::from_secs(3)).await;
    let r = &records[0];
    assert_eq!(r.authorization.as_deref(), Some(&*format!("Token {KEY}")));
    let settings = serde_json::to_value(r.settings.as_ref().expect("one Settings")).expect("json");
    assert_eq!(settings["audio"]["input"]["encoding"], "mulaw", "{settings}");
    assert_eq!(settings["audio"]["output"]["encoding"], "mulaw", "{settings}");
    assert!(r.audio_frames >= 80, "the caller's audio streamed continuously: {}", r.audio_frames);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(r.script_done, "the fake ran its whole script: {}", r.end);
    assert!(logs.iter().any(|l| l.contains("calls are answered by the Deepgram Voice Agent")));
    assert!(!logs.iter().any(|l| l.contains(KEY)), "the key never reaches the log");
    assert!(
        logs.iter().any(|l| l.contains("\"transcript\"") && l.contains("\"text\":\"Hello\"")),
        "agent line logged"
    );
    let summary = logs.iter().find(|l| l.contains("call ended: ")).expect("summary");
    assert!(summary.contains("\"transcript_lines\":1"), "the transcript is kept per call: {summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_error_plays_the_fallback_and_transfers_to_the_human() {
    let script =
        vec![Step::speak("Hello", 200, true), Step::error("INTERNAL_SERVER_ERROR", "the LLM is down")];
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).script(script)).await.expect("fake agent");
    let config = agent_config(&fake, "fallback_transfer = \"9001\"\n");
    let (got, refer, status, logs) = tokio::task::spawn_blocking(move || {
        let mut call = Call::start("dg-fallback", &config, &[("DEEPGRAM_API_KEY", KEY)]);
        let mut got: Vec<Received> = Vec::new();
        // The prompt lasts 7.4 s; keep talking while it plays, then expect a REFER.
        call.talk_silence(0, 420, &mut got);
        let refer = call.wait_request("REFER", Duration::from_secs(4));
        call.send(&reply(&refer, "202 Accepted", ""));
        let cseq = call.next_cseq();
        call.send(&call.in_dialog(
            "NOTIFY",
            cseq,
            "Event: refer\r\nSubscription-State: terminated;reason=noresource\r\nContent-Type: message/sipfrag\r\n",
            "SIP/2.0 200 OK\r\n",
        ));
        let bye = call.wait_request("BYE", Duration::from_secs(4));
        call.send(&reply(&bye, "200 OK", ""));
        std::thread::sleep(Duration::from_millis(200));
        let (status, logs) = call.stop();
        (got, refer, status, logs)
    })
    .await
    .expect("join");
    assert!(status.success(), "{status:?}");
    let prompt = include_bytes!("../../../conf/fallback-en.ulaw");
    let chunks: Vec<&[u8]> = prompt.chunks(160).filter(|c| c.len() == 160).collect();
    let heard = exact_matches(&got, &chunks);
    assert!(
        heard >= chunks.len() * 9 / 10,
        "the fallback prompt is heard: {heard} of {} packets",
        chunks.len()
    );
    let refer_to = common::header(&refer, "Refer-To").expect("Refer-To");
    assert!(refer_to.contains("sip:9001@"), "{refer_to}");
    let line = logs.iter().find(|l| l.contains("the agent failed:")).expect("one clear line for the failure");
    assert!(
        line.contains("INTERNAL_SERVER_ERROR") && line.contains("transferring the caller to 9001"),
        "{line}"
    );
    let summary = logs.iter().find(|l| l.contains("call ended: transferred")).expect("summary");
    assert!(summary.contains("\"hung_up_by\":\"voice-ua\""), "{summary}");
}
