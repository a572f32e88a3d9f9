//! The registration driver: the task that runs the sans-IO [`Registrar`] against the
//! PBX — sends its REGISTERs as rsipstack client transactions, sends the NAT
//! keepalive, looks the PBX up again before each refresh or retry, turns the
//! registrar's events into log lines and [`RegStatus`], and un-registers on stop.

use crate::gate::CallGate;
use crate::ids::IdSource;
use crate::keepalive::{options_request, CRLF_PING};
use crate::message::ResponseView;
use crate::pbx_address::{PbxResolver, PbxTarget};
use crate::registration::{Failure, OutgoingRegister, RegEvent, Registrar};
use crate::settings::{KeepaliveMode, SipSettings, Transport};
use rsipstack::sip::SipMessage;
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::stream::StreamConnection;
use rsipstack::transport::{SipAddr, SipConnection};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long shutdown waits for the un-register (REGISTER, 401, REGISTER, 200 take a
/// few milliseconds on a LAN; the process must be gone within 2 s).
pub(crate) const UNREGISTER_DEADLINE: Duration = Duration::from_millis(1000);
/// How long a lookup of the PBX host may take before the known address is used.
const RESOLVE_DEADLINE: Duration = Duration::from_secs(5);

/// Registration state as the rest of the program sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegStatus {
    Starting,
    Registered {
        expires: u32,
    },
    /// `kind` says what went wrong as a type, `why` in one line for people.
    NotRegistered {
        kind: RegFailure,
        why: String,
    },
    Stopped,
}

/// What kind of failure left the extension unregistered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RegFailure {
    /// The PBX refused the password (401/407 to our answer, or 403).
    CredentialsRejected { status: u16 },
    /// The PBX refused for another reason a quick retry will not fix.
    Refused { status: u16 },
    /// The binding expired without a successful refresh.
    Lapsed,
    /// The PBX did not answer the REGISTER.
    NoAnswer,
    /// The REGISTER could not be sent (a network error).
    Transport,
    /// The PBX answered with a status a retry may fix (e.g. 500, 503).
    Status { status: u16 },
}

impl RegFailure {
    /// The `kind` label of `voice_ua_registration_failures_total`: `credentials_rejected`,
    /// `refused`, `lapsed`, or `failed` for a failure a retry may fix.
    pub fn label(&self) -> &'static str {
        match self {
            RegFailure::CredentialsRejected { .. } => "credentials_rejected",
            RegFailure::Refused { .. } => "refused",
            RegFailure::Lapsed => "lapsed",
            RegFailure::NoAnswer | RegFailure::Transport | RegFailure::Status { .. } => "failed",
        }
    }
}

impl From<&Failure> for RegFailure {
    fn from(f: &Failure) -> RegFailure {
        match f {
            Failure::NoResponse => RegFailure::NoAnswer,
            Failure::Transport(_) => RegFailure::Transport,
            Failure::Status(status, _) => RegFailure::Status { status: *status },
        }
    }
}

/// One registration's task: what it sends through, to whom, and what it reports.
pub(crate) struct Driver {
    pub(crate) endpoint: EndpointInnerRef,
    pub(crate) registrar: Registrar,
    pub(crate) pbx: SipAddr,
    pub(crate) pbx_addr: SocketAddr,
    pub(crate) target: PbxTarget,
    pub(crate) resolver: Arc<dyn PbxResolver>,
    /// Shared with the router and the sockets' screens: whose requests are trusted.
    pub(crate) gate: Arc<Mutex<CallGate>>,
    pub(crate) socket: Arc<tokio::net::UdpSocket>,
    pub(crate) status: watch::Sender<RegStatus>,
    pub(crate) aor: String,
    pub(crate) domain: String,
    pub(crate) settings: SipSettings,
    pub(crate) failures_in_a_row: u32,
    pub(crate) ids: IdSource,
}

impl Driver {
    pub(crate) async fn run(mut self, stop: CancellationToken) {
        let mut keepalive =
            tokio::time::interval(self.settings.keepalive_interval.max(Duration::from_secs(1)));
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keepalive.tick().await; // the first tick is immediate; registration comes first
        self.registrar.handle_timeout(Instant::now().into_std());
        'main: loop {
            while let Some(out) = self.registrar.poll_transmit() {
                let outcome = tokio::select! {
                    r = self.transact(&out) => r,
                    _ = stop.cancelled() => break 'main,
                };
                self.feed(outcome);
            }
            let wake = self.registrar.poll_timeout().map(Instant::from_std);
            tokio::select! {
                _ = sleep_until_opt(wake) => {}
                _ = keepalive.tick() => { self.send_keepalive().await; continue 'main; }
                _ = stop.cancelled() => break 'main,
            }
            // A refresh or a retry after a failure is due: ask where the PBX is now.
            tokio::select! {
                _ = self.re_resolve() => {}
                _ = stop.cancelled() => break 'main,
            }
            self.registrar.handle_timeout(Instant::now().into_std());
            self.report();
        }
        self.unregister().await;
    }

