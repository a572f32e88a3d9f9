//! RTP ports for calls: handed out round-robin from `calls.rtp_ports` (even ports,
//! RFC 3550 §11), skipping the busy ones.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use tokio::net::UdpSocket;

#[derive(Debug)]
pub struct PortPool {
    first: u16,
    last: u16,
    next: AtomicU16,
}

impl PortPool {
    pub fn new(first: u16, last: u16) -> PortPool {
        let first = first + first % 2;
        PortPool { first, last: last.max(first), next: AtomicU16::new(first) }
    }

    /// Bind a UDP socket on the next free even port of the range.
    pub async fn bind(&self, ip: IpAddr) -> std::io::Result<UdpSocket> {
        let slots = u32::from((self.last - self.first) / 2 + 1);
        for _ in 0..slots {
            let p = self.next.fetch_add(2, Ordering::Relaxed);
            let port = if p > self.last || p < self.first {
                self.next.store(self.first + 2, Ordering::Relaxed);
                self.first
            } else {
                p
            };
            if let Ok(s) = UdpSocket::bind(SocketAddr::new(ip, port)).await {
                return Ok(s);
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("every RTP port in {}-{} is busy; widen calls.rtp_ports", self.first, self.last),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ports_come_from_the_range_even_and_wrap() {
        let pool = PortPool::new(41001, 41010);
        let a = pool.bind("127.0.0.1".parse().expect("ip")).await.expect("bind");
        let b = pool.bind("127.0.0.1".parse().expect("ip")).await.expect("bind");
        let (pa, pb) = (a.local_addr().expect("a").port(), b.local_addr().expect("b").port());
        assert!(pa % 2 == 0 && pb % 2 == 0 && pa != pb, "{pa} {pb}");
        assert!((41002..=41010).contains(&pa) && (41002..=41010).contains(&pb));
        let mut held = vec![a, b];
        for _ in 0..3 {
            held.push(pool.bind("127.0.0.1".parse().expect("ip")).await.expect("bind"));
        }
        let e = pool.bind("127.0.0.1".parse().expect("ip")).await.expect_err("range exhausted");
        assert!(e.to_string().contains("widen calls.rtp_ports"), "{e}");
    }
}
