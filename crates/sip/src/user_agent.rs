//! The tokio shell around the SIP cores: binds the socket, builds the rsipstack
//! endpoint, and runs three tasks — the endpoint itself, the router for incoming
//! requests, and the registration driver (which also sends the NAT keepalive and
//! un-registers on shutdown). Everything that decides lives in the sans-IO modules.

use crate::calls::{CallRegistry, IncomingCall};
use crate::error::SipError;
use crate::gate::CallGate;
use crate::guarded_udp::GuardedUdp;
use crate::ids::IdSource;
use crate::keepalive::{options_request, CRLF_PING};
use crate::message::{split_host_port, ResponseView};
use crate::refusals::RefusalCounts;
use crate::registration::{Failure, OutgoingRegister, RegEvent, Registrar, RegistrarConfig};
use crate::router::{route_incoming, CallRouting};
use crate::settings::{KeepaliveMode, SipSettings, Transport};
use crate::tcp_guard::{TcpLimits, TcpRefusals};
use rsipstack::sip::SipMessage;
use rsipstack::transaction::endpoint::{EndpointInnerRef, EndpointOption};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::stream::StreamConnection;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, SipConnection, TransportLayer};
use rsipstack::EndpointBuilder;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long shutdown waits for the un-register (REGISTER, 401, REGISTER, 200 take a
/// few milliseconds on a LAN; the process must be gone within 2 s).
const UNREGISTER_DEADLINE: Duration = Duration::from_millis(1000);
/// How long a lookup of the PBX host may take before the known address is used.
const RESOLVE_DEADLINE: Duration = Duration::from_secs(5);

/// Registration state as the rest of the program sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegStatus {
    Starting,
    Registered { expires: u32 },
    NotRegistered { why: String },
    Stopped,
}

/// A running SIP user agent: registered (or trying to be) and answering requests.
pub struct SipUa {
    status: watch::Receiver<RegStatus>,
    stop_registration: CancellationToken,
    stop_all: CancellationToken,
    driver: JoinHandle<()>,
    local_addr: SocketAddr,
    contact: SocketAddr,
    calls: Option<tokio::sync::mpsc::Receiver<IncomingCall>>,
    refusals: Arc<RefusalCounts>,
    tcp_limits: Arc<Mutex<TcpLimits>>,
}

/// Turns the PBX host name into an address: the system resolver, or a test's own.
/// Asked at start and again before every refresh or retry of the registration, so a
/// PBX that moves (DHCP, fail-over) is followed. Never asked for an IP literal.
#[async_trait::async_trait]
pub trait PbxResolver: Send + Sync + 'static {
    /// The address of `host`, port `port` (IPv4 preferred); Err(why) when there is none.
    async fn lookup(&self, host: &str, port: u16) -> Result<SocketAddr, String>;
}

/// [`PbxResolver`] through the operating system (getaddrinfo).
pub struct SystemResolver;

#[async_trait::async_trait]
impl PbxResolver for SystemResolver {
    async fn lookup(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        let addrs: Vec<SocketAddr> =
            tokio::net::lookup_host((host, port)).await.map_err(|e| e.to_string())?.collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| "the name has no address".into())
    }
}

impl SipUa {
    /// Bind, start the stack and begin registering.
    pub async fn start(settings: SipSettings) -> Result<SipUa, SipError> {
        SipUa::start_with_resolver(settings, Arc::new(SystemResolver)).await
    }

