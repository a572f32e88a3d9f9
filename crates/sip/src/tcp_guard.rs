//! The SIP TCP listener, in front of rsipstack: who may hold a connection open, and how
//! many at once. rsipstack's own listener accepts anyone, without limit; this one
//! accepts a connection only from an address the call gate trusts (the PBX, the
//! `calls.allow` list, a live dialog's peer) and only while fewer than
//! `tcp_max_connections` are open. Anything else is closed as soon as it is accepted,
//! counted, and logged at most once per interval. An accepted connection is handed to
//! rsipstack as its own `TcpConnection`, so the transaction layer reads and answers
//! on it as before; its idle timeout is rsipstack's stream idle timeout.
//!
//! [`TcpLimits`] decides (sans-IO); [`serve`] is the accept loop around it.

use crate::gate::CallGate;
use crate::ratelimit::RateLimit;
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transport::tcp::TcpConnection;
use rsipstack::transport::{SipAddr, SipConnection};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Connections refused by the TCP listener so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpRefusals {
    /// From an address that is neither the PBX, nor allowed, nor a dialog's peer.
    pub strangers: u64,
    /// Over `tcp_max_connections`.
    pub over_limit: u64,
}

/// What to do with a connection just accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TcpVerdict {
    Accept,
    Stranger,
    Full,
}

/// The open-connection count and the refusals.
#[derive(Debug)]
pub(crate) struct TcpLimits {
    max: usize,
    open: usize,
    refused: TcpRefusals,
    log: RateLimit,
}

impl TcpLimits {
    pub(crate) fn new(max: usize) -> TcpLimits {
        TcpLimits {
            max,
            open: 0,
            refused: TcpRefusals::default(),
            log: RateLimit::new(Duration::from_secs(10)),
        }
    }

    /// A connection from a peer the gate trusts (or not): an accepted one counts
    /// until [`TcpLimits::closed`].
    pub(crate) fn decide(&mut self, trusted: bool) -> TcpVerdict {
        if !trusted {
            self.refused.strangers += 1;
            return TcpVerdict::Stranger;
        }
        if self.open >= self.max {
            self.refused.over_limit += 1;
            return TcpVerdict::Full;
        }
        self.open += 1;
        TcpVerdict::Accept
    }

    pub(crate) fn closed(&mut self) {
        self.open = self.open.saturating_sub(1);
    }

    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.open
    }

    pub(crate) fn refusals(&self) -> TcpRefusals {
        self.refused
    }

    /// Whether a refusal may be logged now: Some(lines held back since the last one).
    fn may_log(&mut self, now: Instant) -> Option<u64> {
        self.log.allow(now)
    }
}

/// Bind the listening socket (the same port as the UDP one).
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket =
        if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}

/// Accept connections until `stop`: trusted ones go to rsipstack as `local` (our
/// advertised TCP address), the rest are closed at once.
pub(crate) async fn serve(
    listener: TcpListener,
    local: SipAddr,
    endpoint: EndpointInnerRef,
    gate: Arc<Mutex<CallGate>>,
    limits: Arc<Mutex<TcpLimits>>,
    stop: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: do not spin on them.
                    tracing::warn!(error = %e, "SIP TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        // A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d.
        let ip = peer.ip().to_canonical();
        let trusted = gate.lock().is_ok_and(|g| g.is_trusted(ip));
        let verdict = match limits.lock() {
            Ok(mut l) => l.decide(trusted),
            Err(_) => TcpVerdict::Full,
        };
        if verdict != TcpVerdict::Accept {
            drop(stream);
            log_refusal(&limits, ip, verdict);
            continue;
        }
        adopt(stream, peer, &local, &endpoint, &limits, &stop);
    }
}

/// Hand an accepted connection to rsipstack; its place is given back when
/// rsipstack retires it (closed by the peer, idle, or shutdown).
fn adopt(
    stream: TcpStream,
    peer: SocketAddr,
    local: &SipAddr,
    endpoint: &EndpointInnerRef,
    limits: &Arc<Mutex<TcpLimits>>,
    stop: &CancellationToken,
) {
    let token = stop.child_token();
    match TcpConnection::from_stream(stream, local.clone(), Some(token.clone())) {
        Ok(conn) => {
            tracing::debug!(%peer, "SIP TCP connection accepted");
            endpoint.transport_layer.add_connection(SipConnection::Tcp(conn));
        }
        Err(e) => {
            tracing::debug!(%peer, error = %e, "SIP TCP connection lost before use");
            token.cancel();
        }
    }
    let limits = limits.clone();
    tokio::spawn(async move {
        token.cancelled().await;
        if let Ok(mut l) = limits.lock() {
            l.closed();
        }
    });
}

fn log_refusal(limits: &Mutex<TcpLimits>, ip: IpAddr, verdict: TcpVerdict) {
    let Some(held_back) = limits.lock().ok().and_then(|mut l| l.may_log(Instant::now())) else { return };
    match verdict {
        TcpVerdict::Stranger => tracing::warn!(
            %ip,
            held_back,
            "SIP TCP connection closed: not the PBX, calls.allow or a call's peer"
        ),
        _ => tracing::warn!(
            %ip,
            held_back,
            "SIP TCP connection closed: tcp_max_connections are open already"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strangers_never_count_and_the_cap_frees_up() {
        let mut l = TcpLimits::new(2);
        assert_eq!(l.decide(false), TcpVerdict::Stranger);
        assert_eq!(l.decide(true), TcpVerdict::Accept);
        assert_eq!(l.decide(true), TcpVerdict::Accept);
        assert_eq!(l.decide(true), TcpVerdict::Full);
        assert_eq!(l.open(), 2);
        l.closed();
        assert_eq!(l.decide(true), TcpVerdict::Accept);
        assert_eq!(l.refusals(), TcpRefusals { strangers: 1, over_limit: 1 });
        for _ in 0..5 {
            l.closed();
        }
        assert_eq!(l.open(), 0, "never below zero");
    }

    #[test]
    fn refusal_lines_are_rate_limited() {
        let mut l = TcpLimits::new(1);
        let t0 = Instant::now();
        assert_eq!(l.may_log(t0), Some(0));
        assert_eq!(l.may_log(t0 + Duration::from_secs(1)), None);
        assert_eq!(l.may_log(t0 + Duration::from_secs(11)), Some(1));
    }
}
