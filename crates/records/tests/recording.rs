//! Recordings: the WAV file's header and sample interleaving as read back from disk,
//! soxi's opinion of it (when sox is installed), and recordings retention.

use std::path::Path;
use std::time::{Duration, SystemTime};
use voice_ua_records::{
    prune_recordings, wav_header, RecordStore, Recorder, Recording, RecordsError, Retention, FRAME,
};

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Frame `f`'s caller samples are `f*1000 + i`, the agent's their negation minus 1.
fn caller_frame(f: usize) -> [i16; FRAME] {
    std::array::from_fn(|i| (f * 1000 + i) as i16)
}

fn agent_frame(f: usize) -> [i16; FRAME] {
    std::array::from_fn(|i| -((f * 1000 + i) as i16) - 1)
}

fn check_header(bytes: &[u8], frames: usize) {
    let data = (frames * FRAME * 4) as u32;
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(u32_at(bytes, 4), 36 + data, "RIFF size");
    assert_eq!(&bytes[8..16], b"WAVEfmt ");
    assert_eq!(u32_at(bytes, 16), 16, "fmt chunk size");
    assert_eq!(u16_at(bytes, 20), 1, "PCM");
    assert_eq!(u16_at(bytes, 22), 2, "stereo");
    assert_eq!(u32_at(bytes, 24), 8000, "sample rate");
    assert_eq!(u32_at(bytes, 28), 32_000, "byte rate");
    assert_eq!(u16_at(bytes, 32), 4, "block align");
    assert_eq!(u16_at(bytes, 34), 16, "bits");
    assert_eq!(&bytes[36..40], b"data");
    assert_eq!(u32_at(bytes, 40), data, "data size");
    assert_eq!(bytes.len(), 44 + data as usize, "file length");
}

#[test]
fn the_header_is_the_canonical_44_bytes() {
    let h = wav_header(6400);
    check_header(&[h.as_slice(), &[0u8; 6400]].concat(), 10);
}

#[test]
fn a_recording_is_stereo_caller_left_agent_right() {
    let dir = tempfile::tempdir().expect("tmp");
    let rec_dir = dir.path().join("recordings");
    let recorder = Recorder::start(&rec_dir).expect("start");
    let mut a = recorder.create("call-a").expect("create a");
    let mut b = recorder.create("call-b").expect("create b");
    let frames = 300; // past the 250-frame header patch
    for f in 0..frames {
        assert!(a.push(&caller_frame(f), &agent_frame(f)));
        // Short or empty input is padded with silence.
        assert!(b.push(&caller_frame(f)[..80], &[]));
    }
    assert_eq!(a.dropped_frames(), 0);
    let path_a = a.finish();
    drop(b);
    assert!(recorder.flush(), "both files finished");

    let bytes = std::fs::read(&path_a).expect("read a");
    check_header(&bytes, frames);
    let samples: Vec<i16> = bytes[44..].chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
    for f in 0..frames {
        for i in 0..FRAME {
            let at = (f * FRAME + i) * 2;
            assert_eq!(samples[at], caller_frame(f)[i], "left = caller at frame {f} sample {i}");
            assert_eq!(samples[at + 1], agent_frame(f)[i], "right = agent at frame {f} sample {i}");
        }
    }
    let bytes = std::fs::read(rec_dir.join("call-b.wav")).expect("read b");
    check_header(&bytes, frames);
    let s = |at: usize| i16::from_le_bytes([bytes[44 + at * 2], bytes[45 + at * 2]]);
    assert_eq!((s(2 * 79), s(2 * 79 + 1)), (79, 0), "caller sample, agent silence");
    assert_eq!((s(2 * 80), s(2 * 80 + 1)), (0, 0), "padding after 80 caller samples");

    // A file is never overwritten, and ids cannot leave the directory.
    assert!(matches!(recorder.create("call-a"), Err(RecordsError::Recording { .. })));
    for bad in ["../x", "a/b", ".hidden", ""] {
        assert!(matches!(recorder.create(bad), Err(RecordsError::BadRecordingId { .. })), "{bad}");
    }
    recorder.close();
    let mut late = Recording::create(&rec_dir, "own-thread").expect("own thread");
    assert!(late.push(&[1; FRAME], &[2; FRAME]));

    soxi_agrees(&path_a, frames);
}

