//! The SIP crate's errors: each names what failed, why, and what to do.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SipError {
    #[error("cannot resolve the PBX address \"{pbx}\": {why}; check --pbx (HOST or HOST:PORT)")]
    ResolvePbx { pbx: String, why: String },
    #[error("cannot listen for SIP on {addr}: {source}; is another SIP program using the port? pick another with --bind")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot find which local address reaches the PBX at {pbx}: {source}; set --public-addr or bind a specific address with --bind")]
    LocalAddress { pbx: SocketAddr, source: std::io::Error },
    #[error("the SIP stack failed: {0}")]
    Stack(String),
}

impl From<rsipstack::Error> for SipError {
    fn from(e: rsipstack::Error) -> Self {
        SipError::Stack(e.to_string())
    }
}
