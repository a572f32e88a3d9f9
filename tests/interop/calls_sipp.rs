//! Calls into voice-ua placed by sipp (scenarios in tests/sipp/calls/).
//! Every test checks what voice-ua really sent: the SIP messages from
//! sipp's `-trace_msg` file, the RTP it sent (counted by the test's own
//! socket, or read from the kernel queue of sipp's media socket), and its
//! per-call JSON log lines.
//!
//! Callers send their INVITEs straight to voice-ua from 127.0.0.1, the
//! registrar's address (Kamailio's registrar.cfg only handles REGISTER and
//! OPTIONS). Tests that do not need a registration point `--pbx` at a port
//! where nothing listens: voice-ua takes calls while registration retries.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::support::calls::{self, PortBlock};
use crate::support::kamailio::{self, Kamailio};
use crate::support::ports::free_port;
use crate::support::rtp::{self, RtpPeer, RtpReport};
use crate::support::sipp::{Sipp, UacCall};
use crate::support::siptrace::{self, SipMsg};
use crate::support::voice_ua::{self, VoiceUa};
use crate::support::{require_tools, wait_until, RunDir, Tools};

/// PCMU, PCMA and telephone-event/8000 on PT 101, as Asterisk offers them.
const OFFER_0_8_101: [(&str, &str); 4] = [
    ("m_fmt", "0 8 101"),
    ("a1", "a=rtpmap:0 PCMU/8000"),
    ("a2", "a=rtpmap:8 PCMA/8000"),
    ("a3", "a=rtpmap:101 telephone-event/8000"),
];

struct Ring {
    run: RunDir,
    tools: Tools,
    block: PortBlock,
    ua: VoiceUa,
    /// Kept alive for the test when it registers.
    _kam: Option<Kamailio>,
}

/// voice-ua ready for calls. With `registrar` it registers with a Kamailio
/// first (and the test waits for "registered"); without, `--pbx` points at a
/// port where nothing listens.
fn ring(test: &str, registrar: bool, extra_toml: &str) -> Option<Ring> {
    let mut needed = vec!["sipp"];
    if registrar {
        needed.extend(["kamailio", "kamcmd"]);
    }
    let tools = require_tools(test, &needed)?;
    voice_ua::binary();
    let run = RunDir::new(test);
    let block = PortBlock::next();
    let (kam, ua) = if registrar {
        let kam = Kamailio::start(&run, &tools, None);
        let mut ua = calls::start_ua(&run, kam.port, &block, extra_toml, kamailio::PASSWORD);
        if ua.wait_registered(1, Duration::from_secs(10)).is_none() {
            panic!("voice-ua did not register with Kamailio within 10 s\n{}\n{}", ua.diag(), kam.diag());
        }
        (Some(kam), ua)
    } else {
        let nobody = free_port();
        let ua = calls::start_ua(&run, nobody, &block, extra_toml, calls::PASSWORD);
        (None, ua)
    };
    Some(Ring { run, tools, block, ua, _kam: kam })
}

impl Ring {
    fn start_sipp(
        &self,
        label: &str,
        scenario: &str,
        local_ip: &str,
        keys: &[(&str, &str)],
        extra: &[&str],
    ) -> Sipp {
        Sipp::start_call_uac(
            &self.run,
            self.tools.get("sipp"),
            &UacCall {
                label,
                scenario,
                local_ip,
                local_port: free_port(),
                media_port: self.block.peer(0),
                remote_port: self.ua.bind_port,
                keys,
                extra,
            },
        )
    }

    /// Runs a caller scenario to its end (at most `limit`).
    fn run_sipp(
        &self,
        label: &str,
        scenario: &str,
        keys: &[(&str, &str)],
        extra: &[&str],
        limit: Duration,
    ) -> (ExitStatus, Sipp, Vec<SipMsg>) {
        let sipp = self.start_sipp(label, scenario, "127.0.0.1", keys, extra);
        finish(sipp, &self.ua, limit)
    }

