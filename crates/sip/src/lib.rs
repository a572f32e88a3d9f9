//! voice-ua's SIP signalling: registration as a PBX extension and the answers every
//! out-of-dialog request gets.
//!
//! The protocol logic is sans-IO — `registration::Registrar` (what to send and
//! when), `digest` (RFC 7616 digest answers), [`message`] (the little SIP text
//! reading and writing the cores need), [`bad_request`] (a 400 for a request the
//! parser rejects) — and is driven in virtual time by the tests. The tokio shell in
//! `user_agent` wires those cores to rsipstack, and `registration_driver` runs the
//! registration; rsipstack never leaks out of this crate: the binary only sees
//! [`SipSettings`], [`SipUa`] and [`RegStatus`].
//!
//! Public modules are the ones the binary, the tests and the fuzz targets use; the
//! rest is private to the crate.

pub mod bad_request;
pub mod info_dtmf;
pub mod message;
pub mod negotiate;
pub mod refusals;
pub mod screen;
pub mod sdp;
pub mod session_timer;

mod calls;
mod digest;
mod error;
mod gate;
mod guarded_udp;
mod ids;
mod keepalive;
mod pbx_address;
mod ratelimit;
mod reason;
mod registration;
mod registration_driver;
mod router;
mod settings;
mod tcp_guard;
mod user_agent;

pub use calls::{
    CallEnd, CallInfo, CallSignal, IncomingCall, OfferRequest, SessionRefresher, Transferer, ACK_WAIT,
};
pub use error::SipError;
pub use ids::IdSource;
pub use pbx_address::{PbxResolver, SystemResolver};
pub use reason::{Reason, ReasonProtocol};
pub use registration_driver::{RegFailure, RegStatus};
pub use settings::{KeepaliveMode, SipSettings, Transport};
pub use tcp_guard::TcpRefusals;
pub use user_agent::SipUa;
