//! Chat completions (`POST /v1/chat/completions`, OpenAI's shape as Ollama, llama.cpp's
//! `llama-server`, vLLM and OpenRouter serve it), sans-IO: the request body
//! ([`ChatRequest`] over the conversation's [`Message`]s and the configured
//! [`FunctionSpec`]s as tools) and the streamed reply assembled into [`ChatStep`]s
//! ([`ChatStream`], fed each server-sent event's data).
//!
//! Tool calls stream as deltas per `index`: the first carries the call's `id` and
//! `function.name`, later ones fragments of `function.arguments` to concatenate (OpenAI,
//! vLLM, llama.cpp); Ollama sends each call whole in one chunk. They are complete at
//! `finish_reason: "tool_calls"`, or at any other finish reason or `[DONE]` when deltas were
//! seen (some servers finish with `stop`). A missing `index` continues the call with the
//! same `id` (or the last call, without one); a missing `id` becomes `call_<index>` (with a
//! suffix if a server's id already is that; a repeated id is replaced the same way).
//! Arguments `""` mean `{}`; arguments that are not a JSON object are an `Err` with the
//! reason, for the model to read as the tool's result. Whether the arguments fit the
//! function's parameters is checked where the tool runs ([`crate::tools::start_tool`]).
//!
//! Reasoning deltas (`reasoning_content`, `reasoning`) are ignored: they are never spoken.
//! Bounds: at most [`MAX_TOOL_CALLS`] calls in one reply and [`MAX_TOOL_BYTES`] of their
//! ids, names and arguments together; past either the stream is a [`ChatError`].

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::openai::ToolChoice;
use crate::tools::http::one_line;
use crate::tools::{arguments, FunctionSpec, ToolCall};

/// At most this many tool calls in one reply.
pub const MAX_TOOL_CALLS: usize = 16;
/// At most this many bytes of tool-call ids, names and arguments in one reply.
pub const MAX_TOOL_BYTES: usize = 64 * 1024;
/// A server's error message is cut to this many bytes (one line).
pub const MAX_ERROR_BYTES: usize = 300;

/// One message of the conversation, serialized in OpenAI's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `{"role":"system","content":…}`: the instructions, always first.
    System {
        /// The system prompt.
        content: String,
    },
    /// `{"role":"user","content":…}`: what the caller said.
    User {
        /// The transcript.
        content: String,
    },
    /// `{"role":"assistant","content":…,"tool_calls":[…]}`: what the agent said, and the
    /// functions it called. `content` is `null` when absent with tool calls (OpenAI, vLLM
    /// and Ollama accept that; vLLM rejects a missing key) and `""` when absent without.
    Assistant {
        /// The text, if any.
        content: Option<String>,
        /// The calls, each as `{"id","type":"function","function":{"name","arguments"}}`.
        tool_calls: Vec<ToolCall>,
    },
    /// `{"role":"tool","tool_call_id":…,"content":…}`: one call's result.
    Tool {
        /// The call answered.
        tool_call_id: String,
        /// The result.
        content: String,
    },
}

impl Message {
    /// The system prompt.
    pub fn system(content: &str) -> Message {
        Message::System { content: content.to_owned() }
    }

    /// The caller's words.
    pub fn user(content: &str) -> Message {
        Message::User { content: content.to_owned() }
    }

    /// The agent's words, without tool calls.
    pub fn assistant(content: &str) -> Message {
        Message::Assistant { content: Some(content.to_owned()), tool_calls: Vec::new() }
    }

    /// A tool's result.
    pub fn tool(tool_call_id: &str, content: &str) -> Message {
        Message::Tool { tool_call_id: tool_call_id.to_owned(), content: content.to_owned() }
    }

    /// `system`, `user`, `assistant` or `tool`.
    pub fn role(&self) -> &'static str {
        match self {
            Message::System { .. } => "system",
            Message::User { .. } => "user",
            Message::Assistant { .. } => "assistant",
            Message::Tool { .. } => "tool",
        }
    }

    /// The text (empty for an assistant message with only tool calls).
    pub fn content(&self) -> &str {
        match self {
            Message::System { content } | Message::User { content } | Message::Tool { content, .. } => {
                content
            }
            Message::Assistant { content, .. } => content.as_deref().unwrap_or_default(),
        }
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("role", self.role())?;
        match self {
            Message::System { content } | Message::User { content } => {
                map.serialize_entry("content", content)?
            }
            Message::Assistant { content, tool_calls } => {
                match (content, tool_calls.is_empty()) {
                    (Some(text), _) => map.serialize_entry("content", text)?,
                    (None, false) => map.serialize_entry("content", &Value::Null)?,
                    (None, true) => map.serialize_entry("content", "")?,
                }
                if !tool_calls.is_empty() {
                    let calls: Vec<Value> = tool_calls
                        .iter()
                        .map(|c| {
                            json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}})
                        })
                        .collect();
                    map.serialize_entry("tool_calls", &calls)?;
                }
            }
            Message::Tool { tool_call_id, content } => {
                map.serialize_entry("tool_call_id", tool_call_id)?;
                map.serialize_entry("content", content)?;
            }
        }
        map.end()
    }
}

