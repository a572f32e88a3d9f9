//! voice-ua registering as extension 9000 with Kamailio 5.6
//! (tests/kamailio/registrar.cfg: digest auth qop=auth/MD5, in-memory
//! location table, one `INTEROP-REGISTER|...` log line per REGISTER).

use std::time::{Duration, Instant};

use crate::support::kamailio::{Kamailio, RegisterSeen, PASSWORD};
use crate::support::ports::free_port;
use crate::support::voice_ua::{self, Password, UaConfig, VoiceUa};
use crate::support::{names_loopback_port, require_tools, wait_until, RunDir, EXT};

/// A Kamailio and the run directory; `None` when the tools are missing.
fn ring(test: &str, max_expires: Option<u32>) -> Option<(RunDir, Kamailio)> {
    let tools = require_tools(test, &["kamailio", "kamcmd"])?;
    voice_ua::binary();
    let run = RunDir::new(test);
    let kam = Kamailio::start(&run, &tools, max_expires);
    Some((run, kam))
}

fn start_ua(run: &RunDir, kam: &Kamailio, password: &str) -> VoiceUa {
    VoiceUa::start(
        run,
        &UaConfig {
            pbx_port: kam.port,
            bind_port: free_port(),
            transport: "udp",
            // the password through the environment, not argv
            password: Password::Env(password.to_string()),
            expires: None,
        },
    )
}

fn diag(ua: &VoiceUa, kam: &Kamailio) -> String {
    format!("{}\n{}", ua.diag(), kam.diag())
}

/// The binding of voice-ua's contact (127.0.0.1:<its port>) if present.
fn ua_binding(kam: &Kamailio, ua: &VoiceUa) -> Option<crate::support::kamailio::Binding> {
    kam.bindings(EXT).into_iter().find(|b| names_loopback_port(&b.address, ua.bind_port))
}

/// Drops exact repeats of the previous request (UDP retransmissions).
fn without_retransmissions(seen: &[RegisterSeen]) -> Vec<RegisterSeen> {
    let mut out: Vec<RegisterSeen> = Vec::new();
    for r in seen {
        if out.last() != Some(r) {
            out.push(r.clone());
        }
    }
    out
}

#[test]
fn kamailio_register_binds_contact() {
    let Some((run, kam)) = ring("kamailio_register", None) else {
        return;
    };
    let mut ua = start_ua(&run, &kam, PASSWORD);

    let regs = ua
        .wait_registered(1, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("voice-ua logged no \"registered\" within 10 s\n{}", diag(&ua, &kam)));
    assert!(
        names_loopback_port(&regs[0].contact, ua.bind_port),
        "the logged contact {:?} does not name 127.0.0.1:{}\n{}",
        regs[0].contact,
        ua.bind_port,
        diag(&ua, &kam)
    );

    let binding = wait_until(Duration::from_secs(3), Duration::from_millis(100), || ua_binding(&kam, &ua))
        .unwrap_or_else(|| {
            panic!(
                "Kamailio has no binding for {EXT} at 127.0.0.1:{}; location table: {:?}\n{}",
                ua.bind_port,
                kam.bindings(EXT),
                diag(&ua, &kam)
            )
        });
    assert!(binding.expires > 0);

    // What the registrar saw: a challenged first attempt, then credentials.
    let seen = kam.registers();
    assert!(
        seen.iter().any(|r| r.auth),
        "Kamailio saw no REGISTER with credentials: {seen:?}\n{}",
        diag(&ua, &kam)
    );
    assert!(ua.is_running(), "voice-ua exited: {:?}\n{}", ua.exit_status(), ua.diag());
}

#[test]
fn kamailio_refresh_before_short_expiry() {
    const GRANTED: u64 = 20;
    let Some((run, kam)) = ring("kamailio_refresh", Some(GRANTED as u32)) else {
        return;
    };
    let mut ua = start_ua(&run, &kam, PASSWORD);

    let first = ua
        .wait_registered(1, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("voice-ua logged no \"registered\" within 10 s\n{}", diag(&ua, &kam)));
    let t_first = Instant::now();
    wait_until(Duration::from_secs(3), Duration::from_millis(100), || ua_binding(&kam, &ua)).unwrap_or_else(
        || {
            panic!(
                "voice-ua logged \"registered\" but Kamailio has no binding at 127.0.0.1:{}\n{}",
                ua.bind_port,
                diag(&ua, &kam)
            )
        },
    );
    assert_eq!(
        first[0].expires,
        Some(GRANTED),
        "first registration: Kamailio grants {GRANTED} s (max_expires) but voice-ua logged {:?}\n{}",
        first[0].expires,
        diag(&ua, &kam)
    );

    // Poll the location table every 500 ms for 26 s after the first
    // registration (past the original 20 s expiry plus usrloc's 2 s purge
    // timer): the binding must never be missing.
    let mut seen_count = 1;
    let mut second_at: Option<Duration> = None;
    while t_first.elapsed() < Duration::from_secs(26) {
        if ua_binding(&kam, &ua).is_none() {
            panic!(
                "binding for {EXT} at 127.0.0.1:{} vanished {:.1} s after the first registration \
                 (granted {GRANTED} s): refresh too late or missing; table: {:?}\n{}",
                ua.bind_port,
                t_first.elapsed().as_secs_f64(),
                kam.bindings(EXT),
                diag(&ua, &kam)
            );
        }
        let count = ua.registered().len();
        if count > seen_count {
            if second_at.is_none() {
                second_at = Some(t_first.elapsed());
            }
            seen_count = count;
        }
        assert!(ua.is_running(), "voice-ua exited: {:?}\n{}", ua.exit_status(), ua.diag());
        std::thread::sleep(Duration::from_millis(500));
    }

    let regs = ua.registered();
    assert!(
        regs.len() >= 2,
        "only {} \"registered\" log(s) in {:.0} s with a {GRANTED} s expiry\n{}",
        regs.len(),
        t_first.elapsed().as_secs_f64() + 1.0,
        diag(&ua, &kam)
    );
    // (a refresh logged only after the last poll counts as late)
    let second_at = second_at.unwrap_or_else(|| t_first.elapsed());
    assert!(
        second_at < Duration::from_secs(GRANTED),
        "the refresh was logged {:.1} s after the first registration, not before the {GRANTED} s expiry",
        second_at.as_secs_f64()
    );
    for (i, r) in regs.iter().enumerate() {
        assert_eq!(
            r.expires,
            Some(GRANTED),
            "registration #{} logged expires {:?}, Kamailio grants {GRANTED}\n{}",
            i + 1,
            r.expires,
            ua.diag()
        );
    }

    // One registration dialog: same Call-ID, CSeq strictly increasing.
    let seen = without_retransmissions(&kam.registers());
    assert!(
        seen.iter().filter(|r| r.auth).count() >= 2,
        "Kamailio saw fewer than 2 authenticated REGISTERs: {seen:?}"
    );
    let call_id = &seen[0].call_id;
    for r in &seen {
        assert_eq!(&r.call_id, call_id, "Call-ID changed between REGISTERs: {seen:#?}");
    }
    for pair in seen.windows(2) {
        assert!(
            pair[1].cseq > pair[0].cseq,
            "CSeq not strictly increasing ({} then {}): {seen:#?}",
            pair[0].cseq,
            pair[1].cseq
        );
    }
}