    fn diag(&self, sipp: &Sipp) -> String {
        format!("{}\n{}", sipp.diag(), self.ua.diag())
    }
}

fn finish(mut sipp: Sipp, ua: &VoiceUa, limit: Duration) -> (ExitStatus, Sipp, Vec<SipMsg>) {
    let status = sipp
        .wait(limit)
        .unwrap_or_else(|| panic!("sipp still running after {limit:?}\n{}\n{}", sipp.diag(), ua.diag()));
    let msgs = siptrace::parse(sipp.messages_file());
    (status, sipp, msgs)
}

/// The 200 OK to the INVITE with CSeq `cseq`; panics with the trace when
/// there is none.
fn ok_for_invite<'a>(msgs: &'a [SipMsg], cseq: u32, diag: &str) -> &'a SipMsg {
    siptrace::responses(msgs, "INVITE")
        .into_iter()
        .find(|m| m.status() == Some(200) && m.cseq().is_some_and(|(n, _)| n == cseq))
        .unwrap_or_else(|| {
            panic!("no 200 OK to INVITE CSeq {cseq}; messages:\n{}\n{diag}", siptrace::summary(msgs))
        })
}

/// The Call-ID of the first INVITE sipp sent.
fn call_id_of(msgs: &[SipMsg]) -> String {
    msgs.iter()
        .find(|m| m.sent && m.method() == Some("INVITE"))
        .and_then(|m| m.header("Call-ID"))
        .expect("sipp sent an INVITE with a Call-ID")
        .to_string()
}

/// Answer SDP checks shared by the answered-call tests: `codec` first and
/// alone among the audio codecs, telephone-event echoed on PT 101, ptime 20,
/// the port in voice-ua's range, c= on loopback, and `direction`.
fn assert_answer_sdp(ok: &SipMsg, block: &PortBlock, codec: (&str, &str), direction: &str, diag: &str) {
    let body = ok.body();
    let (port, fmts) =
        ok.sdp_audio().unwrap_or_else(|| panic!("200 OK without an audio m-line:\n{body}\n{diag}"));
    assert_eq!(
        fmts.first().map(String::as_str),
        Some(codec.0),
        "answer chose {fmts:?}, want {codec:?} first:\n{body}"
    );
    assert!(
        !fmts.iter().any(|f| (f == "0" || f == "8") && f != codec.0),
        "answer carries a second G.711 codec {fmts:?}:\n{body}"
    );
    let rtpmaps = ok.sdp_attrs("rtpmap");
    assert!(rtpmaps.iter().any(|r| r == &format!("{} {}", codec.0, codec.1)), "no rtpmap {codec:?}:\n{body}");
    assert!(
        fmts.iter().any(|f| f == "101"),
        "telephone-event offered on 101 but not in the answer {fmts:?}:\n{body}"
    );
    assert!(
        rtpmaps.iter().any(|r| r.eq_ignore_ascii_case("101 telephone-event/8000")),
        "telephone-event not echoed with the offered PT 101:\n{body}"
    );
    assert_eq!(ok.sdp_attrs("ptime"), vec!["20"], "ptime:\n{body}");
    assert_eq!(ok.sdp_direction(), direction, "direction:\n{body}");
    assert_eq!(ok.sdp_connection().as_deref(), Some("127.0.0.1"), "c= line:\n{body}");
    assert!(
        block.contains_ua_port(port),
        "RTP port {port} outside calls.rtp_ports {}:\n{body}\n{diag}",
        block.ua_range()
    );
}

/// Bytes queued and dropped on sipp's unread media socket, sampled every
/// 100 ms while sipp runs (the socket goes away with sipp); the maximum.
fn watch_media_backlog(sipp: &mut Sipp, port: u16, limit: Duration) -> (Option<ExitStatus>, u64, u64) {
    let deadline = Instant::now() + limit;
    let (mut queued, mut dropped) = (0, 0);
    loop {
        if let Some((q, d)) = rtp::udp_socket_backlog([127, 0, 0, 1], port) {
            queued = queued.max(q);
            dropped = dropped.max(d);
        }
        if let Some(status) = sipp.wait(Duration::from_millis(100)) {
            return (Some(status), queued, dropped);
        }
        if Instant::now() >= deadline {
            return (None, queued, dropped);
        }
    }
}

