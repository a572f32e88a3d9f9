//! The call records database through its public API: schema and WAL, the
//! started→finished round trip, the agent's usage, the turns, the upgrades of version 1
//! and version 2 files, crash recovery, retention, durability through close, a reader
//! beside the writer, and the errors a user can meet.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use voice_ua_records::{
    AgentUsage, CallOutcome, CallRecord, MediaStats, RecordStore, RecordsError, Retention, ToolCall,
    TranscriptLine, TurnFigures,
};

const DAY: Duration = Duration::from_secs(86_400);

/// A whole millisecond (the database's precision) near `now`.
fn ms(t: SystemTime) -> SystemTime {
    let d = t.duration_since(UNIX_EPOCH).expect("after 1970");
    UNIX_EPOCH + Duration::from_millis(d.as_millis() as u64)
}

fn sample(id: &str, started: SystemTime) -> CallRecord {
    let started = ms(started);
    let mut r = CallRecord::new(id, format!("{id}@192.0.2.10"), "1001", "9000", started);
    r.caller_display = Some("Front Gate".into());
    r.answered = Some(started + Duration::from_millis(220));
    r.codec = Some("PCMU".into());
    r.agent = Some("deepgram".into());
    r.agent_session_id = Some("req-123".into());
    r
}

fn finish(mut r: CallRecord) -> CallRecord {
    let t0 = r.started;
    r.ended = Some(t0 + Duration::from_secs(42));
    r.outcome = CallOutcome::Transferred;
    r.end_reason = "the agent transferred the caller to 9001".into();
    r.hung_up_by = "agent".into();
    r.media =
        MediaStats { packets_in: 2100, packets_out: 2098, lost: 3, late: 1, concealed: 4, jitter_ms: 2.5 };
    r.transfer_target = Some("9001".into());
    r.tool_calls = vec![
        ToolCall {
            at: t0 + Duration::from_secs(10),
            name: "find_resident".into(),
            result: "{\"ok\":1}".into(),
        },
        ToolCall { at: t0 + Duration::from_secs(30), name: "transfer".into(), result: "202 Accepted".into() },
    ];
    r.transcript = (0..25)
        .map(|i| TranscriptLine {
            at: t0 + Duration::from_millis(1000 * i),
            role: if i % 2 == 0 { "agent" } else { "user" }.into(),
            text: format!("line {i}: ünïcode ✓, 'quotes' and \"double\""),
        })
        .collect();
    r.recording = Some(PathBuf::from("/var/lib/voice-ua/recordings/x.wav"));
    r.usage = Some(usage());
    r.turns = turns(t0);
    r
}

/// Three turns: every stage known (the pipeline), two stages (Deepgram), none (echo).
fn turns(t0: SystemTime) -> Vec<TurnFigures> {
    let all = TurnFigures {
        index: 0,
        at: t0 + Duration::from_secs(3),
        latency_ms: 820,
        endpointing_ms: Some(600),
        transcribe_ms: Some(90),
        think_ms: Some(70),
        speak_ms: Some(40),
        agent_total_ms: Some(800),
    };
    vec![
        all,
        TurnFigures {
            index: 1,
            at: t0 + Duration::from_millis(9_250),
            latency_ms: 1310,
            endpointing_ms: None,
            transcribe_ms: None,
            agent_total_ms: Some(1200),
            ..all
        },
        TurnFigures {
            index: 2,
            at: t0 + Duration::from_secs(20),
            latency_ms: 0,
            endpointing_ms: None,
            transcribe_ms: None,
            think_ms: None,
            speak_ms: None,
            agent_total_ms: None,
        },
    ]
}

fn usage() -> AgentUsage {
    AgentUsage {
        input_audio_tokens: 1200,
        input_text_tokens: 450,
        cached_input_tokens: 800,
        output_audio_tokens: 310,
        output_text_tokens: 95,
        cost_micro_usd: 12_345,
    }
}

fn db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("sub").join("calls.db")
}

/// A plain SQLite connection of the test's own, beside the store's.
fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("raw connection")
}

fn count(conn: &rusqlite::Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0)).expect("count")
}

fn keep_forever() -> Retention {
    Retention::default()
}

#[test]
fn open_creates_the_directory_schema_and_wal_mode() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = db(&dir);
    let store = RecordStore::open(&path, keep_forever()).expect("open");
    assert!(path.is_file());
    // The connection's own settings.
    assert_eq!(store.pragma("journal_mode").expect("mode"), "wal");
    assert_eq!(store.pragma("synchronous").expect("sync"), "2", "FULL");
    assert_eq!(store.pragma("foreign_keys").expect("fk"), "1");
    drop(store);
    // WAL is a property of the file: a fresh, independent connection sees it too.
    let raw = raw(&path);
    assert_eq!(raw.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0)).expect("mode"), "wal");
    let version: i64 = raw.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
    assert_eq!(version, voice_ua_records::SCHEMA_VERSION);
    for table in ["calls", "tool_calls", "transcript", "turns"] {
        let n: i64 = raw
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .expect("schema");
        assert_eq!(n, 1, "{table}");
    }
    let ro = RecordStore::open_read_only(&path).expect("read-only");
    assert!(ro.last(10).expect("read").is_empty());
    // Opening again (an upgrade, a restart) keeps the schema as it is.
    drop(RecordStore::open(&path, keep_forever()).expect("reopen"));
}

