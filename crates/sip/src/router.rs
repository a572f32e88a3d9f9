//! Where every incoming request goes. In-dialog requests go to their dialog (481
//! when there is none) when they come from its route — the registrar, the allow
//! list, or where the dialog's INVITE came from and its remote target; anyone else
//! gets 403 (a BYE from a stranger never ends a call). A new INVITE passes the security gate (403 for anyone but
//! the PBX, 486 over the call limit) and the session-timer check (422), then
//! becomes an `IncomingCall` for the application — or 480 when the application
//! takes no calls. Everything else outside a dialog gets a deliberate answer:
//! OPTIONS (the PBX's qualify) a quick 200 with Allow/Accept, a stray BYE or CANCEL
//! 481, an unsolicited NOTIFY (message waiting) 200, anything else 405.

use crate::calls::{timer_request, CallInfo, CallRegistry, IncomingCall};
use crate::gate::{Admission, Slot};
use crate::message::{NameAddr, UriTarget};
use crate::ratelimit::RateLimit;
use crate::refusals::{RefusalLog, LOG_EVERY};
use crate::registration::ALLOWED_METHODS;
use crate::session_timer::TimerDecision;
use rsipstack::dialog::dialog::{Dialog, DialogStateSender};
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transaction::TransactionReceiver;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the router needs to hand calls to the application.
#[derive(Clone)]
pub(crate) struct CallRouting {
    pub(crate) registry: CallRegistry,
    pub(crate) calls: mpsc::Sender<IncomingCall>,
    pub(crate) states: DialogStateSender,
    pub(crate) contact: rsipstack::sip::Uri,
    pub(crate) refusals: std::sync::Arc<crate::refusals::RefusalCounts>,
}

