//! SIGTERM with a call up: the BYE leaves at once, the process is gone within the
//! shutdown deadline even though the PBX never answers the BYE (nor the un-REGISTER),
//! and the call's record is on disk as ended by shutdown.

mod common;

use common::{header, Call};
use std::time::{Duration, Instant};
use voice_ua_records::{CallOutcome, RecordStore};

#[test]
fn sigterm_ends_the_call_with_bye_and_keeps_its_record_within_the_deadline() {
    let dir = std::env::temp_dir().join(format!("voice-ua-shutdown-records-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("calls.db");
    let config = format!("[records]\npath = \"{}\"\n", db.display());
    let mut call = Call::start("shutdown", &config, &[]);
    let mut got = Vec::new();
    call.talk_silence(0, 25, &mut got);
    assert!(!got.is_empty(), "the call is up");

    let sent = Instant::now();
    let _ = std::process::Command::new("kill").args(["-TERM", &call.ua.id().to_string()]).status();
    // The PBX reads what arrives and answers nothing.
    let mut bye = None;
    let status = loop {
        if let Some(m) = call.recv(Duration::from_millis(20)) {
            if m.starts_with("BYE ") {
                bye.get_or_insert((m, sent.elapsed()));
            }
        }
        if let Some(status) = call.ua.try_wait().expect("wait") {
            break status;
        }
        assert!(sent.elapsed() < Duration::from_secs(10), "voice-ua still running 10 s after SIGTERM");
    };
    let took = sent.elapsed();
    let logs: Vec<String> = call.logs.try_iter().collect();
    let _ = std::fs::remove_dir_all(&call.dir);
    assert!(status.success(), "{status:?}\n{}", logs.join("\n"));
    assert!(took < Duration::from_secs(5), "exit took {took:?}\n{}", logs.join("\n"));
    let (bye, bye_after) = bye.expect("a BYE for the call");
    assert!(bye_after < Duration::from_millis(500), "the BYE left {bye_after:?} after SIGTERM");
    assert!(header(&bye, "Reason").is_some_and(|r| r.contains("cause=16")), "{bye}");

    let records = RecordStore::open_read_only(&db).expect("records").last(10).expect("read");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r.outcome, CallOutcome::Shutdown, "{r:?}");
    assert_eq!(r.end_reason, "ended by shutdown", "{r:?}");
    assert_eq!(r.hung_up_by, "voice-ua");
    assert!(r.ended.is_some() && r.media.packets_in >= 20, "{r:?}");
}

#[test]
fn sigterm_while_a_call_rings_refuses_it_with_503_and_records_it() {
    let dir = std::env::temp_dir().join(format!("voice-ua-ringing-records-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("calls.db");
    // It rings for 10 s before answering: SIGTERM comes while it rings.
    let config = format!("[records]\npath = \"{}\"\n[calls]\nring_ms = 10000\n", db.display());
    let mut call = Call::launch("shutdown-ringing", &config, &[]);
    call.send(&call.invite_request(""));
    let ringing = Instant::now();
    loop {
        assert!(ringing.elapsed() < Duration::from_secs(5), "no 180 Ringing");
        if call.recv(Duration::from_millis(50)).is_some_and(|m| m.starts_with("SIP/2.0 180")) {
            break;
        }
    }
    let sent = Instant::now();
    let _ = std::process::Command::new("kill").args(["-TERM", &call.ua.id().to_string()]).status();
    let mut final_answer = None;
    let status = loop {
        if let Some(m) = call.recv(Duration::from_millis(20)) {
            if m.starts_with("SIP/2.0 ") && m.contains(" INVITE\r\n") && !m.starts_with("SIP/2.0 1") {
                final_answer.get_or_insert(m);
            }
        }
        if let Some(status) = call.ua.try_wait().expect("wait") {
            break status;
        }
        assert!(sent.elapsed() < Duration::from_secs(10), "voice-ua still running 10 s after SIGTERM");
    };
    let logs: Vec<String> = call.logs.try_iter().collect();
    let _ = std::fs::remove_dir_all(&call.dir);
    assert!(status.success(), "{status:?}\n{}", logs.join("\n"));
    let answer = final_answer.expect("a final answer to the ringing INVITE");
    assert!(answer.starts_with("SIP/2.0 503"), "{answer}");

    let records = RecordStore::open_read_only(&db)
        .unwrap_or_else(|e| panic!("{e:?}\n{}", logs.join("\n")))
        .last(10)
        .expect("read");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        (records[0].outcome.as_str(), records[0].end_reason.as_str()),
        ("shutdown", "ended by shutdown")
    );
    assert!(records[0].answered.is_none(), "never answered: {:?}", records[0]);
}