#[test]
fn started_then_finished_round_trips_with_tool_calls_and_transcript_in_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = db(&dir);
    let writer = RecordStore::open(&path, keep_forever()).expect("open").into_writer().expect("thread");
    let started = sample("call-1", SystemTime::now());
    assert!(writer.started(&started));
    assert!(writer.flush());

    let reader = RecordStore::open_read_only(&path).expect("reader");
    let seen = reader.last(5).expect("read");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].outcome, CallOutcome::InProgress);
    assert_eq!(seen[0], started, "the started record as written");

    let done = finish(started);
    assert!(writer.finished(done.clone()));
    let stats = writer.close();
    assert_eq!((stats.written, stats.dropped, stats.failed), (2, 0, 0));

    let seen = reader.last(5).expect("read");
    assert_eq!(seen, vec![done.clone()], "every field, tool call, line and turn, in order");
    assert_eq!(reader.get("call-1").expect("get"), Some(done));
    assert_eq!(reader.get("nope").expect("get"), None);
    // The finished record replaced the started one: no duplicate rows.
    let raw = raw(&path);
    assert_eq!((count(&raw, "calls"), count(&raw, "transcript"), count(&raw, "tool_calls")), (1, 25, 2));
    assert_eq!(count(&raw, "turns"), 3);
}

#[test]
fn outcomes_are_stored_as_their_words_and_an_unknown_word_reads_as_failed() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = db(&dir);
    let mut store = RecordStore::open(&path, keep_forever()).expect("open");
    let mut r = finish(sample("agent-hung-up", SystemTime::now()));
    r.outcome = CallOutcome::AgentHangup;
    store.save(&r).expect("save");
    store.save(&finish(sample("from-elsewhere", SystemTime::now()))).expect("save");
    let raw = raw(&path);
    let word: String = raw
        .query_row("SELECT outcome FROM calls WHERE id = 'agent-hung-up'", [], |r| r.get(0))
        .expect("word");
    assert_eq!(word, "agent_hangup");
    // A word this version does not know (another voice-ua wrote it): the read still
    // works, the call reads as failed, and the row keeps its word.
    raw.execute("UPDATE calls SET outcome = 'teleported' WHERE id = 'from-elsewhere'", []).expect("update");
    let seen = store.get("from-elsewhere").expect("get").expect("kept");
    assert_eq!(seen.outcome, CallOutcome::Failed);
    assert_eq!(store.last(10).expect("read").len(), 2);
    let word: String = raw
        .query_row("SELECT outcome FROM calls WHERE id = 'from-elsewhere'", [], |r| r.get(0))
        .expect("word");
    assert_eq!(word, "teleported");
}

#[test]
fn last_is_newest_first_and_limited() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = RecordStore::open(&db(&dir), keep_forever()).expect("open");
    let t0 = SystemTime::now() - Duration::from_secs(3600);
    for i in 0..5 {
        store.save(&finish(sample(&format!("c{i}"), t0 + Duration::from_secs(60 * i)))).expect("save");
    }
    let ids: Vec<String> = store.last(3).expect("read").into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["c4", "c3", "c2"]);
    assert_eq!(store.last(100).expect("read").len(), 5);
    assert!(store.last(0).expect("read").is_empty());
}

#[test]
fn a_call_in_progress_when_the_process_died_becomes_interrupted() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = db(&dir);
    let writer = RecordStore::open(&path, keep_forever()).expect("open").into_writer().expect("thread");
    writer.started(&sample("live", SystemTime::now()));
    writer.finished(finish(sample("done", SystemTime::now() - Duration::from_secs(600))));
    // The process "dies" here: the finished record of "live" never comes.
    writer.close();

    let store = RecordStore::open(&path, keep_forever()).expect("reopen");
    assert_eq!(store.interrupted_on_open(), 1);
    let live = store.get("live").expect("get").expect("kept");
    assert_eq!(live.outcome, CallOutcome::Interrupted);
    assert!(live.end_reason.contains("stopped during the call"), "{}", live.end_reason);
    assert_eq!(live.ended, None);
    assert_eq!(store.get("done").expect("get").expect("kept").outcome, CallOutcome::Transferred);
    drop(store);
    assert_eq!(RecordStore::open(&path, keep_forever()).expect("again").interrupted_on_open(), 0);
}

