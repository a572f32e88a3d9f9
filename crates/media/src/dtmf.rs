//! RFC 4733 telephone-events (DTMF digits 0-9 * # A-D): the 4-byte payload, a receiver
//! that reports each key press once, and a sender that produces an event's packets.
//!
//! Receiving: an event is identified by SSRC + RTP timestamp (constant for the whole event),
//! so a lost or absent marker bit, retransmitted end packets (normally three) and reordered
//! stragglers never produce a second digit. Sending: marker on the first packet, growing
//! durations every 20 ms, then three end packets carrying the final duration; the
//! timestamp stays that of the event start (the pacer owns sequence numbers and time).

use std::time::Duration;

use crate::rtp::RtpPacket;
use crate::MediaError;

/// Samples per 20 ms packet at the 8 kHz telephone-event clock.
const PACKET_SAMPLES: u16 = 160;
/// End packets sent per event (RFC 4733 §2.5.1.4 recommends three).
pub const END_PACKETS: u8 = 3;

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code: 0-9 digits, 10 `*`, 11 `#`, 12-15 A-D.
    pub event: u8,
    /// E bit: this packet ends the event.
    pub end: bool,
    /// Power level in -dBm0, 0-63.
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parse the first 4 bytes of a payload (more may follow in redundant forms; ignored).
    pub fn parse(payload: &[u8]) -> Result<Self, MediaError> {
        let Some(b) = payload.first_chunk::<4>() else {
            return Err(MediaError::Truncated { needed: 4, got: payload.len() });
        };
        Ok(TelephoneEvent {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// The 4-byte payload (the reserved R bit is zero).
    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [self.event, (u8::from(self.end) << 7) | (self.volume & 0x3F), d[0], d[1]]
    }

    /// The DTMF digit, if the event is one (0-15).
    pub fn digit(self) -> Option<char> {
        event_to_digit(self.event)
    }
}

/// `'0'..='9'`, `'*'`, `'#'`, `'A'..='D'` for events 0-15.
pub fn event_to_digit(event: u8) -> Option<char> {
    const DIGITS: &[u8; 16] = b"0123456789*#ABCD";
    DIGITS.get(usize::from(event)).map(|&b| char::from(b))
}

/// The event code of a DTMF digit (lower-case a-d accepted).
pub fn digit_to_event(digit: char) -> Result<u8, MediaError> {
    match digit.to_ascii_uppercase() {
        d @ '0'..='9' => Ok(d as u8 - b'0'),
        '*' => Ok(10),
        '#' => Ok(11),
        d @ 'A'..='D' => Ok(d as u8 - b'A' + 12),
        _ => Err(MediaError::BadDigit(digit)),
    }
}

/// What the receiver noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfEvent {
    /// A key went down (first packet of a new event): report the digit now.
    Pressed {
        /// The digit.
        digit: char,
    },
    /// The event ended (first of its end packets).
    Released {
        /// The digit.
        digit: char,
        /// Its total duration.
        duration: Duration,
    },
}

/// Receives telephone-events of one negotiated (dynamic) payload type.
#[derive(Debug, Clone)]
pub struct DtmfReceiver {
    payload_type: u8,
    /// The event in progress: (ssrc, timestamp, code).
    current: Option<(u32, u32, u8)>,
    /// Recently finished events, so stragglers and repeated ends are ignored.
    finished: [Option<(u32, u32)>; 8],
    next_finished: usize,
}

impl DtmfReceiver {
    /// A receiver for the payload type negotiated for `telephone-event/8000`.
    pub fn new(payload_type: u8) -> Self {
        DtmfReceiver { payload_type, current: None, finished: [None; 8], next_finished: 0 }
    }

    /// The negotiated payload type (so the caller can route packets).
    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    /// Renegotiated payload type (re-INVITE).
    pub fn set_payload_type(&mut self, payload_type: u8) {
        self.payload_type = payload_type;
    }

    /// Whether a packet belongs to this receiver.
    pub fn accepts(&self, packet: &RtpPacket<'_>) -> bool {
        packet.header.payload_type == self.payload_type
    }

    /// Offer a packet; returns what it means, if anything new. Other payload types,
    /// malformed payloads and non-DTMF events are ignored.
    pub fn handle(&mut self, packet: &RtpPacket<'_>) -> Option<DtmfEvent> {
        if !self.accepts(packet) {
            return None;
        }
        let event = TelephoneEvent::parse(packet.payload()).ok()?;
        let digit = event.digit()?;
        let key = (packet.header.ssrc, packet.header.timestamp);
        if self.finished.contains(&Some(key)) {
            return None;
        }
        let is_current =
            self.current.is_some_and(|(ssrc, ts, code)| (ssrc, ts) == key && code == event.event);
        if event.end {
            self.current = None;
            self.finished[self.next_finished % self.finished.len()] = Some(key);
            self.next_finished = self.next_finished.wrapping_add(1);
            let duration = Duration::from_micros(u64::from(event.duration) * 125);
            if !is_current {
                // Only the end arrived (start lost): still report the key press once.
                // The caller sees Pressed now; the release is implied.
                return Some(DtmfEvent::Pressed { digit });
            }
            return Some(DtmfEvent::Released { digit, duration });
        }
        if is_current {
            return None;
        }
        // A new event, marker bit or not (some senders omit it).
        self.current = Some((key.0, key.1, event.event));
        Some(DtmfEvent::Pressed { digit })
    }
}

/// Produces the payloads of one outgoing event, one per 20 ms frame.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    event: u8,
    volume: u8,
    total: u16,
    elapsed: u16,
    ends_sent: u8,
}

