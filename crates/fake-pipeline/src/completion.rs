//! What the chat endpoint sends for a [`Reply`]: [`Answer`] (the text and tool calls
//! after the token cap, the finish reason, the usage), then either the SSE events of a
//! streamed answer in the [`Dialect`]'s shape ([`stream_events`]) or one
//! `chat.completion` JSON ([`completion_json`]). No I/O, no clock.

use serde_json::{json, Value};

use crate::chat::ToolCall;
use crate::{Dialect, Reply};

/// Content deltas take these many characters in turn (small, uneven pieces).
const CONTENT_PIECES: [usize; 8] = [3, 1, 4, 1, 5, 9, 2, 6];
/// Argument fragments take these many characters in turn (splitting keys, strings and
/// escapes at awkward places).
const ARGUMENT_PIECES: [usize; 5] = [1, 7, 2, 5, 3];

/// Token counts, estimated at 4 characters a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// `prompt_tokens`.
    pub prompt_tokens: u64,
    /// `completion_tokens`.
    pub completion_tokens: u64,
    /// `prompt_tokens_details.cached_tokens` (OpenAI dialect): the prompt's prefix shared
    /// with the previous request's.
    pub cached_tokens: u64,
}

impl Usage {
    fn json(&self, dialect: Dialect) -> Value {
        let total = self.prompt_tokens + self.completion_tokens;
        match dialect {
            Dialect::OpenAi => json!({
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": total,
                "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                    "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
            }),
            Dialect::Ollama => json!({
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": total,
            }),
        }
    }
}

/// Estimated tokens of `text`.
pub fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// What one response says, ready to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// `chatcmpl-…`.
    pub id: String,
    /// The model named in the request.
    pub model: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// The text (cut at the token cap).
    pub content: String,
    /// The tool calls, with their ids.
    pub calls: Vec<ToolCall>,
    /// `stop`, `length` or `tool_calls`.
    pub finish_reason: &'static str,
    /// The counts.
    pub usage: Usage,
}

impl Answer {
    /// The answer to `reply`: `ids` names the tool calls; `cap` is the completion-token
    /// cap (text beyond it is cut, finish `length`); `break_arguments` makes the first
    /// call's arguments invalid JSON (their last character dropped, and a stray quote).
    pub fn new(
        reply: &Reply,
        mut ids: impl FnMut() -> String,
        cap: Option<u64>,
        break_arguments: bool,
    ) -> Answer {
        let (mut content, calls) = match reply {
            Reply::Text(text) => (text.clone(), Vec::new()),
            Reply::ToolCalls { preamble, calls } => (preamble.clone(), calls.clone()),
        };
        let mut calls: Vec<ToolCall> =
            calls.into_iter().map(|(name, arguments)| ToolCall { id: ids(), name, arguments }).collect();
        if break_arguments {
            if let Some(first) = calls.first_mut() {
                first.arguments.pop();
                first.arguments.push('"');
            }
        }
        let mut finish_reason = if calls.is_empty() { "stop" } else { "tool_calls" };
        if let Some(cap) = cap {
            if calls.is_empty() && tokens(&content) > cap {
                content = content.chars().take((cap * 4) as usize).collect();
                finish_reason = "length";
            }
        }
        let completion =
            tokens(&content) + calls.iter().map(|c| tokens(&c.name) + tokens(&c.arguments)).sum::<u64>();
        Answer {
            id: String::new(),
            model: String::new(),
            created: 0,
            content,
            calls,
            finish_reason,
            usage: Usage { completion_tokens: completion, ..Usage::default() },
        }
    }
}

/// `text` cut into pieces of `sizes` characters in turn.
pub fn pieces(text: &str, sizes: &[usize]) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let (mut out, mut at, mut k) = (Vec::new(), 0, 0);
    while at < chars.len() {
        let n = sizes[k % sizes.len()].max(1);
        out.push(chars[at..(at + n).min(chars.len())].iter().collect());
        at += n;
        k += 1;
    }
    out
}