    /// [`SipUa::start`] with the PBX host name resolved by `resolver`.
    pub async fn start_with_resolver(
        settings: SipSettings,
        resolver: Arc<dyn PbxResolver>,
    ) -> Result<SipUa, SipError> {
        let target = PbxTarget::parse(&settings.pbx)?;
        let pbx = target.resolve(&settings.pbx, &*resolver).await?;
        let socket = tokio::net::UdpSocket::bind(settings.bind)
            .await
            .map_err(|source| SipError::Bind { addr: settings.bind, source })?;
        let local_addr =
            socket.local_addr().map_err(|source| SipError::Bind { addr: settings.bind, source })?;
        let contact = SocketAddr::new(advertised_ip(&settings, pbx)?, local_addr.port());
        let socket = Arc::new(socket);

        let stop_all = CancellationToken::new();
        // Shared by the socket's screen (who is trusted) and the call router.
        let gate = Arc::new(std::sync::Mutex::new(CallGate::new(
            pbx.ip(),
            settings.allow.clone(),
            settings.max_calls,
        )));
        let refusals = Arc::new(RefusalCounts::default());
        let transport = TransportLayer::new(stop_all.child_token());
        let udp = UdpConnection::from_socket(
            Arc::new(GuardedUdp::new(socket.clone(), gate.clone(), refusals.clone())),
            Some(contact),
            Some(stop_all.child_token()),
        )
        .await?;
        transport.add_transport(udp.into());
        // Our own TCP listener (tcp_guard), not rsipstack's: it has no source check
        // and no limit. Via and Contact for TCP come from the UDP listener's address,
        // which is the same ip:port.
        let tcp_listener = if settings.transport == Transport::Tcp {
            transport.set_stream_idle_timeout(settings.tcp_idle_timeout);
            Some(
                crate::tcp_guard::bind(local_addr)
                    .map_err(|source| SipError::Bind { addr: local_addr, source })?,
            )
        } else {
            None
        };
        let option = EndpointOption { callid_suffix: Some(contact.ip().to_string()), ..Default::default() };
        let endpoint = EndpointBuilder::new()
            .with_user_agent(&settings.user_agent)
            .with_cancel_token(stop_all.child_token())
            .with_transport_layer(transport)
            .with_option(option)
            .build();
        let incoming = endpoint.incoming_transactions()?;
        let inner = endpoint.inner.clone();
        tokio::spawn(async move { endpoint.serve().await });
        let tcp_limits = Arc::new(Mutex::new(TcpLimits::new(settings.tcp_max_connections)));
        if let Some(listener) = tcp_listener {
            let local = SipAddr { r#type: Some(rsipstack::sip::Transport::Tcp), addr: contact.into() };
            tokio::spawn(crate::tcp_guard::serve(
                listener,
                local,
                inner.clone(),
                gate.clone(),
                tcp_limits.clone(),
                stop_all.child_token(),
            ));
        }
        let (routing, calls) = if settings.accept_calls {
            let dialogs = Arc::new(rsipstack::dialog::dialog_layer::DialogLayer::new(inner.clone()));
            let (states, state_rx) = dialogs.new_dialog_state_channel();
            let registry = CallRegistry::new(gate.clone(), dialogs);
            tokio::spawn(registry.clone().dispatch(state_rx));
            let tp = if settings.transport == Transport::Tcp { ";transport=tcp" } else { "" };
            let contact_uri =
                rsipstack::sip::Uri::try_from(format!("sip:{}@{contact}{tp}", settings.extension).as_str())
                    .map_err(|e| SipError::Stack(format!("bad contact: {e}")))?;
            let (call_tx, call_rx) = tokio::sync::mpsc::channel(16);
            let routing = CallRouting {
                registry,
                calls: call_tx,
                states,
                contact: contact_uri,
                refusals: refusals.clone(),
            };
            (Some(routing), Some(call_rx))
        } else {
            (None, None)
        };
        tokio::spawn(route_incoming(incoming, routing, stop_all.child_token()));

        let domain = settings.domain.clone().unwrap_or_else(|| settings.pbx.clone());
        let cfg = RegistrarConfig {
            extension: settings.extension.clone(),
            domain: domain.clone(),
            auth_user: settings.auth_user.clone().unwrap_or_else(|| settings.extension.clone()),
            password: settings.password.clone(),
            realm: settings.realm.clone(),
            transport: settings.transport,
            contact,
            expires: settings.expires,
            retry_max: settings.retry_max,
            follow_nat: settings.follow_nat,
            user_agent: settings.user_agent.clone(),
        };
        let registrar = Registrar::new(cfg, IdSource::from_os(), Instant::now().into_std());
        let (status_tx, status) = watch::channel(RegStatus::Starting);
        let stop_registration = CancellationToken::new();
        let driver = Driver {
            endpoint: inner,
            registrar,
            pbx: SipAddr {
                r#type: Some(match settings.transport {
                    Transport::Udp => rsipstack::sip::Transport::Udp,
                    Transport::Tcp => rsipstack::sip::Transport::Tcp,
                }),
                addr: pbx.into(),
            },
            pbx_addr: pbx,
            target,
            resolver,
            gate,
            socket,
            status: status_tx,
            aor: format!("{}@{}", settings.extension, domain),
            domain,
            settings,
            failures_in_a_row: 0,
            ids: IdSource::from_os(),
        };
        let driver = tokio::spawn(driver.run(stop_registration.clone()));
        tracing::info!(local = %local_addr, %contact, pbx = %pbx, "SIP user agent started");
        Ok(SipUa {
            status,
            stop_registration,
            stop_all,
            driver,
            local_addr,
            contact,
            calls,
            refusals,
            tcp_limits,
        })
    }

    /// The stream of incoming calls (once; only with `accept_calls`).
    /// INVITEs refused before they became calls (403, 486, 422, 480/500), so far.
    pub fn refusals(&self) -> Arc<RefusalCounts> {
        self.refusals.clone()
    }

    /// TCP connections closed as soon as they were accepted, so far.
    pub fn tcp_refusals(&self) -> TcpRefusals {
        self.tcp_limits.lock().map(|l| l.refusals()).unwrap_or_default()
    }

    pub fn take_calls(&mut self) -> Option<tokio::sync::mpsc::Receiver<IncomingCall>> {
        self.calls.take()
    }

    /// Follow the registration state.
    pub fn status(&self) -> watch::Receiver<RegStatus> {
        self.status.clone()
    }

    /// The bound SIP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address advertised in Via and Contact.
    pub fn contact(&self) -> SocketAddr {
        self.contact
    }

    /// Un-register (bounded to one second) and stop the stack.
    pub async fn shutdown(self) -> RegStatus {
        self.stop_registration.cancel();
        let _ = tokio::time::timeout(UNREGISTER_DEADLINE + Duration::from_millis(200), self.driver).await;
        self.stop_all.cancel();
        let last = self.status.borrow().clone();
        last
    }
}

