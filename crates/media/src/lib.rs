//! voice-ua media core, sans-IO: bytes and an injected clock in, frames and actions out.
//!
//! Nothing here opens a socket, reads the system clock or spawns a task. Time is always
//! passed in as `now: std::time::Instant`; tests drive it virtually (`start + n * 20 ms`).
//! The per-frame paths allocate nothing in steady state and never panic on packet data.
//!
//! A call's receive path: datagram → [`RtpPacket::parse`] → [`SourceFilter::check`] →
//! telephone-event payload type? [`DtmfReceiver::handle`] : [`JitterBuffer::push`]; every
//! 20 ms [`JitterBuffer::pop`] yields one frame (8 kHz G.711, 16 kHz G.722: see
//! [`AudioCodec`]) (→ [`Resampler`] → agent).
//! Send path: agent audio → [`Resampler`] → [`Pacer::push_linear`]; on each timer
//! ([`Pacer::poll_timeout`]) drain [`Pacer::poll_transmit`] into the socket;
//! barge-in is [`Pacer::flush`], DTMF out is [`Pacer::send_dtmf`]. Each played-out caller
//! frame is first cleaned of our own playback's echo ([`EchoCanceller::process`], the
//! reference being what the caller heard) and then goes to [`CallerVad::push`] for turn timing, or, for an agent without
//! endpointing of its own, to [`Endpointer::push`], which decides when the caller's turn
//! ends and hands over the utterance.

pub mod aec;
pub mod codec;
pub mod dtmf;
pub mod endpoint;
pub mod error;
pub mod g711;
pub mod g722;
pub mod hold_tone;
pub mod jitter;
pub mod pacer;
pub mod plc;
pub mod resample;
pub mod rtp;
pub mod source;
pub mod vad;

pub use aec::{EchoCanceller, SpeechOverEcho};
pub use codec::{AudioCodec, FRAME_UNITS, MAX_FRAME_SAMPLES};
pub use dtmf::{DtmfEvent, DtmfReceiver, DtmfSender, TelephoneEvent};
pub use endpoint::{EndReason, EndpointEvent, EndpointSettings, Endpointer};
pub use error::MediaError;
pub use g711::Law;
pub use g722::{G722Decoder, G722Encoder};
pub use hold_tone::HoldTone;
pub use jitter::{Frame, FrameKind, JitterBuffer, JitterConfig, JitterStats, Pushed};
pub use pacer::{Overflow, Pacer, PacerConfig, PacerStats, Transmit, TransmitKind};
pub use plc::Plc;
pub use resample::Resampler;
pub use rtp::{RtpHeader, RtpPacket};
pub use source::{PayloadTypes, SourceFilter, SourceVerdict};
pub use vad::{pcm_level_dbfs, CallerVad, SpeechDetector, VadStep};
