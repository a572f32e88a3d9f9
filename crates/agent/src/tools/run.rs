//! Running a function the agent called. Builtins act on the
//! call at once (hang up, send DTMF; a transfer waits for the call's outcome), HTTP tools
//! POST their checked arguments to a webhook on their own task.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{arguments, http, Builtin, FunctionSpec, ToolCall, ToolKind};
use crate::provider::{AgentEvent, AgentIo, Digit};
use crate::AgentError;

/// A finished tool: `(id, name, content)`.
pub type ToolResult = (String, String, String);

/// A `transfer` function call waiting for the call's [`crate::TransferOutcome`].
pub struct PendingTransfer {
    /// The provider's id for the call.
    pub id: String,
    /// The function's name.
    pub name: String,
    /// Where the caller is being sent.
    pub target: String,
}

/// Run a tool: builtins at once (their result is returned), HTTP tools on their own task
/// (their result comes back through `results`).
pub async fn start_tool(
    functions: &[FunctionSpec],
    tls: &Arc<rustls::ClientConfig>,
    call: ToolCall,
    io: &AgentIo,
    results: &mpsc::Sender<ToolResult>,
    transfer: &mut Option<PendingTransfer>,
) -> Option<ToolResult> {
    let ToolCall { id, name, arguments } = call;
    let Some(spec) = functions.iter().find(|f| f.name == name) else {
        // A name the LLM made up: one short line in the log and the answer.
        let shown = http::one_line(&name, 64);
        tracing::warn!(name = %shown, "the agent called a function that is not configured");
        let _ = io.send(AgentEvent::ToolFinished { name: "unknown".into(), ok: false }).await;
        return Some((id, name, format!("error: there is no function named {shown}")));
    };
    match &spec.kind {
        // The answer waits for the call's transfer result (REFER response, NOTIFYs).
        ToolKind::Builtin(Builtin::Transfer { target }) => {
            if transfer.is_some() {
                let outcome = crate::TransferOutcome::AlreadyInProgress;
                return Some((id, name, format!("error: the transfer to {target} was {outcome}")));
            }
            tracing::info!(%target, "agent transfers the call");
            if io.send(AgentEvent::Transfer { target: target.clone() }).await.is_err() {
                return Some((id, name, "error: the call is already over".into()));
            }
            *transfer = Some(PendingTransfer { id, name, target: target.clone() });
            None
        }
        ToolKind::Builtin(builtin) => {
            let content = run_builtin(builtin, &arguments, io).await;
            Some((id, name, content))
        }
        ToolKind::Http { url, headers, timeout } => {
            // The webhook only ever sees arguments that fit the function's parameters.
            if let Err(e) = arguments::check(&spec.parameters, &arguments) {
                tracing::warn!(%name, error = %e, "the agent's arguments do not fit the function: not called");
                let _ = io.send(AgentEvent::ToolFinished { name: name.clone(), ok: false }).await;
                let content = format!(
                    "error: {e}; the {name} function was not called: call it again with arguments that fit its parameters"
                );
                return Some((id, name, content));
            }
            let (url, headers, timeout) = (url.clone(), headers.clone(), *timeout);
            let tls = Arc::clone(tls);
            let results = results.clone();
            tokio::spawn(async move {
                let body = if arguments.trim().is_empty() { "{}".to_owned() } else { arguments };
                let content = match http::post_json(&url, &headers, &body, timeout, tls).await {
                    Ok(reply) => reply,
                    Err(e) => {
                        tracing::warn!(%name, error = %e, "function call failed");
                        format!("error: the {name} function failed ({e}); tell the caller it is unavailable")
                    }
                };
                let _ = results.send((id, name, content)).await;
            });
            None
        }
    }
}

/// What the agent is told of the transfer it asked for: `ok: …` when the caller is on
/// the way, else `error: …` with what to do next.
pub fn transfer_result(target: &str, outcome: crate::TransferOutcome) -> String {
    if outcome.succeeded() {
        format!("ok: the transfer to {target} was {outcome}")
    } else {
        format!(
            "error: the transfer to {target} {outcome}; the caller is still with you: \
             tell them, and offer to help another way"
        )
    }
}

/// The call's outcome for the transfer the agent asked for, as the answer to its function
/// call: `(id, name, content)`, or `None` when no transfer waits for one.
pub fn transfer_answer(
    transfer: &mut Option<PendingTransfer>,
    outcome: crate::TransferOutcome,
) -> Option<ToolResult> {
    let Some(t) = transfer.take() else {
        tracing::debug!(%outcome, "a transfer result nobody waits for");
        return None;
    };
    tracing::info!(target = %t.target, %outcome, "transfer result for the agent");
    let content = transfer_result(&t.target, outcome);
    Some((t.id, t.name, content))
}

/// Tell the call an HTTP tool finished (for its metrics and record): it worked unless its
/// answer is an `error: …`.
pub async fn tool_finished(io: &AgentIo, name: &str, content: &str) {
    let ok = !content.starts_with("error:");
    let _ = io.send(AgentEvent::ToolFinished { name: name.to_owned(), ok }).await;
}

/// The longest hang-up reason kept from the LLM.
pub const MAX_HANGUP_REASON: usize = 120;
/// The most DTMF keys one `send_dtmf` call may press.
pub const MAX_DTMF_DIGITS: usize = 32;

async fn run_builtin(builtin: &Builtin, arguments: &str, io: &AgentIo) -> String {
    let args: serde_json::Value = serde_json::from_str(arguments).unwrap_or(serde_json::Value::Null);
    let event = match builtin {
        Builtin::Transfer { .. } => return "error: transfers are run by the session".into(),
        Builtin::Hangup => {
            // The LLM's words go to the log and the call record: one short line.
            let reason = args
                .get("reason")
                .and_then(|r| r.as_str())
                .map(|r| http::one_line(r, MAX_HANGUP_REASON))
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "agent ended the call".into());
            tracing::info!(%reason, "agent hangs up after its last words");
            AgentEvent::HangUp { after_playback: true, reason }
        }
        Builtin::SendDtmf => {
            let digits = args.get("digits").and_then(|d| d.as_str()).unwrap_or_default();
            if digits.chars().count() > MAX_DTMF_DIGITS {
                return format!("error: send at most {MAX_DTMF_DIGITS} keys at a time");
            }
            let valid: Result<String, AgentError> =
                digits.chars().map(|c| Digit::new(c).map(|d| d.as_char())).collect();
            match valid {
                Ok(d) if !d.is_empty() => AgentEvent::SendDigits(d),
                Ok(_) => return "error: pass the keys to press in \"digits\", e.g. \"123#\"".into(),
                Err(e) => return format!("error: {e}"),
            }
        }
    };
    let content = match &event {
        AgentEvent::HangUp { .. } => "ok: the call ends after your last words".into(),
        AgentEvent::SendDigits(d) => format!("ok: sent DTMF {d}"),
        _ => "ok".into(),
    };
    if io.send(event).await.is_err() {
        return "error: the call is already over".into();
    }
    content
}