/// The PBX as configured ("HOST" or "HOST:PORT"): an address, or a name to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PbxTarget {
    Literal(SocketAddr),
    Name { host: String, port: u16 },
}

impl PbxTarget {
    fn parse(pbx: &str) -> Result<PbxTarget, SipError> {
        let (host, port) = split_host_port(pbx).ok_or_else(|| SipError::ResolvePbx {
            pbx: pbx.to_string(),
            why: "not a host or host:port".to_string(),
        })?;
        let port = port.unwrap_or(5060);
        Ok(match host.parse::<IpAddr>() {
            Ok(ip) => PbxTarget::Literal(SocketAddr::new(ip, port)),
            Err(_) => PbxTarget::Name { host: host.to_string(), port },
        })
    }

    async fn resolve(&self, pbx: &str, resolver: &dyn PbxResolver) -> Result<SocketAddr, SipError> {
        match self {
            PbxTarget::Literal(addr) => Ok(*addr),
            PbxTarget::Name { host, port } => resolver
                .lookup(host, *port)
                .await
                .map_err(|why| SipError::ResolvePbx { pbx: pbx.to_string(), why }),
        }
    }
}

/// The address to advertise: --public-addr, else the bound IP, else the local
/// address the kernel routes to the PBX from (no guessing among interfaces).
fn advertised_ip(settings: &SipSettings, pbx: SocketAddr) -> Result<IpAddr, SipError> {
    if let Some(ip) = settings.public_addr {
        return Ok(ip);
    }
    if !settings.bind.ip().is_unspecified() {
        return Ok(settings.bind.ip());
    }
    let probe_bind: SocketAddr =
        if pbx.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    let probe =
        std::net::UdpSocket::bind(probe_bind).map_err(|source| SipError::LocalAddress { pbx, source })?;
    // connect() on UDP sends nothing: it only asks the kernel for the route.
    probe.connect(pbx).map_err(|source| SipError::LocalAddress { pbx, source })?;
    Ok(probe.local_addr().map_err(|source| SipError::LocalAddress { pbx, source })?.ip())
}

