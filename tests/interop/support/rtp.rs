//! The test's own RTP endpoint (a plain UDP socket on loopback), G.711
//! μ-law encoding of test signals, and a kernel-side view of a socket's
//! receive queue (for sipp's media socket, which sipp does not read).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One RTP packet as received.
#[allow(dead_code)]
#[derive(Clone, Debug)]
pub struct RxPacket {
    /// Since the peer started.
    pub at: Duration,
    pub from: SocketAddr,
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

/// What the peer saw and did, once stopped.
#[derive(Debug, Default)]
pub struct RtpReport {
    pub received: Vec<RxPacket>,
    /// Datagrams that were not RTP version 2 with a 12+ byte header.
    pub junk: usize,
    pub sent: usize,
    /// When the first frame was sent (since the peer started).
    pub first_sent_at: Option<Duration>,
}

/// A symmetric RTP endpoint: it waits for the first packet from the far end
/// (voice-ua starts sending as soon as it answers), then sends `frames`
/// (160-byte payloads, one every 20 ms, payload type `pt`) back to where
/// that packet came from, followed by `filler` until stopped. Everything
/// received is recorded.
pub struct RtpPeer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<RtpReport>>,
}

impl RtpPeer {
    pub fn start(ip: &str, port: u16, pt: u8, frames: Vec<Vec<u8>>, filler: Option<Vec<u8>>) -> RtpPeer {
        let socket =
            UdpSocket::bind((ip, port)).unwrap_or_else(|e| panic!("cannot bind RTP peer {ip}:{port}: {e}"));
        socket.set_read_timeout(Some(Duration::from_millis(2))).expect("set a read timeout");
        let addr = socket.local_addr().expect("local address of a bound socket");
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let thread =
            std::thread::spawn(move || run_peer(&socket, pt, &frames, filler.as_deref(), &stop_flag));
        RtpPeer { addr, stop, thread: Some(thread) }
    }

    pub fn stop(mut self) -> RtpReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map(|t| t.join().expect("RTP peer thread panicked")).unwrap_or_default()
    }
}

impl Drop for RtpPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run_peer(
    socket: &UdpSocket,
    pt: u8,
    frames: &[Vec<u8>],
    filler: Option<&[u8]>,
    stop: &AtomicBool,
) -> RtpReport {
    let start = Instant::now();
    let mut report = RtpReport::default();
    let mut buf = [0u8; 2048];
    let mut remote: Option<SocketAddr> = None;
    let mut next_send: Option<Instant> = None;
    let ssrc: u32 = 0x5EED_0001;
    let mut seq: u16 = 1000;
    let mut ts: u32 = 160_000;
    let mut was_silent = true;
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                let at = start.elapsed();
                let pkt = &buf[..n];
                if n < 12 || pkt[0] >> 6 != 2 {
                    report.junk += 1;
                } else {
                    let cc = usize::from(pkt[0] & 0x0f);
                    let header = 12 + 4 * cc;
                    report.received.push(RxPacket {
                        at,
                        from,
                        pt: pkt[1] & 0x7f,
                        marker: pkt[1] & 0x80 != 0,
                        seq: u16::from_be_bytes([pkt[2], pkt[3]]),
                        ssrc: u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]),
                        payload: pkt.get(header..).unwrap_or_default().to_vec(),
                    });
                    if remote.is_none() {
                        remote = Some(from);
                        next_send = Some(Instant::now());
                    }
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("RTP peer receive failed: {e}"),
        }
        if let (Some(to), Some(due)) = (remote, next_send) {
            if Instant::now() >= due {
                let frame = frames.get(report.sent).map(Vec::as_slice).or(filler);
                if let Some(payload) = frame {
                    let silent = payload.iter().all(|&b| b == 0xFF || b == 0xD5);
                    let marker = was_silent && !silent;
                    was_silent = silent;
                    let mut pkt = Vec::with_capacity(12 + payload.len());
                    pkt.push(0x80);
                    pkt.push(if marker { 0x80 | pt } else { pt });
                    pkt.extend_from_slice(&seq.to_be_bytes());
                    pkt.extend_from_slice(&ts.to_be_bytes());
                    pkt.extend_from_slice(&ssrc.to_be_bytes());
                    pkt.extend_from_slice(payload);
                    // loopback: a send error only means voice-ua's port is gone
                    let _ = socket.send_to(&pkt, to);
                    report.first_sent_at.get_or_insert(start.elapsed());
                    report.sent += 1;
                    seq = seq.wrapping_add(1);
                    ts = ts.wrapping_add(160);
                }
                next_send = Some(due + Duration::from_millis(20));
            }
        }
    }
    report
}

/// G.711 μ-law encoding of one 16-bit linear sample (ITU-T G.711, the
/// classic bias-and-segment form).
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// A speech-like test signal as 20 ms μ-law frames: `syllables` bursts of
/// `syllable_ms` (a 180 Hz + 520 Hz + 1100 Hz mix, its amplitude shaped by
/// a raised sine like a syllable, the pitch drifting per syllable), each
/// followed by `gap_ms` of near silence.
pub fn speech_like_ulaw(syllables: usize, syllable_ms: usize, gap_ms: usize) -> Vec<Vec<u8>> {
    let mut samples: Vec<i16> = Vec::new();
    for k in 0..syllables {
        let n = syllable_ms * 8;
        let f0 = 160.0 + 25.0 * k as f64;
        for i in 0..n {
            let t = i as f64 / 8000.0;
            let env = (std::f64::consts::PI * i as f64 / n as f64).sin().powi(2);
            let v = (2.0 * std::f64::consts::PI * f0 * t).sin() * 0.5
                + (2.0 * std::f64::consts::PI * 3.2 * f0 * t).sin() * 0.3
                + (2.0 * std::f64::consts::PI * 6.8 * f0 * t).sin() * 0.2;
            samples.push((v * env * 12000.0) as i16);
        }
        samples.extend(std::iter::repeat_n(0i16, gap_ms * 8));
    }
    samples
        .chunks(160)
        .filter(|c| c.len() == 160)
        .map(|c| c.iter().map(|&s| linear_to_ulaw(s)).collect())
        .collect()
}

/// μ-law silence (0xFF encodes 0).
pub fn ulaw_silence() -> Vec<u8> {
    vec![0xFF; 160]
}

/// The kernel's view of a UDP socket bound to `ip:port`: bytes waiting in
/// its receive queue and datagrams dropped because it was full. sipp never
/// reads its `-mp` media socket unless `-rtp_echo` is on, so this is what
/// voice-ua sent there.
pub fn udp_socket_backlog(ip: [u8; 4], port: u16) -> Option<(u64, u64)> {
    let want = format!("{:02X}{:02X}{:02X}{:02X}:{port:04X}", ip[3], ip[2], ip[1], ip[0]);
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 13 || cols[1] != want {
            return None;
        }
        let rx_queue = u64::from_str_radix(cols[4].split(':').nth(1)?, 16).ok()?;
        let drops = cols.last()?.parse().ok()?;
        Some((rx_queue, drops))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_encoding_known_values() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(32767), 0x80);
        assert_eq!(linear_to_ulaw(-32768), 0x00);
    }

    #[test]
    fn speech_like_signal_has_syllables_and_gaps() {
        let frames = speech_like_ulaw(3, 200, 100);
        assert_eq!(frames.len(), 45);
        let loud = frames.iter().filter(|f| f.iter().any(|&b| b & 0x7f < 0x40)).count();
        assert!(loud > 15 && loud < 35, "{loud}");
    }
}