#[test]
fn retention_deletes_old_calls_with_their_rows_and_zero_keeps_everything() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = db(&dir);
    let now = SystemTime::now();
    {
        let mut store = RecordStore::open(&path, keep_forever()).expect("open");
        store.save(&finish(sample("old", now - 100 * DAY))).expect("save");
        store.save(&finish(sample("recent", now - DAY))).expect("save");
        // Never answered, never ended (interrupted long ago): judged by its start.
        let mut ancient = sample("ancient", now - 200 * DAY);
        ancient.answered = None;
        ancient.outcome = CallOutcome::Failed;
        store.save(&ancient).expect("save");
        // 0 days: nothing is deleted, at open or later.
        assert_eq!(store.prune(now).expect("prune").calls, 0);
        assert_eq!(store.last(10).expect("read").len(), 3);
    }
    // Reopening with 90 days prunes at open.
    let store = RecordStore::open(&path, Retention { call_days: 90, ..keep_forever() }).expect("open");
    let ids: Vec<String> = store.last(10).expect("read").into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["recent"]);
    let raw = raw(&path);
    assert_eq!(count(&raw, "transcript"), 25, "only recent's lines are left");
    assert_eq!(count(&raw, "tool_calls"), 2);
    assert_eq!(count(&raw, "turns"), 3);
    // A later pass, 95 days on, takes the recent one too, with its rows (cascade).
    assert_eq!(store.prune(now + 95 * DAY).expect("prune").calls, 1);
    assert_eq!((count(&raw, "calls"), count(&raw, "transcript"), count(&raw, "tool_calls")), (0, 0, 0));
    assert_eq!(count(&raw, "turns"), 0);
}

#[test]
fn retention_never_deletes_a_call_in_progress() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = RecordStore::open(&db(&dir), Retention { call_days: 1, ..keep_forever() }).expect("open");
    store.save(&sample("long-call", SystemTime::now() - 3 * DAY)).expect("save");
    assert_eq!(store.prune(SystemTime::now()).expect("prune").calls, 0);
    assert_eq!(store.last(1).expect("read").len(), 1);
}

#[test]
fn everything_queued_before_close_is_on_disk_after_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = db(&dir);
    let writer = RecordStore::open(&path, keep_forever()).expect("open").into_writer().expect("thread");
    let other = writer.clone();
    let t0 = SystemTime::now() - Duration::from_secs(3600);
    for i in 0..300 {
        let r = finish(sample(&format!("c{i:03}"), t0 + Duration::from_secs(i)));
        let w = if i % 2 == 0 { &writer } else { &other };
        assert!(w.finished(r), "queued {i}");
    }
    let stats = writer.close();
    assert_eq!((stats.written, stats.dropped, stats.failed), (300, 0, 0));
    // After close, records are refused (and counted), not silently lost.
    assert!(!other.finished(sample("late", SystemTime::now())));
    assert_eq!(other.stats().dropped, 1);
    assert!(!other.flush());
    assert_eq!(other.close(), writer.stats(), "close twice is harmless");

    let store = RecordStore::open_read_only(&path).expect("reader");
    let all = store.last(1000).expect("read");
    assert_eq!(all.len(), 300);
    assert_eq!(all[0].id, "c299");
    assert_eq!(all[299].transcript.len(), 25);
}

#[test]
fn dropping_every_handle_still_writes_what_was_queued() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = db(&dir);
    let writer = RecordStore::open(&path, keep_forever()).expect("open").into_writer().expect("thread");
    writer.finished(finish(sample("dropped-handle", SystemTime::now())));
    drop(writer);
    // The thread finishes the queue, then closes and releases the lock: a new
    // read-write open waits for nothing but that lock.
    let store = loop {
        match RecordStore::open(&path, keep_forever()) {
            Ok(s) => break s,
            Err(RecordsError::InUse { .. }) => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(store.get("dropped-handle").expect("get").map(|c| c.outcome), Some(CallOutcome::Transferred));
}

#[test]
fn a_reader_works_while_the_writer_is_open_and_does_not_block_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = db(&dir);
    let writer = RecordStore::open(&path, keep_forever()).expect("open").into_writer().expect("thread");
    writer.finished(finish(sample("first", SystemTime::now() - Duration::from_secs(60))));
    assert!(writer.flush());

    let reader = RecordStore::open_read_only(&path).expect("reader while the service runs");
    assert_eq!(reader.last(10).expect("read").len(), 1);
    // Another reader holds a read transaction (a snapshot) open while the writer commits.
    let mut held = raw(&path);
    let snapshot = held.transaction().expect("begin");
    assert_eq!(count(&snapshot, "calls"), 1);
    writer.finished(finish(sample("second", SystemTime::now())));
    assert!(writer.flush());
    assert_eq!(writer.stats(), voice_ua_records::WriterStats { written: 2, dropped: 0, failed: 0 });
    assert_eq!(count(&snapshot, "calls"), 1, "the open snapshot is unchanged");
    drop(snapshot);
    assert_eq!(reader.last(10).expect("read").len(), 2, "a new read sees the commit");
    // A read-only handle cannot write.
    let mut ro = RecordStore::open_read_only(&path).expect("ro");
    assert!(ro.save(&sample("nope", SystemTime::now())).is_err());
    // A second writer is refused with a clear message while the first runs.
    let e = RecordStore::open(&path, keep_forever()).expect_err("locked");
    assert!(matches!(e, RecordsError::InUse { .. }), "{e}");
    assert!(e.to_string().contains("already open for writing by another voice-ua"), "{e}");
    writer.close();
    drop(RecordStore::open(&path, keep_forever()).expect("free after close"));
}

