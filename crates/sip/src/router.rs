//! Answers for requests that arrive outside any dialog. Until calls exist
//! (a later stage), every such request gets a deliberate answer here: OPTIONS
//! (the PBX's qualify) a quick 200 with Allow/Accept, INVITE 480, a stray BYE or
//! CANCEL 481, an unsolicited NOTIFY (message waiting) 200, anything else 405.

use crate::registration::ALLOWED_METHODS;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transaction::TransactionReceiver;
use tokio_util::sync::CancellationToken;

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

pub(crate) async fn route_incoming(mut incoming: TransactionReceiver, cancel: CancellationToken) {
    loop {
        let tx = tokio::select! {
            tx = incoming.recv() => tx,
            _ = cancel.cancelled() => break,
        };
        let Some(tx) = tx else { break };
        tokio::spawn(answer(tx));
    }
}

async fn answer(mut tx: Transaction) {
    let method = tx.original.method.to_string();
    let has_to_tag = tx.original.to_header().ok().and_then(|t| t.tag().ok().flatten()).is_some();
    let Some((status, headers)) = out_of_dialog_answer(&method, has_to_tag) else { return };
    let headers = headers.into_iter().map(|(n, v)| Header::Other(n.into(), v)).collect();
    let from = tx.original.from_header().map(|f| f.value().to_string()).unwrap_or_default();
    if method == "INVITE" {
        tracing::info!(%from, "incoming call refused with 480: voice-ua does not take calls yet");
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
