//! Response bodies: [`PacedBody`] hands hyper its chunks one by one, each after its
//! delay (or never: a stall), and tells the request's record through a [`Tracker`] what
//! went out and whether the body reached its end before the client left.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::time::Sleep;

use crate::records::RecordRef;
use crate::server::Shared;

/// Keeps a request's record up to date; dropped before [`Tracker::finish`], it marks the
/// request as left early by the client.
pub(crate) struct Tracker {
    shared: Arc<Shared>,
    at: RecordRef,
    done: bool,
}

impl Tracker {
    pub(crate) fn new(shared: Arc<Shared>, at: RecordRef) -> Tracker {
        Tracker { shared, at, done: false }
    }

    fn sent(&self, bytes: usize) {
        self.shared.with_http(self.at, |h| {
            h.first_byte_at.get_or_insert_with(Instant::now);
            h.chunks_sent += 1;
            h.bytes_sent += bytes;
        });
    }

    pub(crate) fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.shared.with_http(self.at, |h| h.ended_at = Some(Instant::now()));
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if !self.done {
            self.shared.with_http(self.at, |h| {
                h.closed_early = true;
                h.ended_at = Some(Instant::now());
            });
        }
    }
}

/// The next chunk and the wait before it (`None`: wait forever).
pub(crate) type Step = (Option<Duration>, Bytes);

/// Produces a body's chunks in order; `None` ends the body.
pub(crate) type Source = Box<dyn FnMut() -> Option<Step> + Send>;

/// A response body sent chunk by chunk at its own pace.
pub(crate) struct PacedBody {
    source: Source,
    ready: Option<Bytes>,
    sleep: Option<Pin<Box<Sleep>>>,
    stalled: bool,
    /// A Content-Length body: its length.
    exact: Option<u64>,
    sent: u64,
    tracker: Option<Tracker>,
}

impl PacedBody {
    /// A body of `source`'s chunks.
    pub(crate) fn new(source: Source, tracker: Option<Tracker>) -> PacedBody {
        PacedBody { source, ready: None, sleep: None, stalled: false, exact: None, sent: 0, tracker }
    }

    /// `steps`, in order.
    pub(crate) fn steps(steps: Vec<Step>, tracker: Option<Tracker>) -> PacedBody {
        let mut steps = steps.into_iter();
        PacedBody::new(Box::new(move || steps.next()), tracker)
    }

    /// One buffer, at once, with a Content-Length.
    pub(crate) fn full(bytes: impl Into<Bytes>, tracker: Option<Tracker>) -> PacedBody {
        let bytes: Bytes = bytes.into();
        let exact = bytes.len() as u64;
        let mut body = PacedBody::steps(vec![(Some(Duration::ZERO), bytes)], tracker);
        body.exact = Some(exact);
        if exact == 0 {
            // hyper never polls an empty body with a length.
            if let Some(t) = body.tracker.as_mut() {
                t.finish();
            }
        }
        body
    }
}

impl Body for PacedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        loop {
            if this.stalled {
                // Nothing will wake this: the connection ends when the client leaves.
                return Poll::Pending;
            }
            if let Some(sleep) = this.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
            }
            if let Some(bytes) = this.ready.take() {
                this.sent += bytes.len() as u64;
                if let Some(t) = this.tracker.as_mut() {
                    t.sent(bytes.len());
                    // hyper stops polling a body with a length once it has it all.
                    if this.exact.is_some_and(|n| this.sent >= n) {
                        t.finish();
                    }
                }
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            match (this.source)() {
                None => {
                    if let Some(t) = this.tracker.as_mut() {
                        t.finish();
                    }
                    return Poll::Ready(None);
                }
                Some((None, _)) => this.stalled = true,
                Some((Some(wait), bytes)) => {
                    this.ready = Some(bytes);
                    if !wait.is_zero() {
                        this.sleep = Some(Box::pin(tokio::time::sleep(wait)));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.exact.is_some_and(|n| self.sent >= n)
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
