//! The registration state machine (sans-IO): which REGISTER to send and when, what
//! each answer means, and how long to wait after a failure. It owns the Call-ID, the
//! CSeq counter, the advertised Contact and the retry policy; the shell only carries
//! requests out (`poll_transmit`), answers in (`handle_response`,
//! `handle_no_response`) and wakes it at `poll_timeout`.
//!
//! Retry policy, designed for an Asterisk/UCM registrar:
//! * no answer, transport error, 408/5xx/6xx: back off 1 s, 2 s, 4 s … capped at
//!   `retry_max` (default 10 s), or longer if the PBX sent `Retry-After`;
//! * credentials refused (401/407 after we answered a challenge, or 403), or another
//!   permanent refusal (404, realm mismatch…): 2 min, then 5 min, then every 10 min,
//!   so at most 3 rejected attempts fall in any 10-minute window — below the UCM's
//!   Fail2Ban threshold of 5;
//! * 423: ask again at once with the registrar's `Min-Expires`;
//! * refresh at 75 % of the granted lifetime, but at least 32 s (one full transaction
//!   timeout) before it lapses, and never later than half of it.

use crate::digest::{self, Challenge, Credentials};
use crate::ids::IdSource;
use crate::message::{via_source, NameAddr, ResponseView, UriTarget};
use crate::settings::Transport;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Methods voice-ua accepts, for Allow headers.
pub const ALLOWED_METHODS: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY";

/// Back-off after the PBX refused us for a reason a retry will not fix by itself.
const REFUSAL_BACKOFF: [Duration; 3] =
    [Duration::from_secs(120), Duration::from_secs(300), Duration::from_secs(600)];
/// Largest Retry-After or Min-Expires we take from a PBX.
const MAX_RETRY_AFTER: u32 = 600;
const MAX_MIN_EXPIRES: u32 = 86_400;

/// What the registrar core needs; the shell derives it from `SipSettings`.
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    pub extension: String,
    /// host[:port] of the registrar, used in the Request-URI and the AOR.
    pub domain: String,
    pub auth_user: String,
    pub password: String,
    pub realm: Option<String>,
    pub transport: Transport,
    /// The address advertised in Via and Contact.
    pub contact: SocketAddr,
    pub expires: u32,
    pub retry_max: Duration,
    pub follow_nat: bool,
    pub user_agent: String,
}

/// A REGISTER to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRegister {
    pub cseq: u32,
    /// The complete request, ready for the wire.
    pub text: String,
}

/// Why an attempt failed in a way a retry may fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    NoResponse,
    Transport(String),
    Status(u16, String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NoResponse => write!(f, "no answer from the PBX"),
            Failure::Transport(e) => write!(f, "network error: {e}"),
            Failure::Status(code, reason) => write!(f, "PBX answered {code} {reason}"),
        }
    }
}

/// Things the shell should log or act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegEvent {
    Registered {
        expires: u32,
        contact: SocketAddr,
        refresh_in: Duration,
    },
    /// The registrar saw us at another address; re-registering with it.
    ContactCorrected {
        from: SocketAddr,
        to: SocketAddr,
    },
    /// 423: asking again with a longer lifetime.
    IntervalTooBrief {
        min_expires: u32,
    },
    /// The PBX refused the password (401/407 to our answer, or 403).
    CredentialsRejected {
        status: u16,
        retry_in: Duration,
    },
    /// The PBX refused for another reason a quick retry will not fix.
    Refused {
        status: u16,
        reason: String,
        retry_in: Duration,
    },
    /// A failure a retry may fix.
    Failed {
        why: Failure,
        retry_in: Duration,
    },
    /// The binding expired without a successful refresh.
    Lapsed,
    Unregistered,
    UnregisterFailed {
        why: Failure,
    },
}

#[derive(Debug, Clone)]
struct InFlight {
    cseq: u32,
    expires: u32,
    /// The request answered a challenge.
    authed: bool,
    stale_retries: u8,
    unregister: bool,
    /// The contact this request registered.
    contact: SocketAddr,
    /// The request also removed this stale contact.
    removed: Option<SocketAddr>,
}

