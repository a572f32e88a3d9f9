use std::path::PathBuf;

/// What can go wrong with the call records or a recording. Each message names the
/// file, the cause and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordsError {
    #[error("cannot create the directory {path} for call records: {source}; check records.path and that the voice-ua user may write there")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error(
        "cannot open the call records database {path}: {source}; check records.path and its permissions"
    )]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("the call records database {path} does not exist: no call has been recorded there yet, or records.path points elsewhere; give --db PATH")]
    Missing { path: PathBuf },
    #[error("{path} is not a voice-ua call records database; check records.path or --db")]
    NotRecords { path: PathBuf },
    #[error("the call records database {path} has schema version {found}, newer than this voice-ua understands ({supported}); upgrade voice-ua or use another records.path")]
    NewerSchema { path: PathBuf, found: i64, supported: i64 },
    #[error("the call records database {path} is already open for writing by another voice-ua process (lock file {lock}); stop it, or give this one its own records.path")]
    InUse { path: PathBuf, lock: PathBuf },
    #[error("cannot open the lock file {lock} of the call records database: {source}; check that the voice-ua user may write to its directory")]
    Lock { lock: PathBuf, source: std::io::Error },
    #[error("call records database {path}: {what} failed: {source}")]
    Sql { path: PathBuf, what: &'static str, source: rusqlite::Error },
    #[error("cannot write the recording {path}: {source}; check records.recordings_dir and free space")]
    Recording { path: PathBuf, source: std::io::Error },
    #[error(
        "{id:?} cannot name a recording file: use letters, digits, '.', '_' and '-', not starting with '.'"
    )]
    BadRecordingId { id: String },
    #[error("the recorder's queue is full or the recorder has stopped: call {id} is not recorded")]
    RecorderUnavailable { id: String },
}