struct Driver {
    endpoint: EndpointInnerRef,
    registrar: Registrar,
    pbx: SipAddr,
    pbx_addr: SocketAddr,
    target: PbxTarget,
    resolver: Arc<dyn PbxResolver>,
    /// Shared with the router and the sockets' screens: whose requests are trusted.
    gate: Arc<Mutex<CallGate>>,
    socket: Arc<tokio::net::UdpSocket>,
    status: watch::Sender<RegStatus>,
    aor: String,
    domain: String,
    settings: SipSettings,
    failures_in_a_row: u32,
    ids: IdSource,
}

impl Driver {
    async fn run(mut self, stop: CancellationToken) {
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
                    self.status.send_replace(RegStatus::NotRegistered { why });
                }
                RegEvent::Refused { status, reason, retry_in } => {
                    let why = format!("PBX refused the registration of {} ({status}: {reason})", self.aor);
                    tracing::error!(
                        "{why}: check the extension and PBX settings; next attempt in {} s",
                        retry_in.as_secs()
                    );
                    self.status.send_replace(RegStatus::NotRegistered { why });
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
                        self.status.send_replace(RegStatus::NotRegistered { why: why.to_string() });
                    }
                }
                RegEvent::Lapsed => {
                    tracing::warn!(
                        "registration of {} lapsed: calls cannot reach voice-ua until the PBX answers again",
                        self.aor
                    );
                    self.status.send_replace(RegStatus::NotRegistered { why: "registration lapsed".into() });
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

    struct Refuses;

    #[async_trait::async_trait]
    impl PbxResolver for Refuses {
        async fn lookup(&self, host: &str, _port: u16) -> Result<SocketAddr, String> {
            Err(format!("asked for {host}"))
        }
    }

    #[tokio::test]
    async fn an_ip_literal_is_never_resolved_and_a_name_always_is() {
        let literal = PbxTarget::parse("192.0.2.7:5070").expect("parses");
        assert_eq!(literal, PbxTarget::Literal("192.0.2.7:5070".parse().expect("addr")));
        assert_eq!(literal.resolve("192.0.2.7:5070", &Refuses).await.ok(), "192.0.2.7:5070".parse().ok());
        let v6 = PbxTarget::parse("[2001:db8::1]").expect("parses");
        assert_eq!(v6, PbxTarget::Literal("[2001:db8::1]:5060".parse().expect("addr")));
        let name = PbxTarget::parse("ucm.lan").expect("parses");
        assert_eq!(name, PbxTarget::Name { host: "ucm.lan".into(), port: 5060 });
        let e = name.resolve("ucm.lan", &Refuses).await.expect_err("the resolver is asked");
        assert!(e.to_string().contains("asked for ucm.lan"), "{e}");
        assert!(PbxTarget::parse("").is_err());
    }

    proptest::proptest! {
        /// Whatever is configured as `pbx`: no panic; an address written as
        /// HOST:PORT is taken as that literal, anything else that parses is a name.
        #[test]
        fn any_pbx_text_parses_or_is_refused(
            text in "\\PC{0,40}",
            ip in proptest::arbitrary::any::<IpAddr>(),
            port in proptest::arbitrary::any::<u16>(),
        ) {
            let _ = PbxTarget::parse(&text);
            let addr = SocketAddr::new(ip, port);
            proptest::prop_assert_eq!(PbxTarget::parse(&addr.to_string()).ok(), Some(PbxTarget::Literal(addr)));
        }
    }
}