/// PCMU caller (offer 0 8 101, Session-Expires 90) with a registered
/// voice-ua; the test is the caller's RTP endpoint and speaks 1.2 s of
/// speech-like μ-law, then silence. voice-ua must answer PCMU with
/// telephone-event 101, accept the session timer as refresher=uac, send
/// continuous symmetric RTP from its advertised port, and play the same
/// μ-law bytes back after the caller stops.
#[test]
fn sipp_pcmu_call_rtp_both_ways_and_echo() {
    let Some(ring) = ring("call_pcmu", true, "") else {
        return;
    };
    let talk = rtp::speech_like_ulaw(4, 260, 40);
    let talk_frames = talk.len();
    let peer = RtpPeer::start("127.0.0.1", ring.block.peer(3), 0, talk.clone(), Some(rtp::ulaw_silence()));
    let port = peer.addr.port().to_string();
    let mut keys = vec![("rtp_port", port.as_str()), ("se", "90"), ("talk_ms", "5000")];
    keys.extend(OFFER_0_8_101);
    let (status, sipp, msgs) =
        ring.run_sipp("sipp-pcmu", "calls/uac_call.xml", &keys, &[], Duration::from_secs(30));
    let report = peer.stop();
    let diag = ring.diag(&sipp);
    assert!(status.success(), "sipp call failed ({status})\n{diag}");

    let ok = ok_for_invite(&msgs, 1, &diag);
    assert_answer_sdp(ok, &ring.block, ("0", "PCMU/8000"), "sendrecv", &diag);
    assert_eq!(ok.header("Session-Expires"), Some("90;refresher=uac"), "session timer answer\n{}", ok.text);
    assert!(
        ok.headers("Require").iter().any(|r| r.split(',').any(|t| t.trim() == "timer")),
        "200 OK without Require: timer\n{}",
        ok.text
    );
    let (ua_port, _) = ok.sdp_audio().expect("checked above");

    check_pcmu_media(&report, ua_port, &talk, talk_frames, &diag);

    let ended = calls::call_ended_for(&ring.ua, &call_id_of(&msgs), Duration::from_secs(5));
    assert_eq!(ended.codec, "PCMU", "{ended:?}");
    assert!(
        ended.packets_in > 100,
        "voice-ua counted {} packets in; the test sent {}: {ended:?}",
        ended.packets_in,
        report.sent
    );
    assert!(
        ended.packets_out > 100,
        "voice-ua counted {} packets out; the test received {}: {ended:?}",
        ended.packets_out,
        report.received.len()
    );
    assert_eq!(ended.hung_up_by, "caller", "{ended:?}");
}

