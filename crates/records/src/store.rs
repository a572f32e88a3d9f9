//! The SQLite database: schema, durability settings, crash recovery, retention,
//! writing one call in one transaction, and reading the newest calls back.

use crate::record::{AgentUsage, CallRecord, MediaStats, ToolCall, TranscriptLine};
use crate::time::{from_ms, to_ms};
use crate::turn::TurnFigures;
use crate::CallOutcome;
use crate::RecordsError;
use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The schema this code writes, kept in `PRAGMA user_version`. Bump it with a
/// migration step in [`migrate`] whenever the tables change.
///
/// - 1: calls, tool_calls, transcript.
/// - 2: the agent's usage on `calls` (tokens and cost, NULL when none was reported).
/// - 3: `turns` (each turn's latency and the agent's stages) and `calls.turns_dropped`.
pub const SCHEMA_VERSION: i64 = 3;

const SCHEMA_V1: &str = "
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
";

/// Version 1 to 2: the agent's usage, one nullable column per figure. Old rows read as
/// no usage. `ADD COLUMN` with no default only changes the table's definition: no row is
/// rewritten, so the step is quick on any size of database.
const SCHEMA_V2: &str = "
ALTER TABLE calls ADD COLUMN input_audio_tokens INTEGER;
ALTER TABLE calls ADD COLUMN input_text_tokens INTEGER;
ALTER TABLE calls ADD COLUMN cached_input_tokens INTEGER;
ALTER TABLE calls ADD COLUMN output_audio_tokens INTEGER;
ALTER TABLE calls ADD COLUMN output_text_tokens INTEGER;
ALTER TABLE calls ADD COLUMN cost_micro_usd INTEGER;
";

/// Version 2 to 3: the call's turns, one row each (`seq` its place in the record,
/// `turn_index` the turn's number in the call, the stages NULL when the agent did not
/// report them), and how many turns past [`MAX_TURNS`](crate::MAX_TURNS) were not kept.
/// Old calls read as having no turns. A new table and an `ADD COLUMN` with no default: no
/// row is rewritten, so the step is quick on any size of database.
const SCHEMA_V3: &str = "
CREATE TABLE turns (
    call_id        TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    seq            INTEGER NOT NULL,
    turn_index     INTEGER NOT NULL,
    at_ms          INTEGER NOT NULL,
    latency_ms     INTEGER NOT NULL,
    endpointing_ms INTEGER,
    transcribe_ms  INTEGER,
    think_ms       INTEGER,
    speak_ms       INTEGER,
    agent_total_ms INTEGER,
    PRIMARY KEY (call_id, seq)
) WITHOUT ROWID;
ALTER TABLE calls ADD COLUMN turns_dropped INTEGER;
";

/// The usage columns as [`call_from_row`] reads them, and what a version 1 database
/// (read-only, not migrated) gives in their place.
const USAGE_COLUMNS: &str = "input_audio_tokens, input_text_tokens, cached_input_tokens,
    output_audio_tokens, output_text_tokens, cost_micro_usd";
const NO_USAGE_COLUMNS: &str = "NULL, NULL, NULL, NULL, NULL, NULL";

/// The turns' column as [`call_from_row`] reads it after the usage, and what a file
/// older than version 3 gives in its place.
const TURNS_COLUMNS: &str = "turns_dropped";
const NO_TURNS_COLUMNS: &str = "NULL";

const INSERT_TURN: &str = "
INSERT INTO turns (call_id, seq, turn_index, at_ms, latency_ms, endpointing_ms, transcribe_ms,
    think_ms, speak_ms, agent_total_ms)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

const SELECT_TURNS: &str = "
SELECT turn_index, at_ms, latency_ms, endpointing_ms, transcribe_ms, think_ms, speak_ms,
    agent_total_ms
FROM turns WHERE call_id = ?1 ORDER BY seq";

