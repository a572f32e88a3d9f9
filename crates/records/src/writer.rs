//! The records writer: one dedicated thread owns the read-write connection; call
//! tasks hand it records over a bounded channel and never wait for the disk.

use crate::record::CallRecord;
use crate::CallOutcome;
use crate::RecordStore;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Room for this many records waiting to be written. A record is written in a few
/// milliseconds (one fsync), and a call sends two, so this is never full unless the
/// disk has stopped.
pub const QUEUE: usize = 1024;

/// How often retention runs, after the pass at open.
pub const PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);

enum Msg {
    Save(Box<CallRecord>),
    Flush(SyncSender<()>),
    Close,
}

/// Counters of a writer, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Records committed.
    pub written: u64,
    /// Records not queued: the queue was full or the writer had stopped.
    pub dropped: u64,
    /// Records queued whose transaction failed (disk full, I/O error).
    pub failed: u64,
}

#[derive(Default)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    /// Why the newest failed transaction failed (set by the writer thread on failure only).
    last_failure: Mutex<Option<String>>,
}

struct Inner {
    tx: SyncSender<Msg>,
    counters: Arc<Counters>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A handle to the records writer thread. Clone it into every call task.
/// [`started`](Self::started) and [`finished`](Self::finished) never block;
/// [`close`](Self::close) writes whatever is queued and stops the thread.
#[derive(Clone)]
pub struct RecordWriter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RecordWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordWriter").field("stats", &self.stats()).finish()
    }
}

impl RecordStore {
    /// Move the store into its writer thread (named `voice-ua-records`), which also
    /// runs the retention once a day.
    pub fn into_writer(self) -> std::io::Result<RecordWriter> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        let thread = std::thread::Builder::new()
            .name("voice-ua-records".into())
            .spawn(move || run(self, rx, &thread_counters))?;
        Ok(RecordWriter { inner: Arc::new(Inner { tx, counters, thread: Mutex::new(Some(thread)) }) })
    }
}

impl RecordWriter {
    /// The call was answered: write it now with outcome `in_progress` (whatever
    /// `record.outcome` says), so that a crash during the call leaves a trace.
    /// Returns false when the record could not be queued (logged and counted).
    pub fn started(&self, record: &CallRecord) -> bool {
        let mut r = Box::new(record.clone());
        r.outcome = CallOutcome::InProgress;
        self.send(r)
    }

    /// The call ended: write the whole record (insert or replace, with its tool calls
    /// and transcript) in one transaction. Returns false when the record could not be
    /// queued (logged and counted).
    pub fn finished(&self, record: CallRecord) -> bool {
        self.send(Box::new(record))
    }

    fn send(&self, record: Box<CallRecord>) -> bool {
        let id = record.id.clone();
        match self.inner.tx.try_send(Msg::Save(record)) {
            Ok(()) => true,
            Err(e) => {
                let dropped = self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                let why = match e {
                    TrySendError::Full(_) => "the records queue is full (is the disk stalled?)",
                    TrySendError::Disconnected(_) => "the records writer has stopped",
                };
                tracing::warn!(record = %id, dropped, "call record not written: {why}");
                false
            }
        }
    }

    /// Wait until everything queued before this call is committed. Blocks: not for
    /// async tasks (use `spawn_blocking`). Returns false if the writer has stopped.
    pub fn flush(&self) -> bool {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        self.inner.tx.send(Msg::Flush(done_tx)).is_ok() && done_rx.recv().is_ok()
    }

    /// [`flush`](Self::flush) with a deadline: wait at most `timeout` for everything
    /// queued before this call to be committed. True when it was; false when the writer
    /// has stopped, its queue is full or it did not get there in time (a stalled disk
    /// must not hold up a shutdown). Blocks: not for async tasks.
    pub fn flush_within(&self, timeout: Duration) -> bool {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        self.inner.tx.try_send(Msg::Flush(done_tx)).is_ok() && done_rx.recv_timeout(timeout).is_ok()
    }

    /// Write everything queued, close the database and join the thread. Call it
    /// once the last call has ended (on SIGTERM too), from a blocking context. Later
    /// records from any clone are dropped (and counted). Calling it again does nothing.
    pub fn close(&self) -> WriterStats {
        let thread = match self.inner.thread.lock() {
            Ok(mut t) => t.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(thread) = thread {
            // Blocking send: the queue drains while we wait.
            let _ = self.inner.tx.send(Msg::Close);
            if thread.join().is_err() {
                tracing::error!("the call records writer thread panicked");
            }
        }
        self.stats()
    }

    /// Why the most recent record that could not be written failed (the error's one
    /// line, e.g. "... database or disk is full"), or `None` while none has.
    pub fn last_failure(&self) -> Option<String> {
        match self.inner.counters.last_failure.lock() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn stats(&self) -> WriterStats {
        let c = &self.inner.counters;
        WriterStats {
            written: c.written.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }
}

fn run(mut store: RecordStore, rx: mpsc::Receiver<Msg>, counters: &Counters) {
    let mut next_prune = Instant::now() + PRUNE_EVERY;
    let save = |store: &mut RecordStore, r: &CallRecord| match store.save(r) {
        Ok(()) => {
            counters.written.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            let failed = counters.failed.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::error!(record = %r.id, failed, "call record not written: {e}");
            let why = Some(e.to_string());
            match counters.last_failure.lock() {
                Ok(mut l) => *l = why,
                Err(poisoned) => *poisoned.into_inner() = why,
            }
        }
    };
    loop {
        match rx.recv_timeout(next_prune.saturating_duration_since(Instant::now())) {
            Ok(Msg::Save(r)) => save(&mut store, &r),
            Ok(Msg::Flush(done)) => {
                let _ = done.send(());
            }
            Ok(Msg::Close) => break,
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = store.prune(SystemTime::now()) {
                    tracing::warn!("call records retention: {e}");
                }
                next_prune = Instant::now() + PRUNE_EVERY;
            }
            // Every handle dropped without close(): what was queued has been written.
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // Records queued by other clones after Close: write them too.
    while let Ok(msg) = rx.try_recv() {
        match msg {
            Msg::Save(r) => save(&mut store, &r),
            Msg::Flush(done) => {
                let _ = done.send(());
            }
            Msg::Close => {}
        }
    }
    drop(rx);
    // Dropping the store closes the connection (checkpointing the WAL), then
    // releases the lock.
    drop(store);
}
