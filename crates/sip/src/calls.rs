//! Incoming calls as the rest of voice-ua sees them, with rsipstack's dialog layer
//! kept inside: `IncomingCall` (answer, reject, hang up, transfer, refresh) and the
//! `CallSignal`s of its dialog (ACK, re-offers, digits, the end). Every in-dialog
//! request gets a deliberate answer: offers go to the call task (and get 500 if it
//! drops one unanswered), INFO/OPTIONS/MESSAGE/NOTIFY are answered here.
//! One dispatcher task routes the dialog layer's state changes to the owning call
//! through a registry of per-call senders — the only shared table.

use crate::error::SipError;
use crate::gate::{CallGate, Slot};
use crate::info_dtmf::digit_from_info;
use crate::reason::Reason;
use crate::session_timer::TimerRequest;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason, TransactionHandle};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, StatusCode};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long an answered call waits for its ACK before it ends and gives its place
/// back. The 200 OK is retransmitted at T1, 2T1, 4T1… (0.5, 1, 2, 4 s): a caller
/// that is there has had it four times by then. A forged INVITE (never ACKed) holds
/// a pending place for no longer than this.
pub const ACK_WAIT: Duration = Duration::from_secs(8);

/// What is known about a call when its INVITE arrives.
#[derive(Debug, Clone)]
pub struct CallInfo {
    /// The INVITE's Call-ID (the call's id in logs).
    pub sip_call_id: String,
    pub from: String,
    pub to: String,
    /// Where the INVITE came from.
    pub source: SocketAddr,
    /// The SDP offer; None for a late-offer INVITE.
    pub offer: Option<Vec<u8>>,
    pub timer: TimerRequest,
}

/// Why a call ended, for the summary line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEnd {
    /// The PBX side ended it (BYE or CANCEL from them).
    pub by_remote: bool,
    pub detail: String,
}

/// Something the call's dialog did.
#[derive(Debug)]
pub enum CallSignal {
    /// An ACK arrived (for the 200 of the INVITE or of a re-INVITE), with the SDP
    /// answer it carries when we made the offer.
    Acked {
        sdp: Option<Vec<u8>>,
    },
    /// A re-INVITE or UPDATE: answer it.
    Offer(OfferRequest),
    /// A digit from SIP INFO.
    Digit(char),
    /// A NOTIFY about our REFER (its sipfrag status line code).
    TransferProgress(u16),
    Ended(CallEnd),
}

/// A re-INVITE or UPDATE waiting for our answer. Dropped unanswered, it is refused
/// with 500 (never rsipstack's silent 501).
pub struct OfferRequest {
    /// The offered SDP; empty for an offerless re-INVITE (we offer, the ACK answers).
    pub sdp: Vec<u8>,
    pub is_update: bool,
    pub timer: TimerRequest,
    handle: Option<TransactionHandle>,
}

impl std::fmt::Debug for OfferRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfferRequest")
            .field("sdp_len", &self.sdp.len())
            .field("is_update", &self.is_update)
            .finish()
    }
}

impl OfferRequest {
    /// 200 OK with our SDP and extra header lines.
    pub async fn answer(mut self, sdp: String, headers: Vec<(&'static str, String)>) {
        if let Some(h) = self.handle.take() {
            let mut hs: Vec<Header> = headers.into_iter().map(|(n, v)| Header::Other(n.into(), v)).collect();
            hs.push(Header::ContentType("application/sdp".into()));
            if h.respond(StatusCode::OK, Some(hs), Some(sdp.into_bytes())).await.is_err() {
                tracing::debug!("the re-offer's transaction was gone before our answer");
            }
        }
    }

    /// Refuse with `status` (488 for an unacceptable offer, 422 for a short timer).
    pub async fn reject(mut self, status: u16, headers: Vec<(&'static str, String)>) {
        if let Some(h) = self.handle.take() {
            let hs = headers.into_iter().map(|(n, v)| Header::Other(n.into(), v)).collect();
            let _ = h.respond(StatusCode::from(status), Some(hs), None).await;
        }
    }
}

impl Drop for OfferRequest {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            tracing::warn!("a re-offer was dropped unanswered: refusing it with 500");
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = h.reply(StatusCode::ServerInternalError).await;
                });
            }
        }
    }
}

