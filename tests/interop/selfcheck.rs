//! Self-checks of the ring without voice-ua: sipp plays the UA against the
//! Kamailio config and the sipp registrar scenarios, so a failure in
//! `register_kamailio` / `register_sipp` points at voice-ua, not at the
//! peers or the harness. Each peer must also *reject* a wrong UA, proving
//! the voice-ua tests can fail. (No SHA-256 self-check: sipp 3.6.1 cannot
//! answer a SHA-256 challenge; the digest check has a unit test instead.)

use std::time::Duration;

use crate::support::kamailio::{Kamailio, PASSWORD as KAM_PASSWORD};
use crate::support::ports::free_port;
use crate::support::sipp::{Sipp, Transport};
use crate::support::{names_loopback_port, require_tools, wait_until, RunDir, EXT};

#[test]
fn selfcheck_kamailio_registrar_with_sipp_uac() {
    let Some(tools) = require_tools("selfcheck_kamailio", &["kamailio", "kamcmd", "sipp"]) else {
        return;
    };
    let run = RunDir::new("selfcheck_kamailio");
    let kam = Kamailio::start(&run, &tools, Some(20));
    let sipp = tools.get("sipp");
    let uac_port = free_port();
    let uac = |label: &str, password: &str, expires: &str| {
        Sipp::run_uac(
            &run,
            sipp,
            label,
            "selfcheck/uac_register.xml",
            Transport::Udp,
            (uac_port, kam.port),
            &["-au", EXT, "-ap", password, "-s", EXT, "-key", "expires", expires],
        )
    };

    let (status, uac_ok) = uac("uac-good", KAM_PASSWORD, "3600");
    assert!(status.success(), "sipp UAC failed to register\n{}\n{}", uac_ok.diag(), kam.diag());
    let binding = kam
        .bindings(EXT)
        .into_iter()
        .find(|b| names_loopback_port(&b.address, uac_port))
        .unwrap_or_else(|| panic!("no binding after a good REGISTER\n{}", kam.diag()));
    assert!((1..=20).contains(&binding.expires), "max_expires 20 not applied: {binding:?}");
    let seen = kam.registers();
    assert_eq!(seen.len(), 2, "expected challenge + authenticated REGISTER: {seen:?}");
    assert!(!seen[0].auth && seen[1].auth, "{seen:?}");
    assert_eq!(seen[1].cseq, seen[0].cseq + 1, "{seen:?}");

    let (status, uac_bad) = uac("uac-wrong-password", "wrong", "3600");
    assert!(!status.success(), "Kamailio accepted a wrong password\n{}\n{}", uac_bad.diag(), kam.diag());
    assert!(!kam.tagged_lines("INTEROP-AUTHFAIL").is_empty(), "no INTEROP-AUTHFAIL line\n{}", kam.diag());

    let (status, uac_rm) = uac("uac-unregister", KAM_PASSWORD, "0");
    assert!(status.success(), "un-REGISTER failed\n{}\n{}", uac_rm.diag(), kam.diag());
    assert!(
        kam.registers().iter().any(|r| r.is_removal()),
        "the removal REGISTER is not recognised: {:?}",
        kam.registers()
    );
    let gone = wait_until(Duration::from_secs(2), Duration::from_millis(100), || {
        kam.bindings(EXT).is_empty().then_some(())
    });
    assert!(gone.is_some(), "binding left after Expires: 0: {:?}", kam.bindings(EXT));
}

#[test]
fn selfcheck_sipp_registrars_with_sipp_uac() {
    let Some(tools) = require_tools("selfcheck_sipp", &["sipp"]) else {
        return;
    };
    let run = RunDir::new("selfcheck_sipp");
    let sipp = tools.get("sipp");
    let pw = "selfcheck-pw";
    // (registrar scenario, UA scenario, transport, UA args, must succeed)
    let cases: &[(&str, &str, Transport, &[&str], bool)] = &[
        (
            "reg_401_200.xml",
            "selfcheck/uac_register.xml",
            Transport::Udp,
            &["-ap", pw, "-key", "expires", "3600"],
            true,
        ),
        (
            "reg_401_200.xml",
            "selfcheck/uac_register.xml",
            Transport::Tcp,
            &["-ap", pw, "-key", "expires", "3600"],
            true,
        ),
        (
            "reg_401_200.xml",
            "selfcheck/uac_register.xml",
            Transport::Udp,
            &["-ap", "wrong", "-key", "expires", "3600"],
            false,
        ),
        (
            "reg_423.xml",
            "selfcheck/uac_register_423.xml",
            Transport::Udp,
            &["-ap", pw, "-key", "e1", "300", "-key", "e2", "600"],
            true,
        ),
        (
            "reg_423.xml",
            "selfcheck/uac_register_423.xml",
            Transport::Udp,
            &["-ap", pw, "-key", "e1", "300", "-key", "e2", "300"],
            false,
        ),
        (
            "reg_423.xml",
            "selfcheck/uac_register_423.xml",
            Transport::Udp,
            &["-ap", pw, "-key", "e1", "3600", "-key", "e2", "600"],
            false,
        ),
        (
            "reg_423.xml",
            "selfcheck/uac_register_423.xml",
            Transport::Udp,
            &["-ap", "wrong", "-key", "e1", "300", "-key", "e2", "600"],
            false,
        ),
    ];
    for (i, (registrar, ua_scenario, transport, ua_args, must_pass)) in cases.iter().enumerate() {
        let case = format!("case {i}: {registrar} vs {ua_scenario} over {transport:?} {ua_args:?}");
        let mut uas =
            Sipp::start_uas(&run, sipp, registrar, *transport, &[("auth_user", EXT), ("auth_pw", pw)]);
        let mut args = vec!["-au", EXT, "-s", EXT];
        args.extend_from_slice(ua_args);
        let (_, uac) = Sipp::run_uac(
            &run,
            sipp,
            &format!("uac-{i}"),
            ua_scenario,
            *transport,
            (free_port(), uas.port),
            &args,
        );
        let status = uas
            .wait(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{case}: registrar did not finish\n{}\n{}", uas.diag(), uac.diag()));
        assert_eq!(
            status.success(),
            *must_pass,
            "{case}: registrar exit {status}, expected success={must_pass}\n{}\n{}",
            uas.diag(),
            uac.diag()
        );
    }
}
