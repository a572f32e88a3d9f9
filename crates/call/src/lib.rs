//! One call as a sans-IO core: [`CallCore`] answers the INVITE, carries RTP through
//! its jitter buffer and pacer, cleans the caller's audio of our playback's echo,
//! passes audio and digits to the agent and carries out what the agent asks (barge-in,
//! when the caller really spoke; hang up, transfer, digits), runs the session timer and
//! the transfer's NOTIFYs, times each turn and keeps the record's figures.
//!
//! It has no sockets, no tasks and no clock: every input comes with the `now` it
//! happened at, and every output is drained (see `core.rs`). The binary's call task is
//! its driver; the tests drive it in virtual time.

mod agent_events;
mod barge_in;
mod core;
mod figures;
mod heard;
mod io;
mod media_leg;
mod playback;
mod settings;
mod signals;
mod tick;
mod transfer;
mod turn;

pub use crate::core::CallCore;
pub use barge_in::{DUCK_GAIN_DB, HOLD as BARGE_IN_HOLD};
pub use io::{Action, Datagram, EndedBy, Ending, Invite, Observation, Signal, ENDED_BY_SHUTDOWN};
pub use media_leg::{agent_format, codec_of, law_of};
pub use settings::{
    CallSettings, CallSetup, Fallback, DEFAULT_BARGE_IN_MIN_MS, DEFAULT_DUCK_MS, DEFAULT_ECHO_CANCEL,
};
pub use transfer::TRANSFER_REPORT_AFTER;
