//! Where the PBX is: the configured `pbx` ("HOST" or "HOST:PORT") as a literal
//! address or a name, and the [`PbxResolver`] that turns a name into an address.

use crate::error::SipError;
use crate::message::split_host_port;
use std::net::{IpAddr, SocketAddr};

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

/// The PBX as configured ("HOST" or "HOST:PORT"): an address, or a name to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PbxTarget {
    Literal(SocketAddr),
    Name { host: String, port: u16 },
}

impl PbxTarget {
    pub(crate) fn parse(pbx: &str) -> Result<PbxTarget, SipError> {
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

    pub(crate) async fn resolve(
        &self,
        pbx: &str,
        resolver: &dyn PbxResolver,
    ) -> Result<SocketAddr, SipError> {
        match self {
            PbxTarget::Literal(addr) => Ok(*addr),
            PbxTarget::Name { host, port } => resolver
                .lookup(host, *port)
                .await
                .map_err(|why| SipError::ResolvePbx { pbx: pbx.to_string(), why }),
        }
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
