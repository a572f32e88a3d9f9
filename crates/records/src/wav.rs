//! Per-call stereo recordings: 16-bit PCM WAV at 8000 Hz, the caller on the left
//! channel and the agent on the right. The call's 20 ms tick hands both frames to a
//! [`Recording`] (a copy into a fixed-size message, no allocation, no waiting); one
//! writer thread per [`Recorder`] writes every call's file through a `BufWriter`.

use crate::RecordsError;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

pub const SAMPLE_RATE: u32 = 8000;
pub const CHANNELS: u16 = 2;
pub const BITS: u16 = 16;
/// Samples per channel in one 20 ms frame.
pub const FRAME: usize = 160;
/// Bytes of one stereo frame in the file.
const FRAME_BYTES: usize = FRAME * 4;
pub const HEADER_LEN: usize = 44;
/// The RIFF and data sizes are rewritten every this many frames (5 s), so a file
/// cut short by a crash still plays up to then.
pub const PATCH_EVERY_FRAMES: u32 = 250;
/// Frames waiting for the writer thread, all calls together: 1024 frames are 20 s of
/// one call (660 KiB, allocated once when the recorder starts).
pub const QUEUE: usize = 1024;

/// The canonical 44-byte header of a 16-bit stereo 8 kHz PCM WAV with `data_bytes`
/// bytes of samples.
pub fn wav_header(data_bytes: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    let block_align = CHANNELS * BITS / 8;
    let byte_rate = SAMPLE_RATE * u32::from(block_align);
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36u32.saturating_add(data_bytes)).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&CHANNELS.to_le_bytes());
    h[24..28].copy_from_slice(&SAMPLE_RATE.to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&BITS.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    h
}

/// One WAV file being written (on the writer thread).
pub(crate) struct WavWriter {
    out: BufWriter<File>,
    path: PathBuf,
    data_bytes: u32,
    since_patch: u32,
    full: bool,
}

impl WavWriter {
    /// Create the file (never overwriting one) with a header for no samples yet.
    pub(crate) fn create(path: &Path) -> std::io::Result<Self> {
        let file = File::options().write(true).create_new(true).open(path)?;
        let mut out = BufWriter::with_capacity(64 * 1024, file);
        out.write_all(&wav_header(0))?;
        Ok(WavWriter { out, path: path.to_path_buf(), data_bytes: 0, since_patch: 0, full: false })
    }

    /// Append one 20 ms frame: caller left, agent right.
    pub(crate) fn write_frame(&mut self, caller: &[i16; FRAME], agent: &[i16; FRAME]) -> std::io::Result<()> {
        // A WAV holds at most 4 GiB of samples (about 37 hours here): stop there.
        if self.full || self.data_bytes > u32::MAX - 36 - FRAME_BYTES as u32 {
            if !self.full {
                tracing::warn!(path = %self.path.display(), "recording reached the WAV size limit; the rest of the call is not recorded");
            }
            self.full = true;
            return Ok(());
        }
        let mut buf = [0u8; FRAME_BYTES];
        for (i, (c, a)) in caller.iter().zip(agent.iter()).enumerate() {
            buf[i * 4..i * 4 + 2].copy_from_slice(&c.to_le_bytes());
            buf[i * 4 + 2..i * 4 + 4].copy_from_slice(&a.to_le_bytes());
        }
        self.out.write_all(&buf)?;
        self.data_bytes += FRAME_BYTES as u32;
        self.since_patch += 1;
        if self.since_patch >= PATCH_EVERY_FRAMES {
            self.patch()?;
        }
        Ok(())
    }

    /// Write out the buffer and make the header's sizes match the samples written.
    pub(crate) fn patch(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        let file = self.out.get_mut();
        let h = wav_header(self.data_bytes);
        file.seek(SeekFrom::Start(4))?;
        file.write_all(&h[4..8])?;
        file.seek(SeekFrom::Start(40))?;
        file.write_all(&h[40..44])?;
        file.seek(SeekFrom::End(0))?;
        self.since_patch = 0;
        Ok(())
    }

    /// Patch the header and sync the file to disk.
    pub(crate) fn finish(mut self) -> std::io::Result<PathBuf> {
        self.patch()?;
        self.out.get_ref().sync_all()?;
        Ok(self.path)
    }
}

// Frame is the common message and is meant to be big: boxing it would allocate per frame.
#[allow(clippy::large_enum_variant)]
enum RecMsg {
    Open { key: u64, wav: Box<WavWriter> },
    Frame { key: u64, caller: [i16; FRAME], agent: [i16; FRAME] },
    Close { key: u64 },
    Flush(SyncSender<()>),
    Stop,
}