const UPSERT_CALL: &str = "
INSERT INTO calls (id, sip_call_id, caller, caller_display, callee, started_ms, answered_ms,
    ended_ms, codec, outcome, end_reason, hung_up_by, packets_in, packets_out, lost, late,
    concealed, jitter_ms, agent, agent_session_id, transfer_target, recording,
    input_audio_tokens, input_text_tokens, cached_input_tokens, output_audio_tokens,
    output_text_tokens, cost_micro_usd, turns_dropped)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
    ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29)
ON CONFLICT (id) DO UPDATE SET sip_call_id = excluded.sip_call_id, caller = excluded.caller,
    caller_display = excluded.caller_display, callee = excluded.callee,
    started_ms = excluded.started_ms, answered_ms = excluded.answered_ms,
    ended_ms = excluded.ended_ms, codec = excluded.codec, outcome = excluded.outcome,
    end_reason = excluded.end_reason, hung_up_by = excluded.hung_up_by,
    packets_in = excluded.packets_in, packets_out = excluded.packets_out,
    lost = excluded.lost, late = excluded.late, concealed = excluded.concealed,
    jitter_ms = excluded.jitter_ms, agent = excluded.agent,
    agent_session_id = excluded.agent_session_id, transfer_target = excluded.transfer_target,
    recording = excluded.recording, input_audio_tokens = excluded.input_audio_tokens,
    input_text_tokens = excluded.input_text_tokens,
    cached_input_tokens = excluded.cached_input_tokens,
    output_audio_tokens = excluded.output_audio_tokens,
    output_text_tokens = excluded.output_text_tokens, cost_micro_usd = excluded.cost_micro_usd,
    turns_dropped = excluded.turns_dropped";

/// The columns of `calls` that every version has, in [`call_from_row`]'s order; the
/// usage columns follow, then the turns' one.
const CALL_COLUMNS: &str = "id, sip_call_id, caller, caller_display, callee, started_ms,
    answered_ms, ended_ms, codec, outcome, end_reason, hung_up_by, packets_in, packets_out,
    lost, late, concealed, jitter_ms, agent, agent_session_id, transfer_target, recording";

const INTERRUPTED_REASON: &str =
    "voice-ua stopped during the call (crash, power cut or kill) before the record was finished";

const DAY_MS: i64 = 86_400_000;

/// How long records and recordings are kept. `0` days keeps them forever.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Delete calls that ended more than this many days ago (with their tool calls,
    /// transcript and turns).
    pub call_days: u32,
    /// The recordings directory, when recordings are pruned.
    pub recordings_dir: Option<PathBuf>,
    /// Delete `*.wav` files in `recordings_dir` last written more than this many days ago.
    pub recording_days: u32,
}

/// What one retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub calls: usize,
    pub recordings: usize,
}

/// The call records database. [`open`](Self::open) for the service (read-write, one
/// process at a time), [`open_read_only`](Self::open_read_only) for `voice-ua calls`
/// (works while the service runs).
pub struct RecordStore {
    // Field order matters: the connection closes before the lock is released.
    conn: Connection,
    path: PathBuf,
    retention: Retention,
    interrupted: usize,
    /// `SELECT … FROM calls` for this file's schema version.
    select_calls: String,
    /// The file has the `turns` table (version 3 on).
    has_turns: bool,
    _lock: Option<File>,
}

impl std::fmt::Debug for RecordStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordStore")
            .field("path", &self.path)
            .field("retention", &self.retention)
            .field("read_only", &self._lock.is_none())
            .finish()
    }
}