fn check_pcmu_media(report: &RtpReport, ua_port: u16, talk: &[Vec<u8>], talk_frames: usize, diag: &str) {
    let rx = &report.received;
    assert!(rx.len() > 100, "the test received only {} RTP packets from voice-ua\n{diag}", rx.len());
    let from_elsewhere: Vec<_> =
        rx.iter().filter(|p| p.from.port() != ua_port || !p.from.ip().is_loopback()).collect();
    assert!(
        from_elsewhere.is_empty(),
        "RTP not symmetric: {} packets came from a port other than the advertised {ua_port}, e.g. {:?}",
        from_elsewhere.len(),
        from_elsewhere.first()
    );
    let wrong_pt: Vec<_> = rx.iter().filter(|p| p.pt != 0).collect();
    assert!(
        wrong_pt.is_empty(),
        "{} packets not PT 0 (PCMU), e.g. {:?}",
        wrong_pt.len(),
        wrong_pt.first().map(|p| p.pt)
    );
    assert!(rx.iter().all(|p| p.payload.len() == 160), "payloads not 20 ms of G.711 (160 bytes)");
    // continuous: one packet per 20 ms from the first to the last
    let span = rx.last().map(|p| p.at).unwrap_or_default() - rx[0].at;
    let expected = span.as_secs_f64() / 0.020;
    assert!(
        rx.len() as f64 > 0.9 * expected && (rx.len() as f64) < 1.1 * expected + 2.0,
        "{} packets over {span:?}: not one every 20 ms (expected about {expected:.0})",
        rx.len()
    );

    // Echo: the caller's speech frames, byte for byte, after it stopped.
    let sent_at = report.first_sent_at.expect("the test sent RTP");
    let talk_end = sent_at + Duration::from_millis(20 * talk_frames as u64);
    let loud: Vec<&Vec<u8>> = talk.iter().filter(|f| f.iter().any(|&b| b & 0x7f < 0x50)).collect();
    let echoed: Vec<&rtp::RxPacket> = rx.iter().filter(|p| loud.iter().any(|f| **f == p.payload)).collect();
    assert!(
        echoed.len() * 10 >= loud.len() * 8,
        "only {} of the caller's {} speech frames came back byte for byte (echo agent)\n{diag}",
        echoed.len(),
        loud.len()
    );
    let first_echo = echoed[0];
    let lag = first_echo.at.saturating_sub(talk_end);
    assert!(
        first_echo.at > talk_end && lag < Duration::from_millis(2500),
        "echo started {:?} after the caller stopped talking (first echoed frame at {:?}, talk ended at {talk_end:?}); \
         contract: about 0.6 s",
        first_echo.at.checked_sub(talk_end),
        first_echo.at
    );
    // Marker bit at the start of the echo talkspurt. voice-ua may open the
    // talkspurt with a little digital silence before the first echoed frame
    // (seen: 4 packets), so the marker must be on a packet at most 200 ms
    // before the first non-silent one, and after the caller stopped talking.
    let first_idx = rx.iter().position(|p| std::ptr::eq(p, first_echo)).expect("from rx");
    let first_sound = rx[..=first_idx]
        .iter()
        .rposition(|p| p.payload.iter().all(|&b| b == 0xFF || b == 0x7F))
        .map_or(0, |i| i + 1);
    let window = &rx[first_sound.saturating_sub(10)..=first_sound];
    let around: Vec<String> = window
        .iter()
        .map(|p| {
            format!("seq {} M={} at {:?} payload {:02x?}..", p.seq, u8::from(p.marker), p.at, &p.payload[..6])
        })
        .collect();
    let markers: Vec<(u16, Duration)> = rx.iter().filter(|p| p.marker).map(|p| (p.seq, p.at)).collect();
    assert!(
        window.iter().any(|p| p.marker && p.at > talk_end),
        "no marker bit at the start of the echo talkspurt (first non-silent packet seq {}); packets before it:\n{}\n\
         packets with the marker bit: {markers:?}",
        rx[first_sound].seq,
        around.join("\n")
    );
    eprintln!(
        "pcmu: {} packets received, {} sent, {} of {} speech frames echoed, echo lag {lag:?}",
        rx.len(),
        report.sent,
        echoed.len(),
        loud.len()
    );
}