#[test]
fn read_only_errors_are_one_clear_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let missing = dir.path().join("none.db");
    let e = RecordStore::open_read_only(&missing).expect_err("missing");
    assert!(matches!(e, RecordsError::Missing { .. }));
    assert!(e.to_string().contains("does not exist") && e.to_string().contains("--db"), "{e}");
    assert!(!missing.exists(), "a reader never creates the file");

    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 4096]).expect("write");
    let e = RecordStore::open_read_only(&junk).expect_err("junk");
    assert!(matches!(e, RecordsError::NotRecords { .. }), "{e}");
    let e = RecordStore::open(&junk, keep_forever()).expect_err("junk rw");
    assert!(matches!(e, RecordsError::NotRecords { .. }), "{e}");
    assert!(!e.to_string().contains('\n'));
}

#[test]
fn a_database_from_a_newer_voice_ua_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = db(&dir);
    drop(RecordStore::open(&path, keep_forever()).expect("open"));
    raw(&path).pragma_update(None, "user_version", 99).expect("set");
    let e = RecordStore::open(&path, keep_forever()).expect_err("newer");
    assert!(matches!(e, RecordsError::NewerSchema { found: 99, .. }), "{e}");
    let e = RecordStore::open_read_only(&path).expect_err("newer");
    assert!(e.to_string().contains("upgrade voice-ua"), "{e}");
}

#[test]
fn records_serialize_to_json_with_readable_times() {
    let t = UNIX_EPOCH + Duration::from_millis(1_735_689_599_250);
    let r = finish(sample("j", t));
    let v = serde_json::to_value(&r).expect("json");
    assert_eq!(v["started"], "2024-12-31T23:59:59.250Z");
    assert_eq!(v["ended"], "2025-01-01T00:00:41.250Z");
    assert_eq!(v["media"]["lost"], 3);
    assert_eq!(v["transcript"][1]["role"], "user");
    assert_eq!(v["tool_calls"][1]["name"], "transfer");
    assert_eq!(v["usage"]["output_audio_tokens"], 310);
    assert_eq!(v["usage"]["cost_micro_usd"], 12_345);
    assert_eq!(
        v["turns"][0],
        serde_json::json!({
            "index": 0, "at": "2025-01-01T00:00:02.250Z", "latency_ms": 820, "endpointing_ms": 600,
            "transcribe_ms": 90, "think_ms": 70, "speak_ms": 40, "agent_total_ms": 800
        })
    );
    assert!(v["turns"][1]["transcribe_ms"].is_null(), "a stage not reported: null");
    assert_eq!(v["turns"][2]["latency_ms"], 0);
    assert_eq!(v["turns_dropped"], 0);
    let open = CallRecord::new("k", "c", "1", "2", t);
    let v = serde_json::to_value(&open).expect("json");
    assert!(v["ended"].is_null());
    assert!(v["usage"].is_null(), "no usage reported: null, not zeros");
    assert_eq!(v["turns"], serde_json::json!([]));
}

#[test]
fn new_ids_sort_by_time_and_are_file_names() {
    let t = UNIX_EPOCH + Duration::from_secs(1_735_689_599);
    let a = CallRecord::new_id(t);
    let b = CallRecord::new_id(t + Duration::from_secs(1));
    assert!(a.starts_with("20241231T235959Z-") && a.len() == 25, "{a}");
    assert!(a < b);
    assert_ne!(CallRecord::new_id(t), CallRecord::new_id(t), "random part");
    assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
}

#[allow(dead_code)]
fn assert_send_clone<T: Send + Sync + Clone>(_: &T) {}

#[test]
fn the_writer_handle_is_send_sync_and_clone() {
    let dir = tempfile::tempdir().expect("tmp");
    let w = RecordStore::open(Path::new(&db(&dir)), keep_forever()).expect("open").into_writer().expect("t");
    assert_send_clone(&w);
    w.close();
}

