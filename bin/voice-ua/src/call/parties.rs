//! Who is on the call, from the INVITE's From and To headers, and where the PBX is (its
//! IP, which RTP may latch to).

use std::net::{IpAddr, SocketAddr};

/// `"Alice" <sip:2001@pbx>;tag=x` → Alice.
pub fn display_name(from: &str) -> Option<String> {
    let before = from.split('<').next()?.trim().trim_matches('"').trim();
    (!before.is_empty() && from.contains('<')).then(|| before.to_string())
}

/// `"Alice" <sip:2001@pbx>;tag=x` → sip:2001@pbx.
pub fn uri_of(v: &str) -> String {
    match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => v[a + 1..b].to_string(),
        _ => v.split(';').next().unwrap_or(v).trim().to_string(),
    }
}

/// The PBX's IP from `pbx` ("HOST" or "HOST:PORT", as configured): IPv4 preferred,
/// None when the name does not resolve (media then latches to the SDP's and the
/// INVITE's addresses only).
pub async fn resolve_ip(pbx: &str) -> Option<IpAddr> {
    if let Ok(ip) = pbx.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = pbx.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    let target = if pbx.contains(':') { pbx.to_string() } else { format!("{pbx}:5060") };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(target).await.ok()?.collect();
    addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parties_are_read_from_from_and_to() {
        assert_eq!(display_name("\"Gate Phone\" <sip:2001@pbx>;tag=1").as_deref(), Some("Gate Phone"));
        assert_eq!(display_name("<sip:2001@pbx>;tag=1"), None);
        assert_eq!(display_name("sip:2001@pbx;tag=1"), None);
        assert_eq!(uri_of("\"Gate\" <sip:2001@pbx>;tag=1"), "sip:2001@pbx");
        assert_eq!(uri_of("sip:9000@pbx;tag=1"), "sip:9000@pbx");
    }
}
