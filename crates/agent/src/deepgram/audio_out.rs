//! The caller's audio on its way into a WebSocket binary message without an allocation
//! per frame: [`AudioOut`], shared by every provider, lives in [`crate::ws`].

pub use crate::ws::AudioOut;