#[test]
fn a_record_that_cannot_be_written_is_counted_with_its_cause_and_the_writer_goes_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = db(&dir);
    let writer = RecordStore::open(&path, keep_forever()).expect("open").into_writer().expect("thread");
    assert_eq!(writer.last_failure(), None);
    // The table the writer saves into goes away under it (as good as an I/O error).
    let conn = raw(&path);
    conn.execute_batch("ALTER TABLE calls RENAME TO calls_elsewhere").expect("rename");
    assert!(writer.started(&sample("lost-1", SystemTime::now())), "queued all the same");
    writer.finished(finish(sample("lost-1", SystemTime::now())));
    assert!(writer.flush());
    assert_eq!(writer.stats(), voice_ua_records::WriterStats { written: 0, dropped: 0, failed: 2 });
    let why = writer.last_failure().expect("the cause is kept");
    assert!(why.contains("no such table: calls") && why.contains("calls.db"), "{why}");
    assert!(!why.contains('\n'), "{why}");
    // The disk recovers: the next record is written, the count of failures stays.
    conn.execute_batch("ALTER TABLE calls_elsewhere RENAME TO calls").expect("rename back");
    writer.finished(finish(sample("kept-2", SystemTime::now())));
    assert!(writer.flush());
    assert_eq!(writer.stats(), voice_ua_records::WriterStats { written: 1, dropped: 0, failed: 2 });
    writer.close();
    let ids: Vec<String> = RecordStore::open_read_only(&path)
        .expect("ro")
        .last(5)
        .expect("read")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["kept-2"]);
}

#[test]
fn usage_round_trips_and_a_call_without_usage_stores_nulls() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = db(&dir);
    let mut store = RecordStore::open(&path, keep_forever()).expect("open");
    // At the answer nothing is known yet; at the end the usage is: the upsert sets it.
    let started = sample("priced", SystemTime::now());
    assert_eq!(started.usage, None);
    store.save(&started).expect("save started");
    assert_eq!(store.get("priced").expect("get").expect("kept").usage, None);
    store.save(&finish(started)).expect("save finished");
    // A whole call whose agent reported nothing (Deepgram, echo).
    let mut unpriced = finish(sample("unpriced", SystemTime::now()));
    unpriced.usage = None;
    store.save(&unpriced).expect("save");
    // Huge figures are kept as they are, up to SQLite's i64.
    let mut big = finish(sample("big", SystemTime::now()));
    big.usage = Some(AgentUsage { output_audio_tokens: i64::MAX as u64, ..usage() });
    store.save(&big).expect("save");

    let ro = RecordStore::open_read_only(&path).expect("read-only");
    for s in [&store, &ro] {
        assert_eq!(s.get("priced").expect("get").expect("kept").usage, Some(usage()));
        assert_eq!(s.get("unpriced").expect("get").expect("kept"), unpriced);
        assert_eq!(s.get("big").expect("get").expect("kept"), big);
        assert_eq!(s.last(10).expect("read").len(), 3);
    }
    let raw = raw(&path);
    let (cost, tokens): (Option<i64>, Option<i64>) = raw
        .query_row("SELECT cost_micro_usd, input_audio_tokens FROM calls WHERE id = 'unpriced'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("row");
    assert_eq!((cost, tokens), (None, None), "no usage is NULL, not 0");
    let cost: i64 =
        raw.query_row("SELECT cost_micro_usd FROM calls WHERE id = 'priced'", [], |r| r.get(0)).expect("row");
    assert_eq!(cost, 12_345);
}

/// Version 1's schema exactly as voice-ua wrote it (SCHEMA_V1 at 96bb3c3). Frozen on
/// purpose: it stands for files already on disk, and must not follow later changes.
const V1_SQL: &str = "
CREATE TABLE calls (
    id               TEXT PRIMARY KEY NOT NULL,
    sip_call_id      TEXT NOT NULL,
    caller           TEXT NOT NULL,
    caller_display   TEXT,
    callee           TEXT NOT NULL,
    started_ms       INTEGER NOT NULL,
    answered_ms      INTEGER,
    ended_ms         INTEGER,
    codec            TEXT,
    outcome          TEXT NOT NULL,
    end_reason       TEXT NOT NULL,
    hung_up_by       TEXT NOT NULL,
    packets_in       INTEGER NOT NULL,
    packets_out      INTEGER NOT NULL,
    lost             INTEGER NOT NULL,
    late             INTEGER NOT NULL,
    concealed        INTEGER NOT NULL,
    jitter_ms        REAL NOT NULL,
    agent            TEXT,
    agent_session_id TEXT,
    transfer_target  TEXT,
    recording        TEXT
);
CREATE INDEX calls_by_start ON calls (started_ms);
CREATE INDEX calls_by_outcome ON calls (outcome);
CREATE TABLE tool_calls (
    call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    at_ms   INTEGER NOT NULL,
    name    TEXT NOT NULL,
    result  TEXT NOT NULL,
    PRIMARY KEY (call_id, seq)
) WITHOUT ROWID;
CREATE TABLE transcript (
    call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    at_ms   INTEGER NOT NULL,
    role    TEXT NOT NULL,
    text    TEXT NOT NULL,
    PRIMARY KEY (call_id, seq)
) WITHOUT ROWID;
PRAGMA user_version = 1;
";