#[test]
fn kamailio_sigterm_unregisters() {
    let Some((run, kam)) = ring("kamailio_sigterm", None) else {
        return;
    };
    let mut ua = start_ua(&run, &kam, PASSWORD);

    ua.wait_registered(1, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("voice-ua logged no \"registered\" within 10 s\n{}", diag(&ua, &kam)));
    wait_until(Duration::from_secs(3), Duration::from_millis(100), || ua_binding(&kam, &ua))
        .unwrap_or_else(|| panic!("no binding in Kamailio before SIGTERM\n{}", diag(&ua, &kam)));

    let sent = Instant::now();
    ua.sigterm();
    let status = ua.wait_exit(Duration::from_secs(2)).unwrap_or_else(|| {
        panic!("voice-ua (pid {}) still running 2 s after SIGTERM\n{}", ua.pid(), diag(&ua, &kam))
    });
    let took = sent.elapsed();
    assert!(status.success(), "voice-ua exited with {status} after SIGTERM (want 0)\n{}", diag(&ua, &kam));

    let left = kam.bindings(EXT);
    assert!(
        left.is_empty(),
        "after SIGTERM ({:.2} s to exit) Kamailio still has bindings for {EXT}: {left:?}\n{}",
        took.as_secs_f64(),
        diag(&ua, &kam)
    );
    assert!(
        kam.registers().iter().any(RegisterSeen::is_removal),
        "Kamailio saw no REGISTER with expires 0\n{}",
        diag(&ua, &kam)
    );
    assert!(
        !ua.events_with("unregistered", Some("INFO")).is_empty(),
        "voice-ua did not log \"unregistered\"\n{}",
        ua.diag()
    );
}

#[test]
fn kamailio_wrong_password_backs_off() {
    const WINDOW: Duration = Duration::from_secs(8);
    let Some((run, kam)) = ring("kamailio_wrong_password", None) else {
        return;
    };
    let started = Instant::now();
    let mut ua = start_ua(&run, &kam, "not-the-password");
    let rejected = format!("PBX rejected the password for {EXT}@");

    let error = wait_until(WINDOW, Duration::from_millis(100), || {
        ua.events_with(&rejected, Some("ERROR")).into_iter().next()
    });
    assert!(error.is_some(), "no ERROR \"{rejected}...\" within {} s\n{}", WINDOW.as_secs(), diag(&ua, &kam));
    // Stay for the whole window: the retry after a rejection must be slow.
    if let Some(rest) = WINDOW.checked_sub(started.elapsed()) {
        std::thread::sleep(rest);
    }

    let seen = without_retransmissions(&kam.registers());
    let with_credentials = seen.iter().filter(|r| r.auth).count();
    assert!(
        with_credentials <= 1,
        "Kamailio saw {with_credentials} REGISTERs carrying (wrong) credentials in {} s; \
         at most 1 allowed (retry must wait minutes): {seen:#?}\n{}",
        WINDOW.as_secs(),
        diag(&ua, &kam)
    );
    assert!(
        with_credentials >= 1,
        "voice-ua reported a rejected password but Kamailio never saw credentials: {seen:#?}\n{}",
        diag(&ua, &kam)
    );
    assert!(
        seen.len() <= 3,
        "{} REGISTERs in {} s after a rejected password: {seen:#?}\n{}",
        seen.len(),
        WINDOW.as_secs(),
        diag(&ua, &kam)
    );
    assert!(
        ua.is_running(),
        "voice-ua exited ({:?}) instead of retrying slowly\n{}",
        ua.exit_status(),
        ua.diag()
    );
    assert!(
        ua.registered().is_empty(),
        "voice-ua logged \"registered\" with a wrong password\n{}",
        ua.diag()
    );
    assert!(
        kam.bindings(EXT).is_empty(),
        "a binding exists for a wrong password: {:?}\n{}",
        kam.bindings(EXT),
        diag(&ua, &kam)
    );

    ua.sigterm();
    ua.wait_exit(Duration::from_secs(3));
}