/// PCMA caller (offer 8 101) playing g711a.pcap with play_pcap_audio.
/// voice-ua must answer PCMA, count the caller's packets, and send RTP to
/// sipp's media port (seen as bytes queued on that socket, which sipp does
/// not read).
#[test]
fn sipp_pcma_call_plays_g711a_pcap() {
    let Some(ring) = ring("call_pcma", false, "") else {
        return;
    };
    calls::copy_pcaps(&ring.run, &["g711a.pcap"]);
    let media_port = ring.block.peer(0);
    let mut sipp = ring.start_sipp("sipp-pcma", "calls/uac_pcap_call.xml", "127.0.0.1", &[], &[]);
    let (status, queued, dropped) = watch_media_backlog(&mut sipp, media_port, Duration::from_secs(30));
    let diag = ring.diag(&sipp);
    let status = status.unwrap_or_else(|| panic!("sipp still running after 30 s\n{diag}"));
    let msgs = siptrace::parse(sipp.messages_file());
    assert!(status.success(), "sipp call failed ({status})\n{diag}");

    let ok = ok_for_invite(&msgs, 1, &diag);
    assert_answer_sdp(ok, &ring.block, ("8", "PCMA/8000"), "sendrecv", &diag);
    assert!(
        queued > 0 || dropped > 0,
        "nothing arrived on sipp's media socket 127.0.0.1:{media_port} (queue {queued} bytes, {dropped} drops): \
         voice-ua sent no RTP to the address in the offer\n{diag}"
    );

    let ended = calls::call_ended_for(&ring.ua, &call_id_of(&msgs), Duration::from_secs(5));
    assert_eq!(ended.codec, "PCMA", "{ended:?}");
    // g711a.pcap: 30 ms packets, about 166 of them in the 5 s the call lasts
    assert!(ended.packets_in > 100, "voice-ua counted {} packets in: {ended:?}\n{diag}", ended.packets_in);
    assert!(ended.packets_out > 100, "voice-ua counted {} packets out: {ended:?}\n{diag}", ended.packets_out);
    eprintln!("pcma: sipp media socket max queue {queued} bytes, {dropped} drops; {ended:?}");
}

/// RFC 4733 events from Debian's dtmf_2833_{1,5,9,star,pound}.pcap
/// (telephone-event on PT 101 in the pcaps, offered on 101): each digit
/// logged once, in order.
#[test]
fn sipp_rfc4733_digits_from_pcaps() {
    // Which key was pressed is logged only with transcripts on (privacy default).
    let Some(ring) = ring("call_dtmf", false, "[log]\ntranscripts = true") else {
        return;
    };
    let pcaps = [
        "dtmf_2833_1.pcap",
        "dtmf_2833_5.pcap",
        "dtmf_2833_9.pcap",
        "dtmf_2833_star.pcap",
        "dtmf_2833_pound.pcap",
    ];
    calls::copy_pcaps(&ring.run, &pcaps);
    let (status, sipp, msgs) =
        ring.run_sipp("sipp-dtmf", "calls/uac_dtmf.xml", &[], &[], Duration::from_secs(30));
    let diag = ring.diag(&sipp);
    assert!(status.success(), "sipp call failed ({status})\n{diag}");
    let ok = ok_for_invite(&msgs, 1, &diag);
    assert_answer_sdp(ok, &ring.block, ("0", "PCMU/8000"), "sendrecv", &diag);
    let call_id = call_id_of(&msgs);
    calls::call_ended_for(&ring.ua, &call_id, Duration::from_secs(5));
    let digits = calls::digits_pressed(&ring.ua, &call_id);
    assert_eq!(digits, ["1", "5", "9", "*", "#"], "digits logged as \"caller pressed a key\"\n{diag}");
}