/// A version 1 file as the old voice-ua left it (WAL mode, one finished call with a tool
/// call and two transcript lines, one call in progress), written with plain SQL.
/// `extra` runs last, to spoil the file.
fn v1_file(path: &Path, extra: &str) {
    std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    let conn = raw(path);
    conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)).expect("wal");
    conn.execute_batch(V1_SQL).expect("v1 schema");
    conn.execute_batch(
        "INSERT INTO calls VALUES ('old-1', 'c1@pbx', '1001', 'Front Gate', '9000', 1740837600000,
             1740837600200, 1740837642000, 'PCMU', 'transferred', 'transferred to 9001', 'agent',
             2100, 2098, 3, 1, 4, 2.5, 'deepgram', 'req-1', '9001', NULL);
         INSERT INTO tool_calls VALUES ('old-1', 0, 1740837605000, 'transfer', 'ok');
         INSERT INTO transcript VALUES ('old-1', 0, 1740837601000, 'agent', 'Hello, gate.');
         INSERT INTO transcript VALUES ('old-1', 1, 1740837603000, 'user', 'Delivery for 4B.');
         INSERT INTO calls VALUES ('old-2', 'c2@pbx', '1002', NULL, '9000', 1740837660000,
             1740837660200, NULL, 'PCMA', 'in_progress', '', '', 0, 0, 0, 0, 0, 0.0, 'echo', NULL,
             NULL, NULL);",
    )
    .expect("v1 rows");
    conn.execute_batch(extra).expect("extra");
}

fn columns(conn: &rusqlite::Connection) -> Vec<String> {
    let mut q = conn.prepare("SELECT name FROM pragma_table_info('calls')").expect("prepare");
    q.query_map([], |r| r.get(0)).expect("query").collect::<Result<_, _>>().expect("names")
}

fn user_version(conn: &rusqlite::Connection) -> i64 {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version")
}

#[test]
fn a_version_1_database_is_upgraded_in_place_and_keeps_its_rows() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = db(&dir);
    v1_file(&path, "");

    // This voice-ua's `calls` reads the old file before the service has upgraded it.
    let before = RecordStore::open_read_only(&path).expect("read-only on version 1").last(10).expect("read");
    assert_eq!(before.len(), 2);
    assert!(before.iter().all(|c| c.usage.is_none()));
    assert_eq!(user_version(&raw(&path)), 1, "a reader changes nothing");

    let mut store = RecordStore::open(&path, keep_forever()).expect("open upgrades");
    let raw = raw(&path);
    assert_eq!(user_version(&raw), voice_ua_records::SCHEMA_VERSION);
    assert_eq!(voice_ua_records::SCHEMA_VERSION, 3);
    let cols = columns(&raw);
    for c in ["input_audio_tokens", "cached_input_tokens", "output_text_tokens", "cost_micro_usd"] {
        assert!(cols.iter().any(|n| n == c), "{c} in {cols:?}");
    }
    // The old rows are all there, their usage none; the open did its usual work on them.
    assert_eq!((count(&raw, "calls"), count(&raw, "tool_calls"), count(&raw, "transcript")), (2, 1, 2));
    assert_eq!(store.interrupted_on_open(), 1);
    let old = store.get("old-1").expect("get").expect("kept");
    assert_eq!(old.caller_display.as_deref(), Some("Front Gate"));
    assert_eq!(old.outcome, CallOutcome::Transferred);
    assert_eq!(old.media.jitter_ms, 2.5);
    assert_eq!(old.agent_session_id.as_deref(), Some("req-1"));
    assert_eq!(old.tool_calls.len(), 1);
    assert_eq!(old.transcript[1].text, "Delivery for 4B.");
    assert_eq!(old.usage, None);
    assert!(old.turns.is_empty());
    assert_eq!(old.turns_dropped, 0);
    assert_eq!(store.get("old-2").expect("get").expect("kept").outcome, CallOutcome::Interrupted);
    // Through version 2 to 3: the turns too.
    assert!(cols.iter().any(|n| n == "turns_dropped"), "{cols:?}");
    assert_eq!(count(&raw, "turns"), 0);

    // New calls are written with their usage beside the old ones, and read back by both
    // openers.
    let new = finish(sample("new-1", SystemTime::now()));
    store.save(&new).expect("save");
    drop(store);
    let ro = RecordStore::open_read_only(&path).expect("read-only on version 3");
    assert_eq!(ro.get("new-1").expect("get"), Some(new.clone()));
    assert_eq!(ro.last(10).expect("read").len(), 3);
    // Opening again finds nothing to do.
    let store = RecordStore::open(&path, keep_forever()).expect("reopen");
    assert_eq!(store.get("new-1").expect("get"), Some(new));
    assert_eq!(columns(&raw).len(), cols.len());
}

