//! The binary bridged to the fake Deepgram agent (ring 2), end to end over real sockets:
//! the caller hears the agent's greeting byte for byte (PCMU passes through
//! untranscoded) over wss:// with a CA made at test time; when the agent fails mid-call
//! the caller hears the fallback prompt and the PBX gets a REFER to the configured human;
//! the agent's transfer function hears what the PBX's answers and NOTIFYs said; and the
//! call record and recording are written.
//!
//! What the call decides on its own (exact timings, outcomes, the fallback's order, the
//! transfer's one report, turn timing) is proven in virtual time by voice-ua-call's
//! tests (crates/call/tests); these check the wiring: what crossed the sockets and what
//! was written.

mod common;

use common::agent::{fallback_and_refer, finished_record, talk_and_keep_the_record};
use common::{exact_matches, reply, Call};
use std::time::Duration;
use voice_ua_agent::AudioFormat;
use voice_ua_fake_deepgram::{tone, FakeConfig, FakeDeepgram, Step};
use voice_ua_records::CallOutcome;

const KEY: &str = "test-deepgram-key-0123456789";
const ENV: &[(&str, &str)] = &[("DEEPGRAM_API_KEY", KEY)];

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
    let (got, (record, _), status, logs) =
        talk_and_keep_the_record("dg-greeting", config, ENV, 120, |_| false).await;
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
    // The agent's words, as the fake sent them, reach the call's record.
    let lines: Vec<(&str, &str)> =
        record.transcript.iter().map(|l| (l.role.as_str(), l.text.as_str())).collect();
    assert_eq!(lines, [("agent", "Hello")]);
    assert_eq!((record.outcome, record.hung_up_by.as_str()), (CallOutcome::CallerHangup, "caller"));
    assert!(record.agent_session_id.is_some(), "{record:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_error_plays_the_fallback_and_transfers_to_the_human() {
    let script =
        vec![Step::speak("Hello", 200, true), Step::error("INTERNAL_SERVER_ERROR", "the LLM is down")];
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).script(script)).await.expect("fake agent");
    let config = agent_config(&fake, "fallback_transfer = \"9001\"\n");
    let call = fallback_and_refer("dg-fallback", config, &[("DEEPGRAM_API_KEY", KEY)]).await;
    call.assert_heard_and_transferred("INTERNAL_SERVER_ERROR");
}

/// The caller talks, the agent answers after a pause with a long reply, and the caller
/// talks over it: the fake hears the caller's speech over wss, its barge-in cuts the reply
/// short on the wire, and the recording has both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_speech_reaches_the_agent_and_its_barge_in_cuts_the_reply() {
    let script = vec![
        Step::speak("Hello", 400, true),
        Step::WaitAudio { frames: 10, min_dbfs: Some(-30.0) },
        Step::user_says("Is anyone there?"),
        Step::Pause(Duration::from_millis(600)),
        Step::speak("Yes, this is the concierge, and this answer goes on for a long time", 5000, true),
        Step::WaitAudio { frames: 5, min_dbfs: Some(-30.0) },
        Step::user_says("Stop"),
    ];
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).script(script)).await.expect("fake agent");
    let config = agent_config(&fake, "");
    // 0-1 s quiet, 1.0-1.6 s speech, then quiet, 3.0-3.4 s speech over the reply.
    let loud = |i: u32| (50..80).contains(&i) || (150..170).contains(&i);
    let config = format!("{config}[records]\nrecordings = true\n");
    let (got, (record, wav), status, _) = talk_and_keep_the_record("dg-turn", config, ENV, 350, loud).await;
    assert!(status.success(), "{status:?}");
    let records = fake.wait_records(1, Duration::from_secs(3)).await;
    assert!(records[0].script_done, "the fake ran its whole script: {}", records[0].end);
    assert_eq!(records[0].barge_ins.len(), 2, "each UserStartedSpeaking's instant is recorded");
    // Greeting (20 packets) + the reply up to the barge-in; uninterrupted, the reply
    // alone would have been 250 packets, all of them before the call ended at 7 s.
    let agent_packets = got.iter().filter(|p| p.3.iter().any(|&b| b != 0xff)).count();
    assert!(
        (40..=130).contains(&agent_packets),
        "greeting and a cut reply, not the whole 5 s reply: {agent_packets} agent packets"
    );
    // The recording: caller left, agent right, 20 ms frames at 8 kHz.
    let wav = wav.expect("recordings = true records the call");
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), 2, "stereo");
    assert_eq!(u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]), 8000);
    let frames: Vec<(i16, i16)> = wav[44..]
        .chunks_exact(4)
        .map(|f| (i16::from_le_bytes([f[0], f[1]]), i16::from_le_bytes([f[2], f[3]])))
        .collect();
    let loud_ms = |pick: fn(&(i16, i16)) -> i16| {
        frames
            .chunks(160)
            .filter(|c| c.iter().map(|s| i64::from(pick(s)).pow(2)).sum::<i64>() / 160 > 1_000_000)
            .count()
            * 20
    };
    let (caller_ms, agent_ms) = (loud_ms(|s| s.0), loud_ms(|s| s.1));
    // The caller spoke 600 + 400 ms; the agent's greeting and cut reply lasted well over a second.
    assert!((800..=1200).contains(&caller_ms), "caller speech on the left: {caller_ms} ms");
    assert!(agent_ms >= 1000 && agent_ms <= agent_packets * 20 + 40, "agent on the right: {agent_ms} ms");
    assert!(frames.len() >= 300 * 160, "the whole call is in the file: {} samples", frames.len());
    // The caller's turn is in the record, with the latency the call measured and the
    // stages Deepgram's AgentStartedSpeaking gave (the fake's: 0.8 s total, 0.5 s to
    // think, 0.2 s to speak); Deepgram reports no endpointing or transcription figure.
    let turn = record.turns.first().expect("the caller's turn is in the record");
    assert_eq!(turn.index, 0);
    assert_eq!(
        (turn.agent_total_ms, turn.think_ms, turn.speak_ms, turn.endpointing_ms, turn.transcribe_ms),
        (Some(800), Some(500), Some(200), None, None),
        "{turn:?}"
    );
    assert!(turn.latency_ms < 3000, "{turn:?}");
    assert!(turn.at > record.started && record.ended.is_some_and(|e| turn.at < e), "{turn:?}");
    assert_eq!(
        record.recording.as_ref().and_then(|p| p.file_name()).and_then(|n| n.to_str()),
        Some(&*format!("{}.wav", record.id))
    );
}