/// Hold (a=sendonly -> recvonly), inactive (-> inactive) and resume
/// (a=sendrecv -> sendrecv) by re-INVITE.
#[test]
fn sipp_hold_and_resume_reinvite() {
    let Some(ring) = ring("call_hold", false, "") else {
        return;
    };
    let (status, sipp, msgs) =
        ring.run_sipp("sipp-hold", "calls/uac_hold.xml", &[], &[], Duration::from_secs(30));
    let diag = ring.diag(&sipp);
    assert!(status.success(), "sipp call failed ({status})\n{diag}");
    assert_answer_sdp(ok_for_invite(&msgs, 1, &diag), &ring.block, ("0", "PCMU/8000"), "sendrecv", &diag);
    for (cseq, offered, want) in
        [(2, "sendonly", "recvonly"), (3, "inactive", "inactive"), (4, "sendrecv", "sendrecv")]
    {
        let ok = ok_for_invite(&msgs, cseq, &diag);
        assert_eq!(
            ok.sdp_direction(),
            want,
            "re-INVITE CSeq {cseq} offered a={offered}; the 200 OK answered:\n{}\n{diag}",
            ok.body()
        );
        let (_, fmts) =
            ok.sdp_audio().unwrap_or_else(|| panic!("re-INVITE answer without m=audio:\n{}", ok.text));
        assert_eq!(
            fmts.first().map(String::as_str),
            Some("0"),
            "codec changed in the re-INVITE answer:\n{}",
            ok.body()
        );
    }
    let ended = calls::call_ended_for(&ring.ua, &call_id_of(&msgs), Duration::from_secs(5));
    assert_eq!(ended.hung_up_by, "caller", "{ended:?}");
}

/// CANCEL sent right behind the INVITE (same branch). voice-ua answers
/// within about a millisecond, so the CANCEL can lose a genuine race (it
/// reaches voice-ua after the 200 OK was sent; RFC 3261 then lets the call
/// stand and sipp hangs up with BYE). Five tries; a try counts as "CANCEL in
/// time" when sipp sent the CANCEL at least 0.4 ms before it received the
/// INVITE's 200 (loopback delivery takes tens of microseconds, so the
/// CANCEL was waiting at voice-ua before the answer went out): every such
/// try must end in 200 (CANCEL) + 487 (INVITE), and at least one try must
/// be in time.
#[test]
fn sipp_cancel_before_answer_gets_487() {
    let Some(ring) = ring("call_cancel", false, "") else {
        return;
    };
    let mut outcomes = Vec::new();
    let mut violations = Vec::new();
    for attempt in 0..5 {
        let label = format!("sipp-cancel-{attempt}");
        // the 100 Trying can arrive between the INVITE and the CANCEL, before
        // sipp reaches a step expecting it: ignore it instead of aborting
        let lenient = ["-default_behaviors", "all,-abortunexp"];
        let (status, sipp, msgs) =
            ring.run_sipp(&label, "calls/uac_cancel.xml", &[], &lenient, Duration::from_secs(30));
        let diag = ring.diag(&sipp);
        let invite_finals: Vec<&SipMsg> = siptrace::responses(&msgs, "INVITE")
            .into_iter()
            .filter(|m| m.status().is_some_and(|s| s >= 200))
            .collect();
        let cancel_finals: Vec<u16> =
            siptrace::responses(&msgs, "CANCEL").iter().filter_map(|m| m.status()).collect();
        let cancel_at = msgs.iter().find(|m| m.sent && m.method() == Some("CANCEL")).and_then(|m| m.at);
        let first_final = invite_finals.first().and_then(|m| m.status());
        let ahead_ms = match (cancel_at, invite_finals.first().and_then(|m| m.at)) {
            (Some(c), Some(f)) => (f - c) * 1000.0,
            _ => f64::NAN,
        };
        let cancelled = first_final == Some(487) && cancel_finals.first() == Some(&200);
        let in_time = cancelled || ahead_ms >= 0.4;
        assert!(
            cancelled || first_final == Some(200),
            "attempt {attempt}: INVITE final {first_final:?}, CANCEL finals {cancel_finals:?}; messages:\n{}\n{diag}",
            siptrace::summary(&msgs)
        );
        if cancelled {
            assert!(status.success(), "attempt {attempt}: 487 received but sipp failed ({status})\n{diag}");
            assert!(
                siptrace::responses(&msgs, "INVITE").iter().all(|m| m.status() != Some(200)),
                "attempt {attempt}: both 487 and 200 to the INVITE\n{}",
                siptrace::summary(&msgs)
            );
        } else if in_time {
            violations.push(format!(
                "attempt {attempt}: CANCEL sent {ahead_ms:.2} ms before the INVITE's 200 OK arrived, yet the INVITE \
                 was answered 200 and the CANCEL got {cancel_finals:?}; messages:\n{}",
                siptrace::summary(&msgs)
            ));
        }
        outcomes.push(format!(
            "{}{} (CANCEL {ahead_ms:.2} ms ahead of the 200)",
            if cancelled { "487" } else { "answered" },
            if in_time { ", in time" } else { ", race lost" }
        ));
    }
    eprintln!("cancel: {outcomes:#?}");
    assert!(
        violations.is_empty(),
        "voice-ua answered INVITEs whose CANCEL was already waiting for it ({} of 5 tries; contract: CANCEL before \
         answer -> 200 + 487):\n{}\nall tries: {outcomes:#?}",
        violations.len(),
        violations.join("\n")
    );
    assert!(
        outcomes.iter().any(|o| o.contains("in time")),
        "no CANCEL reached voice-ua in time: {outcomes:#?}"
    );
}