fn chunk(answer: &Answer, dialect: Dialect, include_usage: bool, choices: Value) -> Value {
    let fingerprint = match dialect {
        Dialect::OpenAi => "fp_fake",
        Dialect::Ollama => "fp_ollama",
    };
    let mut c = json!({
        "id": answer.id,
        "object": "chat.completion.chunk",
        "created": answer.created,
        "model": answer.model,
        "system_fingerprint": fingerprint,
        "choices": choices,
    });
    if include_usage && dialect == Dialect::OpenAi {
        c["usage"] = Value::Null;
    }
    c
}

fn choice(delta: Value, finish: Option<&str>, dialect: Dialect) -> Value {
    let mut c = json!({"index": 0, "delta": delta, "finish_reason": finish});
    if dialect == Dialect::OpenAi {
        c["logprobs"] = Value::Null;
    }
    json!([c])
}

/// The SSE events of a streamed answer, each `data: …\n\n`, ending with `data: [DONE]`.
pub fn stream_events(answer: &Answer, dialect: Dialect, include_usage: bool) -> Vec<String> {
    let mut deltas: Vec<Value> = Vec::new();
    match dialect {
        Dialect::OpenAi => {
            let text = pieces(&answer.content, &CONTENT_PIECES);
            if answer.calls.is_empty() || !text.is_empty() {
                deltas.push(json!({"role": "assistant", "content": "", "refusal": null}));
            }
            deltas.extend(text.into_iter().map(|p| json!({"content": p})));
            for (index, call) in answer.calls.iter().enumerate() {
                let mut head = json!({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                    "function": {"name": call.name, "arguments": ""}}]});
                if deltas.is_empty() {
                    head["role"] = json!("assistant");
                    head["content"] = Value::Null;
                }
                deltas.push(head);
                for fragment in pieces(&call.arguments, &ARGUMENT_PIECES) {
                    deltas
                        .push(json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}));
                }
            }
        }
        Dialect::Ollama => {
            for p in pieces(&answer.content, &CONTENT_PIECES) {
                deltas.push(json!({"role": "assistant", "content": p}));
            }
            if !answer.calls.is_empty() {
                let calls: Vec<Value> = answer
                    .calls
                    .iter()
                    .enumerate()
                    .map(|(index, c)| {
                        json!({"id": c.id, "index": index, "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments}})
                    })
                    .collect();
                deltas.push(json!({"role": "assistant", "content": "", "tool_calls": calls}));
            }
        }
    }
    let mut events: Vec<Value> =
        deltas.into_iter().map(|d| chunk(answer, dialect, include_usage, choice(d, None, dialect))).collect();
    let last = match dialect {
        Dialect::OpenAi => json!({}),
        Dialect::Ollama => json!({"role": "assistant", "content": ""}),
    };
    events.push(chunk(answer, dialect, include_usage, choice(last, Some(answer.finish_reason), dialect)));
    if include_usage {
        let mut c = chunk(answer, dialect, include_usage, json!([]));
        c["usage"] = answer.usage.json(dialect);
        events.push(c);
    }
    let mut out: Vec<String> = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    out.push("data: [DONE]\n\n".to_owned());
    out
}

