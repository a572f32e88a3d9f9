//! What the SIP side needs to know, in this crate's own types (the binary fills it
//! from flags and the config file; rsipstack never appears here).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Signalling transport towards the PBX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// How the NAT binding towards the PBX is kept open between registrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeepaliveMode {
    /// A double CRLF (RFC 5626 §3.5.1) to the PBX; costs the PBX nothing. Over TCP it
    /// goes on our connection, and the PBX's CRLF answer keeps that connection open.
    #[default]
    Crlf,
    /// An OPTIONS request to the PBX (answered, so it also proves the PBX is alive).
    Options,
    Off,
}

/// Everything needed to register and answer as an extension.
#[derive(Debug, Clone)]
pub struct SipSettings {
    /// The extension (user part of the AOR), e.g. "9000".
    pub extension: String,
    /// The PBX as given by the user: "HOST" or "HOST:PORT".
    pub pbx: String,
    /// SIP domain for the AOR and Request-URI; defaults to `pbx`.
    pub domain: Option<String>,
    pub auth_user: Option<String>,
    pub password: String,
    /// Only answer challenges for this realm, when set.
    pub realm: Option<String>,
    pub transport: Transport,
    pub bind: SocketAddr,
    /// Address to advertise in Via/Contact instead of the bound one.
    pub public_addr: Option<IpAddr>,
    /// Registration lifetime asked for, seconds.
    pub expires: u32,
    /// Cap of the back-off after a timeout or transport error.
    pub retry_max: Duration,
    pub keepalive: KeepaliveMode,
    pub keepalive_interval: Duration,
    /// Re-register with the address the registrar saw (Via received/rport) when it differs.
    pub follow_nat: bool,
    pub user_agent: String,
    /// Hand INVITEs to the application (`SipUa::take_calls`); otherwise 480.
    pub accept_calls: bool,
    /// Addresses besides the registrar's that may send INVITEs.
    pub allow: Vec<IpAddr>,
    /// Concurrent calls; more get 486 Busy Here.
    pub max_calls: usize,
    /// With `transport = tcp`: connections accepted at once (from the PBX, `allow`
    /// and live dialogs' peers); more are closed as they arrive.
    pub tcp_max_connections: usize,
    /// A TCP connection (ours to the PBX included) that brings no bytes for this
    /// long is closed. SIP over TCP reconnects when it next has something to send.
    pub tcp_idle_timeout: Duration,
}

impl SipSettings {
    /// Settings with the documented defaults for everything but the essentials.
    pub fn new(extension: &str, pbx: &str, password: &str) -> SipSettings {
        SipSettings {
            extension: extension.to_string(),
            pbx: pbx.to_string(),
            domain: None,
            auth_user: None,
            password: password.to_string(),
            realm: None,
            transport: Transport::Udp,
            bind: SocketAddr::from(([0, 0, 0, 0], 5060)),
            public_addr: None,
            expires: 300,
            retry_max: Duration::from_secs(10),
            keepalive: KeepaliveMode::Crlf,
            keepalive_interval: Duration::from_secs(25),
            follow_nat: true,
            user_agent: concat!("voice-ua/", env!("CARGO_PKG_VERSION")).to_string(),
            accept_calls: false,
            allow: Vec::new(),
            max_calls: 4,
            tcp_max_connections: 64,
            tcp_idle_timeout: Duration::from_secs(60),
        }
    }
}
