//! Incoming calls as the rest of voice-ua sees them, with rsipstack's dialog layer
//! kept inside: `IncomingCall` (answer, reject, hang up, transfer, refresh) and the
//! `CallSignal`s of its dialog (ACK, re-offers, digits, the end). Every in-dialog
//! request gets a deliberate answer: offers go to the call task (and get 500 if it
//! drops one unanswered), INFO/OPTIONS/MESSAGE/NOTIFY are answered here.
//! One dispatcher task routes the dialog layer's state changes to the owning call
//! through a registry of per-call senders — the only shared table.

use crate::error::SipError;
use crate::gate::CallGate;
use crate::info_dtmf::digit_from_info;
use crate::session_timer::TimerRequest;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason, TransactionHandle};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, StatusCode};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

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
}

impl Transferer {
    /// REFER to `target_uri`; the REFER's final status (202 when the PBX took it, 0 when
    /// no response came).
    pub async fn refer(&self, target_uri: &str) -> Result<u16, SipError> {
        let uri = rsipstack::sip::Uri::try_from(target_uri)
            .map_err(|e| SipError::Stack(format!("transfer target {target_uri} is not a SIP URI: {e}")))?;
        let resp = self.dialog.refer(uri, None, None).await?;
        Ok(resp.map(|r| r.status_code.code()).unwrap_or(0))
    }
}

/// A call offered to voice-ua. The owner answers or rejects it, then follows it
/// with `next` until `CallSignal::Ended`.
pub struct IncomingCall {
    pub info: CallInfo,
    dialog: InviteDialog,
    states: mpsc::UnboundedReceiver<Routed>,
    last_ack_cseq: Option<u32>,
    ended: bool,
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
        Ok(self.dialog.accept(Some(hs), Some(sdp.as_bytes().to_vec()))?)
    }

    /// Refuse the call before answering (488, 486, 403, …).
    pub fn reject(&self, status: u16) -> Result<(), SipError> {
        Ok(self.dialog.reject(Some(StatusCode::from(status)), None)?)
    }

    /// BYE from our side.
    pub async fn hangup(&self, reason: Option<&str>) -> Result<(), SipError> {
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
        Transferer { dialog: self.dialog.clone() }
    }

    /// A session refresh from our side (re-INVITE with our current SDP).
    pub async fn refresh(&self, sdp: &str, headers: Vec<(&'static str, String)>) -> Result<u16, SipError> {
        let mut hs: Vec<Header> = headers.into_iter().map(|(n, v)| Header::Other(n.into(), v)).collect();
        hs.push(Header::ContentType("application/sdp".into()));
        let resp = self.dialog.reinvite(Some(hs), Some(sdp.as_bytes().to_vec())).await?;
        Ok(resp.map(|r| r.status_code.code()).unwrap_or(0))
    }

    /// The next thing the dialog did; None once the call has ended.
    pub async fn next(&mut self) -> Option<CallSignal> {
        if self.ended {
            return None;
        }
        while let Some(routed) = self.states.recv().await {
            let sig = match routed {
                Routed::Signal(sig) => sig,
                Routed::Confirmed => match self.new_ack() {
                    Some(sig) => sig,
                    None => continue,
                },
            };
            if matches!(sig, CallSignal::Ended(_)) {
                self.ended = true;
            }
            return Some(sig);
        }
        self.ended = true;
        Some(CallSignal::Ended(CallEnd { by_remote: false, detail: "signalling stopped".into() }))
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
async fn route_state(state: DialogState) -> Option<Routed> {
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
            let _ = handle.reply(StatusCode::OK).await;
            CallSignal::TransferProgress(sipfrag_status(&req.body)?)
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
    parts.next()?.parse().ok()
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

/// The routing of dialog states to calls (shared by the router and the dispatcher).
#[derive(Clone)]
pub(crate) struct CallRegistry {
    inner: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Routed>>>>,
    pub(crate) gate: Arc<Mutex<CallGate>>,
    pub(crate) dialogs: Arc<DialogLayer>,
}

impl CallRegistry {
    pub(crate) fn new(gate: CallGate, dialogs: Arc<DialogLayer>) -> CallRegistry {
        CallRegistry {
            inner: Arc::new(Mutex::new(HashMap::new())),
            gate: Arc::new(Mutex::new(gate)),
            dialogs,
        }
    }

    pub(crate) fn new_call(&self, info: CallInfo, dialog: InviteDialog) -> IncomingCall {
        let (tx, rx) = mpsc::unbounded_channel::<Routed>();
        if let Ok(mut m) = self.inner.lock() {
            m.insert(dialog.id().to_string(), tx);
        }
        IncomingCall { info, dialog, states: rx, last_ack_cseq: None, ended: false }
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
                Some(s) => {
                    if let Some(routed) = route_state(state).await {
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
                let removed = self.inner.lock().ok().and_then(|mut m| m.remove(&key));
                self.dialogs.remove_dialog(&id);
                if removed.is_some() {
                    if let Ok(mut g) = self.gate.lock() {
                        g.call_ended();
                    }
                }
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
    }
}