/// The body of one `POST /v1/chat/completions`, borrowing the conversation and the
/// functions. [`ChatRequest::new`] streams with usage and sets nothing optional.
#[derive(Debug, Clone)]
pub struct ChatRequest<'a> {
    /// `model`.
    pub model: &'a str,
    /// `messages`: the system prompt first ([`super::History::messages`]).
    pub messages: &'a [Message],
    /// `tools`, one `{"type":"function","function":{name,description,parameters}}` each;
    /// omitted when empty (OpenAI rejects `tools: []`).
    pub functions: &'a [FunctionSpec],
    /// `tool_choice`, only when configured and there are tools: Ollama does not support it,
    /// and vLLM rejects `auto` unless started with `--enable-auto-tool-choice`.
    pub tool_choice: Option<&'a ToolChoice>,
    /// `temperature`.
    pub temperature: Option<f32>,
    /// `max_tokens` (the name every server takes; OpenAI's reasoning models want
    /// `max_completion_tokens` and are not this agent's target).
    pub max_tokens: Option<u32>,
    /// `stream`: server-sent events ([`ChatStream`]), or one JSON body ([`parse_completion`]).
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk with the token counts (streaming only).
    pub include_usage: bool,
}

impl<'a> ChatRequest<'a> {
    /// A streamed request with usage, without `tool_choice`, `temperature` or `max_tokens`.
    pub fn new(model: &'a str, messages: &'a [Message], functions: &'a [FunctionSpec]) -> ChatRequest<'a> {
        ChatRequest {
            model,
            messages,
            functions,
            tool_choice: None,
            temperature: None,
            max_tokens: None,
            stream: true,
            include_usage: true,
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> Result<Vec<u8>, ChatError> {
        serde_json::to_vec(self).map_err(|e| ChatError::Encode { detail: e.to_string() })
    }
}

impl Serialize for ChatRequest<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", self.model)?;
        map.serialize_entry("messages", self.messages)?;
        if !self.functions.is_empty() {
            let tools: Vec<Value> = self.functions.iter().map(tool_definition).collect();
            map.serialize_entry("tools", &tools)?;
            if let Some(choice) = self.tool_choice {
                map.serialize_entry("tool_choice", &tool_choice(choice))?;
            }
        }
        if let Some(t) = self.temperature {
            map.serialize_entry("temperature", &t)?;
        }
        if let Some(n) = self.max_tokens {
            map.serialize_entry("max_tokens", &n)?;
        }
        map.serialize_entry("stream", &self.stream)?;
        if self.stream && self.include_usage {
            map.serialize_entry("stream_options", &json!({"include_usage": true}))?;
        }
        map.end()
    }
}

/// A function as a chat-completions tool. No `parameters` means an object without
/// properties (some servers require the key).
fn tool_definition(f: &FunctionSpec) -> Value {
    let parameters = match &f.parameters {
        Value::Null => json!({"type": "object", "properties": {}}),
        p => p.clone(),
    };
    json!({
        "type": "function",
        "function": {"name": f.name, "description": f.description, "parameters": parameters},
    })
}

/// `tool_choice` in the chat-completions shape (a named function nests under `function`,
/// unlike the Realtime API's).
fn tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Function(name) => json!({"type": "function", "function": {"name": name}}),
    }
}

/// What a reply's stream said, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatStep {
    /// A piece of the spoken text (`delta.content`), never empty.
    Text(String),
    /// The tool calls, complete, in the order they began (once per batch).
    ToolCalls(Vec<ToolCallRequest>),
    /// The choice's `finish_reason`.
    Finished(FinishReason),
    /// The token counts (the `include_usage` chunk; llama.cpp also puts them on the
    /// finishing chunk, vLLM's continuous stats on every chunk: the last one counts).
    Usage {
        /// `usage.prompt_tokens`.
        prompt_tokens: u64,
        /// `usage.completion_tokens`.
        completion_tokens: u64,
        /// `usage.prompt_tokens_details.cached_tokens`, else llama.cpp's
        /// `timings.cache_n`, else 0.
        cached_tokens: u64,
    },
    /// `data: [DONE]`: the stream is over.
    Done,
    /// An `{"error":…}` event (or an `event: error`): the server's message as one line.
    ServerError(String),
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// The reply is complete.
    Stop,
    /// `max_tokens` or the context ran out.
    Length,
    /// It called functions (also the legacy `function_call`).
    ToolCalls,
    /// The provider's filter cut it.
    ContentFilter,
    /// OpenRouter's mid-stream failure.
    Error,
    /// Anything else, as sent.
    Other(String),
}

impl FinishReason {
    fn parse(reason: &str) -> FinishReason {
        match reason {
            "stop" => FinishReason::Stop,
            "length" => FinishReason::Length,
            "tool_calls" | "function_call" => FinishReason::ToolCalls,
            "content_filter" => FinishReason::ContentFilter,
            "error" => FinishReason::Error,
            other => FinishReason::Other(one_line(other, 64)),
        }
    }
}

/// One complete function call from the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallRequest {
    /// The model's id for the call (`call_<index>` when the server gave none).
    pub id: String,
    /// The function.
    pub name: String,
    /// The arguments as a JSON object, or why they are not one (for the model to read).
    pub arguments: Result<Value, String>,
}