/// SIGTERM with a call up: voice-ua sends BYE (sipp answers 200), then
/// un-registers and exits 0.
#[test]
fn sipp_bye_from_voice_ua_on_sigterm() {
    let Some(mut ring) = ring("call_sigterm", true, "") else {
        return;
    };
    let sipp = ring.start_sipp("sipp-wait-bye", "calls/uac_wait_bye.xml", "127.0.0.1", &[], &[]);
    let acked = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        siptrace::parse(sipp.messages_file())
            .iter()
            .any(|m| m.sent && m.method() == Some("ACK"))
            .then_some(())
    });
    assert!(acked.is_some(), "the call was not set up within 10 s\n{}", ring.diag(&sipp));
    std::thread::sleep(Duration::from_millis(500));
    ring.ua.sigterm();
    let (status, sipp, msgs) = finish(sipp, &ring.ua, Duration::from_secs(25));
    let diag = ring.diag(&sipp);
    assert!(status.success(), "sipp did not get the BYE or the exchange failed ({status})\n{diag}");
    let bye = msgs.iter().find(|m| !m.sent && m.method() == Some("BYE"));
    assert!(bye.is_some(), "no BYE from voice-ua\n{}", siptrace::summary(&msgs));
    let exit = ring.ua.wait_exit(Duration::from_secs(15));
    assert!(exit.is_some_and(|s| s.success()), "voice-ua after SIGTERM: {exit:?} (want exit 0)\n{diag}");
    let ended = calls::call_ended_for(&ring.ua, &call_id_of(&msgs), Duration::from_secs(1));
    assert_ne!(ended.hung_up_by, "caller", "{ended:?}");
    let unregistered = ring.ua.events().iter().any(|e| {
        crate::support::logs::message(e).is_some_and(|m| m.to_ascii_lowercase().contains("unregister"))
    });
    eprintln!("sigterm: {ended:?}; un-register logged: {unregistered}");
}

/// An INVITE voice-ua must refuse with `code`: sipp from `local_ip` offers
/// media at the test's own socket there; nothing may arrive on it.
fn refused_call(test: &str, local_ip: &str, keys: &[(&str, &str)], code: u16) -> Option<(Ring, SipMsg)> {
    let ring = ring(test, false, "")?;
    let peer = RtpPeer::start(local_ip, ring.block.peer(3), 0, Vec::new(), None);
    let port = peer.addr.port().to_string();
    let mut all_keys = vec![("rtp_port", port.as_str())];
    all_keys.extend_from_slice(keys);
    let sipp = ring.start_sipp("sipp-refused", "calls/uac_reject.xml", local_ip, &all_keys, &[]);
    let (status, sipp, msgs) = finish(sipp, &ring.ua, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1500));
    let report = peer.stop();
    let diag = ring.diag(&sipp);
    let finals: Vec<&SipMsg> = siptrace::responses(&msgs, "INVITE")
        .into_iter()
        .filter(|m| m.status().is_some_and(|s| s >= 200))
        .collect();
    assert_eq!(
        finals.first().and_then(|m| m.status()),
        Some(code),
        "want {code}; messages:\n{}\n{diag}",
        siptrace::summary(&msgs)
    );
    assert!(status.success(), "sipp failed ({status})\n{diag}");
    assert!(
        report.received.is_empty() && report.junk == 0,
        "voice-ua sent {} RTP packets to a caller it refused with {code}\n{diag}",
        report.received.len()
    );
    let answer = finals[0].clone();
    Some((ring, answer))
}