#[test]
fn a_failed_upgrade_leaves_the_version_1_file_as_it_was() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = db(&dir);
    // Someone added one of the new columns by hand: the last step of the upgrade fails.
    v1_file(&path, "ALTER TABLE calls ADD COLUMN cost_micro_usd TEXT;");
    let cols = columns(&raw(&path));
    let e = RecordStore::open(&path, keep_forever()).expect_err("duplicate column");
    assert!(
        e.to_string().contains("upgrading the schema") && e.to_string().contains("cost_micro_usd"),
        "{e}"
    );
    // One transaction: the steps before the failing one are undone too.
    let raw = raw(&path);
    assert_eq!(columns(&raw), cols);
    assert_eq!(user_version(&raw), 1);
    assert_eq!(count(&raw, "calls"), 2);
}

/// What version 2 added to version 1, exactly as voice-ua ran it (SCHEMA_V2 at dde94ab).
/// Frozen on purpose, like [`V1_SQL`].
const V2_SQL: &str = "
ALTER TABLE calls ADD COLUMN input_audio_tokens INTEGER;
ALTER TABLE calls ADD COLUMN input_text_tokens INTEGER;
ALTER TABLE calls ADD COLUMN cached_input_tokens INTEGER;
ALTER TABLE calls ADD COLUMN output_audio_tokens INTEGER;
ALTER TABLE calls ADD COLUMN output_text_tokens INTEGER;
ALTER TABLE calls ADD COLUMN cost_micro_usd INTEGER;
PRAGMA user_version = 2;
";

/// A version 2 file as the version 2 voice-ua made it: a new file got version 1's tables,
/// then the step to 2, in WAL mode. One finished call with its usage, a tool call and two
/// transcript lines; one call in progress without usage. `extra` runs last, to spoil
/// the file.
fn v2_file(path: &Path, extra: &str) {
    std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    let conn = raw(path);
    conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)).expect("wal");
    conn.execute_batch(V1_SQL).expect("v1 schema");
    conn.execute_batch(V2_SQL).expect("v2 step");
    conn.execute_batch(
        "INSERT INTO calls VALUES ('v2-1', 'c1@pbx', '1001', 'Front Gate', '9000', 1740837600000,
             1740837600200, 1740837642000, 'PCMU', 'caller_hangup', 'the caller hung up', 'caller',
             2100, 2098, 3, 1, 4, 2.5, 'openai', 'sess-1', NULL, NULL,
             1200, 450, 800, 310, 95, 12345);
         INSERT INTO tool_calls VALUES ('v2-1', 0, 1740837605000, 'find_resident', '{}');
         INSERT INTO transcript VALUES ('v2-1', 0, 1740837601000, 'agent', 'Hello, gate.');
         INSERT INTO transcript VALUES ('v2-1', 1, 1740837603000, 'user', 'Delivery for 4B.');
         INSERT INTO calls VALUES ('v2-2', 'c2@pbx', '1002', NULL, '9000', 1740837660000,
             1740837660200, NULL, 'PCMA', 'in_progress', '', '', 0, 0, 0, 0, 0, 0.0, 'echo', NULL,
             NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    )
    .expect("v2 rows");
    conn.execute_batch(extra).expect("extra");
}

fn has_table(conn: &rusqlite::Connection, name: &str) -> bool {
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1", [name], |r| {
            r.get(0)
        })
        .expect("schema");
    n == 1
}