impl DtmfSender {
    /// An event for `digit` lasting `duration` (rounded up to 20 ms, 40 ms at least,
    /// at most 8 s) at `volume` -dBm0 (10 is typical).
    pub fn new(digit: char, duration: Duration, volume: u8) -> Result<Self, MediaError> {
        let event = digit_to_event(digit)?;
        let packets = duration.as_millis().div_ceil(20).clamp(2, 400) as u16;
        Ok(DtmfSender {
            event,
            volume: volume.min(63),
            total: packets * PACKET_SAMPLES,
            elapsed: 0,
            ends_sent: 0,
        })
    }

    /// The next packet: `(payload, marker)`, or `None` when the event is over.
    pub fn next_payload(&mut self) -> Option<([u8; 4], bool)> {
        if self.elapsed < self.total {
            let marker = self.elapsed == 0;
            self.elapsed += PACKET_SAMPLES;
            let ev =
                TelephoneEvent { event: self.event, end: false, volume: self.volume, duration: self.elapsed };
            return Some((ev.to_bytes(), marker));
        }
        if self.ends_sent < END_PACKETS {
            self.ends_sent += 1;
            let ev =
                TelephoneEvent { event: self.event, end: true, volume: self.volume, duration: self.total };
            return Some((ev.to_bytes(), false));
        }
        None
    }

    /// Whether every packet has been produced.
    pub fn is_done(&self) -> bool {
        self.elapsed >= self.total && self.ends_sent >= END_PACKETS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpHeader;

    fn packet(payload: &[u8], ts: u32, marker: bool) -> RtpPacket<'_> {
        RtpPacket::new(RtpHeader { marker, payload_type: 101, sequence: 0, timestamp: ts, ssrc: 9 }, payload)
    }

    #[test]
    fn digits_and_codes() {
        for (code, digit) in "0123456789*#ABCD".chars().enumerate() {
            assert_eq!(digit_to_event(digit), Ok(code as u8));
            assert_eq!(event_to_digit(code as u8), Some(digit));
        }
        assert_eq!(digit_to_event('b'), Ok(13));
        assert_eq!(digit_to_event('x'), Err(MediaError::BadDigit('x')));
        assert_eq!(event_to_digit(16), None);
    }

    #[test]
    fn payload_round_trip_and_truncation() {
        let ev = TelephoneEvent { event: 11, end: true, volume: 10, duration: 1280 };
        assert_eq!(ev.to_bytes(), [11, 0x8A, 0x05, 0x00]);
        assert_eq!(TelephoneEvent::parse(&ev.to_bytes()), Ok(ev));
        assert!(TelephoneEvent::parse(&[1, 2, 3]).is_err());
    }

    #[test]
    fn one_digit_per_event_without_marker_and_with_repeated_ends() {
        let mut rx = DtmfReceiver::new(101);
        let start = [5, 10, 0, 160];
        let mid = [5, 10, 1, 64];
        let end = [5, 0x8A, 3, 32];
        assert_eq!(rx.handle(&packet(&start, 1000, false)), Some(DtmfEvent::Pressed { digit: '5' }));
        assert_eq!(rx.handle(&packet(&mid, 1000, false)), None);
        assert_eq!(
            rx.handle(&packet(&end, 1000, false)),
            Some(DtmfEvent::Released { digit: '5', duration: Duration::from_millis(100) })
        );
        assert_eq!(rx.handle(&packet(&end, 1000, false)), None);
        assert_eq!(rx.handle(&packet(&end, 1000, false)), None);
        // A late straggler of the finished event is ignored too.
        assert_eq!(rx.handle(&packet(&mid, 1000, false)), None);
        // Same digit again: a new timestamp, a new press.
        assert_eq!(rx.handle(&packet(&start, 2000, true)), Some(DtmfEvent::Pressed { digit: '5' }));
        // Only the end packets of an event made it: reported once.
        assert_eq!(
            rx.handle(&packet(&[7, 0x8A, 3, 32], 3000, false)),
            Some(DtmfEvent::Pressed { digit: '7' })
        );
        assert_eq!(rx.handle(&packet(&[7, 0x8A, 3, 32], 3000, false)), None);
        // Not DTMF, wrong payload type, malformed.
        assert_eq!(rx.handle(&packet(&[16, 10, 0, 160], 4000, false)), None);
        assert_eq!(rx.handle(&packet(&[1, 2], 5000, false)), None);
        let mut other = packet(&start, 6000, false);
        other.header.payload_type = 96;
        assert_eq!(rx.handle(&other), None);
    }

    #[test]
    fn sender_produces_marker_durations_and_three_ends() {
        let mut tx = DtmfSender::new('#', Duration::from_millis(100), 10).expect("digit");
        let mut packets = Vec::new();
        while let Some(p) = tx.next_payload() {
            packets.push(p);
        }
        assert!(tx.is_done());
        assert_eq!(packets.len(), 5 + 3);
        assert!(packets[0].1);
        assert!(packets[1..].iter().all(|p| !p.1));
        let events: Vec<TelephoneEvent> =
            packets.iter().map(|p| TelephoneEvent::parse(&p.0).expect("valid")).collect();
        let durations: Vec<u16> = events.iter().map(|e| e.duration).collect();
        assert_eq!(durations, vec![160, 320, 480, 640, 800, 800, 800, 800]);
        assert!(events[..5].iter().all(|e| !e.end && e.event == 11));
        assert!(events[5..].iter().all(|e| e.end));
        assert!(DtmfSender::new('E', Duration::from_millis(100), 10).is_err());
    }
}