    /// Resolve the PBX host name again; when the address moved, send REGISTERs (and
    /// keepalives) there and let the gate trust the new address instead of the old.
    /// A failed lookup keeps the address we have.
    async fn re_resolve(&mut self) {
        let PbxTarget::Name { host, port } = &self.target else { return };
        let found = tokio::time::timeout(RESOLVE_DEADLINE, self.resolver.lookup(host, *port)).await;
        let addr = match found {
            Ok(Ok(addr)) => addr,
            Ok(Err(why)) => {
                tracing::debug!(pbx = %self.settings.pbx, %why, "PBX not resolved again; keeping {}", self.pbx_addr);
                return;
            }
            Err(_) => {
                tracing::debug!(pbx = %self.settings.pbx, "PBX lookup timed out; keeping {}", self.pbx_addr);
                return;
            }
        };
        if addr == self.pbx_addr {
            return;
        }
        tracing::info!(pbx = %self.settings.pbx, from = %self.pbx_addr, to = %addr, "the PBX moved: registering with its new address");
        self.pbx_addr = addr;
        self.pbx.addr = addr.into();
        if let Ok(mut gate) = self.gate.lock() {
            gate.set_registrar(addr.ip());
        }
    }

    async fn unregister(&mut self) {
        let deadline = Instant::now() + UNREGISTER_DEADLINE;
        self.registrar.unregister(Instant::now().into_std());
        self.report();
        while let Some(out) = self.registrar.poll_transmit() {
            match tokio::time::timeout_at(deadline, self.transact(&out)).await {
                Ok(outcome) => self.feed(outcome),
                Err(_) => self.feed(Err(Failure::NoResponse)),
            }
        }
        self.status.send_replace(RegStatus::Stopped);
    }

    fn feed(&mut self, outcome: Result<ResponseView, Failure>) {
        let now = Instant::now().into_std();
        match outcome {
            Ok(resp) => self.registrar.handle_response(now, &resp),
            Err(why) => self.registrar.handle_no_response(now, why),
        }
        self.report();
    }

    /// Run one REGISTER client transaction to its final response.
    async fn transact(&self, out: &OutgoingRegister) -> Result<ResponseView, Failure> {
        let request = rsipstack::sip::Request::try_from(out.text.as_str())
            .map_err(|e| Failure::Transport(format!("internal: unparsable REGISTER: {e}")))?;
        self.transact_request(request).await
    }

    async fn transact_request(&self, request: rsipstack::sip::Request) -> Result<ResponseView, Failure> {
        let key = TransactionKey::from_request(&request, TransactionRole::Client)
            .map_err(|e| Failure::Transport(e.to_string()))?;
        let mut tx = Transaction::new_client(key, request, self.endpoint.clone(), None);
        tx.destination = Some(self.pbx.clone());
        tx.send().await.map_err(|e| Failure::Transport(e.to_string()))?;
        while let Some(msg) = tx.receive().await {
            if let SipMessage::Response(resp) = msg {
                if let Ok(view) = ResponseView::parse(&resp.to_bytes()) {
                    if view.status >= 200 {
                        return Ok(view);
                    }
                }
            }
        }
        Err(Failure::NoResponse)
    }

