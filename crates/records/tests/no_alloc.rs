//! The call's 20 ms tick hands frames to the recording without allocating (counted
//! by the `allocation-counter` crate's global allocator on the calling thread).

use voice_ua_records::{Recorder, FRAME};

#[test]
fn pushing_frames_does_not_allocate() {
    let dir = tempfile::tempdir().expect("tmp");
    let recorder = Recorder::start(dir.path()).expect("start");
    let mut rec = recorder.create("no-alloc").expect("create");
    let caller = [3i16; FRAME];
    let agent = [-3i16; FRAME];
    rec.push(&caller, &agent); // warm-up
    let info = allocation_counter::measure(|| {
        for _ in 0..500 {
            rec.push(&caller, &agent);
            rec.push(&caller[..100], &[]);
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
    drop(rec);
    recorder.close();
}