impl ToolCallRequest {
    /// As the crate's [`ToolCall`], for [`crate::tools::start_tool`] and the assistant
    /// message in the history: the arguments as compact JSON, `{}` when they were invalid
    /// (some servers' chat templates parse the arguments of past calls, and invalid JSON
    /// there fails the whole request; the tool result carries the error instead).
    pub fn to_tool_call(&self) -> ToolCall {
        let arguments = match &self.arguments {
            Ok(value) => value.to_string(),
            Err(_) => "{}".to_owned(),
        };
        ToolCall { id: self.id.clone(), name: self.name.clone(), arguments }
    }

    /// The tool result to send back instead of running the function, when the arguments
    /// are not a JSON object.
    pub fn invalid_arguments_result(&self) -> Option<String> {
        let reason = self.arguments.as_ref().err()?;
        Some(format!(
            "error: {reason}; the {} function was not called: call it again with a JSON object as its arguments",
            one_line(&self.name, 64)
        ))
    }
}

/// A reply's stream that is not a usable chat completions stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// An event that is not a chat completion chunk.
    #[error("the chat completions stream sent something that is not a completion chunk ({detail}): check that the LLM URL is an OpenAI-compatible /v1/chat/completions")]
    Invalid {
        /// What was wrong, one line.
        detail: String,
    },
    /// More calls in one reply than voice-ua runs.
    #[error("the LLM called more than {max} functions in one reply")]
    TooManyToolCalls {
        /// [`MAX_TOOL_CALLS`].
        max: usize,
    },
    /// Tool calls larger than the bound.
    #[error("the LLM's function calls in one reply exceed {max} bytes")]
    ToolCallsTooLarge {
        /// [`MAX_TOOL_BYTES`].
        max: usize,
    },
    /// The request could not be written as JSON.
    #[error("the chat completions request could not be encoded: {detail}")]
    Encode {
        /// serde_json's complaint.
        detail: String,
    },
}

/// Assembles one reply's stream. Feed it each event ([`ChatStream::push_event`]) or each
/// event's data ([`ChatStream::push_data`]); after `[DONE]` it ignores everything.
#[derive(Debug)]
pub struct ChatStream {
    /// The calls being assembled, in the order they began.
    calls: Vec<PartialCall>,
    /// Bytes of ids, names and arguments in `calls`.
    tool_bytes: usize,
    max_calls: usize,
    max_tool_bytes: usize,
    done: bool,
}

#[derive(Debug)]
struct PartialCall {
    index: u64,
    id: String,
    name: String,
    arguments: String,
}

impl Default for ChatStream {
    fn default() -> Self {
        ChatStream::new()
    }
}

impl ChatStream {
    /// A stream bounded at [`MAX_TOOL_CALLS`] and [`MAX_TOOL_BYTES`].
    pub fn new() -> ChatStream {
        ChatStream::with_limits(MAX_TOOL_CALLS, MAX_TOOL_BYTES)
    }

    /// A stream bounded at `max_calls` calls and `max_tool_bytes` bytes of them.
    pub fn with_limits(max_calls: usize, max_tool_bytes: usize) -> ChatStream {
        ChatStream { calls: Vec::new(), tool_bytes: 0, max_calls, max_tool_bytes, done: false }
    }

    /// `[DONE]` came.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// One server-sent event: `event: error` is a [`ChatStep::ServerError`] whatever its
    /// data; any other is [`ChatStream::push_data`].
    pub fn push_event(&mut self, event: &super::SseEvent) -> Result<Vec<ChatStep>, ChatError> {
        if event.event.as_deref() == Some("error") && !self.done {
            let text = serde_json::from_str::<Value>(&event.data)
                .ok()
                .and_then(|v| error_text(&v))
                .unwrap_or_else(|| one_line(&event.data, MAX_ERROR_BYTES));
            return Ok(vec![ChatStep::ServerError(text)]);
        }
        self.push_data(&event.data)
    }

    /// One event's data: a chunk, `[DONE]`, or an error object.
    pub fn push_data(&mut self, data: &str) -> Result<Vec<ChatStep>, ChatError> {
        let mut steps = Vec::new();
        if self.done {
            return Ok(steps);
        }
        let data = data.trim();
        if data.is_empty() {
            return Ok(steps);
        }
        if data == "[DONE]" {
            self.flush_calls(&mut steps);
            steps.push(ChatStep::Done);
            self.done = true;
            return Ok(steps);
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(invalid)?;
        self.chunk(chunk, false, &mut steps)?;
        Ok(steps)
    }

    /// The body ended without `[DONE]`: the calls still being assembled, if any. Whether a
    /// stream cut short is a failure is the caller's call ([`ChatStream::is_done`]).
    pub fn finish(&mut self) -> Vec<ChatStep> {
        let mut steps = Vec::new();
        if !self.done {
            self.flush_calls(&mut steps);
        }
        steps
    }

    /// One chunk (or a whole non-streamed completion, `whole`).
    fn chunk(&mut self, chunk: Chunk, whole: bool, steps: &mut Vec<ChatStep>) -> Result<(), ChatError> {
        if let Some(text) = chunk.error.as_ref().and_then(error_text) {
            steps.push(ChatStep::ServerError(text));
        } else if chunk.object.as_deref() == Some("error") {
            // vLLM's older shape: {"object":"error","message":…}.
            let text = chunk.message.as_ref().and_then(error_text).unwrap_or_else(|| "unknown error".into());
            steps.push(ChatStep::ServerError(text));
        }
        // Only the first choice is spoken (voice-ua never asks for `n` > 1).
        for choice in chunk.choices.unwrap_or_default().into_iter().filter(|c| c.index.unwrap_or(0) == 0) {
            let delta = if whole { choice.message } else { choice.delta };
            if let Some(delta) = delta {
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    steps.push(ChatStep::Text(text));
                }
                for (position, call) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
                    self.tool_call_delta(call, whole.then_some(position))?;
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.flush_calls(steps);
                steps.push(ChatStep::Finished(FinishReason::parse(&reason)));
            }
        }
        if let Some(usage) = chunk.usage {
            let cached = usage
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .or(chunk.timings.and_then(|t| t.cache_n))
                .unwrap_or(0);
            steps.push(ChatStep::Usage {
                prompt_tokens: usage.prompt_tokens.unwrap_or(0),
                completion_tokens: usage.completion_tokens.unwrap_or(0),
                cached_tokens: cached,
            });
        }
        Ok(())
    }