/// The agent's transfer function answers with what the PBX did: a busy target is an
/// error the agent can talk about (the call goes on), a completed transfer ends the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_learns_whether_the_transfer_went_through() {
    let script = vec![
        Step::speak("Hello", 200, true),
        Step::call("fc_1", "transfer_to_guard", "{}"),
        Step::speak("The guard is busy; let me try again", 400, true),
        Step::call("fc_2", "transfer_to_guard", "{}"),
        Step::Pause(Duration::from_secs(3)),
    ];
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).script(script)).await.expect("fake agent");
    let functions = "[[agent.functions]]\nname = \"transfer_to_guard\"\ndescription = \"Guard\"\n\
                     kind = \"transfer\"\ntarget = \"9001\"\n";
    let config = agent_config(&fake, functions);
    let (between, record, status) = tokio::task::spawn_blocking(move || {
        let mut call = Call::start("dg-transfer", &config, &[("DEEPGRAM_API_KEY", KEY)]);
        let notify = |call: &mut Call, frag: &str| {
            let cseq = call.next_cseq();
            call.send(&call.in_dialog(
                "NOTIFY",
                cseq,
                "Event: refer\r\nSubscription-State: terminated;reason=noresource\r\nContent-Type: message/sipfrag\r\n",
                frag,
            ));
        };
        let refer = call.wait_request("REFER", Duration::from_secs(5));
        call.send(&reply(&refer, "202 Accepted", ""));
        notify(&mut call, "SIP/2.0 486 Busy Here\r\n");
        // The caller stays with the agent until it tries again.
        let mut between = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let second = loop {
            assert!(std::time::Instant::now() < deadline, "no second REFER: {between:?}");
            if let Some(m) = call.recv(Duration::from_millis(100)) {
                if m.starts_with("REFER ") {
                    break m;
                }
                between.push(m.lines().next().unwrap_or_default().to_string());
            }
        };
        call.send(&reply(&second, "202 Accepted", ""));
        notify(&mut call, "SIP/2.0 200 OK\r\n");
        let bye = call.wait_request("BYE", Duration::from_secs(4));
        call.send(&reply(&bye, "200 OK", ""));
        let record = finished_record(&call.dir.join("calls.db"));
        let (status, _) = call.stop();
        (between, record, status)
    })
    .await
    .expect("join");
    assert!(status.success(), "{status:?}");
    assert!(
        !between.iter().any(|l| l.starts_with("BYE")),
        "a busy target does not end the call: {between:?}"
    );
    let records = fake.wait_records(1, Duration::from_secs(3)).await;
    let r = &records[0];
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    let answers: Vec<(Option<&str>, &str)> =
        r.function_responses.iter().map(|f| (f.id.as_deref(), f.content.as_str())).collect();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[0].0, Some("fc_1"));
    assert!(
        answers[0].1.starts_with("error: the transfer to 9001 failed: the line is busy (SIP 486)"),
        "{answers:?}"
    );
    assert_eq!(answers[1].0, Some("fc_2"));
    assert!(answers[1].1.starts_with("ok: the transfer to 9001 was completed"), "{answers:?}");
    // The call record has what happened, in order.
    assert_eq!(
        (record.outcome, record.hung_up_by.as_str()),
        (CallOutcome::Transferred, "voice-ua"),
        "{record:?}"
    );
    assert_eq!(record.codec.as_deref(), Some("PCMU"));
    assert_eq!(record.agent.as_deref(), Some("deepgram"));
    assert!(
        record.agent_session_id.as_deref().is_some_and(|id| id.starts_with("fake-request-")),
        "{record:?}"
    );
    assert!(record.transfer_target.as_deref().is_some_and(|t| t.starts_with("sip:9001@")), "{record:?}");
    let tools: Vec<(&str, &str)> =
        record.tool_calls.iter().map(|t| (t.name.as_str(), t.result.as_str())).collect();
    assert_eq!(tools, [("transfer", "failed"), ("transfer", "completed")]);
    let lines: Vec<(&str, &str)> =
        record.transcript.iter().map(|l| (l.role.as_str(), l.text.as_str())).collect();
    assert_eq!(lines, [("agent", "Hello"), ("agent", "The guard is busy; let me try again")]);
    assert!(record.answered.is_some() && record.ended >= record.answered, "{record:?}");
    assert!(
        record.media.packets_out >= 10,
        "the 200 ms greeting played before the REFER: {:?}",
        record.media
    );
}

