//! The crate's one error type: what went wrong with a packet, buffer or setting, in typed fields.

/// Everything that can fail in `voice-ua-media`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// Fewer bytes than the RTP (or RFC 4733) header says there must be.
    #[error("packet truncated: {needed} bytes needed, {got} received (drop it: damaged or not RTP)")]
    Truncated {
        /// Bytes the headers require.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// The first two bits are not RTP version 2.
    #[error("RTP version {0} is not 2: not an RTP packet (STUN, DTLS or stray traffic on the media port?)")]
    BadVersion(u8),
    /// The padding count in the last byte is zero or larger than the payload.
    #[error("RTP padding of {padding} bytes does not fit in the {available} bytes after the header")]
    BadPadding {
        /// Padding count from the packet's last byte.
        padding: usize,
        /// Bytes available after the header.
        available: usize,
    },
    /// Larger than any RTP packet this crate accepts.
    #[error("packet of {len} bytes is larger than the {max}-byte limit (fragmented or not RTP)")]
    Oversize {
        /// Packet length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The caller's output buffer cannot hold the result.
    #[error("output buffer of {got} bytes is too small: {needed} needed")]
    BufferTooSmall {
        /// Bytes required.
        needed: usize,
        /// Bytes offered.
        got: usize,
    },
    /// More than 15 CSRCs, or a header extension not a whole number of 32-bit words.
    #[error("cannot build RTP header: {0}")]
    BadHeader(&'static str),
    /// A telephone-event code outside 0-15 (0-9, *, #, A-D) was asked for.
    #[error("'{0}' is not a DTMF digit: use 0-9, *, #, A-D")]
    BadDigit(char),
    /// A sample rate the resampler does not support.
    #[error("unsupported sample rate {0} Hz: use 8000, 16000, 22050, 24000, 44100 or 48000")]
    UnsupportedRate(u32),
    /// The endpointer was asked for a sample rate other than 8 or 16 kHz.
    #[error("endpointing runs on 8000 or 16000 Hz audio, not {0} Hz: resample the caller's audio first")]
    EndpointRate(u32),
    /// The echo canceller was asked for a sample rate other than 8 or 16 kHz.
    #[error("echo cancellation runs on 8000 or 16000 Hz audio, not {0} Hz: resample the call's audio first")]
    EchoRate(u32),
    /// An endpointing setting outside its sensible range.
    #[error("endpointing setting {setting} = {value} is out of range: {expected}")]
    BadEndpointSetting {
        /// The setting's name, as in [`EndpointSettings`](crate::endpoint::EndpointSettings).
        setting: &'static str,
        /// The value given, as written.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
}