    /// One tool-call delta; `position` is the call's place in a whole message (which has no
    /// `index`).
    fn tool_call_delta(&mut self, delta: ToolCallDelta, position: Option<usize>) -> Result<(), ChatError> {
        let id = delta.id.filter(|id| !id.is_empty());
        let function = delta.function.unwrap_or_default();
        let index = match (delta.index, position) {
            (Some(index), _) => index,
            (None, Some(position)) => u64::try_from(position).unwrap_or(u64::MAX),
            (None, None) => match &id {
                Some(id) => match self.calls.iter().find(|c| &c.id == id) {
                    Some(call) => call.index,
                    None => self.calls.iter().map(|c| c.index.saturating_add(1)).max().unwrap_or(0),
                },
                None => self.calls.last().map_or(0, |c| c.index),
            },
        };
        let arguments = match function.arguments {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s,
            // A server that sends the arguments as an object rather than as JSON text.
            Some(other) => other.to_string(),
        };
        let name = function.name.unwrap_or_default();
        let added = id.as_ref().map_or(0, String::len) + name.len() + arguments.len();
        if self.tool_bytes.saturating_add(added) > self.max_tool_bytes {
            return Err(ChatError::ToolCallsTooLarge { max: self.max_tool_bytes });
        }
        self.tool_bytes += added;
        let call = match self.calls.iter().position(|c| c.index == index) {
            Some(at) => &mut self.calls[at],
            None => {
                if self.calls.len() >= self.max_calls {
                    return Err(ChatError::TooManyToolCalls { max: self.max_calls });
                }
                self.calls.push(PartialCall {
                    index,
                    id: String::new(),
                    name: String::new(),
                    arguments: String::new(),
                });
                let last = self.calls.len() - 1;
                &mut self.calls[last]
            }
        };
        if let Some(id) = id {
            if call.id.is_empty() {
                call.id = id;
            }
        }
        // Normally the name comes once; a server repeating it is not a fragment.
        if !name.is_empty() && name != call.name {
            call.name.push_str(&name);
        }
        call.arguments.push_str(&arguments);
        Ok(())
    }

    /// The calls assembled so far, as one [`ChatStep::ToolCalls`] (nothing if none).
    fn flush_calls(&mut self, steps: &mut Vec<ChatStep>) {
        if self.calls.is_empty() {
            return;
        }
        self.tool_bytes = 0;
        let mut calls: Vec<ToolCallRequest> = Vec::with_capacity(self.calls.len());
        for c in std::mem::take(&mut self.calls) {
            // Results are matched by id: a missing or repeated one gets a fresh one.
            let taken = |id: &str| calls.iter().any(|other| other.id == id);
            let mut id = c.id;
            if id.is_empty() || taken(&id) {
                id = format!("call_{}", c.index);
                let mut n = 1;
                while taken(&id) {
                    id = format!("call_{}_{n}", c.index);
                    n += 1;
                }
            }
            calls.push(ToolCallRequest { id, name: c.name, arguments: parse_arguments(&c.arguments) });
        }
        steps.push(ChatStep::ToolCalls(calls));
    }
}

/// A non-streamed completion (`stream: false`) as the steps its stream would have given:
/// `Text` (the whole content), `ToolCalls`, `Finished`, `Usage`, `Done`.
pub fn parse_completion(body: &str) -> Result<Vec<ChatStep>, ChatError> {
    let mut stream = ChatStream::new();
    let chunk: Chunk = serde_json::from_str(body.trim()).map_err(invalid)?;
    let mut steps = Vec::new();
    stream.chunk(chunk, true, &mut steps)?;
    // Usage before Done, as a stream has it.
    stream.flush_calls(&mut steps);
    steps.push(ChatStep::Done);
    Ok(steps)
}

/// The arguments text as a JSON object: `""` is `{}`; a JSON string holding an object
/// (a model that encoded it twice) is that object; anything else is why not.
fn parse_arguments(raw: &str) -> Result<Value, String> {
    let value = arguments::check(&Value::Bool(true), raw).map_err(|e| e.to_string())?;
    let value = match value {
        Value::String(inner) => match serde_json::from_str::<Value>(&inner) {
            Ok(object @ Value::Object(_)) => object,
            _ => Value::String(inner),
        },
        other => other,
    };
    arguments::validate(&json!({"type": "object"}), &value).map_err(|e| e.to_string())?;
    Ok(value)
}

