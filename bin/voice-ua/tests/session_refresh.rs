//! Our session refresh against a PBX that never answers it (RFC 4028, we refresh): the
//! re-INVITE runs beside the call, so RTP keeps leaving every 20 ms while it waits; the
//! refresh is retried after its transaction times out (32 s); and at the session's
//! expiry voice-ua ends the call with a BYE that says why. About 90 s: the smallest
//! session interval (Min-SE) is 90 s.

mod common;

use common::{header, reply, Call};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn an_unanswered_refresh_never_stalls_the_media_is_retried_and_ends_the_call_at_expiry() {
    // Session-Expires without `Supported: timer`: the PBX cannot refresh, so we do.
    let call = Call::start_with_invite_headers("refresh", "", &[], "Session-Expires: 90\r\n");
    let t0 = Instant::now();

    // The caller talks all along (no media timeout) and notes when voice-ua's RTP arrives.
    let media = call.media.try_clone().expect("clone");
    let ua_rtp = call.ua_rtp;
    let done = Arc::new(AtomicBool::new(false));
    let stop = done.clone();
    let rtp = std::thread::spawn(move || {
        media.set_read_timeout(Some(Duration::from_millis(2))).expect("timeout");
        let mut arrivals = Vec::new();
        let mut seq: u16 = 0;
        let mut next_send = Instant::now();
        let mut b = [0u8; 1500];
        while !stop.load(Ordering::Relaxed) {
            if Instant::now() >= next_send {
                let _ =
                    media.send_to(&common::rtp(0, seq, u32::from(seq) * 160, seq == 0, &[0xff; 160]), ua_rtp);
                seq = seq.wrapping_add(1);
                next_send += Duration::from_millis(20);
            }
            if let Ok((len, _)) = media.recv_from(&mut b) {
                if len >= 12 {
                    arrivals.push(Instant::now());
                }
            }
        }
        arrivals
    });

    // The PBX side: note every INVITE voice-ua sends, answer none of them; wait for the BYE.
    let mut invites: Vec<(u32, Instant)> = Vec::new();
    let bye = loop {
        assert!(t0.elapsed() < Duration::from_secs(120), "no BYE within 120 s; re-INVITEs {invites:?}");
        let Some(m) = call.recv(Duration::from_millis(100)) else { continue };
        if m.starts_with("INVITE ") {
            let cseq: u32 = header(&m, "CSeq")
                .and_then(|c| c.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .expect("CSeq");
            if !invites.iter().any(|(c, _)| *c == cseq) {
                invites.push((cseq, Instant::now()));
            }
        } else if m.starts_with("REGISTER ") {
            call.send(&reply(&m, "200 OK", ""));
        } else if m.starts_with("BYE ") {
            call.send(&reply(&m, "200 OK", ""));
            break (m, Instant::now());
        }
    };
    done.store(true, Ordering::Relaxed);
    let arrivals = rtp.join().expect("rtp thread");
    let logs: Vec<String> = call.logs.try_iter().collect();
    let _ = std::fs::remove_dir_all(&call.dir);
    let mut ua = call.ua;
    let _ = ua.kill();
    let _ = ua.wait();

    let secs = |t: Instant| t.duration_since(t0).as_secs_f64();
    let first = invites.first().expect("a refresh re-INVITE");
    assert!(
        (40.0..50.0).contains(&secs(first.1)),
        "the refresh came at half the interval: {:.1} s",
        secs(first.1)
    );
    // The retry: a new transaction after the first timed out (32 s) plus the back-off.
    assert!(invites.len() >= 2, "the refresh was not retried: {invites:?}\n{}", logs.join("\n"));
    let retry = invites[1];
    assert!(retry.0 > first.0, "{invites:?}");
    let gap = retry.1.duration_since(first.1).as_secs_f64();
    assert!((32.0..40.0).contains(&gap), "retried {gap:.1} s after the first attempt");
    // Expiry: the BYE at the interval, with the reason.
    assert!((88.0..95.0).contains(&secs(bye.1)), "BYE at {:.1} s", secs(bye.1));
    let reason = header(&bye.0, "Reason").unwrap_or("");
    assert!(reason.contains("session timer expired"), "{}", bye.0);
    // RTP never paused while the refresh waited for its answer.
    let during: Vec<Instant> = arrivals
        .into_iter()
        .filter(|t| *t >= first.1 - Duration::from_secs(1) && *t <= bye.1 - Duration::from_secs(1))
        .collect();
    let worst = during.windows(2).map(|w| w[1].duration_since(w[0])).max().unwrap_or_default();
    assert!(during.len() > 2000, "RTP from voice-ua during the refresh: {} packets", during.len());
    assert!(worst < Duration::from_millis(250), "RTP from voice-ua paused for {worst:?} during the refresh");
    assert!(
        logs.iter().any(|l| l.contains("session refresh failed") && l.contains("retrying")),
        "{}",
        logs.join("\n")
    );
}