/// The registration state machine for one extension.
#[derive(Debug)]
pub struct Registrar {
    cfg: RegistrarConfig,
    ids: IdSource,
    call_id: String,
    from_tag: String,
    cseq: u32,
    contact: SocketAddr,
    /// A contact we registered before the registrar told us our real address.
    stale_contact: Option<SocketAddr>,
    expires: u32,
    in_flight: Option<InFlight>,
    next_attempt: Option<Instant>,
    registered_until: Option<Instant>,
    transient_failures: u32,
    refusals: u32,
    interval_retries: u8,
    /// A REGISTER of ours was accepted at least once (there may be a binding to remove).
    ever_registered: bool,
    /// The last final answer refused our credentials (an un-register would only add a
    /// failure to the PBX's count).
    credentials_refused: bool,
    stopped: bool,
    transmit: VecDeque<OutgoingRegister>,
    events: VecDeque<RegEvent>,
}

impl Registrar {
    /// A registrar that sends its first REGISTER at the first `handle_timeout`.
    pub fn new(cfg: RegistrarConfig, mut ids: IdSource, now: Instant) -> Registrar {
        let host = match cfg.contact.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let call_id = format!("{}@{host}", ids.hex(2));
        let from_tag = ids.hex(1);
        Registrar {
            contact: cfg.contact,
            expires: cfg.expires,
            cfg,
            ids,
            call_id,
            from_tag,
            cseq: 0,
            stale_contact: None,
            in_flight: None,
            next_attempt: Some(now),
            registered_until: None,
            transient_failures: 0,
            refusals: 0,
            interval_retries: 0,
            ever_registered: false,
            credentials_refused: false,
            stopped: false,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    #[cfg(test)]
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn contact(&self) -> SocketAddr {
        self.contact
    }

    /// Whether the PBX holds a live binding for us at `now`.
    pub fn is_registered(&self, now: Instant) -> bool {
        self.registered_until.is_some_and(|t| t > now)
    }

    #[cfg(test)]
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// When `handle_timeout` wants to run next (None while a request is in flight,
    /// where the shell's transaction timeout applies, and once stopped).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped || self.in_flight.is_some() {
            return None;
        }
        match (self.next_attempt, self.registered_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<OutgoingRegister> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<RegEvent> {
        self.events.pop_front()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.stopped {
            return;
        }
        if self.registered_until.is_some_and(|t| t <= now) {
            self.registered_until = None;
            self.events.push_back(RegEvent::Lapsed);
        }
        if self.in_flight.is_none() && self.next_attempt.is_some_and(|t| t <= now) {
            self.next_attempt = None;
            self.send(None, 0, false);
        }
    }

    /// Start un-registering (Expires: 0). Abandons any request in flight. Once the
    /// answer arrives (or `handle_no_response`), the registrar is stopped.
    pub fn unregister(&mut self, _now: Instant) {
        if self.stopped {
            return;
        }
        self.in_flight = None;
        self.next_attempt = None;
        self.transmit.clear();
        if !self.ever_registered || self.credentials_refused {
            // No binding of ours can exist, or the PBX would refuse us again: send nothing.
            self.stopped = true;
            self.registered_until = None;
            return;
        }
        self.send(None, 0, true);
    }

    /// No final answer arrived for the request in flight.
    pub fn handle_no_response(&mut self, now: Instant, why: Failure) {
        let Some(f) = self.in_flight.take() else { return };
        if f.unregister {
            self.stop_unregister(Some(why));
            return;
        }
        self.retry_soon(now, why, None);
    }

    /// A response arrived (the shell hands over every response of our transactions).
    pub fn handle_response(&mut self, now: Instant, resp: &ResponseView) {
        let Some(f) = &self.in_flight else { return };
        match resp.cseq() {
            Some((n, m)) if n == f.cseq && m.eq_ignore_ascii_case("REGISTER") => {}
            _ => return,
        }
        if resp.status < 200 {
            return;
        }
        let Some(f) = self.in_flight.take() else { return };
        self.credentials_refused = false;
        self.learn_public_address(resp, &f);
        match resp.status {
            200..=299 => self.on_success(now, resp, &f),
            401 | 407 => self.on_challenge(now, resp, f),
            423 if !f.unregister => self.on_interval_too_brief(now, resp, &f),
            _ if f.unregister => {
                self.stop_unregister(Some(Failure::Status(resp.status, resp.reason.clone())))
            }
            403 => self.refused(now, resp.status, None),
            404 => self.refused(now, 404, Some("the PBX does not know this extension".to_string())),
            408 | 480 | 500..=699 => {
                let after = resp.seconds("Retry-After");
                self.retry_soon(now, Failure::Status(resp.status, resp.reason.clone()), after)
            }
            _ => self.refused(now, resp.status, Some(resp.reason.clone())),
        }
    }

    fn on_success(&mut self, now: Instant, resp: &ResponseView, f: &InFlight) {
        if f.unregister {
            self.stop_unregister(None);
            return;
        }
        let granted = self.granted_expires(resp, f);
        if granted == 0 {
            self.retry_soon(now, Failure::Status(resp.status, "the registrar kept no binding".into()), None);
            return;
        }
        if f.removed.is_some() && f.removed == self.stale_contact {
            self.stale_contact = None;
        }
        self.transient_failures = 0;
        self.refusals = 0;
        self.interval_retries = 0;
        self.ever_registered = true;
        self.registered_until = Some(now + Duration::from_secs(u64::from(granted)));
        let refresh_in = refresh_in(granted);
        self.events.push_back(RegEvent::Registered { expires: granted, contact: f.contact, refresh_in });
        if self.contact != f.contact {
            // The registrar showed us our real address: register it right away.
            self.next_attempt = Some(now);
            self.handle_timeout(now);
        } else {
            self.next_attempt = Some(now + refresh_in);
        }
    }

    fn on_challenge(&mut self, now: Instant, resp: &ResponseView, f: InFlight) {
        let header = if resp.status == 407 { "Proxy-Authenticate" } else { "WWW-Authenticate" };
        let challenge = match Challenge::choose(resp.header_lines(header)) {
            Ok(c) => c,
            Err(e) => {
                if f.unregister {
                    return self.stop_unregister(Some(Failure::Status(resp.status, e.to_string())));
                }
                return self.refused(now, resp.status, Some(format!("unusable challenge: {e}")));
            }
        };
        if let Some(realm) = &self.cfg.realm {
            if *realm != challenge.realm {
                let why = format!(
                    "the PBX asks for realm \"{}\" but the configuration says \"{realm}\"",
                    challenge.realm
                );
                if f.unregister {
                    return self.stop_unregister(Some(Failure::Status(resp.status, why)));
                }
                return self.refused(now, resp.status, Some(why));
            }
        }
        if f.authed && !(challenge.stale && f.stale_retries < 2) {
            if f.unregister {
                return self
                    .stop_unregister(Some(Failure::Status(resp.status, "credentials refused".into())));
            }
            self.refusals += 1;
            self.credentials_refused = true;
            let retry_in = self.refusal_backoff();
            self.next_attempt = Some(now + retry_in);
            self.events.push_back(RegEvent::CredentialsRejected { status: resp.status, retry_in });
            return;
        }
        let stale_retries = if f.authed { f.stale_retries + 1 } else { 0 };
        let expires = if f.unregister { 0 } else { f.expires };
        self.send_with(Some((&challenge, resp.status)), expires, f.unregister, stale_retries);
    }

    fn on_interval_too_brief(&mut self, now: Instant, resp: &ResponseView, f: &InFlight) {
        match resp.seconds("Min-Expires") {
            Some(min) if min > f.expires && min <= MAX_MIN_EXPIRES && self.interval_retries < 3 => {
                self.interval_retries += 1;
                self.expires = min;
                self.events.push_back(RegEvent::IntervalTooBrief { min_expires: min });
                self.send(None, 0, false);
            }
            _ => self.retry_soon(
                now,
                Failure::Status(423, "Interval Too Brief without a usable Min-Expires".into()),
                None,
            ),
        }
    }

    /// Learn our address as the registrar saw it (RFC 3581), UDP only: over TCP the
    /// source port is the connection's, not where we listen.
    fn learn_public_address(&mut self, resp: &ResponseView, f: &InFlight) {
        if !self.cfg.follow_nat || self.cfg.transport != Transport::Udp || f.unregister {
            return;
        }
        let Some(seen) = resp.header("Via").and_then(via_source) else { return };
        if seen != self.contact {
            self.events.push_back(RegEvent::ContactCorrected { from: self.contact, to: seen });
            if (200..300).contains(&resp.status) {
                // The request created a binding at the wrong address: remove it.
                self.stale_contact = Some(self.contact);
            }
            self.contact = seen;
        }
    }

    /// The lifetime the registrar granted to the contact we sent.
    fn granted_expires(&self, resp: &ResponseView, f: &InFlight) -> u32 {
        let contacts: Vec<NameAddr> = resp.header_values("Contact").filter_map(NameAddr::parse).collect();
        let ours = contacts.iter().find(|c| {
            UriTarget::parse(&c.uri)
                .is_some_and(|t| t.is_at(f.contact) && t.user.as_deref() == Some(self.cfg.extension.as_str()))
        });
        let from_contact = ours
            .or(if contacts.len() == 1 { contacts.first() } else { None })
            .and_then(|c| c.param("expires"))
            .and_then(|v| v.parse().ok());
        from_contact.or_else(|| resp.seconds("Expires")).unwrap_or(f.expires)
    }

    fn retry_soon(&mut self, now: Instant, why: Failure, retry_after: Option<u32>) {
        self.transient_failures = self.transient_failures.saturating_add(1);
        let exp = self.transient_failures.saturating_sub(1).min(16);
        let mut delay = Duration::from_secs(1u64 << exp).min(self.cfg.retry_max);
        if let Some(after) = retry_after {
            delay = delay.max(Duration::from_secs(u64::from(after.min(MAX_RETRY_AFTER))));
        }
        self.next_attempt = Some(now + delay);
        self.events.push_back(RegEvent::Failed { why, retry_in: delay });
    }

    fn refused(&mut self, now: Instant, status: u16, reason: Option<String>) {
        self.refusals += 1;
        let retry_in = self.refusal_backoff();
        self.next_attempt = Some(now + retry_in);
        self.credentials_refused = reason.is_none();
        self.events.push_back(match reason {
            None => RegEvent::CredentialsRejected { status, retry_in },
            Some(reason) => RegEvent::Refused { status, reason, retry_in },
        });
    }

    fn refusal_backoff(&self) -> Duration {
        let i = (self.refusals.max(1) - 1) as usize;
        REFUSAL_BACKOFF[i.min(REFUSAL_BACKOFF.len() - 1)]
    }

    fn stop_unregister(&mut self, failure: Option<Failure>) {
        self.stopped = true;
        self.registered_until = None;
        self.next_attempt = None;
        self.events.push_back(match failure {
            None => RegEvent::Unregistered,
            Some(why) => RegEvent::UnregisterFailed { why },
        });
    }

    fn send(&mut self, challenge: Option<(&Challenge, u16)>, stale_retries: u8, unregister: bool) {
        let expires = if unregister { 0 } else { self.expires };
        self.send_with(challenge, expires, unregister, stale_retries);
    }

    fn send_with(
        &mut self,
        challenge: Option<(&Challenge, u16)>,
        expires: u32,
        unregister: bool,
        stale_retries: u8,
    ) {
        self.cseq += 1;
        let tcp = self.cfg.transport == Transport::Tcp;
        let ruri = format!("sip:{}{}", self.cfg.domain, if tcp { ";transport=tcp" } else { "" });
        let contact_uri = |addr: SocketAddr| {
            format!("<sip:{}@{addr}{}>", self.cfg.extension, if tcp { ";transport=tcp" } else { "" })
        };
        let removed = if unregister { None } else { self.stale_contact };
        let mut contact_value = contact_uri(self.contact);
        if let Some(old) = removed {
            contact_value = format!("{};expires=0, {contact_value}", contact_uri(old));
        }
        let mut req = format!(
            "REGISTER {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/{} {};branch=z9hG4bK{};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{ext}@{dom}>;tag={}\r\n\
             To: <sip:{ext}@{dom}>\r\n\
             Call-ID: {}\r\n\
             CSeq: {} REGISTER\r\n\
             Contact: {contact_value}\r\n\
             Expires: {expires}\r\n\
             Allow: {ALLOWED_METHODS}\r\n\
             User-Agent: {}\r\n",
            if tcp { "TCP" } else { "UDP" },
            self.contact,
            self.ids.hex(1),
            self.from_tag,
            self.call_id,
            self.cseq,
            self.cfg.user_agent,
            ext = self.cfg.extension,
            dom = self.cfg.domain,
        );
        if let Some((ch, status)) = challenge {
            let cnonce = self.ids.hex(1);
            let cred = Credentials { username: &self.cfg.auth_user, password: &self.cfg.password };
            let value = digest::authorization(ch, &cred, "REGISTER", &ruri, &cnonce, 1);
            let name = if status == 407 { "Proxy-Authorization" } else { "Authorization" };
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str("Content-Length: 0\r\n\r\n");
        self.in_flight = Some(InFlight {
            cseq: self.cseq,
            expires,
            authed: challenge.is_some(),
            stale_retries,
            unregister,
            contact: self.contact,
            removed,
        });
        self.transmit.push_back(OutgoingRegister { cseq: self.cseq, text: req });
    }
}

/// When to refresh a binding granted for `granted` seconds.
pub fn refresh_in(granted: u32) -> Duration {
    let g = u64::from(granted);
    let secs = (g / 2).max((g * 3 / 4).min(g.saturating_sub(32))).max(1);
    Duration::from_secs(secs)
}

#[cfg(test)]
#[path = "registration_tests.rs"]
mod tests;
