//! The call's books: the metrics guard (active while the call lives, its outcome
//! counted once) and the call record. Whatever path the call takes, dropping the books
//! counts the outcome and hands the finished record to the writer.

use super::parties::{display_name, uri_of};
use super::CallConfig;
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;
use voice_ua_call::{CallCore, ENDED_BY_SHUTDOWN};
use voice_ua_records::{CallOutcome, CallRecord, RecordWriter};
use voice_ua_sip::negotiate::Codec;
use voice_ua_sip::CallInfo;

pub(super) struct Books {
    counted: crate::metrics::CallGuard,
    record: Option<(RecordWriter, CallRecord)>,
    /// voice-ua is stopping: a call cut off before it could finish its books (its
    /// task aborted at the shutdown deadline) ended by shutdown, not by failure.
    stop: CancellationToken,
}

impl Books {
    pub(super) fn open(cfg: &CallConfig, info: &CallInfo, stop: &CancellationToken) -> Books {
        let record = cfg.records.clone().map(|w| {
            let now = SystemTime::now();
            let mut r = CallRecord::new(
                CallRecord::new_id(now),
                &info.sip_call_id,
                uri_of(&info.from),
                uri_of(&info.to),
                now,
            );
            r.caller_display = display_name(&info.from);
            (w, r)
        });
        Books { counted: cfg.metrics.call_started(), record, stop: stop.clone() }
    }

    /// The call was refused before it had a core (no RTP port).
    pub(super) fn refused(&mut self, why: String) {
        if let Some((_, r)) = self.record.as_mut() {
            r.end_reason = why;
            r.hung_up_by = "voice-ua".into();
        }
    }

    /// The call is up: its record's first version is written.
    pub(super) fn answered(&mut self, codec: Codec, agent: &str) {
        if let Some((w, r)) = self.record.as_mut() {
            r.answered = Some(SystemTime::now());
            r.codec = Some(codec.encoding().to_string());
            r.agent = Some(agent.to_string());
            w.started(r);
        }
    }

    pub(super) fn record_id(&self) -> Option<&str> {
        self.record.as_ref().map(|(_, r)| r.id.as_str())
    }

    /// The call is over: its outcome counted, its figures into the record.
    pub(super) fn close(&mut self, core: &mut CallCore, recording: Option<std::path::PathBuf>) {
        let outcome = core.ending().map_or(CallOutcome::Failed, |e| e.outcome);
        self.counted.set_outcome(outcome);
        if let Some((_, r)) = self.record.as_mut() {
            core.fill_record(r);
            r.outcome = outcome;
            r.recording = recording;
        }
    }
}

impl Drop for Books {
    fn drop(&mut self) {
        if let Some((writer, mut r)) = self.record.take() {
            r.ended = Some(SystemTime::now());
            if r.outcome == CallOutcome::InProgress && self.stop.is_cancelled() {
                self.counted.set_outcome(CallOutcome::Shutdown);
                r.outcome = CallOutcome::Shutdown;
                r.end_reason = ENDED_BY_SHUTDOWN.into();
                r.hung_up_by = "voice-ua".into();
            } else if r.outcome == CallOutcome::InProgress {
                r.outcome = CallOutcome::Failed;
            }
            if !writer.finished(r) {
                tracing::warn!("the call record could not be queued for writing");
            }
        }
    }
}