fn invalid(e: serde_json::Error) -> ChatError {
    ChatError::Invalid { detail: one_line(&e.to_string(), MAX_ERROR_BYTES) }
}

/// An error value's message: a string, or an object's `message` (with its `code`).
fn error_text(error: &Value) -> Option<String> {
    let text = match error {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        Value::Object(fields) => message_of(fields),
        other => other.to_string(),
    };
    Some(one_line(&text, MAX_ERROR_BYTES))
}

fn message_of(fields: &Map<String, Value>) -> String {
    let message = match fields.get("message") {
        Some(Value::String(m)) => m.clone(),
        Some(Value::Object(inner)) => message_of(inner),
        _ => Value::Object(fields.clone()).to_string(),
    };
    match fields.get("code") {
        Some(Value::String(code)) => format!("{message} ({code})"),
        Some(Value::Number(code)) => format!("{message} ({code})"),
        _ => message,
    }
}

/// `chat.completion.chunk`, or a whole `chat.completion`, or an error: only the fields
/// voice-ua reads; the rest is ignored.
#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    timings: Option<Timings>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    message: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    delta: Option<Delta>,
    /// A whole completion's.
    #[serde(default)]
    message: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Debug, Deserialize)]
struct ToolCallDelta {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Debug, Default, Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Debug, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

/// llama.cpp's `timings`.
#[derive(Debug, Deserialize)]
struct Timings {
    #[serde(default)]
    cache_n: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    use crate::tools::{Builtin, ToolKind};

    /// All steps of `events` (each an event's data).
    fn run(events: &[&str]) -> Result<Vec<ChatStep>, ChatError> {
        let mut stream = ChatStream::new();
        let mut steps = Vec::new();
        for data in events {
            steps.extend(stream.push_data(data)?);
        }
        steps.extend(stream.finish());
        Ok(steps)
    }

    fn call(id: &str, name: &str, arguments: Value) -> ToolCallRequest {
        ToolCallRequest { id: id.into(), name: name.into(), arguments: Ok(arguments) }
    }

    fn text(t: &str) -> ChatStep {
        ChatStep::Text(t.into())
    }

    #[test]
    fn openai_text_reply_with_usage() {
        let steps = run(&[
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" there."},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":120,"completion_tokens":3,"total_tokens":123,"prompt_tokens_details":{"cached_tokens":64,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#,
            "[DONE]",
        ])
        .expect("a valid stream");
        assert_eq!(
            steps,
            vec![
                text("Hello"),
                text(" there."),
                ChatStep::Finished(FinishReason::Stop),
                ChatStep::Usage { prompt_tokens: 120, completion_tokens: 3, cached_tokens: 64 },
                ChatStep::Done,
            ]
        );
    }

