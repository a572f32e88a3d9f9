//! Call records and recordings for voice-ua.
//!
//! - [`CallRecord`]: plain data about one call (who, when, codec, [`CallOutcome`], media
//!   figures, agent session, tool calls, transfer, transcript, each turn's latency and
//!   the agent's stages ([`TurnFigures`]), recording, the agent's [`AgentUsage`]: tokens
//!   and cost).
//! - [`RecordStore`]: the embedded SQLite database (WAL, `synchronous = FULL`, schema
//!   version in `user_version`, crash recovery, retention); read it with
//!   [`RecordStore::last`].
//! - [`RecordWriter`]: the handle call tasks use. One thread owns the connection;
//!   `started`/`finished` only queue a message, so a call never waits for the disk.
//! - [`Recorder`] / [`Recording`]: optional stereo WAV per call (caller left, agent
//!   right), written by a thread from fixed-size frames.
//!
//! ```no_run
//! # use voice_ua_records::*;
//! # use std::{path::Path, time::SystemTime};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let retention = Retention { call_days: 90, ..Retention::default() };
//! let writer = RecordStore::open(Path::new("calls.db"), retention)?.into_writer()?;
//! let now = SystemTime::now();
//! let mut record = CallRecord::new(CallRecord::new_id(now), "a84b4c76e66710", "1001", "9000", now);
//! record.answered = Some(now);
//! writer.started(&record); // at the answer
//! record.ended = Some(SystemTime::now());
//! record.outcome = CallOutcome::CallerHangup;
//! writer.finished(record); // at the end
//! writer.close(); // after the last call, before exit
//! # Ok(()) }
//! ```

mod error;
mod outcome;
mod record;
mod store;
pub mod time;
mod turn;
mod wav;
mod writer;

pub use error::RecordsError;
pub use outcome::CallOutcome;
pub use record::{usd, AgentUsage, CallRecord, MediaStats, ToolCall, TranscriptLine};
pub use store::{PruneReport, RecordStore, Retention, SCHEMA_VERSION};
pub use turn::{median_latency_ms, TurnFigures, TurnStage, MAX_TURNS};
pub use wav::{prune_recordings, wav_header, Recorder, Recording, FRAME, PATCH_EVERY_FRAMES, SAMPLE_RATE};
pub use writer::{RecordWriter, WriterStats};
