//! The registrar core in virtual time: a scripted registrar answers each REGISTER,
//! and time only moves when the test says so.

use super::*;
use crate::message::unfold;

const PW: &str = "s3cret";

fn cfg() -> RegistrarConfig {
    RegistrarConfig {
        extension: "9000".into(),
        domain: "127.0.0.1:5070".into(),
        auth_user: "9000".into(),
        password: PW.into(),
        realm: None,
        transport: Transport::Udp,
        contact: "127.0.0.1:5062".parse().expect("addr"),
        expires: 300,
        retry_max: Duration::from_secs(10),
        follow_nat: true,
        user_agent: "voice-ua-test".into(),
    }
}

struct Harness {
    reg: Registrar,
    now: Instant,
    sent: Vec<String>,
    events: Vec<RegEvent>,
}

impl Harness {
    fn new(cfg: RegistrarConfig) -> Harness {
        let now = Instant::now();
        let mut h = Harness {
            reg: Registrar::new(cfg, IdSource::from_seed(7), now),
            now,
            sent: vec![],
            events: vec![],
        };
        h.reg.handle_timeout(now);
        h.drain();
        h
    }

    fn drain(&mut self) {
        while let Some(t) = self.reg.poll_transmit() {
            self.sent.push(t.text);
        }
        while let Some(e) = self.reg.poll_event() {
            self.events.push(e);
        }
    }

    fn last(&self) -> &str {
        self.sent.last().map(String::as_str).unwrap_or("")
    }

    /// Answer the last request with `status` and extra header lines.
    fn answer(&mut self, status: u16, extra: &[&str]) {
        let resp = response_to(self.last(), status, extra);
        self.reg.handle_response(self.now, &resp);
        self.drain();
    }

    fn advance_to_timeout(&mut self) -> Duration {
        let t = self.reg.poll_timeout().expect("a timeout is set");
        let waited = t.saturating_duration_since(self.now);
        self.now = t.max(self.now);
        self.reg.handle_timeout(self.now);
        self.drain();
        waited
    }

    fn challenge(&mut self) {
        self.answer(
            401,
            &["WWW-Authenticate: Digest realm=\"pbx\", nonce=\"n1\", qop=\"auth\", algorithm=MD5"],
        );
    }
}

fn header<'a>(req: &'a str, name: &str) -> Option<&'a str> {
    req.split("\r\n")
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

fn cseq(req: &str) -> u32 {
    header(req, "CSeq").and_then(|v| v.split(' ').next()).and_then(|n| n.parse().ok()).expect("cseq")
}