#[test]
fn sipp_invite_from_non_registrar_address_gets_403() {
    let keys = [
        ("se", "90"),
        ("m_fmt", "0 101"),
        ("a1", "a=rtpmap:0 PCMU/8000"),
        ("a2", "a=rtpmap:101 telephone-event/8000"),
    ];
    let Some((ring, _)) = refused_call("call_403", "127.0.0.2", &keys, 403) else {
        return;
    };
    assert!(
        ring.ua.events_with("echo agent", None).is_empty(),
        "an agent was started for a refused caller\n{}",
        ring.ua.diag()
    );
}

#[test]
fn sipp_no_common_codec_gets_488() {
    let keys =
        [("se", "90"), ("m_fmt", "18"), ("a1", "a=rtpmap:18 G729/8000"), ("a2", "a=fmtp:18 annexb=no")];
    refused_call("call_488", "127.0.0.1", &keys, 488);
}

#[test]
fn sipp_session_expires_30_gets_422() {
    let keys = [
        ("se", "30"),
        ("m_fmt", "0 101"),
        ("a1", "a=rtpmap:0 PCMU/8000"),
        ("a2", "a=rtpmap:101 telephone-event/8000"),
    ];
    let Some((_ring, answer)) = refused_call("call_422", "127.0.0.1", &keys, 422) else {
        return;
    };
    assert_eq!(answer.header("Min-SE").map(str::trim), Some("90"), "422 without Min-SE: 90\n{}", answer.text);
}

/// 20 simultaneous PCMA calls (max_calls = 25), each playing g711a.pcap for
/// 5 s: all answered 200, and every "call ended" line shows RTP both ways.
#[test]
fn sipp_twenty_concurrent_calls() {
    let Some(ring) = ring("call_20", false, "max_calls = 25") else {
        return;
    };
    calls::copy_pcaps(&ring.run, &["g711a.pcap"]);
    let (status, sipp, msgs) = ring.run_sipp(
        "sipp-20",
        "calls/uac_pcap_call.xml",
        &[],
        &["-m", "20", "-l", "20", "-r", "20", "-default_behaviors", "all"],
        Duration::from_secs(40),
    );
    let diag = ring.diag(&sipp);
    let oks: Vec<String> = siptrace::responses(&msgs, "INVITE")
        .iter()
        .filter(|m| m.status() == Some(200))
        .filter_map(|m| m.header("Call-ID").map(str::to_string))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        oks.len(),
        20,
        "{} distinct calls answered 200, want 20\n{}",
        oks.len(),
        siptrace::summary(&msgs)
    );
    assert!(status.success(), "sipp reported failed calls ({status})\n{diag}");
    let ended = calls::wait_calls_ended(&ring.ua, 20, Duration::from_secs(10));
    for call_id in &oks {
        let e = ended
            .iter()
            .find(|e| &e.call_id == call_id)
            .unwrap_or_else(|| panic!("no \"call ended\" for {call_id}\n{diag}"));
        assert!(e.packets_in > 0 && e.packets_out > 0, "call {call_id}: {e:?}");
        assert_eq!(e.codec, "PCMA", "{e:?}");
    }
    let min_in = ended.iter().map(|e| e.packets_in).min().unwrap_or(0);
    let min_out = ended.iter().map(|e| e.packets_out).min().unwrap_or(0);
    eprintln!("20 calls: min packets_in {min_in}, min packets_out {min_out}");
}