/// The `chat.completion` JSON of an answer that is not streamed.
pub fn completion_json(answer: &Answer, dialect: Dialect) -> String {
    let mut message = json!({
        "role": "assistant",
        "content": if answer.content.is_empty() && !answer.calls.is_empty() { Value::Null } else { json!(answer.content) },
    });
    if dialect == Dialect::OpenAi {
        message["refusal"] = Value::Null;
    }
    if !answer.calls.is_empty() {
        message["tool_calls"] = answer
            .calls
            .iter()
            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
    }
    let mut choice = json!({"index": 0, "message": message, "finish_reason": answer.finish_reason});
    if dialect == Dialect::OpenAi {
        choice["logprobs"] = Value::Null;
    }
    json!({
        "id": answer.id,
        "object": "chat.completion",
        "created": answer.created,
        "model": answer.model,
        "system_fingerprint": if dialect == Dialect::OpenAi { "fp_fake" } else { "fp_ollama" },
        "choices": [choice],
        "usage": answer.usage.json(dialect),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_json(events: &[String]) -> Vec<Value> {
        assert_eq!(events.last().map(String::as_str), Some("data: [DONE]\n\n"));
        events[..events.len() - 1]
            .iter()
            .map(|e| {
                let body =
                    e.strip_prefix("data: ").and_then(|e| e.strip_suffix("\n\n")).expect("an SSE event");
                serde_json::from_str(body).expect("JSON")
            })
            .collect()
    }

    fn counter() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("call_{n}")
        }
    }

    #[test]
    fn openai_fragments_concatenate_to_the_arguments() {
        let reply = Reply::ToolCalls {
            preamble: "One moment.".into(),
            calls: vec![
                ("a".into(), r#"{"city":"Kyiv \"centre\"","n":1}"#.into()),
                ("b".into(), "{}".into()),
            ],
        };
        let answer = Answer::new(&reply, counter(), None, false);
        let chunks = events_json(&stream_events(&answer, Dialect::OpenAi, true));
        let (mut args, mut text, mut heads) = (vec![String::new(), String::new()], String::new(), 0);
        for c in &chunks {
            assert!(c.get("usage").is_some(), "include_usage: every chunk has usage");
            let Some(delta) = c["choices"].get(0).map(|c| &c["delta"]) else { continue };
            text.push_str(delta["content"].as_str().unwrap_or(""));
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = call["index"].as_u64().expect("index") as usize;
                if call.get("id").is_some() {
                    heads += 1;
                    assert_eq!(call["function"]["arguments"], "", "the head carries no arguments");
                }
                args[index].push_str(call["function"]["arguments"].as_str().expect("arguments"));
            }
        }
        assert_eq!((text.as_str(), heads), ("One moment.", 2));
        assert_eq!(args, vec![r#"{"city":"Kyiv \"centre\"","n":1}"#.to_owned(), "{}".to_owned()]);
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        let usage = &chunks[chunks.len() - 1];
        assert_eq!(usage["choices"], json!([]));
        assert!(usage["usage"]["prompt_tokens_details"]["cached_tokens"].is_u64());
    }

    #[test]
    fn ollama_sends_each_call_whole_and_usage_only_at_the_end() {
        let answer = Answer::new(&Reply::call("f", r#"{"x":1}"#), counter(), None, true);
        let chunks = events_json(&stream_events(&answer, Dialect::Ollama, true));
        let calls: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0))
            .filter(|c| c["delta"].get("tool_calls").is_some())
            .collect();
        assert_eq!(calls.len(), 1);
        let call = &calls[0]["delta"]["tool_calls"][0];
        assert_eq!(
            (call["id"].as_str(), call["function"]["arguments"].as_str()),
            (Some("call_1"), Some(r#"{"x":1""#))
        );
        assert!(serde_json::from_str::<Value>(r#"{"x":1""#).is_err(), "broken arguments are not JSON");
        assert!(chunks[..chunks.len() - 1].iter().all(|c| c.get("usage").is_none()));
        assert_eq!(chunks[chunks.len() - 1]["usage"].as_object().map(|u| u.len()), Some(3));
    }

    #[test]
    fn the_cap_cuts_text_with_finish_length() {
        let answer = Answer::new(&Reply::text("one two three four five"), counter(), Some(2), false);
        assert_eq!((answer.content.as_str(), answer.finish_reason), ("one two ", "length"));
        let json: Value = serde_json::from_str(&completion_json(&answer, Dialect::OpenAi)).expect("JSON");
        assert_eq!(json["choices"][0]["finish_reason"], "length");
        assert_eq!(json["usage"]["completion_tokens"], 2);
    }
}