impl RecordStore {
    /// Open (creating the directory, the file and the schema when needed) for writing.
    ///
    /// - WAL mode, `synchronous = FULL`: a call whose transaction committed survives a
    ///   crash or a power cut; readers never block the writer.
    /// - `foreign_keys = ON` (child rows go with their call), a 5 s busy timeout.
    /// - Calls a previous run left `in_progress` become `interrupted`.
    /// - One retention pass runs now ([`prune`](Self::prune)); its failure is logged,
    ///   not returned.
    /// - An advisory lock on `<path>-lock` keeps a second voice-ua from writing the
    ///   same database (and from marking the first one's live calls interrupted).
    ///
    /// This does blocking file I/O: call it before the calls start, or from a
    /// blocking thread.
    pub fn open(path: &Path, retention: Retention) -> Result<Self, RecordsError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| RecordsError::CreateDir { path: dir.to_path_buf(), source })?;
        }
        let lock = lock(path)?;
        let open_err = |source| open_error(path, source);
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(open_err)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            // Still durable (rollback journal, synchronous = FULL), but `voice-ua calls`
            // may wait for a write to finish. Happens on file systems without shared memory.
            tracing::warn!(path = %path.display(), mode, "the call records database could not use WAL mode");
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(open_err)?;
        migrate(&mut conn, path)?;
        let interrupted = conn
            .execute(
                "UPDATE calls SET outcome = ?1, end_reason = ?2 WHERE outcome = ?3",
                params![
                    CallOutcome::Interrupted.as_str(),
                    INTERRUPTED_REASON,
                    CallOutcome::InProgress.as_str()
                ],
            )
            .map_err(|source| sql(path, "marking unfinished calls interrupted", source))?;
        if interrupted > 0 {
            tracing::warn!(
                calls = interrupted,
                "call records: calls left in progress by a previous run are marked interrupted"
            );
        }
        let store = RecordStore {
            conn,
            path: path.to_path_buf(),
            retention,
            interrupted,
            select_calls: select_calls(SCHEMA_VERSION),
            has_turns: true,
            _lock: Some(lock),
        };
        if let Err(e) = store.prune(SystemTime::now()) {
            tracing::warn!("call records retention: {e}");
        }
        Ok(store)
    }

    /// Open an existing database for reading only: no lock, no schema change, no
    /// retention. Works while the service writes. A database of an older schema (a
    /// voice-ua not yet restarted after an upgrade) reads too: what it has no columns for
    /// reads as empty, e.g. no usage from a version 1 file, no turns from a version 2 one.
    pub fn open_read_only(path: &Path) -> Result<Self, RecordsError> {
        if !path.is_file() {
            return Err(RecordsError::Missing { path: path.to_path_buf() });
        }
        let open_err = |source| open_error(path, source);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(open_err)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(open_err)?;
        if version > SCHEMA_VERSION {
            return Err(RecordsError::NewerSchema {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < 1 {
            return Err(RecordsError::NotRecords { path: path.to_path_buf() });
        }
        Ok(RecordStore {
            conn,
            path: path.to_path_buf(),
            retention: Retention::default(),
            interrupted: 0,
            select_calls: select_calls(version),
            has_turns: version >= 3,
            _lock: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn retention(&self) -> &Retention {
        &self.retention
    }

    /// How many calls [`open`](Self::open) found in progress and marked interrupted.
    pub fn interrupted_on_open(&self) -> usize {
        self.interrupted
    }

    /// Write (insert or replace) one call with its tool calls, transcript and turns, in
    /// one transaction. Returns once it is committed (and, with `synchronous = FULL`, on disk).
    pub fn save(&mut self, record: &CallRecord) -> Result<(), RecordsError> {
        let path = self.path.clone();
        let err = |source| sql(&path, "saving a call", source);
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        let m = &record.media;
        let u = record.usage;
        tx.execute(
            UPSERT_CALL,
            params![
                record.id,
                record.sip_call_id,
                record.caller,
                record.caller_display,
                record.callee,
                to_ms(record.started),
                record.answered.map(to_ms),
                record.ended.map(to_ms),
                record.codec,
                record.outcome.as_str(),
                record.end_reason,
                record.hung_up_by,
                int(m.packets_in),
                int(m.packets_out),
                int(m.lost),
                int(m.late),
                int(m.concealed),
                m.jitter_ms,
                record.agent,
                record.agent_session_id,
                record.transfer_target,
                record.recording.as_ref().map(|p| p.to_string_lossy().into_owned()),
                u.map(|u| int(u.input_audio_tokens)),
                u.map(|u| int(u.input_text_tokens)),
                u.map(|u| int(u.cached_input_tokens)),
                u.map(|u| int(u.output_audio_tokens)),
                u.map(|u| int(u.output_text_tokens)),
                u.map(|u| int(u.cost_micro_usd)),
                int(record.turns_dropped),
            ],
        )
        .map_err(err)?;
        tx.execute("DELETE FROM tool_calls WHERE call_id = ?1", [&record.id]).map_err(err)?;
        tx.execute("DELETE FROM transcript WHERE call_id = ?1", [&record.id]).map_err(err)?;
        tx.execute("DELETE FROM turns WHERE call_id = ?1", [&record.id]).map_err(err)?;
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO tool_calls (call_id, seq, at_ms, name, result) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(err)?;
            for (seq, t) in record.tool_calls.iter().enumerate() {
                insert.execute(params![record.id, seq as i64, to_ms(t.at), t.name, t.result]).map_err(err)?;
            }
            let mut insert = tx
                .prepare(
                    "INSERT INTO transcript (call_id, seq, at_ms, role, text) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(err)?;
            for (seq, l) in record.transcript.iter().enumerate() {
                insert.execute(params![record.id, seq as i64, to_ms(l.at), l.role, l.text]).map_err(err)?;
            }
            let mut insert = tx.prepare(INSERT_TURN).map_err(err)?;
            for (seq, t) in record.turns.iter().enumerate() {
                insert
                    .execute(params![
                        record.id,
                        seq as i64,
                        t.index,
                        to_ms(t.at),
                        int(t.latency_ms),
                        t.endpointing_ms.map(int),
                        t.transcribe_ms.map(int),
                        t.think_ms.map(int),
                        t.speak_ms.map(int),
                        t.agent_total_ms.map(int),
                    ])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// The `n` newest calls (by start time), newest first, with their tool calls,
    /// transcripts and turns in order. Read in one transaction, so a call is never half-seen.
    pub fn last(&self, n: usize) -> Result<Vec<CallRecord>, RecordsError> {
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        self.read(&format!("{} ORDER BY started_ms DESC, rowid DESC LIMIT ?1", self.select_calls), &limit)
    }

    /// One call by its record id.
    pub fn get(&self, id: &str) -> Result<Option<CallRecord>, RecordsError> {
        Ok(self.read(&format!("{} WHERE id = ?1", self.select_calls), &id)?.pop())
    }

    fn read(&self, select_calls: &str, param: &dyn rusqlite::ToSql) -> Result<Vec<CallRecord>, RecordsError> {
        let err = |source| sql(&self.path, "reading calls", source);
        let tx = self.conn.unchecked_transaction().map_err(err)?;
        let mut calls = Vec::new();
        {
            let mut select = tx.prepare(select_calls).map_err(err)?;
            let mut rows = select.query([param]).map_err(err)?;
            while let Some(r) = rows.next().map_err(err)? {
                calls.push(call_from_row(r).map_err(err)?);
            }
            let mut tools = tx
                .prepare("SELECT at_ms, name, result FROM tool_calls WHERE call_id = ?1 ORDER BY seq")
                .map_err(err)?;
            let mut lines = tx
                .prepare("SELECT at_ms, role, text FROM transcript WHERE call_id = ?1 ORDER BY seq")
                .map_err(err)?;
            // A file older than version 3 has no turns to read.
            let mut turns = if self.has_turns { Some(tx.prepare(SELECT_TURNS).map_err(err)?) } else { None };
            for c in &mut calls {
                if let Some(turns) = turns.as_mut() {
                    c.turns = turns
                        .query_map([&c.id], turn_from_row)
                        .map_err(err)?
                        .collect::<Result<_, _>>()
                        .map_err(err)?;
                }
                c.tool_calls = tools
                    .query_map([&c.id], |r| {
                        Ok(ToolCall { at: from_ms(r.get(0)?), name: r.get(1)?, result: r.get(2)? })
                    })
                    .map_err(err)?
                    .collect::<Result<_, _>>()
                    .map_err(err)?;
                c.transcript = lines
                    .query_map([&c.id], |r| {
                        Ok(TranscriptLine { at: from_ms(r.get(0)?), role: r.get(1)?, text: r.get(2)? })
                    })
                    .map_err(err)?
                    .collect::<Result<_, _>>()
                    .map_err(err)?;
            }
        }
        tx.finish().map_err(err)?;
        Ok(calls)
    }

    /// Apply the retention: delete calls (not in progress) that ended — or, if they
    /// never got an end time, started — more than `call_days` before `now`, and
    /// `*.wav` files in the recordings directory last written more than
    /// `recording_days` before `now`. A deleted file's path is cleared from its call.
    pub fn prune(&self, now: SystemTime) -> Result<PruneReport, RecordsError> {
        let mut report = PruneReport::default();
        let now_ms = to_ms(now);
        if self.retention.call_days > 0 {
            let cutoff = now_ms.saturating_sub(i64::from(self.retention.call_days) * DAY_MS);
            report.calls = self
                .conn
                .execute(
                    "DELETE FROM calls WHERE outcome <> ?1
                     AND COALESCE(ended_ms, answered_ms, started_ms) < ?2",
                    params![CallOutcome::InProgress.as_str(), cutoff],
                )
                .map_err(|source| sql(&self.path, "deleting old calls", source))?;
        }
        if let (Some(dir), days @ 1..) = (&self.retention.recordings_dir, self.retention.recording_days) {
            let removed = crate::wav::prune_recordings(dir, days, now);
            for p in &removed {
                self.conn
                    .execute("UPDATE calls SET recording = NULL WHERE recording = ?1", [p.to_string_lossy()])
                    .map_err(|source| sql(&self.path, "clearing deleted recordings", source))?;
            }
            report.recordings = removed.len();
        }
        if report != PruneReport::default() {
            tracing::info!(
                calls = report.calls,
                recordings = report.recordings,
                "call records retention deleted old calls and recordings"
            );
        }
        Ok(report)
    }

    /// The value of a `PRAGMA` on this connection, as text (e.g. `journal_mode`
    /// is `wal`); for diagnostics and tests.
    pub fn pragma(&self, name: &str) -> Result<String, RecordsError> {
        self.conn
            .pragma_query_value(None, name, |r| {
                r.get_ref(0).map(|v| match v {
                    rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    other => format!("{other:?}"),
                })
            })
            .map_err(|source| sql(&self.path, "reading a pragma", source))
    }
}

fn sql(path: &Path, what: &'static str, source: rusqlite::Error) -> RecordsError {
    RecordsError::Sql { path: path.to_path_buf(), what, source }
}

/// Opening failed: "not a database" gets its own message, the rest say what SQLite said.
fn open_error(path: &Path, source: rusqlite::Error) -> RecordsError {
    match source {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
            RecordsError::NotRecords { path: path.to_path_buf() }
        }
        source => RecordsError::Open { path: path.to_path_buf(), source },
    }
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The outcome stored as `word`. A word this version does not know (written by a
/// newer or older voice-ua) reads as [`CallOutcome::Failed`] rather than failing the
/// whole read; the row itself is left as it is.
fn outcome_of(word: &str) -> CallOutcome {
    CallOutcome::parse(word).unwrap_or_else(|| {
        tracing::debug!(word, "call records: an outcome this version does not know, read as failed");
        CallOutcome::Failed
    })
}

fn call_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CallRecord> {
    Ok(CallRecord {
        id: r.get(0)?,
        sip_call_id: r.get(1)?,
        caller: r.get(2)?,
        caller_display: r.get(3)?,
        callee: r.get(4)?,
        started: from_ms(r.get(5)?),
        answered: r.get::<_, Option<i64>>(6)?.map(from_ms),
        ended: r.get::<_, Option<i64>>(7)?.map(from_ms),
        codec: r.get(8)?,
        outcome: outcome_of(&r.get::<_, String>(9)?),
        end_reason: r.get(10)?,
        hung_up_by: r.get(11)?,
        media: MediaStats {
            packets_in: uint(r.get(12)?),
            packets_out: uint(r.get(13)?),
            lost: uint(r.get(14)?),
            late: uint(r.get(15)?),
            concealed: uint(r.get(16)?),
            jitter_ms: r.get(17)?,
        },
        agent: r.get(18)?,
        agent_session_id: r.get(19)?,
        transfer_target: r.get(20)?,
        recording: r.get::<_, Option<String>>(21)?.map(PathBuf::from),
        usage: usage_from_row(r, 22)?,
        turns_dropped: uint(r.get::<_, Option<i64>>(28)?.unwrap_or(0)),
        tool_calls: Vec::new(),
        transcript: Vec::new(),
        turns: Vec::new(),
    })
}

/// One row of [`SELECT_TURNS`].
fn turn_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TurnFigures> {
    let ms = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.map(uint));
    Ok(TurnFigures {
        index: u32::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
        at: from_ms(r.get(1)?),
        latency_ms: uint(r.get(2)?),
        endpointing_ms: ms(3)?,
        transcribe_ms: ms(4)?,
        think_ms: ms(5)?,
        speak_ms: ms(6)?,
        agent_total_ms: ms(7)?,
    })
}

/// The six usage columns from `first` on: `None` when all are NULL (no usage was
/// reported, or the row predates them); a NULL among values reads as 0.
fn usage_from_row(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Option<AgentUsage>> {
    let mut v = [None::<i64>; 6];
    for (i, slot) in v.iter_mut().enumerate() {
        *slot = r.get(first + i)?;
    }
    if v.iter().all(Option::is_none) {
        return Ok(None);
    }
    let [input_audio, input_text, cached_input, output_audio, output_text, cost] =
        v.map(|x| uint(x.unwrap_or(0)));
    Ok(Some(AgentUsage {
        input_audio_tokens: input_audio,
        input_text_tokens: input_text,
        cached_input_tokens: cached_input,
        output_audio_tokens: output_audio,
        output_text_tokens: output_text,
        cost_micro_usd: cost,
    }))
}

/// `SELECT … FROM calls` for a file of schema `version`.
fn select_calls(version: i64) -> String {
    let usage = if version >= 2 { USAGE_COLUMNS } else { NO_USAGE_COLUMNS };
    let turns = if version >= 3 { TURNS_COLUMNS } else { NO_TURNS_COLUMNS };
    format!("SELECT {CALL_COLUMNS},\n    {usage},\n    {turns}\nFROM calls")
}

/// Bring the schema to [`SCHEMA_VERSION`], in one transaction: a new file gets version
/// 1's tables, then every step from the file's version on runs in order, so a new file and
/// an upgraded one end with the same schema. If a step fails, nothing of it stays and the
/// file keeps its old version.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), RecordsError> {
    let err = |source| sql(path, "creating or upgrading the schema", source);
    let tx =
        conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| open_error(path, e))?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(err)?;
    if version > SCHEMA_VERSION {
        return Err(RecordsError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == 0 {
        let tables: i64 =
            tx.query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| r.get(0)).map_err(err)?;
        if tables > 0 {
            // Someone else's SQLite file: do not add our tables to it.
            return Err(RecordsError::NotRecords { path: path.to_path_buf() });
        }
        tx.execute_batch(SCHEMA_V1).map_err(err)?;
    }
    if version < 2 {
        tx.execute_batch(SCHEMA_V2).map_err(err)?;
    }
    if version < 3 {
        tx.execute_batch(SCHEMA_V3).map_err(err)?;
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(err)?;
    }
    tx.commit().map_err(err)?;
    if (1..SCHEMA_VERSION).contains(&version) {
        tracing::info!(
            path = %path.display(),
            from = version,
            to = SCHEMA_VERSION,
            "call records: the database schema was upgraded"
        );
    }
    Ok(())
}

/// Take the exclusive advisory lock `<db>-lock` (flock), held while the store lives.
fn lock(db: &Path) -> Result<File, RecordsError> {
    let mut name = db.as_os_str().to_os_string();
    name.push("-lock");
    let lock_path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|source| RecordsError::Lock { lock: lock_path.clone(), source })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(RecordsError::InUse { path: db.to_path_buf(), lock: lock_path })
        }
        Err(std::fs::TryLockError::Error(e)) => {
            // A file system without locks (some network mounts): go on unlocked.
            tracing::warn!(lock = %lock_path.display(), "cannot lock the call records database: {e}");
            Ok(file)
        }
    }
}
