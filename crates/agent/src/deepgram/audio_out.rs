//! The caller's audio on its way into a WebSocket binary message without an allocation
//! per frame: tungstenite takes each payload as `Bytes`, copies it into its write
//! buffer and drops it before `send` returns, so one `BytesMut` per connection is
//! split off for each frame and reclaimed at the next.

use bytes::{Bytes, BytesMut};

/// One connection's reusable buffer for outgoing audio payloads.
#[derive(Debug, Default)]
pub struct AudioOut {
    buf: BytesMut,
}

impl AudioOut {
    /// A buffer with room for one frame of `frame_bytes`.
    pub fn new(frame_bytes: usize) -> AudioOut {
        AudioOut { buf: BytesMut::with_capacity(frame_bytes) }
    }

    /// `audio` as a payload. Once the previous payload has been dropped, its storage is
    /// reused (no allocation while frames do not grow).
    pub fn payload(&mut self, audio: &[u8]) -> Bytes {
        self.buf.reserve(audio.len());
        self.buf.extend_from_slice(audio);
        self.buf.split().freeze()
    }
}
