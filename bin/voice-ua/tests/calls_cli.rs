//! `voice-ua calls` as a user meets it: a table of the newest calls, the full records
//! as JSON, the agent's tokens and cost and the turns' latency in both, the database
//! found through the configuration, and one clear line when there is nothing to read. The database is written with the records crate itself.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, UNIX_EPOCH};
use voice_ua_records::{
    AgentUsage, CallOutcome, CallRecord, RecordStore, Retention, ToolCall, TranscriptLine, TurnFigures,
};

fn voice_ua(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_voice-ua"))
        .args(args)
        .current_dir(dir)
        .env_remove("VOICE_UA_SIP_PASSWORD")
        .env_remove("RUST_LOG")
        .env_remove("DEEPGRAM_API_KEY")
        .env_remove("STATE_DIRECTORY")
        .output()
        .expect("voice-ua runs")
}

/// Three calls a minute apart, starting 2025-03-01 14:00:00 UTC; the last one still
/// in progress (written by the writer thread the way the service does). Only the first
/// one's agent reported usage, and only the first had turns: two, the first with every
/// stage.
fn write_calls(db: &Path) {
    let t0 = UNIX_EPOCH + Duration::from_secs(1_740_837_600);
    let mut store = RecordStore::open(db, Retention::default()).expect("open");
    let mut a = CallRecord::new("rec-a", "a@pbx", "1001", "9000", t0);
    a.caller_display = Some("Front Gate".into());
    a.answered = Some(t0 + Duration::from_millis(200));
    a.ended = Some(t0 + Duration::from_secs(42));
    a.codec = Some("PCMU".into());
    a.outcome = CallOutcome::Transferred;
    a.end_reason = "transferred to 9001".into();
    a.transfer_target = Some("9001".into());
    a.tool_calls = vec![
        ToolCall { at: t0 + Duration::from_secs(5), name: "find_resident".into(), result: "found".into() },
        ToolCall { at: t0 + Duration::from_secs(40), name: "transfer".into(), result: "ok".into() },
    ];
    a.transcript = ["Hello, gate.", "Delivery for 4B.", "Putting you through."]
        .iter()
        .enumerate()
        .map(|(i, t)| TranscriptLine {
            at: t0 + Duration::from_secs(2 * i as u64 + 1),
            role: if i % 2 == 0 { "agent" } else { "user" }.into(),
            text: (*t).into(),
        })
        .collect();
    a.usage = Some(AgentUsage {
        input_audio_tokens: 1100,
        input_text_tokens: 2500,
        cached_input_tokens: 1152,
        output_audio_tokens: 630,
        output_text_tokens: 105,
        cost_micro_usd: 12_345,
    });
    let first = TurnFigures {
        index: 0,
        at: t0 + Duration::from_millis(4_500),
        latency_ms: 820,
        endpointing_ms: Some(600),
        transcribe_ms: Some(90),
        think_ms: Some(70),
        speak_ms: Some(40),
        agent_total_ms: Some(800),
    };
    a.turns = vec![
        first,
        TurnFigures {
            index: 1,
            at: t0 + Duration::from_secs(39),
            latency_ms: 1310,
            transcribe_ms: None,
            ..first
        },
    ];
    store.save(&a).expect("save a");
    let mut b = CallRecord::new("rec-b", "b@pbx", "1002", "9000", t0 + Duration::from_secs(60));
    b.ended = Some(t0 + Duration::from_secs(60 + 725));
    b.outcome = CallOutcome::CallerHangup;
    store.save(&b).expect("save b");
    let writer = store.into_writer().expect("writer");
    writer.started(&CallRecord::new("rec-c", "c@pbx", "1003", "9000", t0 + Duration::from_secs(120)));
    writer.close();
}

#[test]
fn calls_prints_a_table_newest_first() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("calls.db");
    write_calls(&db);
    let out = voice_ua(&["calls", "--db", db.to_str().expect("utf8")], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "header and three calls: {stdout}");
    assert!(lines[0].starts_with("STARTED (UTC)") && lines[0].contains("OUTCOME"), "{stdout}");
    assert!(lines[1].starts_with("2025-03-01 14:02:00") && lines[1].contains("in_progress"), "{stdout}");
    assert!(lines[2].starts_with("2025-03-01 14:01:00     12:05  1002"), "{stdout}");
    assert!(lines[3].starts_with("2025-03-01 14:00:00      0:42  Front Gate <1001>"), "{stdout}");
    assert!(lines[3].contains("transferred") && lines[3].contains("find_resident,transfer"), "{stdout}");
    assert!(lines[0].contains("TOKENS      COST  ID"), "{stdout}");
    assert!(lines[3].ends_with("    4335   $0.0123  rec-a"), "its agent's tokens and cost: {stdout}");
    assert!(lines[2].ends_with("       -         -  rec-b"), "no usage reported: {stdout}");
    assert!(lines[0].contains("LINES  TURN P50  TOOLS"), "{stdout}");
    assert!(lines[3].contains("    3    820 ms  find_resident"), "the median turn latency: {stdout}");
    assert!(lines[2].contains("    0         -  -  "), "no turns: {stdout}");

    let out = voice_ua(&["calls", "--db", db.to_str().expect("utf8"), "--last", "1"], dir.path());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
}

