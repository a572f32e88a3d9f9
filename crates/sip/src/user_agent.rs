//! The SIP user agent ([`SipUa`]), the tokio shell around the SIP cores: binds the
//! socket, builds the rsipstack endpoint, and runs three tasks — the endpoint itself,
//! the router for incoming requests, and the registration driver
//! ([`crate::registration_driver`], which also sends the NAT keepalive and
//! un-registers on shutdown). Everything that decides lives in the sans-IO modules.

use crate::calls::{CallRegistry, IncomingCall};
use crate::error::SipError;
use crate::gate::CallGate;
use crate::guarded_udp::GuardedUdp;
use crate::ids::IdSource;
use crate::pbx_address::{PbxResolver, PbxTarget, SystemResolver};
use crate::refusals::RefusalCounts;
use crate::registration::{Registrar, RegistrarConfig};
use crate::registration_driver::{Driver, RegStatus, UNREGISTER_DEADLINE};
use crate::router::{route_incoming, CallRouting};
use crate::settings::{SipSettings, Transport};
use crate::tcp_guard::{TcpLimits, TcpRefusals};
use rsipstack::transaction::endpoint::EndpointOption;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, TransportLayer};
use rsipstack::EndpointBuilder;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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
