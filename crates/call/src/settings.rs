//! What a call core is built from: the settings every call shares (from the
//! configuration) and the facts of one call (its addresses, seed and start time).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};
use voice_ua_media::JitterConfig;
use voice_ua_sip::negotiate::Codec;

/// What the caller hears, and where they go, when the agent fails.
#[derive(Clone, Default)]
pub struct Fallback {
    /// μ-law 8 kHz audio (transcoded for A-law calls).
    pub ulaw: Vec<u8>,
    /// Where to transfer the caller afterwards (extension or SIP URI).
    pub transfer: Option<String>,
}

impl std::fmt::Debug for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fallback")
            .field("audio_seconds", &(self.ulaw.len() as f64 / 8000.0))
            .field("transfer", &self.transfer)
            .finish()
    }
}

/// Settings every call shares.
#[derive(Debug, Clone)]
pub struct CallSettings {
    /// Codecs we accept, in preference order.
    pub codecs: Vec<Codec>,
    /// Hang up after this long without RTP (while the PBX sends to us).
    pub media_timeout: Duration,
    /// How long to ring before answering (a CANCEL meanwhile ends the call).
    pub ring: Duration,
    /// How long an answered call waits for its ACK.
    pub ack_wait: Duration,
    pub jitter: JitterConfig,
    /// SIP domain, for transfer targets given as bare extensions.
    pub domain: String,
    pub fallback: Fallback,
    /// μ-law 8 kHz audio played to the caller when the call is answered, before the
    /// agent's first words (a recording notice); empty: none. The caller talking over it
    /// does not cut it short.
    pub consent_prompt: Vec<u8>,
    /// Log each transcript line (what the caller and the agent said) at info. Off by
    /// default: the call record keeps the transcript either way.
    pub log_transcripts: bool,
}

/// The facts of one call the core cannot learn itself.
#[derive(Debug, Clone)]
pub struct CallSetup {
    /// Our RTP address, for the SDP.
    pub local_media: SocketAddr,
    /// The PBX's IPs: RTP may latch to them as well as to the SDP's address.
    pub pbx_ips: Vec<IpAddr>,
    /// Randomness for the SDP session id, SSRC, sequence and timestamp.
    pub seed: u64,
    /// The wall-clock time at the `now` the core was made with (for record times).
    pub wall_clock: SystemTime,
    /// Keep each tick's audio (both sides) for [`crate::CallCore::take_heard`].
    pub keep_audio: bool,
}