/// What to answer a request outside a dialog with: status and extra headers.
pub(crate) fn out_of_dialog_answer(
    method: &str,
    has_to_tag: bool,
) -> Option<(u16, Vec<(&'static str, String)>)> {
    let allow = || ("Allow", ALLOWED_METHODS.to_string());
    Some(match method {
        "ACK" => return None,
        "OPTIONS" => {
            (200, vec![allow(), ("Accept", "application/sdp".into()), ("Accept-Language", "en".into())])
        }
        "INVITE" if has_to_tag => (481, vec![]),
        "INVITE" => (480, vec![]),
        "BYE" | "CANCEL" | "INFO" | "UPDATE" | "PRACK" | "REFER" => (481, vec![]),
        "NOTIFY" if has_to_tag => (481, vec![]),
        "NOTIFY" => (200, vec![]),
        _ => (405, vec![allow()]),
    })
}

pub(crate) async fn route_incoming(
    mut incoming: TransactionReceiver,
    routing: Option<CallRouting>,
    cancel: CancellationToken,
) {
    loop {
        let tx = tokio::select! {
            tx = incoming.recv() => tx,
            _ = cancel.cancelled() => break,
        };
        let Some(tx) = tx else { break };
        match &routing {
            Some(r) => route_with_calls(tx, r),
            None => {
                tokio::spawn(answer(tx));
            }
        }
    }
}

/// Where a transaction's request came from.
fn source_of(tx: &Transaction) -> Option<SocketAddr> {
    tx.connection.as_ref().and_then(|c| c.get_remote_addr()).and_then(|a| a.get_socketaddr().ok())
}

fn route_with_calls(mut tx: Transaction, r: &CallRouting) {
    let has_to_tag = tx.original.to_header().ok().and_then(|t| t.tag().ok().flatten()).is_some();
    if has_to_tag {
        let dialog = r.registry.dialogs.match_dialog(&tx);
        let source = source_of(&tx);
        let allowed = match (&dialog, source) {
            (_, None) => false,
            (Some(Dialog::Invite(d)), Some(s)) => r.registry.route_allows(&d.id().to_string(), s.ip()),
            (_, Some(s)) => r.registry.gate.lock().is_ok_and(|g| g.is_trusted(s.ip())),
        };
        if !allowed {
            tokio::spawn(refuse_foreign(tx, source, r.refusals.clone()));
            return;
        }
        match dialog {
            Some(Dialog::Invite(mut d)) => {
                tokio::spawn(async move {
                    if let Err(e) = d.handle(&mut tx).await {
                        tracing::debug!(error = %e, "in-dialog request ended with an error");
                    }
                });
            }
            _ => {
                tokio::spawn(answer(tx));
            }
        }
        return;
    }
    if tx.original.method != rsipstack::sip::Method::Invite {
        tokio::spawn(answer(tx));
        return;
    }
    let r = r.clone();
    tokio::spawn(async move { offer_call(tx, r).await });
}

/// A request inside a dialog from outside its route: 403, one log line per window.
async fn refuse_foreign(
    mut tx: Transaction,
    source: Option<SocketAddr>,
    refusals: std::sync::Arc<crate::refusals::RefusalCounts>,
) {
    let method = tx.original.method.to_string();
    if method == "ACK" {
        return; // nothing to answer
    }
    refusals.count_in_dialog_forbidden();
    if let Some(held_back) = refusals.may_log(RefusalLog::InDialog, Instant::now()) {
        let source = source.map(|s| s.to_string()).unwrap_or_default();
        tracing::warn!(%source, %method, held_back, "request inside a dialog refused (403): not from the dialog's route");
    }
    let _ = tx.reply(StatusCode::Forbidden).await;
}

/// The IP a Contact header points at, when it names one.
fn contact_ip(req: &rsipstack::sip::Request) -> Option<IpAddr> {
    let contact = req.headers.iter().find(|h| {
        let n = h.name();
        n.eq_ignore_ascii_case("Contact") || n.eq_ignore_ascii_case("m")
    })?;
    UriTarget::parse(&NameAddr::parse(contact.value())?.uri)?.host.trim_matches(['[', ']']).parse().ok()
}

/// A new INVITE: gate, timer check, then a dialog and an `IncomingCall`.
async fn offer_call(mut tx: Transaction, r: CallRouting) {
    let from = tx.original.from_header().map(|f| f.value().to_string()).unwrap_or_default();
    let Some(source) = source_of(&tx) else {
        r.refusals.count(500);
        let _ = tx.reply(StatusCode::ServerInternalError).await;
        return;
    };
    // Held from here: every early return below gives the place back.
    let slot = match Slot::admit(&r.registry.gate, source.ip(), contact_ip(&tx.original)) {
        Ok(slot) => slot,
        Err(admission) => {
            let status = admission.status().unwrap_or(486);
            let (kind, why) = match admission {
                Admission::Forbidden => {
                    (RefusalLog::Stranger, "not from the PBX (add it to calls.allow if it is legitimate)")
                }
                _ => (RefusalLog::Busy, "the concurrent call limit is reached"),
            };
            if let Some(held_back) = r.refusals.may_log(kind, Instant::now()) {
                tracing::warn!(%source, %from, status, held_back, "incoming call refused: {why}");
            }
            r.refusals.count(status);
            let _ = tx.reply(StatusCode::from(status)).await;
            return;
        }
    };
    let timer = timer_request(&tx.original);
    if let TimerDecision::TooSmall { min_se } = TimerDecision::decide(&timer) {
        r.refusals.count(422);
        let _ = tx
            .reply_with(StatusCode::from(422), vec![Header::Other("Min-SE".into(), min_se.to_string())], None)
            .await;
        return;
    }
    let dialog = match r.registry.dialogs.get_or_create_server_invite(
        &tx,
        r.states.clone(),
        None,
        Some(r.contact.clone()),
    ) {
        Ok(d) => d,
        Err(e) => {
            r.refusals.count(500);
            tracing::warn!(error = %e, "cannot create a dialog for the INVITE");
            let _ = tx.reply(StatusCode::ServerInternalError).await;
            return;
        }
    };
    let info = CallInfo {
        sip_call_id: tx.original.call_id_header().map(|c| c.value().to_string()).unwrap_or_default(),
        from,
        to: tx.original.to_header().map(|t| t.value().to_string()).unwrap_or_default(),
        source,
        offer: (!tx.original.body.is_empty()).then(|| tx.original.body.clone()),
        timer,
    };
    let call = r.registry.new_call(info, dialog.clone(), slot);
    if r.calls.send(call).await.is_err() {
        r.refusals.count(480);
        let _ = dialog.reject(Some(StatusCode::TemporarilyUnavailable), None);
    }
    let mut dialog = dialog;
    if let Err(e) = dialog.handle(&mut tx).await {
        tracing::debug!(error = %e, "INVITE transaction ended with an error");
    }
}

async fn answer(mut tx: Transaction) {
    let method = tx.original.method.to_string();
    let has_to_tag = tx.original.to_header().ok().and_then(|t| t.tag().ok().flatten()).is_some();
    let Some((status, headers)) = out_of_dialog_answer(&method, has_to_tag) else { return };
    let headers = headers.into_iter().map(|(n, v)| Header::Other(n.into(), v)).collect();
    let from = tx.original.from_header().map(|f| f.value().to_string()).unwrap_or_default();
    if method == "INVITE" {
        // Anyone may send these: one line per window.
        static LOG: std::sync::Mutex<RateLimit> = std::sync::Mutex::new(RateLimit::new(LOG_EVERY));
        if let Some(held_back) = LOG.lock().ok().and_then(|mut l| l.allow(Instant::now())) {
            tracing::info!(%from, held_back, "incoming call refused with 480: voice-ua does not take calls");
        }
    } else {
        tracing::debug!(%method, %from, status, "answered request outside a dialog");
    }
    if let Err(e) = tx.reply_with(StatusCode::from(status), headers, None).await {
        tracing::warn!(%method, error = %e, "could not answer the request");
    }
}

#[cfg(test)]
mod tests {
    use super::out_of_dialog_answer;

    #[test]
    fn every_method_gets_a_deliberate_answer() {
        let (s, h) = out_of_dialog_answer("OPTIONS", false).expect("answered");
        assert_eq!(s, 200);
        assert!(h.iter().any(|(n, v)| *n == "Allow" && v.contains("INVITE") && v.contains("OPTIONS")));
        assert!(h.iter().any(|(n, v)| *n == "Accept" && v == "application/sdp"));
        assert_eq!(out_of_dialog_answer("INVITE", false).map(|a| a.0), Some(480));
        assert_eq!(out_of_dialog_answer("BYE", true).map(|a| a.0), Some(481));
        assert_eq!(out_of_dialog_answer("NOTIFY", false).map(|a| a.0), Some(200));
        assert_eq!(out_of_dialog_answer("SUBSCRIBE", false).map(|a| a.0), Some(405));
        assert_eq!(out_of_dialog_answer("ACK", false), None);
    }
}