#[test]
fn calls_json_is_one_array_of_full_records() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("calls.db");
    write_calls(&db);
    let out = voice_ua(&["calls", "--db", db.to_str().expect("utf8"), "--json", "--last", "3"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let calls = v.as_array().expect("an array");
    let ids: Vec<&str> = calls.iter().map(|c| c["id"].as_str().expect("id")).collect();
    assert_eq!(ids, ["rec-c", "rec-b", "rec-a"]);
    let a = &calls[2];
    assert_eq!(a["started"], "2025-03-01T14:00:00.000Z");
    assert_eq!(a["caller_display"], "Front Gate");
    assert_eq!(a["transfer_target"], "9001");
    assert_eq!(a["transcript"].as_array().expect("lines").len(), 3);
    assert_eq!(a["transcript"][1]["text"], "Delivery for 4B.");
    assert_eq!(a["transcript"][1]["role"], "user");
    assert_eq!(a["tool_calls"][0]["name"], "find_resident");
    assert_eq!(a["usage"]["input_text_tokens"], 2500);
    assert_eq!(a["usage"]["cached_input_tokens"], 1152);
    assert_eq!(a["usage"]["cost_micro_usd"], 12_345, "the cost in millionths of a dollar");
    assert!(calls[1]["usage"].is_null(), "no usage reported: null");
    let turns = a["turns"].as_array().expect("turns");
    assert_eq!(turns.len(), 2);
    assert_eq!(
        turns[0],
        serde_json::json!({
            "index": 0, "at": "2025-03-01T14:00:04.500Z", "latency_ms": 820, "endpointing_ms": 600,
            "transcribe_ms": 90, "think_ms": 70, "speak_ms": 40, "agent_total_ms": 800
        })
    );
    assert_eq!((turns[1]["index"].as_u64(), turns[1]["latency_ms"].as_u64()), (Some(1), Some(1310)));
    assert!(turns[1]["transcribe_ms"].is_null(), "a stage not reported: null");
    assert_eq!(a["turns_dropped"], 0);
    assert_eq!(calls[1]["turns"], serde_json::json!([]));
    assert_eq!(calls[0]["outcome"], "in_progress");
    assert!(calls[0]["ended"].is_null());
}

#[test]
fn calls_finds_the_database_through_the_configuration() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("state").join("calls.db");
    write_calls(&db);
    let cfg = dir.path().join("v.toml");
    std::fs::write(&cfg, format!("[records]\npath = \"{}\"\n", db.display())).expect("write");
    let out = voice_ua(&["calls", "--config", cfg.to_str().expect("utf8"), "--last", "2"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    // No SIP settings are needed to read records.
    assert!(!String::from_utf8_lossy(&out.stderr).contains("password"));

    // The default path of a developer's run: ./calls.db, via ./voice-ua.toml or none.
    let here = tempfile::tempdir().expect("tmp");
    write_calls(&here.path().join("calls.db"));
    if !Path::new("/var/lib/voice-ua").is_dir() {
        let out = voice_ua(&["calls", "--json"], here.path());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v.as_array().map(Vec::len), Some(3));
    }
}

#[test]
fn an_empty_database_says_so() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("calls.db");
    drop(RecordStore::open(&db, Retention::default()).expect("create"));
    let out = voice_ua(&["calls", "--db", db.to_str().expect("utf8")], dir.path());
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("no calls recorded yet in "));
    let out = voice_ua(&["calls", "--db", db.to_str().expect("utf8"), "--json"], dir.path());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
}

#[test]
fn nothing_to_read_is_one_clear_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let off = dir.path().join("off.toml");
    std::fs::write(&off, "[records]\npath = \"\"\n").expect("write");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, "not sqlite at all, just text that is long enough to be a header......")
        .expect("write");
    let missing = dir.path().join("missing.db");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["calls", "--db", missing.to_str().expect("utf8")], "does not exist"),
        (vec!["calls", "--config", off.to_str().expect("utf8")], "call records are off (records.path = \"\""),
        (vec!["calls", "--db", junk.to_str().expect("utf8")], "is not a voice-ua call records database"),
        (vec!["calls", "--config", "/nonexistent/v.toml"], "cannot read config file /nonexistent/v.toml"),
    ];
    for (args, expect) in cases {
        let out = voice_ua(&args, dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line for {args:?}: {stderr}");
        assert!(stderr.starts_with("voice-ua: error: ") && stderr.contains(expect), "{args:?}: {stderr}");
    }
    assert!(!missing.exists(), "reading never creates a database");
    let out = voice_ua(&["calls", "--last", "0", "--db", "x.db"], dir.path());
    assert_eq!(out.status.code(), Some(2), "--last 0 is refused by the parser");
}

#[test]
fn check_shows_the_records_settings() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("v.toml");
    std::fs::write(
        &cfg,
        "[sip]\nextension = \"9000\"\npbx = \"192.0.2.10\"\npassword = \"x\"\n\
         [records]\npath = \"/data/calls.db\"\nrecordings = true\nrecordings_retention_days = 0\n",
    )
    .expect("write");
    let out = voice_ua(&["check", "--config", cfg.to_str().expect("utf8")], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains(
            "records:            /data/calls.db, kept 90 days; stereo recordings in /data/recordings, kept forever"
        ),
        "{stdout}"
    );
}
