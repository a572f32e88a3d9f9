//! `RecordWriter::flush_within`: a shutdown waits for the queued records, but never past
//! its deadline.

use std::time::{Duration, Instant, SystemTime};
use voice_ua_records::{CallRecord, RecordStore, Retention};

#[test]
fn flush_within_waits_for_the_queue_and_gives_up_on_a_stopped_writer() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("calls.db");
    let writer = RecordStore::open(&path, Retention::default()).expect("open").into_writer().expect("thread");
    for i in 0..200 {
        let r = CallRecord::new(format!("c{i:03}"), format!("c{i}@pbx"), "1001", "9000", SystemTime::now());
        assert!(writer.finished(r), "queued {i}");
    }
    assert!(writer.flush_within(Duration::from_secs(30)), "the queue drains within the deadline");
    assert_eq!(writer.stats().written, 200, "every queued record is committed when it returns");
    let reader = RecordStore::open_read_only(&path).expect("reader");
    assert_eq!(reader.last(500).expect("read").len(), 200);

    writer.close();
    let asked = Instant::now();
    assert!(!writer.flush_within(Duration::from_secs(5)), "a closed writer never confirms");
    assert!(asked.elapsed() < Duration::from_secs(1), "and says so at once: {:?}", asked.elapsed());
}