#[test]
fn a_recording_left_open_at_close_is_finished() {
    let dir = tempfile::tempdir().expect("tmp");
    let recorder = Recorder::start(dir.path()).expect("start");
    let mut r = recorder.create("open-at-close").expect("create");
    for f in 0..7 {
        r.push(&caller_frame(f), &agent_frame(f));
    }
    recorder.close(); // the call task has not dropped its handle yet
    assert!(!r.push(&[0; FRAME], &[0; FRAME]), "after close frames are refused");
    assert_eq!(r.dropped_frames(), 1);
    let path = r.finish();
    check_header(&std::fs::read(path).expect("read"), 7);
}

/// When sox is installed, `soxi` must read the file as we meant it.
fn soxi_agrees(path: &Path, frames: usize) {
    if !Path::new("/usr/bin/soxi").exists() {
        println!("note: /usr/bin/soxi not found (install sox): the soxi cross-check is skipped");
        return;
    }
    let soxi = |flag: &str| {
        let out =
            std::process::Command::new("/usr/bin/soxi").arg(flag).arg(path).output().expect("soxi runs");
        assert!(out.status.success(), "soxi {flag}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(soxi("-c"), "2");
    assert_eq!(soxi("-r"), "8000");
    assert_eq!(soxi("-b"), "16");
    assert_eq!(soxi("-s"), (frames * FRAME).to_string());
    assert_eq!(soxi("-e"), "Signed Integer PCM");
}

fn age(path: &Path, days: u64) {
    let f = std::fs::File::options().write(true).open(path).expect("open");
    f.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400)).expect("mtime");
}

#[test]
fn recording_retention_deletes_old_wav_files_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let rec = dir.path().join("recordings");
    std::fs::create_dir_all(rec.join("old-dir.wav")).expect("dir");
    for (name, days) in [("old.wav", 40), ("OLD2.WAV", 31), ("new.wav", 29), ("old.txt", 400)] {
        std::fs::write(rec.join(name), b"x").expect("write");
        age(&rec.join(name), days);
    }
    let mut removed = prune_recordings(&rec, 30, SystemTime::now());
    removed.sort();
    assert_eq!(removed, vec![rec.join("OLD2.WAV"), rec.join("old.wav")]);
    assert!(rec.join("new.wav").exists() && rec.join("old.txt").exists() && rec.join("old-dir.wav").is_dir());
    assert!(
        prune_recordings(&rec, 0, SystemTime::now() + Duration::from_secs(1 << 30)).is_empty(),
        "0 keeps"
    );
    assert!(prune_recordings(&dir.path().join("none"), 30, SystemTime::now()).is_empty());
}

#[test]
fn the_store_prunes_recordings_and_forgets_their_paths() {
    let dir = tempfile::tempdir().expect("tmp");
    let rec = dir.path().join("recordings");
    let db = dir.path().join("calls.db");
    std::fs::create_dir_all(&rec).expect("dir");
    let now = SystemTime::now();
    {
        let mut store = RecordStore::open(&db, Retention::default()).expect("open");
        for (id, days) in [("old", 45), ("new", 2)] {
            let path = rec.join(format!("{id}.wav"));
            std::fs::write(&path, b"x").expect("write");
            age(&path, days);
            let mut r =
                voice_ua_records::CallRecord::new(id, "c", "1001", "9000", now - Duration::from_secs(60));
            r.outcome = voice_ua_records::CallOutcome::CallerHangup;
            r.ended = Some(now);
            r.recording = Some(path);
            store.save(&r).expect("save");
        }
    }
    let retention = Retention { call_days: 90, recordings_dir: Some(rec.clone()), recording_days: 30 };
    let store = RecordStore::open(&db, retention).expect("open prunes");
    assert!(!rec.join("old.wav").exists() && rec.join("new.wav").exists());
    assert_eq!(store.get("old").expect("get").expect("call kept").recording, None);
    assert_eq!(store.get("new").expect("get").expect("kept").recording, Some(rec.join("new.wav")));
}