/// A REFER the PBX refuses is an error the agent hears about; one it takes but never
/// reports on is told to the agent as accepted after a few seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_transfer_and_one_without_notify_are_reported_too() {
    let script = vec![
        Step::call("fc_1", "transfer_to_guard", "{}"),
        Step::call("fc_2", "transfer_to_guard", "{}"),
        Step::Pause(Duration::from_secs(2)),
    ];
    let fake = FakeDeepgram::start(FakeConfig::new(KEY).script(script)).await.expect("fake agent");
    let functions = "[[agent.functions]]\nname = \"transfer_to_guard\"\ndescription = \"Guard\"\n\
                     kind = \"transfer\"\ntarget = \"9001\"\n";
    let config = agent_config(&fake, functions);
    let (waited, status) = tokio::task::spawn_blocking(move || {
        let call = Call::start("dg-transfer-2", &config, &[("DEEPGRAM_API_KEY", KEY)]);
        let refer = call.wait_request("REFER", Duration::from_secs(5));
        call.send(&reply(&refer, "403 Forbidden", ""));
        let refer = call.wait_request("REFER", Duration::from_secs(5));
        let accepted_at = std::time::Instant::now();
        call.send(&reply(&refer, "202 Accepted", ""));
        // No NOTIFY: keep the call up (RTP flowing) until the agent has been told.
        let mut got = Vec::new();
        call.talk_silence(0, 300, &mut got);
        let waited = accepted_at.elapsed();
        call.send(&call.in_dialog("BYE", 2, "", ""));
        let _ = call.recv(Duration::from_secs(3));
        let (status, _) = call.stop();
        (waited, status)
    })
    .await
    .expect("join");
    assert!(status.success(), "{status:?}");
    let records = fake.wait_records(1, Duration::from_secs(3)).await;
    let r = &records[0];
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    let answers: Vec<(Option<&str>, &str)> =
        r.function_responses.iter().map(|f| (f.id.as_deref(), f.content.as_str())).collect();
    assert_eq!(answers.len(), 2, "{answers:?} after {waited:?}");
    assert_eq!(answers[0].0, Some("fc_1"));
    assert!(answers[0].1.contains("refused by the PBX (SIP 403)"), "{answers:?}");
    assert_eq!(answers[1].0, Some("fc_2"));
    assert!(answers[1].1.starts_with("ok: the transfer to 9001 was accepted by the PBX"), "{answers:?}");
}