fn response_to(req: &str, status: u16, extra: &[&str]) -> ResponseView {
    let mut text = format!("SIP/2.0 {status} Something\r\n");
    for line in unfold(req) {
        let name = line.split(':').next().unwrap_or("");
        if ["Via", "From", "Call-ID", "CSeq"].contains(&name) {
            text.push_str(&line);
            text.push_str("\r\n");
        }
        if name == "To" {
            text.push_str(&format!("{line};tag=reg\r\n"));
        }
    }
    for e in extra {
        text.push_str(e);
        text.push_str("\r\n");
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    ResponseView::parse(text.as_bytes()).expect("valid response")
}

/// A registrar that checks the digest answer the way a PBX does.
fn verify_digest(req: &str, password: &str) -> bool {
    let Some(auth) = header(req, "Authorization") else { return false };
    let get = |k: &str| {
        auth.split(',')
            .map(str::trim)
            .map(|p| p.trim_start_matches("Digest "))
            .find_map(|p| p.strip_prefix(&format!("{k}=")).map(|v| v.trim_matches('"').to_string()))
    };
    let (Some(user), Some(uri), Some(resp), Some(cnonce), Some(nc)) =
        (get("username"), get("uri"), get("response"), get("cnonce"), get("nc"))
    else {
        return false;
    };
    let ch = Challenge::parse("Digest realm=\"pbx\", nonce=\"n1\", qop=\"auth\"").expect("challenge");
    let nc = u32::from_str_radix(&nc, 16).unwrap_or(0);
    resp == digest::response(&ch, &Credentials { username: &user, password }, "REGISTER", &uri, &cnonce, nc)
}

#[test]
fn registers_through_a_challenge_and_refreshes_before_expiry() {
    let mut h = Harness::new(cfg());
    assert_eq!(h.sent.len(), 1);
    let first = h.sent[0].clone();
    assert!(first.starts_with("REGISTER sip:127.0.0.1:5070 SIP/2.0\r\n"), "{first}");
    assert!(header(&first, "Authorization").is_none());
    assert_eq!(header(&first, "Contact"), Some("<sip:9000@127.0.0.1:5062>"));
    assert_eq!(header(&first, "Expires"), Some("300"));
    assert!(header(&first, "Via").is_some_and(|v| v.contains(";rport") && v.contains("127.0.0.1:5062")));
    assert!(h.reg.call_id().ends_with("@127.0.0.1"), "Call-ID names our host: {}", h.reg.call_id());
    h.challenge();
    assert_eq!(h.sent.len(), 2, "the challenge is answered at once");
    assert!(verify_digest(h.last(), PW), "digest answer verifies: {}", h.last());
    h.answer(200, &["Contact: <sip:9000@127.0.0.1:5062>;expires=20"]);
    assert!(h.reg.is_registered(h.now));
    assert_eq!(
        h.events.last(),
        Some(&RegEvent::Registered {
            expires: 20,
            contact: "127.0.0.1:5062".parse().expect("addr"),
            refresh_in: Duration::from_secs(10)
        })
    );
    // The refresh comes at 10 s, well before the 20 s lifetime ends.
    assert_eq!(h.advance_to_timeout(), Duration::from_secs(10));
    assert_eq!(h.sent.len(), 3);
    assert!(h.reg.is_registered(h.now), "still registered while refreshing");
    let call_ids: Vec<_> = h.sent.iter().map(|r| header(r, "Call-ID").map(str::to_string)).collect();
    assert!(call_ids.windows(2).all(|w| w[0] == w[1]), "Call-ID stable: {call_ids:?}");
    let cseqs: Vec<u32> = h.sent.iter().map(|r| cseq(r)).collect();
    assert_eq!(cseqs, vec![1, 2, 3]);
    let tags: Vec<_> = h.sent.iter().map(|r| header(r, "From").map(str::to_string)).collect();
    assert!(tags.windows(2).all(|w| w[0] == w[1]), "From tag stable");
    let branches: std::collections::HashSet<_> =
        h.sent.iter().map(|r| header(r, "Via").map(str::to_string)).collect();
    assert_eq!(branches.len(), 3, "every request has its own branch");
}

#[test]
fn follows_the_lifetime_the_registrar_grants() {
    let mut h = Harness::new(cfg());
    h.answer(200, &["Expires: 3600"]);
    assert_eq!(h.advance_to_timeout(), Duration::from_secs(2700));
    // Our binding's own expires wins over the Expires header and other devices' bindings.
    h.answer(
        200,
        &[
            "Contact: <sip:9001@10.1.1.1:5060>;expires=999, <sip:9000@127.0.0.1:5062>;expires=60",
            "Expires: 3600",
        ],
    );
    assert_eq!(h.advance_to_timeout(), Duration::from_secs(30));
    // Nothing said at all: what we asked for.
    h.answer(200, &[]);
    assert_eq!(h.advance_to_timeout(), Duration::from_secs(225));
}

#[test]
fn refresh_schedule_keeps_a_transaction_timeout_of_margin() {
    assert_eq!(refresh_in(20), Duration::from_secs(10));
    assert_eq!(refresh_in(60), Duration::from_secs(30));
    assert_eq!(refresh_in(120), Duration::from_secs(88));
    assert_eq!(refresh_in(300), Duration::from_secs(225));
    assert_eq!(refresh_in(3600), Duration::from_secs(2700));
    assert_eq!(refresh_in(1), Duration::from_secs(1));
    for g in 1..10_000u32 {
        let r = refresh_in(g).as_secs();
        assert!(r >= 1 && (r < u64::from(g) || g == 1), "granted {g} refresh {r}");
    }
}

#[test]
fn interval_too_brief_retries_with_min_expires() {
    let mut h = Harness::new(cfg());
    h.answer(423, &["Min-Expires: 600"]);
    assert_eq!(h.sent.len(), 2, "asks again at once");
    assert_eq!(header(h.last(), "Expires"), Some("600"));
    assert!(h.events.contains(&RegEvent::IntervalTooBrief { min_expires: 600 }));
    h.challenge();
    assert_eq!(header(h.last(), "Expires"), Some("600"), "the challenge answer keeps it");
    h.answer(200, &["Contact: <sip:9000@127.0.0.1:5062>;expires=600"]);
    assert!(h.reg.is_registered(h.now));
    // A 423 without a usable Min-Expires is a plain failure, not a loop.
    let mut h = Harness::new(cfg());
    h.answer(423, &[]);
    assert_eq!(h.sent.len(), 1);
    assert!(matches!(h.events.last(), Some(RegEvent::Failed { .. })));
}

#[test]
fn wrong_password_is_reported_and_retried_slowly() {
    let mut h = Harness::new(cfg());
    h.challenge();
    h.challenge();
    assert_eq!(
        h.events.last(),
        Some(&RegEvent::CredentialsRejected { status: 401, retry_in: Duration::from_secs(120) })
    );
    assert_eq!(h.sent.len(), 2, "no immediate retry after a refusal");
    assert_eq!(h.advance_to_timeout(), Duration::from_secs(120));
    // 403 is a refusal too.
    h.answer(403, &[]);
    assert_eq!(
        h.events.last(),
        Some(&RegEvent::CredentialsRejected { status: 403, retry_in: Duration::from_secs(300) })
    );
}

#[test]
fn rejected_attempts_stay_below_fail2ban_in_any_ten_minutes() {
    // A registrar that always refuses the password, for six hours of virtual time.
    let mut h = Harness::new(cfg());
    let start = h.now;
    let mut credentialed = Vec::new();
    while h.now < start + Duration::from_secs(6 * 3600) {
        if header(h.last(), "Authorization").is_some() {
            credentialed.push(h.now);
            h.challenge(); // refused
            h.advance_to_timeout();
        } else {
            h.challenge(); // answered at once
        }
    }
    assert!(credentialed.len() >= 30, "kept trying: {}", credentialed.len());
    for (i, t) in credentialed.iter().enumerate() {
        let in_window = credentialed[i..].iter().take_while(|u| **u < *t + Duration::from_secs(600)).count();
        assert!(in_window <= 3, "{in_window} rejected attempts within 10 minutes");
    }
}

#[test]
fn network_loss_backs_off_to_the_cap_and_recovers() {
    let mut h = Harness::new(cfg());
    h.answer(200, &["Contact: <sip:9000@127.0.0.1:5062>;expires=60"]);
    assert_eq!(h.advance_to_timeout(), Duration::from_secs(30));
    let mut waits = vec![];
    for _ in 0..8 {
        h.reg.handle_no_response(h.now, Failure::NoResponse);
        h.drain();
        waits.push(h.advance_to_timeout().as_secs());
    }
    // The binding lapsed at 60 s: a timeout fired at that moment and reported it.
    assert!(h.events.contains(&RegEvent::Lapsed));
    assert!(!h.reg.is_registered(h.now));
    assert_eq!(&waits[..4], &[1, 2, 4, 8]);
    assert!(waits[4..].iter().all(|w| *w <= 10), "capped at retry_max: {waits:?}");
    let before = h.sent.len();
    h.answer(200, &["Contact: <sip:9000@127.0.0.1:5062>;expires=60"]);
    assert!(h.reg.is_registered(h.now), "back as soon as the PBX answers");
    assert_eq!(h.sent.len(), before);
    // The back-off starts again from 1 s after a success.
    assert_eq!(h.advance_to_timeout(), Duration::from_secs(30));
    h.reg.handle_no_response(h.now, Failure::Transport("refused".into()));
    h.drain();
    assert_eq!(h.advance_to_timeout(), Duration::from_secs(1));
}

#[test]
fn server_errors_honour_retry_after() {
    let mut h = Harness::new(cfg());
    h.answer(503, &["Retry-After: 30"]);
    assert_eq!(h.advance_to_timeout(), Duration::from_secs(30));
    h.answer(503, &["Retry-After: 99999"]);
    assert_eq!(h.advance_to_timeout(), Duration::from_secs(600), "capped");
    h.answer(500, &[]);
    assert_eq!(h.advance_to_timeout(), Duration::from_secs(4), "third failure in a row");
}

#[test]
fn stale_nonce_is_answered_again_without_counting_as_a_refusal() {
    let mut h = Harness::new(cfg());
    h.challenge();
    h.answer(401, &["WWW-Authenticate: Digest realm=\"pbx\", nonce=\"n2\", stale=true, qop=\"auth\""]);
    assert_eq!(h.sent.len(), 3);
    assert!(header(h.last(), "Authorization").is_some_and(|a| a.contains("nonce=\"n2\"")));
    assert!(!h.events.iter().any(|e| matches!(e, RegEvent::CredentialsRejected { .. })));
}

#[test]
fn nat_rewrite_reregisters_with_the_seen_address_and_removes_the_old_binding() {
    let mut h = Harness::new(cfg());
    let seen: SocketAddr = "203.0.113.5:40000".parse().expect("addr");
    // The registrar fills received/rport in the top Via.
    let via = "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKx;rport=40000;received=203.0.113.5";
    let raw = format!(
        "SIP/2.0 200 OK\r\nVia: {via}\r\nCSeq: 1 REGISTER\r\nContact: <sip:9000@127.0.0.1:5062>;expires=300\r\n\r\n"
    );
    let resp = ResponseView::parse(raw.as_bytes()).expect("valid");
    h.reg.handle_response(h.now, &resp);
    h.drain();
    assert!(h
        .events
        .contains(&RegEvent::ContactCorrected { from: "127.0.0.1:5062".parse().expect("a"), to: seen }));
    assert_eq!(h.sent.len(), 2, "re-registers at once");
    assert_eq!(
        header(h.last(), "Contact"),
        Some("<sip:9000@127.0.0.1:5062>;expires=0, <sip:9000@203.0.113.5:40000>")
    );
    h.answer(200, &["Contact: <sip:9000@203.0.113.5:40000>;expires=300"]);
    assert_eq!(h.advance_to_timeout(), Duration::from_secs(225));
    assert_eq!(header(h.last(), "Contact"), Some("<sip:9000@203.0.113.5:40000>"), "stale binding gone");
}

#[test]
fn unregister_sends_expires_zero_through_a_challenge_then_stops() {
    let mut h = Harness::new(cfg());
    h.answer(200, &[]);
    h.reg.unregister(h.now);
    h.drain();
    assert_eq!(header(h.last(), "Expires"), Some("0"));
    h.challenge();
    assert!(verify_digest(h.last(), PW));
    assert_eq!(header(h.last(), "Expires"), Some("0"));
    h.answer(200, &[]);
    assert_eq!(h.events.last(), Some(&RegEvent::Unregistered));
    assert!(h.reg.is_stopped());
    assert_eq!(h.reg.poll_timeout(), None);
    h.reg.handle_timeout(h.now + Duration::from_secs(3600));
    h.drain();
    assert_eq!(h.sent.len(), 3, "nothing after stopping");
}

#[test]
fn unregister_before_anything_was_sent_sends_nothing() {
    let now = Instant::now();
    let mut reg = Registrar::new(cfg(), IdSource::from_seed(1), now);
    reg.unregister(now);
    assert!(reg.is_stopped());
    assert_eq!(reg.poll_transmit(), None);
}

#[test]
fn no_unregister_when_no_binding_can_exist_or_the_password_is_refused() {
    // Never registered: the PBX holds nothing of ours.
    let mut h = Harness::new(cfg());
    h.challenge();
    h.reg.unregister(h.now);
    h.drain();
    assert_eq!(h.sent.len(), 2, "no Expires: 0 after a request that never succeeded");
    assert!(h.reg.is_stopped());
    // Registered, then the password stopped working: another refused attempt would
    // only count towards Fail2Ban, and the binding lapses by itself.
    let mut h = Harness::new(cfg());
    h.answer(200, &[]);
    h.advance_to_timeout();
    h.challenge();
    h.challenge();
    assert!(matches!(h.events.last(), Some(RegEvent::CredentialsRejected { .. })));
    let before = h.sent.len();
    h.reg.unregister(h.now);
    h.drain();
    assert_eq!(h.sent.len(), before);
    assert!(h.reg.is_stopped());
}

#[test]
fn stray_and_provisional_responses_are_ignored() {
    let mut h = Harness::new(cfg());
    h.answer(100, &[]);
    assert!(h.events.is_empty());
    let stray = ResponseView::parse(b"SIP/2.0 200 OK\r\nCSeq: 99 REGISTER\r\n\r\n").expect("valid");
    h.reg.handle_response(h.now, &stray);
    h.drain();
    assert!(h.events.is_empty());
    assert!(!h.reg.is_registered(h.now));
    h.answer(200, &[]);
    assert!(h.reg.is_registered(h.now));
}

#[test]
fn realm_mismatch_and_unusable_challenges_are_refusals_with_a_reason() {
    let mut h = Harness::new(RegistrarConfig { realm: Some("ucm".into()), ..cfg() });
    h.challenge();
    assert!(
        matches!(h.events.last(), Some(RegEvent::Refused { status: 401, reason, .. }) if reason.contains("realm \"pbx\""))
    );
    let mut h = Harness::new(cfg());
    h.answer(401, &["WWW-Authenticate: Basic realm=\"x\""]);
    assert!(matches!(h.events.last(), Some(RegEvent::Refused { .. })));
    assert_eq!(h.sent.len(), 1);
}

#[test]
fn proxy_challenges_get_proxy_authorization_and_tcp_is_marked() {
    let mut h = Harness::new(RegistrarConfig { transport: Transport::Tcp, ..cfg() });
    assert!(h.last().starts_with("REGISTER sip:127.0.0.1:5070;transport=tcp SIP/2.0"));
    assert!(header(h.last(), "Via").is_some_and(|v| v.starts_with("SIP/2.0/TCP ")));
    assert_eq!(header(h.last(), "Contact"), Some("<sip:9000@127.0.0.1:5062;transport=tcp>"));
    h.answer(407, &["Proxy-Authenticate: Digest realm=\"pbx\", nonce=\"n1\""]);
    assert!(header(h.last(), "Proxy-Authorization").is_some());
}

proptest::proptest! {
    /// Whatever the registrar answers, in whatever order, the core never panics,
    /// keeps one Call-ID, and its CSeq only grows.
    #[test]
    fn any_answer_sequence_is_survived(steps in proptest::collection::vec((0usize..12, 0u64..400), 1..60)) {
        let mut h = Harness::new(cfg());
        for (kind, secs) in steps {
            match kind {
                0 => h.answer(200, &["Contact: <sip:9000@127.0.0.1:5062>;expires=20"]),
                1 => h.challenge(),
                2 => h.answer(423, &["Min-Expires: 900"]),
                3 => h.answer(403, &[]),
                4 => h.answer(503, &["Retry-After: 5"]),
                5 => { h.reg.handle_no_response(h.now, Failure::NoResponse); h.drain(); }
                6 => h.answer(180, &[]),
                7 => h.answer(302, &["Contact: <sip:elsewhere>"]),
                8 => h.answer(200, &["Contact: garbage;;;=", "Expires: x"]),
                9 => h.answer(401, &["WWW-Authenticate: Digest"]),
                _ => {
                    h.now += Duration::from_secs(secs);
                    h.reg.handle_timeout(h.now);
                    h.drain();
                }
            }
        }
        let ids: std::collections::HashSet<_> = h.sent.iter().map(|r| header(r, "Call-ID").map(str::to_string)).collect();
        proptest::prop_assert_eq!(ids.len(), 1);
        let cseqs: Vec<u32> = h.sent.iter().map(|r| cseq(r)).collect();
        proptest::prop_assert!(cseqs.windows(2).all(|w| w[0] < w[1]));
        // Never stuck: either a request is in flight or a timeout is scheduled.
        proptest::prop_assert!(h.reg.in_flight.is_some() || h.reg.poll_timeout().is_some());
    }
}
