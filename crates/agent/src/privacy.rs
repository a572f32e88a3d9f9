//! Whether what the caller and the agent say may appear in the log: off by default
//! (`[log] transcripts`), for every provider's lines that would carry it (the call
//! record keeps the transcript either way). One process-wide switch, set once at start.

use std::sync::atomic::{AtomicBool, Ordering};

static LOG_TEXT: AtomicBool = AtomicBool::new(false);

/// Let the providers log conversation text (debug and trace lines that carry it).
pub fn set_log_text(on: bool) {
    LOG_TEXT.store(on, Ordering::Relaxed);
}

/// Conversation text may be logged.
pub fn log_text() -> bool {
    LOG_TEXT.load(Ordering::Relaxed)
}
