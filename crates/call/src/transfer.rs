//! A blind transfer under way (RFC 3515): the REFER we asked the driver to send, the
//! PBX's answer to it, then the NOTIFYs that report the new call's progress. The agent
//! that asked gets exactly one [`TransferOutcome`]; the fallback's own transfer has
//! nobody to tell.

use std::time::{Duration, Instant};

/// How long after the PBX took a REFER (202) the agent is told "accepted" if no NOTIFY
/// has reported the end by then.
pub const TRANSFER_REPORT_AFTER: Duration = Duration::from_secs(4);

/// What to do once the queued agent audio has played out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AfterPlayback {
    /// The agent ended the call (its goodbye, or its session finished).
    HangUp(String),
    /// The agent failed and there is nobody to transfer to: the fallback prompt was
    /// the caller's last word.
    GiveUp(String),
    /// REFER to this target; `for_agent`: the agent asked (and waits for the outcome).
    Transfer { target: String, for_agent: bool },
}

#[derive(Debug)]
pub(crate) struct Transfer {
    pub(crate) uri: String,
    /// The agent asked for it and waits for exactly one result.
    pub(crate) for_agent: bool,
    reported: bool,
    /// The PBX took the REFER: tell the agent "accepted" at this instant unless a
    /// NOTIFY has settled it first.
    report_by: Option<Instant>,
}

impl Transfer {
    pub(crate) fn new(uri: String, for_agent: bool) -> Transfer {
        Transfer { uri, for_agent, reported: false, report_by: None }
    }

    /// The PBX took the REFER at `now`.
    pub(crate) fn accepted(&mut self, now: Instant) {
        self.report_by = Some(now + TRANSFER_REPORT_AFTER);
    }

    /// The agent is owed a report: true once, then false.
    pub(crate) fn take_report(&mut self) -> bool {
        self.for_agent && !std::mem::replace(&mut self.reported, true)
    }

    /// When the "accepted" report falls due, if it is pending.
    pub(crate) fn report_at(&self) -> Option<Instant> {
        self.report_by.filter(|_| self.for_agent && !self.reported)
    }

    /// The "accepted" report is due at `now` (once).
    pub(crate) fn accepted_report_due(&mut self, now: Instant) -> bool {
        if self.report_by.is_some_and(|at| now >= at) {
            self.report_by = None;
            return self.take_report();
        }
        false
    }
}