struct RecInner {
    tx: SyncSender<RecMsg>,
    dir: PathBuf,
    next_key: AtomicU64,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The recordings writer: one thread writing every recorded call's file in `dir`.
/// Clone it into the call tasks; [`create`](Self::create) one [`Recording`] per call.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<RecInner>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("dir", &self.inner.dir).finish()
    }
}

impl Recorder {
    /// Create `dir` if needed and start the writer thread (`voice-ua-rec`).
    pub fn start(dir: &Path) -> Result<Recorder, RecordsError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| RecordsError::Recording { path: dir.to_path_buf(), source })?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("voice-ua-rec".into())
            .spawn(move || run(rx))
            .map_err(|source| RecordsError::Recording { path: dir.to_path_buf(), source })?;
        Ok(Recorder {
            inner: Arc::new(RecInner {
                tx,
                dir: dir.to_path_buf(),
                next_key: AtomicU64::new(1),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Start recording call `id` into `<dir>/<id>.wav` (created now, never
    /// overwritten). `id` must be a plain file name: see [`CallRecord::new_id`](crate::CallRecord::new_id).
    /// Creates the file and writes its header here (a few microseconds of blocking file
    /// I/O, once per call).
    pub fn create(&self, id: &str) -> Result<Recording, RecordsError> {
        let path = recording_path(&self.inner.dir, id)?;
        let wav = WavWriter::create(&path)
            .map_err(|source| RecordsError::Recording { path: path.clone(), source })?;
        let key = self.inner.next_key.fetch_add(1, Ordering::Relaxed);
        if self.inner.tx.try_send(RecMsg::Open { key, wav: Box::new(wav) }).is_err() {
            let _ = std::fs::remove_file(&path);
            return Err(RecordsError::RecorderUnavailable { id: id.into() });
        }
        Ok(Recording { tx: self.inner.tx.clone(), key, path, dropped: 0 })
    }

    /// Wait until every frame queued so far is in its file and each file's header is
    /// up to date. Blocks. Returns false if the recorder has stopped.
    pub fn flush(&self) -> bool {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        self.inner.tx.send(RecMsg::Flush(done_tx)).is_ok() && done_rx.recv().is_ok()
    }

    /// Finish every open file and join the thread. Blocks; call it after the last
    /// call ended. Frames sent afterwards are dropped. Calling it again does nothing.
    pub fn close(&self) {
        let thread = match self.inner.thread.lock() {
            Ok(mut t) => t.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(thread) = thread {
            let _ = self.inner.tx.send(RecMsg::Stop);
            if thread.join().is_err() {
                tracing::error!("the recordings writer thread panicked");
            }
        }
    }
}

fn recording_path(dir: &Path, id: &str) -> Result<PathBuf, RecordsError> {
    let ok = !id.is_empty()
        && id.len() <= 200
        && !id.starts_with('.')
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !ok {
        return Err(RecordsError::BadRecordingId { id: id.into() });
    }
    Ok(dir.join(format!("{id}.wav")))
}

/// One call's recording. [`push`](Self::push) once per 20 ms tick; drop it (or
/// [`finish`](Self::finish)) when the call ends, and the writer closes the file.
#[derive(Debug)]
pub struct Recording {
    tx: SyncSender<RecMsg>,
    key: u64,
    path: PathBuf,
    dropped: u64,
}

impl Recording {
    /// Record call `id` into `<dir>/<id>.wav` with a writer thread of its own, which
    /// ends when this recording does. With several calls, prefer one shared
    /// [`Recorder`].
    pub fn create(dir: &Path, id: &str) -> Result<Recording, RecordsError> {
        // Dropping the recorder detaches its thread, which lives on through the
        // recording's own sender and ends once the recording's file is finished.
        Recorder::start(dir)?.create(id)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames that could not be queued (writer behind or stopped); they are missing
    /// from the file, which stays shorter than the call.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped
    }

    /// One 20 ms tick: up to 160 samples (8 kHz) from the caller and from the agent.
    /// Shorter slices are padded with silence (`&[]` is a silent frame), longer ones
    /// cut. Never blocks or allocates; returns false when the frame was dropped.
    pub fn push(&mut self, caller: &[i16], agent: &[i16]) -> bool {
        let mut c = [0i16; FRAME];
        let mut a = [0i16; FRAME];
        let n = caller.len().min(FRAME);
        c[..n].copy_from_slice(&caller[..n]);
        let n = agent.len().min(FRAME);
        a[..n].copy_from_slice(&agent[..n]);
        match self.tx.try_send(RecMsg::Frame { key: self.key, caller: c, agent: a }) {
            Ok(()) => true,
            Err(e) => {
                self.dropped += 1;
                if self.dropped == 1 {
                    let why = match e {
                        TrySendError::Full(_) => "the recordings queue is full (is the disk stalled?)",
                        TrySendError::Disconnected(_) => "the recorder has stopped",
                    };
                    tracing::warn!(path = %self.path.display(), "recording frames dropped: {why}");
                }
                false
            }
        }
    }

    /// End the recording: the writer patches the header and syncs the file. Same as
    /// dropping it.
    pub fn finish(self) -> PathBuf {
        self.path.clone()
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if self.dropped > 0 {
            tracing::warn!(path = %self.path.display(), frames = self.dropped, "recording is missing frames that could not be queued");
        }
        if let Err(TrySendError::Full(_)) = self.tx.try_send(RecMsg::Close { key: self.key }) {
            // The file stays open until the recorder stops; its header was patched at
            // the last 5 s mark, so it plays up to there meanwhile.
            tracing::warn!(path = %self.path.display(), "recording not closed yet: the recordings queue is full");
        }
    }
}

fn run(rx: mpsc::Receiver<RecMsg>) {
    // A handful of calls at a time: a Vec is the right map.
    let mut open: Vec<(u64, WavWriter)> = Vec::new();
    let finish = |w: WavWriter| {
        let path = w.path.clone();
        if let Err(e) = w.finish() {
            tracing::error!(path = %path.display(), "cannot finish the recording: {e}");
        }
    };
    while let Ok(msg) = rx.recv() {
        match msg {
            RecMsg::Open { key, wav } => open.push((key, *wav)),
            RecMsg::Frame { key, caller, agent } => {
                if let Some(i) = open.iter().position(|(k, _)| *k == key) {
                    if let Err(e) = open[i].1.write_frame(&caller, &agent) {
                        let (_, w) = open.swap_remove(i);
                        tracing::error!(path = %w.path.display(), "recording stopped: {e}");
                        finish(w);
                    }
                }
            }
            RecMsg::Close { key } => {
                if let Some(i) = open.iter().position(|(k, _)| *k == key) {
                    finish(open.swap_remove(i).1);
                }
            }
            RecMsg::Flush(done) => {
                for (_, w) in &mut open {
                    if let Err(e) = w.patch() {
                        tracing::error!(path = %w.path.display(), "cannot update the recording: {e}");
                    }
                }
                let _ = done.send(());
            }
            RecMsg::Stop => break,
        }
    }
    for (_, w) in open {
        finish(w);
    }
}

/// Delete the `*.wav` files directly in `dir` last modified more than `days` days
/// before `now`; anything else (other files, directories) is left alone. Returns
/// the deleted paths. A missing directory deletes nothing; a file that cannot be
/// deleted is logged and skipped.
pub fn prune_recordings(dir: &Path, days: u32, now: SystemTime) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    if days == 0 {
        return removed;
    }
    let Some(cutoff) = now.checked_sub(Duration::from_secs(u64::from(days) * 86_400)) else {
        return removed;
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return removed,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "cannot list the recordings for retention: {e}");
            return removed;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_wav = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav"));
        let Ok(meta) = entry.metadata() else { continue };
        if !is_wav || !meta.is_file() {
            continue;
        }
        if meta.modified().is_ok_and(|m| m < cutoff) {
            match std::fs::remove_file(&path) {
                Ok(()) => removed.push(path),
                Err(e) => tracing::warn!(path = %path.display(), "cannot delete an old recording: {e}"),
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_patched_every_5_s_so_a_crash_leaves_a_playable_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("crash.wav");
        let mut w = WavWriter::create(&path).expect("create");
        let frame = [7i16; FRAME];
        for _ in 0..PATCH_EVERY_FRAMES + 10 {
            w.write_frame(&frame, &frame).expect("write");
        }
        // "Crash" now: what is on disk is what a player would find.
        let bytes = std::fs::read(&path).expect("read");
        let patched = PATCH_EVERY_FRAMES as usize * FRAME_BYTES;
        assert_eq!(&bytes[..HEADER_LEN], &wav_header(patched as u32)[..]);
        assert_eq!(bytes.len(), HEADER_LEN + patched, "the first 5 s are on disk, the rest buffered");
        let path = w.finish().expect("finish");
        let bytes = std::fs::read(path).expect("read");
        let all = (PATCH_EVERY_FRAMES as usize + 10) * FRAME_BYTES;
        assert_eq!(&bytes[..HEADER_LEN], &wav_header(all as u32)[..]);
        assert_eq!(bytes.len(), HEADER_LEN + all);
    }
}
