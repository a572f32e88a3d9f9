//! Free loopback ports, free for both UDP and TCP, never handed out twice
//! within one test process (tests run in parallel).

use std::collections::HashSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::{Mutex, OnceLock};

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A port on 127.0.0.1 that is currently free for UDP and TCP.
pub fn free_port() -> u16 {
    for _ in 0..500 {
        let udp = UdpSocket::bind(("127.0.0.1", 0)).expect("bind a UDP socket on 127.0.0.1:0");
        let port = udp.local_addr().expect("local address of a bound socket").port();
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        let mut used = handed_out().lock().unwrap_or_else(|e| e.into_inner());
        if used.insert(port) {
            return port;
        }
    }
    panic!("no free UDP+TCP port on 127.0.0.1 after 500 tries");
}

/// A port on 127.0.0.1 free for UDP and TCP whose next port is free for both too; both
/// are handed out. baresip listens for SIP over TLS on its SIP port + 1, and fails to
/// start when that port is taken (e.g. by another process's outgoing connection).
pub fn free_port_pair() -> u16 {
    for _ in 0..500 {
        let port = free_port();
        let Some(next) = port.checked_add(1) else { continue };
        if UdpSocket::bind(("127.0.0.1", next)).is_err() || TcpListener::bind(("127.0.0.1", next)).is_err() {
            continue;
        }
        let mut used = handed_out().lock().unwrap_or_else(|e| e.into_inner());
        if used.insert(next) {
            return port;
        }
    }
    panic!("no two free UDP+TCP ports in a row on 127.0.0.1 after 500 tries");
}

/// Whether something listens on 127.0.0.1:`port` (TCP LISTEN, or a bound
/// UDP socket), read from /proc/net without touching the socket.
pub fn is_listening(port: u16, tcp: bool) -> bool {
    let (file, state) = if tcp { ("/proc/net/tcp", "0A") } else { ("/proc/net/udp", "07") };
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string(file)
        .map(|table| {
            table.lines().skip(1).any(|line| {
                let cols: Vec<&str> = line.split_whitespace().collect();
                cols.len() > 3 && cols[1] == want && cols[3] == state
            })
        })
        .unwrap_or(false)
}