#[test]
fn a_version_2_database_is_upgraded_in_place_and_keeps_its_rows() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = db(&dir);
    v2_file(&path, "");

    // This voice-ua's `calls` reads the old file before the service has upgraded it:
    // its usage as it is, no turns.
    let before = RecordStore::open_read_only(&path).expect("read-only on version 2").last(10).expect("read");
    assert_eq!(before.len(), 2);
    assert_eq!(before[1].id, "v2-1");
    assert_eq!(before[1].usage, Some(usage()));
    assert!(before.iter().all(|c| c.turns.is_empty() && c.turns_dropped == 0));
    assert_eq!(user_version(&raw(&path)), 2, "a reader changes nothing");
    assert!(!has_table(&raw(&path), "turns"));

    let mut store = RecordStore::open(&path, keep_forever()).expect("open upgrades");
    let raw = raw(&path);
    assert_eq!(user_version(&raw), 3);
    assert!(has_table(&raw, "turns"));
    let cols = columns(&raw);
    assert_eq!(cols.last().map(String::as_str), Some("turns_dropped"), "{cols:?}");
    // The old rows are all there with their usage, no turns; the open did its usual work.
    assert_eq!((count(&raw, "calls"), count(&raw, "tool_calls"), count(&raw, "transcript")), (2, 1, 2));
    assert_eq!(count(&raw, "turns"), 0);
    assert_eq!(store.interrupted_on_open(), 1);
    let old = store.get("v2-1").expect("get").expect("kept");
    assert_eq!(old.usage, Some(usage()));
    assert_eq!(old.outcome, CallOutcome::CallerHangup);
    assert_eq!(old.agent_session_id.as_deref(), Some("sess-1"));
    assert_eq!(old.tool_calls[0].name, "find_resident");
    assert_eq!(old.transcript[1].text, "Delivery for 4B.");
    assert!(old.turns.is_empty());
    assert_eq!(old.turns_dropped, 0);
    assert_eq!(store.get("v2-2").expect("get").expect("kept").outcome, CallOutcome::Interrupted);

    // A new call is written with its turns beside the old ones, and read back by both
    // openers, its turns in order.
    let new = finish(sample("new-1", SystemTime::now()));
    assert_eq!(new.turns.len(), 3);
    store.save(&new).expect("save");
    drop(store);
    let ro = RecordStore::open_read_only(&path).expect("read-only on version 3");
    assert_eq!(ro.get("new-1").expect("get"), Some(new.clone()));
    assert_eq!(ro.last(10).expect("read").len(), 3);
    // Opening again finds nothing to do.
    let store = RecordStore::open(&path, keep_forever()).expect("reopen");
    assert_eq!(store.get("new-1").expect("get"), Some(new));
    assert_eq!(columns(&raw).len(), cols.len());
    assert_eq!(user_version(&raw), 3);
}

#[test]
fn a_failed_upgrade_leaves_the_version_2_file_as_it_was() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = db(&dir);
    // Someone added the new column by hand: the step's last statement fails, after the
    // `turns` table was made.
    v2_file(&path, "ALTER TABLE calls ADD COLUMN turns_dropped TEXT;");
    let cols = columns(&raw(&path));
    let e = RecordStore::open(&path, keep_forever()).expect_err("duplicate column");
    assert!(e.to_string().contains("upgrading the schema") && e.to_string().contains("turns_dropped"), "{e}");
    // One transaction: the table made before the failure is gone too.
    let raw = raw(&path);
    assert!(!has_table(&raw, "turns"));
    assert_eq!(columns(&raw), cols);
    assert_eq!(user_version(&raw), 2);
    assert_eq!(count(&raw, "calls"), 2);
}

#[test]
fn turns_round_trip_with_their_own_numbers_nulls_and_the_count_of_those_not_kept() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = db(&dir);
    let mut store = RecordStore::open(&path, keep_forever()).expect("open");
    // A long call: as many turns as are kept, numbered as the call counted them, and
    // more that were only counted.
    let mut long = finish(sample("long", SystemTime::now()));
    let t0 = long.started;
    long.turns = (0..voice_ua_records::MAX_TURNS as u32)
        .map(|i| TurnFigures {
            index: i,
            at: t0 + Duration::from_millis(u64::from(i) * 4000),
            latency_ms: 500 + u64::from(i),
            endpointing_ms: (i % 2 == 0).then_some(300),
            transcribe_ms: Some(u64::from(i)),
            think_ms: None,
            speak_ms: Some(40),
            agent_total_ms: (i % 3 == 0).then_some(u64::from(i) * 2),
        })
        .collect();
    long.turns_dropped = 7;
    store.save(&long).expect("save");
    // Saved again (the finished record after the started one), with fewer turns: the
    // old rows go.
    let mut short = finish(sample("short", SystemTime::now()));
    store.save(&short).expect("save");
    short.turns.truncate(1);
    store.save(&short).expect("save again");

    let ro = RecordStore::open_read_only(&path).expect("read-only");
    for s in [&store, &ro] {
        let seen = s.get("long").expect("get").expect("kept");
        assert_eq!(seen.turns_dropped, 7);
        assert_eq!(seen.turns.len(), voice_ua_records::MAX_TURNS);
        assert_eq!(seen, long);
        assert_eq!(s.get("short").expect("get").expect("kept").turns, short.turns);
    }
    let raw = raw(&path);
    assert_eq!(count(&raw, "turns"), voice_ua_records::MAX_TURNS as i64 + 1);
    let (think, endpointing): (Option<i64>, Option<i64>) = raw
        .query_row(
            "SELECT think_ms, endpointing_ms FROM turns WHERE call_id = 'long' AND turn_index = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("row");
    assert_eq!((think, endpointing), (None, None), "a stage not reported is NULL, not 0");
    assert_eq!(long.median_turn_latency_ms(), Some(749), "500 … 999: the lower of 749 and 750");
}
