//! Call records survive the process: a finished call is on disk once it has ended, and
//! a call cut short by SIGKILL (a crash, a power cut) is marked `interrupted` by the next
//! open, with its answer time kept.

mod common;

use common::Call;
use std::time::{Duration, Instant};
use voice_ua_records::{CallOutcome, RecordStore, Retention};

fn wait_for(db: &std::path::Path, what: &str, ok: impl Fn(&[voice_ua_records::CallRecord]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let records = RecordStore::open_read_only(db).ok().and_then(|s| s.last(10).ok()).unwrap_or_default();
        if ok(&records) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {records:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_finished_call_is_kept_and_a_killed_one_is_marked_interrupted() {
    let dir = std::env::temp_dir().join(format!("voice-ua-records-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("calls.db");
    let config = format!("[records]\npath = \"{}\"\n", db.display());

    // A call that ends normally.
    let call = Call::start("rec-finished", &config, &[]);
    let mut got = Vec::new();
    call.talk_silence(0, 25, &mut got);
    call.send(&call.in_dialog("BYE", 2, "", ""));
    let _ = call.recv(Duration::from_secs(3));
    wait_for(&db, "the finished call is written", |r| {
        r.iter().any(|c| c.outcome == CallOutcome::CallerHangup)
    });
    let (status, _) = call.stop();
    assert!(status.success(), "{status:?}");

    // A call whose process dies mid-call.
    let mut call = Call::start("rec-killed", &config, &[]);
    call.talk_silence(0, 25, &mut got);
    wait_for(&db, "the answered call is written at once", |r| {
        r.iter().any(|c| c.outcome == CallOutcome::InProgress)
    });
    call.ua.kill().expect("SIGKILL");
    let _ = call.ua.wait();
    let _ = std::fs::remove_dir_all(&call.dir);

    let store = RecordStore::open(&db, Retention::default()).expect("reopen after the crash");
    assert_eq!(store.interrupted_on_open(), 1, "the killed call is found on the next start");
    let records = store.last(10).expect("read");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(records.len(), 2, "{records:?}");
    let killed = &records[0];
    assert_eq!(killed.outcome, CallOutcome::Interrupted, "{killed:?}");
    assert!(killed.answered.is_some() && killed.ended.is_none(), "{killed:?}");
    let finished = &records[1];
    assert_eq!(finished.outcome, CallOutcome::CallerHangup, "{finished:?}");
    assert_eq!(finished.hung_up_by, "caller");
    assert_eq!(finished.agent.as_deref(), Some("echo"));
    assert!(finished.ended.is_some() && finished.media.packets_in >= 20, "{finished:?}");
}