    #[test]
    fn openai_streamed_parallel_tool_calls() {
        let steps = run(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_abc","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"lo"}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_def","type":"function","function":{"name":"get_time","arguments":""}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"cation\": \"Kyiv\"}"}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ])
        .expect("a valid stream");
        assert_eq!(
            steps,
            vec![
                ChatStep::ToolCalls(vec![
                    call("call_abc", "get_weather", json!({"location": "Kyiv"})),
                    call("call_def", "get_time", json!({})),
                ]),
                ChatStep::Finished(FinishReason::ToolCalls),
                ChatStep::Done,
            ]
        );
    }

    #[test]
    fn ollama_whole_call_in_one_chunk_finishing_with_stop() {
        let steps = run(&[
            r#"{"id":"chatcmpl-412","object":"chat.completion.chunk","created":1,"model":"qwen2.5:7b","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_x1y2z3","index":0,"type":"function","function":{"name":"transfer","arguments":"{\"reason\":\"sales\"}"}}]},"finish_reason":null}]}"#,
            r#"{"id":"chatcmpl-412","object":"chat.completion.chunk","created":1,"model":"qwen2.5:7b","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"stop"}]}"#,
            r#"{"id":"chatcmpl-412","object":"chat.completion.chunk","created":1,"model":"qwen2.5:7b","system_fingerprint":"fp_ollama","choices":[],"usage":{"prompt_tokens":310,"completion_tokens":22,"total_tokens":332}}"#,
            "[DONE]",
        ])
        .expect("a valid stream");
        assert_eq!(
            steps,
            vec![
                ChatStep::ToolCalls(vec![call("call_x1y2z3", "transfer", json!({"reason": "sales"}))]),
                ChatStep::Finished(FinishReason::Stop),
                ChatStep::Usage { prompt_tokens: 310, completion_tokens: 22, cached_tokens: 0 },
                ChatStep::Done,
            ]
        );
    }

    #[test]
    fn llama_cpp_usage_and_timings_on_the_finishing_chunk() {
        let steps = run(&[
            r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"reasoning_content":"think"}}],"object":"chat.completion.chunk"}"#,
            r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"Hi"}}],"object":"chat.completion.chunk"}"#,
            r#"{"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"object":"chat.completion.chunk","usage":{"completion_tokens":2,"prompt_tokens":40,"total_tokens":42},"timings":{"cache_n":31,"prompt_n":9}}"#,
            "[DONE]",
        ])
        .expect("a valid stream");
        assert_eq!(
            steps,
            vec![
                text("Hi"),
                ChatStep::Finished(FinishReason::Stop),
                ChatStep::Usage { prompt_tokens: 40, completion_tokens: 2, cached_tokens: 31 },
                ChatStep::Done,
            ]
        );
    }

    #[test]
    fn vllm_name_first_then_fragments_and_a_call_without_id() {
        let steps = run(&[
            r#"{"choices":[{"index":0,"delta":{"content":"Let me check."},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"chatcmpl-tool-9f","type":"function","index":0,"function":{"name":"lookup"}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"order\": "}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"A-17\"}"}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"name":"hangup","arguments":""}}]},"finish_reason":null}]}"#,
            "[DONE]",
        ])
        .expect("a valid stream");
        assert_eq!(
            steps,
            vec![
                text("Let me check."),
                ChatStep::ToolCalls(vec![
                    call("chatcmpl-tool-9f", "lookup", json!({"order": "A-17"})),
                    call("call_1", "hangup", json!({})),
                ]),
                ChatStep::Done,
            ]
        );
    }

    #[test]
    fn calls_without_index_follow_their_id() {
        let steps = run(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"a","function":{"name":"one","arguments":"{\"x\":"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"1}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"b","function":{"name":"two","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ])
        .expect("a valid stream");
        assert_eq!(
            steps,
            vec![
                ChatStep::ToolCalls(vec![call("a", "one", json!({"x": 1})), call("b", "two", json!({}))]),
                ChatStep::Finished(FinishReason::ToolCalls),
            ]
        );
    }

    #[test]
    fn arguments_that_are_not_an_object_are_an_error_for_the_model() {
        let chunk = |args: &str| {
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":args}}]},"finish_reason":"tool_calls"}]})
            .to_string()
        };
        let arguments = |args: &str| -> Result<Value, String> {
            let steps = run(&[&chunk(args)]).expect("a valid stream");
            match steps.first() {
                Some(ChatStep::ToolCalls(calls)) => calls[0].arguments.clone(),
                other => panic!("no tool calls: {other:?}"),
            }
        };
        assert_eq!(arguments("  "), Ok(json!({})));
        assert_eq!(arguments(r#""{\"a\":1}""#), Ok(json!({"a": 1})), "encoded twice");
        let truncated = arguments(r#"{"location": "Ky"#).expect_err("truncated JSON");
        assert!(truncated.starts_with("the arguments are not valid JSON"), "{truncated}");
        assert_eq!(arguments("[1,2]"), Err("the arguments must be an object, not an array".into()));
        assert_eq!(arguments("\"text\""), Err("the arguments must be an object, not a string".into()));
        let request = ToolCallRequest { id: "c".into(), name: "f".into(), arguments: Err(truncated) };
        assert_eq!(request.to_tool_call().arguments, "{}");
        let result = request.invalid_arguments_result().expect("an error result");
        assert!(
            result.starts_with("error: the arguments are not valid JSON")
                && result.contains("the f function was not called")
        );
        assert_eq!(call("c", "f", json!({"a": [1]})).to_tool_call().arguments, r#"{"a":[1]}"#);
        assert_eq!(call("c", "f", json!({})).invalid_arguments_result(), None);
    }

    #[test]
    fn arguments_sent_as_an_object_are_taken() {
        let steps = run(&[
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":{"n":2}}}]},"finish_reason":"tool_calls"}]}"#,
        ])
        .expect("a valid stream");
        assert_eq!(steps[0], ChatStep::ToolCalls(vec![call("c", "f", json!({"n": 2}))]));
    }

    #[test]
    fn server_errors_in_every_shape() {
        let steps = run(&[
            r#"{"error":{"message":"The model `x` does not exist","type":"invalid_request_error","code":"model_not_found"}}"#,
            r#"{"object":"error","message":"This model's maximum context length is 4096 tokens.","type":"BadRequestError","param":null,"code":400}"#,
            r#"{"error":"slot unavailable"}"#,
            r#"{"id":"gen-1","object":"chat.completion.chunk","error":{"code":502,"message":"Provider disconnected"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}"#,
        ])
        .expect("error events are steps");
        assert_eq!(
            steps,
            vec![
                ChatStep::ServerError("The model `x` does not exist (model_not_found)".into()),
                ChatStep::ServerError("This model's maximum context length is 4096 tokens.".into()),
                ChatStep::ServerError("slot unavailable".into()),
                ChatStep::ServerError("Provider disconnected (502)".into()),
                ChatStep::Finished(FinishReason::Error),
            ]
        );
        let mut stream = ChatStream::new();
        let event = super::super::SseEvent { event: Some("error".into()), data: "overloaded\nretry".into() };
        assert_eq!(stream.push_event(&event), Ok(vec![ChatStep::ServerError("overloaded retry".into())]));
    }

    #[test]
    fn garbage_is_an_error_and_after_done_nothing_counts() {
        assert!(matches!(run(&["<html>502 Bad Gateway</html>"]), Err(ChatError::Invalid { .. })));
        assert!(matches!(run(&[r#"{"choices":[{"delta":{"content":7}}]}"#]), Err(ChatError::Invalid { .. })));
        let steps = run(&["", ": comment-like", "[DONE]"]);
        assert!(matches!(steps, Err(ChatError::Invalid { .. })), "{steps:?}");
        let steps = run(&["", "[DONE]", r#"{"choices":[{"delta":{"content":"late"}}]}"#, "garbage"]);
        assert_eq!(steps, Ok(vec![ChatStep::Done]));
    }

    #[test]
    fn a_stream_cut_short_still_gives_its_calls() {
        let mut stream = ChatStream::new();
        let steps = stream
            .push_data(r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{}"}}]}}]}"#)
            .expect("a chunk");
        assert!(steps.is_empty());
        assert!(!stream.is_done());
        assert_eq!(stream.finish(), vec![ChatStep::ToolCalls(vec![call("c", "f", json!({}))])]);
        assert_eq!(stream.finish(), vec![], "once");
    }

    #[test]
    fn bounds_on_calls_and_their_size() {
        let calls = |n: usize| {
            let calls: Vec<Value> = (0..n)
                .map(|i| json!({"index": i, "id": format!("c{i}"), "function": {"name": "f", "arguments": "{}"}}))
                .collect();
            json!({"choices":[{"index":0,"delta":{"tool_calls":calls}}]}).to_string()
        };
        assert!(run(&[&calls(MAX_TOOL_CALLS)]).is_ok());
        assert_eq!(
            run(&[&calls(MAX_TOOL_CALLS + 1)]),
            Err(ChatError::TooManyToolCalls { max: MAX_TOOL_CALLS })
        );
        let mut stream = ChatStream::with_limits(4, 100);
        let fragment = |s: &str| {
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":s}}]}}]})
                .to_string()
        };
        assert!(stream.push_data(&fragment(&"x".repeat(100))).is_ok());
        assert_eq!(stream.push_data(&fragment("y")), Err(ChatError::ToolCallsTooLarge { max: 100 }));
    }

    #[test]
    fn a_whole_completion() {
        let body = r#"{"id":"chatcmpl-9","object":"chat.completion","created":1,"model":"llama3.1","choices":[{"index":0,"message":{"role":"assistant","content":"One moment.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"q\":\"bus\"}"}},{"type":"function","function":{"name":"hangup","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":50,"completion_tokens":20,"total_tokens":70}}"#;
        assert_eq!(
            parse_completion(body),
            Ok(vec![
                text("One moment."),
                ChatStep::ToolCalls(vec![
                    call("call_1", "lookup", json!({"q": "bus"})),
                    call("call_1_1", "hangup", json!({})),
                ]),
                ChatStep::Finished(FinishReason::ToolCalls),
                ChatStep::Usage { prompt_tokens: 50, completion_tokens: 20, cached_tokens: 0 },
                ChatStep::Done,
            ])
        );
    }

    fn function(name: &str, parameters: Value) -> FunctionSpec {
        FunctionSpec {
            name: name.into(),
            description: format!("{name} things"),
            parameters,
            kind: ToolKind::Http {
                url: "http://x".into(),
                headers: Vec::new(),
                timeout: Duration::from_secs(1),
            },
            filler: Default::default(),
        }
    }

    #[test]
    fn request_with_tools_and_every_option() {
        let messages = vec![
            Message::system("Be brief."),
            Message::user("Weather in Kyiv?"),
            Message::Assistant {
                content: None,
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "weather".into(),
                    arguments: r#"{"city":"Kyiv"}"#.into(),
                }],
            },
            Message::tool("call_1", "sunny"),
            Message::assistant("It is sunny."),
        ];
        let functions = vec![
            function("weather", json!({"type": "object", "properties": {"city": {"type": "string"}}})),
            FunctionSpec { kind: ToolKind::Builtin(Builtin::Hangup), ..function("hangup", Value::Null) },
        ];
        let choice = ToolChoice::Function("weather".into());
        let request = ChatRequest {
            tool_choice: Some(&choice),
            temperature: Some(0.5),
            max_tokens: Some(200),
            ..ChatRequest::new("qwen2.5:7b", &messages, &functions)
        };
        let body: Value = serde_json::from_slice(&request.to_json().expect("JSON")).expect("valid JSON");
        assert_eq!(
            body,
            json!({
                "model": "qwen2.5:7b",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Weather in Kyiv?"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Kyiv\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                    {"role": "assistant", "content": "It is sunny."},
                ],
                "tools": [
                    {"type": "function", "function": {"name": "weather", "description": "weather things",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                    {"type": "function", "function": {"name": "hangup", "description": "hangup things",
                        "parameters": {"type": "object", "properties": {}}}},
                ],
                "tool_choice": {"type": "function", "function": {"name": "weather"}},
                "temperature": 0.5,
                "max_tokens": 200,
                "stream": true,
                "stream_options": {"include_usage": true},
            })
        );
    }

    #[test]
    fn minimal_request_omits_what_is_not_configured() {
        let messages = vec![
            Message::system("S"),
            Message::user("U"),
            Message::Assistant { content: None, tool_calls: vec![] },
        ];
        let choice = ToolChoice::Auto;
        let request = ChatRequest { tool_choice: Some(&choice), ..ChatRequest::new("m", &messages, &[]) };
        let body: Value = serde_json::from_slice(&request.to_json().expect("JSON")).expect("valid JSON");
        assert_eq!(
            body,
            json!({
                "model": "m",
                "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}, {"role": "assistant", "content": ""}],
                "stream": true,
                "stream_options": {"include_usage": true},
            }),
            "no tools, so no tool_choice either"
        );
        let request = ChatRequest { stream: false, ..ChatRequest::new("m", &messages, &[]) };
        let body: Value = serde_json::from_slice(&request.to_json().expect("JSON")).expect("valid JSON");
        assert_eq!(body.get("stream"), Some(&json!(false)));
        assert_eq!(body.get("stream_options"), None);
    }

    /// A streamed reply: its text in `text_cuts` pieces, then each call's arguments cut
    /// into fragments after the first delta (id and name).
    fn render(text: &str, text_cuts: usize, calls: &[(String, Value)], arg_cut: usize) -> Vec<String> {
        let mut events = Vec::new();
        let chars: Vec<char> = text.chars().collect();
        for piece in chars.chunks(text_cuts.max(1)) {
            let piece: String = piece.iter().collect();
            events.push(
                json!({"choices":[{"index":0,"delta":{"content":piece},"finish_reason":null}]}).to_string(),
            );
        }
        for (i, (name, args)) in calls.iter().enumerate() {
            events.push(
                json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":i,"id":format!("id{i}"),"type":"function","function":{"name":name,"arguments":""}}]}}]})
                    .to_string(),
            );
            let args: Vec<char> = args.to_string().chars().collect();
            for piece in args.chunks(arg_cut.max(1)) {
                let piece: String = piece.iter().collect();
                events.push(
                    json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":i,"function":{"arguments":piece}}]}}]})
                        .to_string(),
                );
            }
        }
        let reason = if calls.is_empty() { "stop" } else { "tool_calls" };
        events.push(json!({"choices":[{"index":0,"delta":{},"finish_reason":reason}]}).to_string());
        events.push("[DONE]".into());
        events
    }

    /// Steps with the text pieces joined (how the text was cut does not matter).
    fn joined(steps: Vec<ChatStep>) -> Vec<ChatStep> {
        let mut out: Vec<ChatStep> = Vec::new();
        for step in steps {
            match (out.last_mut(), step) {
                (Some(ChatStep::Text(all)), ChatStep::Text(more)) => all.push_str(&more),
                (_, step) => out.push(step),
            }
        }
        out
    }

    fn json_object() -> impl Strategy<Value = Value> {
        proptest::collection::btree_map(
            "[a-z]{1,6}",
            prop_oneof![
                any::<i32>().prop_map(Value::from),
                ".{0,12}".prop_map(Value::from),
                any::<bool>().prop_map(Value::from),
            ],
            0..4,
        )
        .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    proptest! {
        #[test]
        fn fragmentation_does_not_change_the_reply(
            text in ".{0,40}",
            calls in proptest::collection::vec(("[a-z_]{1,10}", json_object()), 0..4),
            text_cut in 1usize..6,
            arg_cut in 1usize..8,
        ) {
            let events = render(&text, text_cut, &calls, arg_cut);
            let steps = run(&events.iter().map(String::as_str).collect::<Vec<_>>()).expect("a valid stream");
            let mut expected = Vec::new();
            if !text.is_empty() {
                expected.push(ChatStep::Text(text.clone()));
            }
            if !calls.is_empty() {
                expected.push(ChatStep::ToolCalls(
                    calls.iter().enumerate().map(|(i, (name, args))| call(&format!("id{i}"), name, args.clone())).collect(),
                ));
                expected.push(ChatStep::Finished(FinishReason::ToolCalls));
            } else {
                expected.push(ChatStep::Finished(FinishReason::Stop));
            }
            expected.push(ChatStep::Done);
            prop_assert_eq!(joined(steps), expected);
        }

        #[test]
        fn arbitrary_data_never_panics(data in proptest::collection::vec(".{0,80}", 0..8)) {
            let mut stream = ChatStream::with_limits(3, 64);
            for d in &data {
                let _ = stream.push_data(d);
            }
            let _ = stream.finish();
        }

        #[test]
        fn json_shaped_data_never_panics(
            chunks in proptest::collection::vec(
                (proptest::option::of(0u64..3), proptest::option::of("[a-z]{0,3}"), proptest::option::of("[a-z{}\":]{0,6}"),
                 proptest::option::of(prop_oneof![Just("stop"), Just("tool_calls"), Just("length")]), any::<bool>()),
                0..12,
            ),
        ) {
            let mut stream = ChatStream::with_limits(2, 40);
            for (index, id, args, finish, content) in chunks {
                let mut call = json!({"function": {"arguments": args}});
                if let Some(index) = index { call["index"] = json!(index); }
                if let Some(id) = id { call["id"] = json!(id); call["function"]["name"] = json!("f"); }
                let mut delta = json!({"tool_calls": [call]});
                if content { delta["content"] = json!("hi"); }
                let chunk = json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
                if let Ok(steps) = stream.push_data(&chunk.to_string()) {
                    for step in steps {
                        if let ChatStep::ToolCalls(calls) = step {
                            prop_assert!(!calls.is_empty() && calls.len() <= 2);
                            prop_assert!(calls.iter().all(|c| !c.id.is_empty()));
                            for (i, c) in calls.iter().enumerate() {
                                prop_assert!(calls[..i].iter().all(|other| other.id != c.id), "ids are unique");
                            }
                        }
                    }
                }
            }
        }
    }
}