/// Sends a blind transfer (REFER) on one call; cheap to clone, usable from any task.
/// The transfer's progress still arrives on the call as [`CallSignal::TransferProgress`].
#[derive(Clone)]
pub struct Transferer {
    dialog: InviteDialog,
    link: Arc<CallLink>,
}

impl Transferer {
    /// REFER to `target_uri`; the REFER's final status (202 when the PBX took it, 0 when
    /// no response came). Its NOTIFYs are expected from now until one ends the
    /// subscription; a NOTIFY with no transfer of ours under way gets 481.
    pub async fn refer(&self, target_uri: &str) -> Result<u16, SipError> {
        let uri = rsipstack::sip::Uri::try_from(target_uri)
            .map_err(|e| SipError::Stack(format!("transfer target {target_uri} is not a SIP URI: {e}")))?;
        // Counted before sending: the first NOTIFY may overtake the 202 (RFC 3515 §2.4.4).
        self.link.transfers.fetch_add(1, Ordering::AcqRel);
        let status = self.dialog.refer(uri, None, None).await.map(|r| r.map(|r| r.status_code.code()));
        if !matches!(status, Ok(Some(200..=299))) {
            self.link.transfer_settled();
        }
        Ok(status?.unwrap_or(0))
    }
}

/// What a call's task and the dispatcher share: its place at the gate and the
/// transfers (REFERs of ours) whose NOTIFYs may still come.
#[derive(Debug)]
pub(crate) struct CallLink {
    pub(crate) slot: Slot,
    transfers: AtomicU32,
}