    async fn send_keepalive(&mut self) {
        match (self.settings.keepalive, self.settings.transport) {
            (KeepaliveMode::Off, _) => {}
            // RFC 5626 §4.4.1: the CRLF ping on the connection itself. A PBX that
            // answers (CRLF pong) keeps our flow open past tcp_idle_timeout; one that
            // does not lets it close, and the next ping or REGISTER opens another.
            (KeepaliveMode::Crlf, Transport::Tcp) => {
                let flow = self.endpoint.transport_layer.lookup(&self.pbx, None).await;
                let sent = match flow {
                    Ok((SipConnection::Tcp(conn), _)) => {
                        conn.send_raw(CRLF_PING).await.map_err(|e| e.to_string())
                    }
                    Ok((other, _)) => Err(format!("not a TCP connection: {other}")),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = sent {
                    tracing::debug!(error = %e, "keepalive not sent");
                }
            }
            (KeepaliveMode::Crlf, Transport::Udp) => {
                if let Err(e) = self.socket.send_to(CRLF_PING, self.pbx_addr).await {
                    tracing::debug!(error = %e, "keepalive not sent");
                }
            }
            (KeepaliveMode::Options, transport) => {
                let text = options_request(
                    &mut self.ids,
                    &self.settings.extension,
                    &self.domain,
                    self.registrar.contact(),
                    transport,
                    &self.settings.user_agent,
                );
                let Ok(request) = rsipstack::sip::Request::try_from(text.as_str()) else { return };
                let outcome =
                    tokio::time::timeout(Duration::from_secs(5), self.transact_request(request)).await;
                match outcome {
                    Ok(Ok(resp)) => tracing::debug!(status = resp.status, "keepalive OPTIONS answered"),
                    _ => tracing::debug!("keepalive OPTIONS unanswered"),
                }
            }
        }
    }

    /// Turn the registrar's events into log lines and status changes.
    fn report(&mut self) {
        let s = &self.settings;
        while let Some(ev) = self.registrar.poll_event() {
            match ev {
                RegEvent::Registered { expires, contact, refresh_in } => {
                    self.failures_in_a_row = 0;
                    let tp = if s.transport == Transport::Tcp { ";transport=tcp" } else { "" };
                    let contact = format!("sip:{}@{contact}{tp}", s.extension);
                    tracing::info!(aor = %self.aor, expires, %contact, refresh_in_s = refresh_in.as_secs(), "registered");
                    self.status.send_replace(RegStatus::Registered { expires });
                }
                RegEvent::ContactCorrected { from, to } => {
                    tracing::info!(%from, %to, "the PBX sees voice-ua at {to}, not {from}: registering that address");
                }
                RegEvent::IntervalTooBrief { min_expires } => {
                    tracing::info!(
                        min_expires,
                        "the PBX wants a longer registration (423): asking for {min_expires} s"
                    );
                }
                RegEvent::CredentialsRejected { status, retry_in } => {
                    let why = format!("PBX rejected the password for {} ({status})", self.aor);
                    tracing::error!(
                        "{why}: check the password (--password, VOICE_UA_SIP_PASSWORD or sip.password_file) and the auth user ({}); next attempt in {} s",
                        s.auth_user.as_deref().unwrap_or(&s.extension),
                        retry_in.as_secs()
                    );
                    let kind = RegFailure::CredentialsRejected { status };
                    self.status.send_replace(RegStatus::NotRegistered { kind, why });
                }
                RegEvent::Refused { status, reason, retry_in } => {
                    let why = format!("PBX refused the registration of {} ({status}: {reason})", self.aor);
                    tracing::error!(
                        "{why}: check the extension and PBX settings; next attempt in {} s",
                        retry_in.as_secs()
                    );
                    let kind = RegFailure::Refused { status };
                    self.status.send_replace(RegStatus::NotRegistered { kind, why });
                }
                RegEvent::Failed { why, retry_in } => {
                    self.failures_in_a_row += 1;
                    let n = self.failures_in_a_row;
                    if n.is_power_of_two() {
                        tracing::warn!(
                            attempts = n,
                            "registration of {} failed: {why}; retrying in {} s",
                            self.aor,
                            retry_in.as_secs()
                        );
                    } else {
                        tracing::debug!(attempts = n, "registration of {} failed: {why}", self.aor);
                    }
                    if !self.registrar.is_registered(Instant::now().into_std()) {
                        let kind = RegFailure::from(&why);
                        self.status.send_replace(RegStatus::NotRegistered { kind, why: why.to_string() });
                    }
                }
                RegEvent::Lapsed => {
                    tracing::warn!(
                        "registration of {} lapsed: calls cannot reach voice-ua until the PBX answers again",
                        self.aor
                    );
                    let (kind, why) = (RegFailure::Lapsed, "registration lapsed".into());
                    self.status.send_replace(RegStatus::NotRegistered { kind, why });
                }
                RegEvent::Unregistered => tracing::info!(aor = %self.aor, "unregistered"),
                RegEvent::UnregisterFailed { why } => {
                    tracing::warn!(
                        "could not un-register {}: {why}; the PBX drops the binding when it expires",
                        self.aor
                    )
                }
            }
        }
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_metric_label() {
        assert_eq!(RegFailure::CredentialsRejected { status: 403 }.label(), "credentials_rejected");
        assert_eq!(RegFailure::Refused { status: 404 }.label(), "refused");
        assert_eq!(RegFailure::Lapsed.label(), "lapsed");
        assert_eq!(RegFailure::from(&Failure::NoResponse), RegFailure::NoAnswer);
        assert_eq!(RegFailure::from(&Failure::Transport("reset".into())), RegFailure::Transport);
        let busy = RegFailure::from(&Failure::Status(503, "Service Unavailable".into()));
        assert_eq!(busy, RegFailure::Status { status: 503 });
        for f in [RegFailure::NoAnswer, RegFailure::Transport, busy] {
            assert_eq!(f.label(), "failed", "{f:?}");
        }
    }
}
