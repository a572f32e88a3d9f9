//! The caller's audio on its way into a WebSocket binary message without an allocation
//! per frame: [`AudioOut`], shared by every provider (it lives in `crate::net`).

pub use crate::net::AudioOut;