impl CallLink {
    fn transfer_settled(&self) {
        let _ = self.transfers.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

/// Sends our session refreshes (re-INVITE with our SDP, RFC 4028) on one call from any
/// task, so the call's media loop never waits on the PBX's answer.
#[derive(Clone)]
pub struct SessionRefresher {
    dialog: InviteDialog,
}

impl SessionRefresher {
    /// The re-INVITE's final status (0 when no response came).
    pub async fn refresh(&self, sdp: &str, headers: Vec<(&'static str, String)>) -> Result<u16, SipError> {
        let mut hs: Vec<Header> = headers.into_iter().map(|(n, v)| Header::Other(n.into(), v)).collect();
        hs.push(Header::ContentType("application/sdp".into()));
        let resp = self.dialog.reinvite(Some(hs), Some(sdp.as_bytes().to_vec())).await?;
        Ok(resp.map(|r| r.status_code.code()).unwrap_or(0))
    }
}

/// A call offered to voice-ua. The owner answers or rejects it, then follows it
/// with `next` until `CallSignal::Ended`.
pub struct IncomingCall {
    pub info: CallInfo,
    dialog: InviteDialog,
    states: mpsc::UnboundedReceiver<Routed>,
    link: Arc<CallLink>,
    /// When our 200 OK went out (the ACK is due within [`ACK_WAIT`]).
    answered: OnceLock<Instant>,
    last_ack_cseq: Option<u32>,
    ended: bool,
}

impl Drop for IncomingCall {
    /// However the call's task ends, its place at the gate is given back.
    fn drop(&mut self) {
        self.link.slot.release();
    }
}

impl IncomingCall {
    /// 180 Ringing.
    pub fn ringing(&self) -> Result<(), SipError> {
        Ok(self.dialog.ringing(None, None)?)
    }

    /// 200 OK with our SDP (an answer, or our offer for a late-offer INVITE). Refused
    /// when the dialog has already ended (a CANCEL got there first).
    pub fn accept(&self, sdp: &str, headers: Vec<(&'static str, String)>) -> Result<(), SipError> {
        if matches!(self.dialog.state(), DialogState::Terminated(..)) {
            return Err(SipError::Stack("the call was cancelled before it was answered".into()));
        }
        let mut hs: Vec<Header> = headers.into_iter().map(|(n, v)| Header::Other(n.into(), v)).collect();
        hs.push(Header::ContentType("application/sdp".into()));
        self.dialog.accept(Some(hs), Some(sdp.as_bytes().to_vec()))?;
        let _ = self.answered.set(Instant::now());
        Ok(())
    }

    /// Refuse the call before answering (488, 486, 403, …).
    pub fn reject(&self, status: u16) -> Result<(), SipError> {
        Ok(self.dialog.reject(Some(StatusCode::from(status)), None)?)
    }

    /// BYE from our side, with a Reason header when `reason` is given.
    pub async fn hangup(&self, reason: Option<Reason>) -> Result<(), SipError> {
        match reason {
            Some(r) => self.dialog.bye_with_reason(r.to_string()).await?,
            None => self.dialog.bye().await?,
        }
        Ok(())
    }

    /// Blind transfer: REFER to `target` (a SIP URI or an extension at the PBX).
    /// Returns the REFER's final status (202 when the PBX took it).
    pub async fn refer(&self, target_uri: &str) -> Result<u16, SipError> {
        self.transferer().refer(target_uri).await
    }

    /// A handle that can send this call's REFER from another task, so the call's own
    /// loop never waits on the PBX's answer.
    pub fn transferer(&self) -> Transferer {
        Transferer { dialog: self.dialog.clone(), link: self.link.clone() }
    }

    /// A session refresh from our side (re-INVITE with our current SDP).
    pub async fn refresh(&self, sdp: &str, headers: Vec<(&'static str, String)>) -> Result<u16, SipError> {
        self.session_refresher().refresh(sdp, headers).await
    }

    /// A handle that sends this call's session refreshes from another task.
    pub fn session_refresher(&self) -> SessionRefresher {
        SessionRefresher { dialog: self.dialog.clone() }
    }

    /// The next thing the dialog did; None once the call has ended. An answered
    /// call whose ACK has not come within [`ACK_WAIT`] ends here.
    pub async fn next(&mut self) -> Option<CallSignal> {
        if self.ended {
            return None;
        }
        loop {
            let ack_due = self.answered.get().filter(|_| self.link.slot.is_pending()).map(|t| *t + ACK_WAIT);
            let routed = match ack_due {
                Some(due) => match tokio::time::timeout_at(due, self.states.recv()).await {
                    Ok(routed) => routed,
                    Err(_) => return Some(self.no_ack()),
                },
                None => self.states.recv().await,
            };
            let Some(routed) = routed else { break };
            let sig = match routed {
                Routed::Signal(sig) => sig,
                Routed::Confirmed => match self.new_ack() {
                    Some(sig) => sig,
                    None => continue,
                },
            };
            if matches!(sig, CallSignal::Acked { .. }) && !self.link.slot.acked() {
                return Some(self.over_the_limit());
            }
            if matches!(sig, CallSignal::Ended(_)) {
                self.link.slot.release();
                self.ended = true;
            }
            return Some(sig);
        }
        self.ended = true;
        self.link.slot.release();
        Some(CallSignal::Ended(CallEnd { by_remote: false, detail: "signalling stopped".into() }))
    }

    /// No ACK within [`ACK_WAIT`] of our 200 OK: end the call and free its place.
    fn no_ack(&mut self) -> CallSignal {
        self.ended = true;
        self.link.slot.release();
        CallSignal::Ended(CallEnd {
            by_remote: false,
            detail: format!("no ACK for our 200 OK within {} s", ACK_WAIT.as_secs()),
        })
    }

    /// The ACK came when `max_calls` calls were already up (several answers were
    /// pending at once): hang up at once, as if refused.
    fn over_the_limit(&mut self) -> CallSignal {
        self.ended = true;
        self.link.slot.release();
        let dialog = self.dialog.clone();
        tokio::spawn(async move {
            let _ =
                dialog.bye_with_reason("SIP;cause=486;text=\"over the concurrent call limit\"".into()).await;
        });
        CallSignal::Ended(CallEnd {
            by_remote: false,
            detail: "over the concurrent call limit when its ACK came".into(),
        })
    }

    /// `Confirmed` is re-emitted after every in-dialog request: only a new ACK counts.
    fn new_ack(&mut self) -> Option<CallSignal> {
        let ack = self.dialog.last_remote_ack()?;
        let cseq = ack.cseq_header().ok()?.seq().ok()?;
        if self.last_ack_cseq == Some(cseq) {
            return None;
        }
        self.last_ack_cseq = Some(cseq);
        let sdp = (!ack.body.is_empty()).then(|| ack.body.clone());
        Some(CallSignal::Acked { sdp })
    }
}

/// What the dispatcher hands a call: a signal, or "an ACK may have arrived".
#[derive(Debug)]
pub(crate) enum Routed {
    Signal(CallSignal),
    Confirmed,
}

/// Answer what can be answered at once and turn the rest into signals. Runs in the
/// dispatcher, so in-dialog OPTIONS or INFO never wait for a busy call task.
async fn route_state(state: DialogState, link: &CallLink) -> Option<Routed> {
    let sig = match state {
        DialogState::Confirmed(..) => return Some(Routed::Confirmed),
        DialogState::Updated(_, req, handle) => {
            let timer = timer_request(&req);
            let is_update = req.method == rsipstack::sip::Method::Update;
            CallSignal::Offer(OfferRequest { sdp: req.body.clone(), is_update, timer, handle: Some(handle) })
        }
        DialogState::Info(_, req, handle) => {
            let mut ct = header_values(&req, "Content-Type");
            ct.extend(header_values(&req, "c"));
            let digit = digit_from_info(ct.first().copied().unwrap_or(""), &req.body);
            let _ = handle.reply(StatusCode::OK).await;
            CallSignal::Digit(digit?)
        }
        DialogState::Notify(_, req, handle) => {
            if link.transfers.load(Ordering::Acquire) == 0 {
                // No REFER of ours is waiting for news: not a transfer outcome.
                let _ = handle.reply(StatusCode::CallTransactionDoesNotExist).await;
                return None;
            }
            let _ = handle.reply(StatusCode::OK).await;
            let status = sipfrag_status(&req.body);
            let terminated = header_values(&req, "Subscription-State")
                .iter()
                .any(|v| v.trim_start().get(..10).is_some_and(|s| s.eq_ignore_ascii_case("terminated")));
            if terminated || status.is_some_and(|s| s >= 200) {
                link.transfer_settled();
            }
            CallSignal::TransferProgress(status?)
        }
        DialogState::Options(_, _, handle) | DialogState::Message(_, _, handle) => {
            let _ = handle.reply(StatusCode::OK).await;
            return None;
        }
        DialogState::Refer(_, _, handle) | DialogState::Publish(_, _, handle) => {
            let _ = handle.reply(StatusCode::Forbidden).await;
            return None;
        }
        DialogState::Terminated(_, reason) => CallSignal::Ended(end_of(&reason)),
        _ => return None,
    };
    Some(Routed::Signal(sig))
}

fn end_of(reason: &TerminatedReason) -> CallEnd {
    let (by_remote, detail) = match reason {
        TerminatedReason::UacBye => (true, "caller hung up (BYE)".to_string()),
        TerminatedReason::UacCancel => (true, "caller cancelled before answer".to_string()),
        TerminatedReason::UasBye => (false, "voice-ua hung up (BYE)".to_string()),
        TerminatedReason::Timeout => (false, "no ACK for our 200 OK (timeout)".to_string()),
        TerminatedReason::UasDecline => (false, "refused by voice-ua".to_string()),
        other => (true, format!("{other:?}")),
    };
    CallEnd { by_remote, detail }
}

/// `SIP/2.0 200 OK` in a message/sipfrag body → 200.
fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().next()?;
    let mut parts = line.split_whitespace();
    (parts.next()? == "SIP/2.0").then_some(())?;
    parts.next()?.parse().ok().filter(|code| (100..=699).contains(code))
}

fn header_values<'a>(req: &'a rsipstack::sip::Request, name: &str) -> Vec<&'a str> {
    req.headers.iter().filter(|h| h.name().eq_ignore_ascii_case(name)).map(|h| h.value()).collect()
}

pub(crate) fn timer_request(req: &rsipstack::sip::Request) -> TimerRequest {
    let mut se = header_values(req, "Session-Expires");
    se.extend(header_values(req, "x")); // compact form
    let se = se.first().copied();
    let min_se = header_values(req, "Min-SE");
    let mut supported = header_values(req, "Supported");
    supported.extend(header_values(req, "k"));
    TimerRequest::from_headers(se, min_se.first().copied(), &supported)
}

/// A live call as the dispatcher sees it: where its signals go, what it shares.
type CallEntry = (mpsc::UnboundedSender<Routed>, Arc<CallLink>);

/// The routing of dialog states to calls (shared by the router and the dispatcher).
#[derive(Clone)]
pub(crate) struct CallRegistry {
    inner: Arc<Mutex<HashMap<String, CallEntry>>>,
    pub(crate) gate: Arc<Mutex<CallGate>>,
    pub(crate) dialogs: Arc<DialogLayer>,
}

impl CallRegistry {
    /// `gate` is shared with the SIP socket's screen (who is trusted at all).
    pub(crate) fn new(gate: Arc<Mutex<CallGate>>, dialogs: Arc<DialogLayer>) -> CallRegistry {
        CallRegistry { inner: Arc::new(Mutex::new(HashMap::new())), gate, dialogs }
    }

    pub(crate) fn new_call(&self, info: CallInfo, dialog: InviteDialog, slot: Slot) -> IncomingCall {
        let (tx, rx) = mpsc::unbounded_channel::<Routed>();
        let link = Arc::new(CallLink { slot, transfers: AtomicU32::new(0) });
        if let Ok(mut m) = self.inner.lock() {
            m.insert(dialog.id().to_string(), (tx, link.clone()));
        }
        IncomingCall {
            info,
            dialog,
            states: rx,
            link,
            answered: OnceLock::new(),
            last_ack_cseq: None,
            ended: false,
        }
    }

    /// May `source` send requests in the dialog `dialog_id`? Its own route, the
    /// registrar or the allow list; for a dialog no call owns, anyone trusted.
    pub(crate) fn route_allows(&self, dialog_id: &str, source: IpAddr) -> bool {
        let link = self.inner.lock().ok().and_then(|m| m.get(dialog_id).map(|(_, l)| l.clone()));
        match link {
            Some(l) => l.slot.route_allows(source),
            None => self.gate.lock().is_ok_and(|g| g.is_trusted(source)),
        }
    }

    /// Route every dialog state to its call; clean up when a dialog ends.
    pub(crate) async fn dispatch(self, mut states: DialogStateReceiver) {
        while let Some(state) = states.recv().await {
            let id = match &state {
                DialogState::Calling(id)
                | DialogState::Trying(id)
                | DialogState::Early(id, _)
                | DialogState::WaitAck(id, _)
                | DialogState::Confirmed(id, _)
                | DialogState::Updated(id, _, _)
                | DialogState::Publish(id, _, _)
                | DialogState::Notify(id, _, _)
                | DialogState::Refer(id, _, _)
                | DialogState::Message(id, _, _)
                | DialogState::Info(id, _, _)
                | DialogState::Options(id, _, _)
                | DialogState::Terminated(id, _) => id.clone(),
            };
            let key = id.to_string();
            let ended = matches!(state, DialogState::Terminated(..));
            let sender = self.inner.lock().ok().and_then(|m| m.get(&key).cloned());
            match sender {
                Some((s, link)) => {
                    if ended {
                        link.slot.release();
                    }
                    if let Some(routed) = route_state(state, &link).await {
                        let _ = s.send(routed);
                    }
                }
                None => {
                    // A dialog nobody owns: answer what needs answering.
                    if let DialogState::Updated(_, _, h)
                    | DialogState::Info(_, _, h)
                    | DialogState::Options(_, _, h)
                    | DialogState::Notify(_, _, h)
                    | DialogState::Refer(_, _, h)
                    | DialogState::Message(_, _, h)
                    | DialogState::Publish(_, _, h) = state
                    {
                        let _ = h.reply(StatusCode::CallTransactionDoesNotExist).await;
                    }
                }
            }
            if ended {
                if let Ok(mut m) = self.inner.lock() {
                    m.remove(&key);
                }
                self.dialogs.remove_dialog(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sipfrag_status;

    #[test]
    fn sipfrag_lines() {
        assert_eq!(sipfrag_status(b"SIP/2.0 200 OK\r\n"), Some(200));
        assert_eq!(sipfrag_status(b"SIP/2.0 100 Trying"), Some(100));
        assert_eq!(sipfrag_status(b"junk"), None);
        assert_eq!(sipfrag_status(b""), None);
        // Not a status code: no transfer outcome of 0 or 5000.
        assert_eq!(sipfrag_status(b"SIP/2.0 0 Zero\r\n"), None);
        assert_eq!(sipfrag_status(b"SIP/2.0 5000 Big\r\n"), None);
    }

    proptest::proptest! {
        #[test]
        fn any_body_is_a_status_code_or_none(body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Some(code) = sipfrag_status(&body) {
                proptest::prop_assert!((100..=699).contains(&code));
            }
        }

        /// A sipfrag status line reads back its code, whatever follows it.
        #[test]
        fn a_status_line_reads_back(code in 100u16..700, reason in "[ -~]{0,20}", rest in "[ -~\r\n]{0,60}") {
            let body = format!("SIP/2.0 {code} {reason}\r\n{rest}");
            proptest::prop_assert_eq!(sipfrag_status(body.as_bytes()), Some(code));
        }
    }
}
