//! The chat-completions request, checked strictly: [`validate`] turns a JSON body into a
//! [`ChatRequest`] or the 400 an OpenAI-compatible server (of the [`Dialect`]) answers.
//!
//! Beyond the shapes: the `tool` messages after an assistant message with `tool_calls`
//! must answer each of its ids, once, before any other message (OpenAI's rule); unknown
//! top-level parameters and unknown message fields are refused (OpenAI's "Unrecognized
//! request argument" and "Additional properties are not allowed"); content is a string
//! (this fake takes no content-part arrays); `stream_options` only with `stream: true`;
//! `tool_choice` and `parallel_tool_calls` only with `tools`.

use serde_json::{Map, Value};

use crate::{ApiError, Dialect};

/// A message's author.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// `system`.
    #[default]
    System,
    /// `user`.
    User,
    /// `assistant`.
    Assistant,
    /// `tool`.
    Tool,
}

/// A tool call of an assistant message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolCall {
    /// `id`.
    pub id: String,
    /// `function.name`.
    pub name: String,
    /// `function.arguments`, as sent (a string, maybe not JSON).
    pub arguments: String,
}

/// One message of the request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChatMessage {
    /// `role`.
    pub role: Role,
    /// `content` (`None`: null or absent, assistant only).
    pub content: Option<String>,
    /// `name`, when given.
    pub name: Option<String>,
    /// Assistant: `tool_calls`.
    pub tool_calls: Vec<ToolCall>,
    /// Tool: `tool_call_id`.
    pub tool_call_id: Option<String>,
}

/// A request that passed every check.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// `model`.
    pub model: String,
    /// `messages`.
    pub messages: Vec<ChatMessage>,
    /// The names of `tools`, in order.
    pub tools: Vec<String>,
    /// `tool_choice`, when present.
    pub tool_choice: Option<Value>,
    /// `stream`.
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// `max_tokens`.
    pub max_tokens: Option<u64>,
    /// `max_completion_tokens`.
    pub max_completion_tokens: Option<u64>,
    /// `temperature`.
    pub temperature: Option<f64>,
}

impl ChatRequest {
    /// The completion-token cap the dialect honours (Ollama reads only `max_tokens`).
    pub fn token_cap(&self, dialect: Dialect) -> Option<u64> {
        match dialect {
            Dialect::OpenAi => self.max_completion_tokens.or(self.max_tokens),
            Dialect::Ollama => self.max_tokens,
        }
    }

    /// The text the model reads (for token counts and prefix caching).
    pub fn prompt_text(&self) -> String {
        let mut text = String::new();
        for m in &self.messages {
            text.push_str(m.content.as_deref().unwrap_or(""));
            for c in &m.tool_calls {
                text.push_str(&c.name);
                text.push_str(&c.arguments);
            }
            text.push('\n');
        }
        for t in &self.tools {
            text.push_str(t);
        }
        text
    }
}

/// The top-level parameters accepted (others: 400, as OpenAI refuses them).
const KNOWN: &[&str] = &[
    "model",
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "seed",
    "user",
    "frequency_penalty",
    "presence_penalty",
    "response_format",
    "reasoning_effort",
    "metadata",
    "store",
];

/// Check `body` (the raw request body) strictly.
pub fn validate(body: &[u8], dialect: Dialect) -> Result<ChatRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(None, format!("We could not parse the JSON body of your request. ({e})"))
    })?;
    validate_value(&value, dialect)
}

/// [`validate`] on a parsed body.
pub fn validate_value(value: &Value, dialect: Dialect) -> Result<ChatRequest, ApiError> {
    let body = value
        .as_object()
        .ok_or_else(|| ApiError::invalid(None, "The request body must be a JSON object."))?;
    if let Some(unknown) = body.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            Some(unknown),
            format!("Unrecognized request argument supplied: {unknown}"),
        ));
    }
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(_)) | None => {
            return Err(ApiError::invalid(Some("model"), "you must provide a model parameter"));
        }
        Some(other) => return Err(type_error("model", "a string", other)),
    };
    let mut request = ChatRequest { model, ..ChatRequest::default() };

    request.tools = tools(body.get("tools"))?;
    request.messages = messages(body.get("messages"), dialect)?;
    request.stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(type_error("stream", "a boolean", other)),
    };
    match body.get("stream_options") {
        None | Some(Value::Null) => {}
        Some(_) if !request.stream => {
            return Err(ApiError::invalid(
                Some("stream_options"),
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            ));
        }
        Some(Value::Object(options)) => {
            for (key, v) in options {
                match (key.as_str(), v) {
                    ("include_usage", Value::Bool(b)) => request.include_usage = *b,
                    ("include_obfuscation", Value::Bool(_)) => {}
                    ("include_usage" | "include_obfuscation", other) => {
                        return Err(type_error(&format!("stream_options.{key}"), "a boolean", other));
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            Some("stream_options"),
                            format!("Unrecognized stream_options field: {key}"),
                        ));
                    }
                }
            }
        }
        Some(other) => return Err(type_error("stream_options", "an object", other)),
    }
    if let Some(choice) = body.get("tool_choice").filter(|v| !v.is_null()) {
        if dialect == Dialect::Ollama {
            return Err(ApiError::invalid(
                Some("tool_choice"),
                "tool_choice is not supported (Ollama's /v1 has no tool_choice; this strict fake refuses it)",
            ));
        }
        check_tool_choice(choice, &request.tools)?;
        request.tool_choice = Some(choice.clone());
    }
    if let Some(parallel) = body.get("parallel_tool_calls").filter(|v| !v.is_null()) {
        if !parallel.is_boolean() {
            return Err(type_error("parallel_tool_calls", "a boolean", parallel));
        }
        if request.tools.is_empty() {
            return Err(ApiError::invalid(
                Some("parallel_tool_calls"),
                "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are specified.",
            ));
        }
    }
    request.max_tokens = positive(body, "max_tokens")?;
    request.max_completion_tokens = positive(body, "max_completion_tokens")?;
    request.temperature = number_in(body, "temperature", 0.0, 2.0)?;
    number_in(body, "top_p", 0.0, 1.0)?;
    number_in(body, "frequency_penalty", -2.0, 2.0)?;
    number_in(body, "presence_penalty", -2.0, 2.0)?;
    if let Some(n) = body.get("n").filter(|v| !v.is_null()) {
        if n.as_u64() != Some(1) {
            return Err(ApiError::invalid(Some("n"), "this fake answers n = 1 only"));
        }
    }
    match body.get("stop") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(Value::Array(stops)) if stops.len() <= 4 && stops.iter().all(Value::is_string) => {}
        Some(other) => return Err(type_error("stop", "a string or up to 4 strings", other)),
    }
    Ok(request)
}

fn type_error(param: &str, expected: &str, got: &Value) -> ApiError {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    ApiError::invalid(
        Some(param),
        format!("Invalid type for '{param}': expected {expected}, but got {got} instead."),
    )
}

fn positive(body: &Map<String, Value>, key: &str) -> Result<Option<u64>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Ok(Some(n)),
            _ => Err(ApiError::invalid(
                Some(key),
                format!("Invalid '{key}': integer below minimum value. Expected a value >= 1, but got {v} instead."),
            )),
        },
    }
}

fn number_in(body: &Map<String, Value>, key: &str, min: f64, max: f64) -> Result<Option<f64>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if (min..=max).contains(&x) => Ok(Some(x)),
            Some(x) => Err(ApiError::invalid(
                Some(key),
                format!("Invalid '{key}': {x} is out of range. Expected a value between {min} and {max}."),
            )),
            None => Err(type_error(key, "a number", v)),
        },
    }
}

fn tools(value: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let list = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) if list.is_empty() => {
            return Err(ApiError::invalid(Some("tools"), "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array instead."));
        }
        Some(Value::Array(list)) => list,
        Some(other) => return Err(type_error("tools", "an array", other)),
    };
    let mut names = Vec::new();
    for (i, tool) in list.iter().enumerate() {
        let at = format!("tools[{i}]");
        let tool = tool.as_object().ok_or_else(|| type_error(&at, "an object", tool))?;
        only_keys(tool, &["type", "function"], &at)?;
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            return Err(ApiError::invalid(
                Some(&format!("{at}.type")),
                "Invalid value: tool type must be 'function'.",
            ));
        }
        let function = match tool.get("function") {
            Some(Value::Object(f)) => f,
            _ => {
                return Err(ApiError::invalid(
                    Some(&format!("{at}.function")),
                    format!("Missing required parameter: '{at}.function'."),
                ))
            }
        };
        only_keys(function, &["name", "description", "parameters", "strict"], &format!("{at}.function"))?;
        let name = function.get("name").and_then(Value::as_str).unwrap_or("");
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(ApiError::invalid(
                Some(&format!("{at}.function.name")),
                format!("Invalid '{at}.function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$'."),
            ));
        }
        if let Some(d) = function.get("description").filter(|d| !d.is_string()) {
            return Err(type_error(&format!("{at}.function.description"), "a string", d));
        }
        if let Some(p) = function.get("parameters").filter(|p| !p.is_object()) {
            return Err(type_error(&format!("{at}.function.parameters"), "an object", p));
        }
        if names.iter().any(|n| n == name) {
            return Err(ApiError::invalid(Some("tools"), format!("Duplicate tool name: '{name}'.")));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

fn check_tool_choice(choice: &Value, tools: &[String]) -> Result<(), ApiError> {
    if tools.is_empty() {
        return Err(ApiError::invalid(
            Some("tool_choice"),
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
        ));
    }
    match choice {
        Value::String(s) if ["none", "auto", "required"].contains(&s.as_str()) => Ok(()),
        Value::Object(o)
            if o.len() == 2
                && o.get("type").and_then(Value::as_str) == Some("function")
                && o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str).is_some() =>
        {
            let name = o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or("");
            if tools.iter().any(|t| t == name) {
                Ok(())
            } else {
                Err(ApiError::invalid(
                    Some("tool_choice"),
                    format!("Invalid value for 'tool_choice': function '{name}' is not among the tools."),
                ))
            }
        }
        _ => Err(ApiError::invalid(
            Some("tool_choice"),
            "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or {\"type\":\"function\",\"function\":{\"name\":…}}.",
        )),
    }
}

fn only_keys(object: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), ApiError> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(ApiError::invalid(
            Some(at),
            format!("Additional properties are not allowed ('{key}' was unexpected) - '{at}'"),
        )),
        None => Ok(()),
    }
}

/// Where the conversation stands on tool calls while the messages are read.
enum Pending {
    None,
    /// After an assistant message with tool calls: its ids, and those not answered yet.
    Block {
        all: Vec<String>,
        open: Vec<String>,
    },
}

fn messages(value: Option<&Value>, dialect: Dialect) -> Result<Vec<ChatMessage>, ApiError> {
    let list = match value {
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid(Some("messages"), "[] is too short - 'messages'"))
        }
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(Some("messages"), "Missing required parameter: 'messages'."));
        }
        Some(other) => return Err(type_error("messages", "an array", other)),
    };
    let mut out = Vec::with_capacity(list.len());
    let mut pending = Pending::None;
    for (i, m) in list.iter().enumerate() {
        let at = format!("messages.[{i}]");
        let message = one_message(m, &at, dialect)?;
        match (&mut pending, message.role) {
            (Pending::Block { all, open }, Role::Tool) => {
                let id = message.tool_call_id.clone().unwrap_or_default();
                if let Some(k) = open.iter().position(|o| *o == id) {
                    open.remove(k);
                } else if all.contains(&id) {
                    return Err(ApiError::invalid(
                        Some(&format!("{at}.tool_call_id")),
                        format!("Invalid parameter: 'tool_call_id' of '{id}' was already answered."),
                    ));
                } else {
                    return Err(ApiError::invalid(
                        Some(&format!("{at}.tool_call_id")),
                        format!("Invalid parameter: 'tool_call_id' of '{id}' not found in 'tool_calls' of previous message."),
                    ));
                }
            }
            (Pending::None, Role::Tool) => {
                return Err(ApiError::invalid(
                    Some(&format!("{at}.role")),
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
                ));
            }
            (Pending::Block { open, .. }, _) if !open.is_empty() => return Err(unanswered(open)),
            _ => pending = Pending::None,
        }
        if !message.tool_calls.is_empty() {
            let ids: Vec<String> = message.tool_calls.iter().map(|c| c.id.clone()).collect();
            pending = Pending::Block { all: ids.clone(), open: ids };
        }
        out.push(message);
    }
    if let Pending::Block { open, .. } = &pending {
        if !open.is_empty() {
            return Err(unanswered(open));
        }
    }
    Ok(out)
}

fn unanswered(open: &[String]) -> ApiError {
    ApiError::invalid(
        Some("messages"),
        format!(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
            open.join(", ")
        ),
    )
}

fn one_message(m: &Value, at: &str, dialect: Dialect) -> Result<ChatMessage, ApiError> {
    let object = m.as_object().ok_or_else(|| type_error(at, "an object", m))?;
    let role = match object.get("role").and_then(Value::as_str) {
        Some("system") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("tool") => Role::Tool,
        Some(other) => {
            return Err(ApiError::invalid(
                Some(&format!("{at}.role")),
                format!("Invalid value: '{other}'. Supported values are: 'system', 'user', 'assistant' and 'tool' (this fake)."),
            ));
        }
        None => {
            return Err(ApiError::invalid(
                Some(&format!("{at}.role")),
                format!("Missing required parameter: '{at}.role'."),
            ))
        }
    };
    let allowed: &[&str] = match role {
        Role::System | Role::User => &["role", "content", "name"],
        Role::Assistant => &["role", "content", "name", "tool_calls", "refusal"],
        Role::Tool => &["role", "content", "tool_call_id"],
    };
    only_keys(object, allowed, at)?;
    let content = match object.get("content") {
        Some(Value::String(s)) => Some(s.clone()),
        None | Some(Value::Null) => None,
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid(
                Some(&format!("{at}.content")),
                "this fake takes message content as a string, not an array of parts",
            ));
        }
        Some(other) => return Err(type_error(&format!("{at}.content"), "a string", other)),
    };
    let name = match object.get("name") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(type_error(&format!("{at}.name"), "a string", other)),
    };
    let tool_calls = match object.get("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => tool_calls(v, &format!("{at}.tool_calls"), dialect)?,
    };
    if content.is_none() && (role != Role::Assistant || tool_calls.is_empty()) {
        let message = match dialect {
            Dialect::OpenAi => format!("Invalid value for '{at}.content': expected a string, got null."),
            Dialect::Ollama => "invalid message content type: <nil>".to_owned(),
        };
        return Err(ApiError::invalid(Some(&format!("{at}.content")), message));
    }
    let tool_call_id = match (role, object.get("tool_call_id")) {
        (Role::Tool, Some(Value::String(id))) if !id.is_empty() => Some(id.clone()),
        (Role::Tool, _) => {
            return Err(ApiError::invalid(
                Some(&format!("{at}.tool_call_id")),
                format!("Missing required parameter: '{at}.tool_call_id'."),
            ));
        }
        _ => None,
    };
    Ok(ChatMessage { role, content, name, tool_calls, tool_call_id })
}

fn tool_calls(value: &Value, at: &str, dialect: Dialect) -> Result<Vec<ToolCall>, ApiError> {
    let list = match value {
        Value::Array(list) if list.is_empty() => {
            return Err(ApiError::invalid(Some(at), format!("[] is too short - '{at}'")));
        }
        Value::Array(list) => list,
        other => return Err(type_error(at, "an array", other)),
    };
    let mut calls: Vec<ToolCall> = Vec::with_capacity(list.len());
    for (i, call) in list.iter().enumerate() {
        let at = format!("{at}.[{i}]");
        let object = call.as_object().ok_or_else(|| type_error(&at, "an object", call))?;
        only_keys(object, &["id", "type", "function"], &at)?;
        let id = object.get("id").and_then(Value::as_str).filter(|s| !s.is_empty());
        let id = id.ok_or_else(|| {
            ApiError::invalid(Some(&format!("{at}.id")), format!("Missing required parameter: '{at}.id'."))
        })?;
        if object.get("type").and_then(Value::as_str) != Some("function") {
            return Err(ApiError::invalid(
                Some(&format!("{at}.type")),
                "Invalid value: tool call type must be 'function'.",
            ));
        }
        let function = match object.get("function") {
            Some(Value::Object(f)) => f,
            _ => {
                return Err(ApiError::invalid(
                    Some(&format!("{at}.function")),
                    format!("Missing required parameter: '{at}.function'."),
                ))
            }
        };
        only_keys(function, &["name", "arguments"], &format!("{at}.function"))?;
        let name = function.get("name").and_then(Value::as_str).filter(|s| !s.is_empty());
        let name = name.ok_or_else(|| {
            ApiError::invalid(
                Some(&format!("{at}.function.name")),
                format!("Missing required parameter: '{at}.function.name'."),
            )
        })?;
        let arguments = match function.get("arguments") {
            Some(Value::String(a)) => a.clone(),
            Some(other) => return Err(type_error(&format!("{at}.function.arguments"), "a string", other)),
            None => {
                return Err(ApiError::invalid(
                    Some(&format!("{at}.function.arguments")),
                    format!("Missing required parameter: '{at}.function.arguments'."),
                ));
            }
        };
        if dialect == Dialect::Ollama && serde_json::from_str::<Value>(&arguments).is_err() {
            return Err(ApiError::invalid(
                Some(&format!("{at}.function.arguments")),
                "invalid tool call arguments",
            ));
        }
        if calls.iter().any(|c| c.id == id) {
            return Err(ApiError::invalid(
                Some(&format!("{at}.id")),
                format!("Duplicate tool call id '{id}'."),
            ));
        }
        calls.push(ToolCall { id: id.to_owned(), name: name.to_owned(), arguments });
    }
    Ok(calls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(body: Value, dialect: Dialect) -> Result<ChatRequest, ApiError> {
        validate_value(&body, dialect)
    }

    fn call(id: &str) -> Value {
        json!({"id": id, "type": "function", "function": {"name": "f", "arguments": "{}"}})
    }

    #[test]
    fn tool_messages_must_answer_each_call_of_the_previous_assistant_message() {
        let tools =
            json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
        let with = |messages: Value| json!({"model": "m", "messages": messages, "tools": tools});
        let user = json!({"role": "user", "content": "hi"});
        let assistant = json!({"role": "assistant", "content": null, "tool_calls": [call("a"), call("b")]});
        let tool = |id: &str| json!({"role": "tool", "tool_call_id": id, "content": "ok"});
        let good = check(with(json!([user, assistant, tool("b"), tool("a"), user])), Dialect::OpenAi)
            .expect("valid");
        assert_eq!(good.messages[1].tool_calls.len(), 2);
        assert_eq!(good.tools, vec!["f".to_owned()]);
        for (messages, needle) in [
            (json!([user, assistant, tool("a"), tool("x")]), "'x' not found"),
            (json!([user, assistant, tool("a"), tool("a")]), "already answered"),
            (json!([user, assistant, tool("a"), user]), "did not have response messages: b"),
            (json!([user, assistant, tool("a")]), "did not have response messages: b"),
            (json!([user, tool("a")]), "must be a response"),
            (json!([user, {"role": "tool", "content": "ok"}]), "tool_call_id"),
            (json!([{"role": "user", "content": null}]), "got null"),
            (json!([{"role": "assistant", "content": null}]), "got null"),
            (json!([{"role": "user", "content": [{"type": "text", "text": "hi"}]}]), "string"),
            (json!([{"role": "developer", "content": "x"}]), "Supported values"),
            (json!([{"role": "user", "content": "x", "extra": 1}]), "'extra' was unexpected"),
            (json!([]), "too short"),
        ] {
            let e = check(with(messages.clone()), Dialect::OpenAi).expect_err("refused");
            assert_eq!(e.status, 400);
            assert!(e.message.contains(needle), "{messages}: {}", e.message);
        }
    }

    #[test]
    fn parameters_are_checked() {
        let m = json!([{"role": "user", "content": "hi"}]);
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let ok = check(
            json!({"model": "m", "messages": m, "stream": true, "stream_options": {"include_usage": true},
                   "tools": tools, "tool_choice": "auto", "max_completion_tokens": 50, "temperature": 0.2}),
            Dialect::OpenAi,
        )
        .expect("valid");
        assert!(ok.stream && ok.include_usage && ok.tool_choice.is_some());
        assert_eq!((ok.token_cap(Dialect::OpenAi), ok.token_cap(Dialect::Ollama)), (Some(50), None));
        for (body, dialect, needle) in [
            (json!({"messages": m}), Dialect::OpenAi, "model"),
            (
                json!({"model": "m", "messages": m, "stream_options": {"include_usage": true}}),
                Dialect::OpenAi,
                "only allowed when 'stream'",
            ),
            (
                json!({"model": "m", "messages": m, "tool_choice": "auto"}),
                Dialect::OpenAi,
                "only allowed when 'tools'",
            ),
            (
                json!({"model": "m", "messages": m, "tools": tools, "tool_choice": "auto"}),
                Dialect::Ollama,
                "not supported",
            ),
            (json!({"model": "m", "messages": m, "tools": []}), Dialect::OpenAi, "empty array"),
            (
                json!({"model": "m", "messages": m, "tools": [{"type": "function", "function": {"name": "a b"}}]}),
                Dialect::OpenAi,
                "pattern",
            ),
            (json!({"model": "m", "messages": m, "temperature": 3}), Dialect::OpenAi, "out of range"),
            (json!({"model": "m", "messages": m, "max_tokens": 0}), Dialect::OpenAi, "minimum"),
            (
                json!({"model": "m", "messages": m, "bogus": 0}),
                Dialect::OpenAi,
                "Unrecognized request argument supplied: bogus",
            ),
        ] {
            let e = check(body.clone(), dialect).expect_err("refused");
            assert!(e.message.contains(needle), "{body}: {}", e.message);
        }
    }

    #[test]
    fn ollama_refuses_assistant_arguments_that_are_not_json() {
        let messages = json!([
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":"}}]},
            {"role": "tool", "tool_call_id": "a", "content": "error: invalid arguments"},
        ]);
        let body = json!({"model": "m", "messages": messages});
        assert!(check(body.clone(), Dialect::OpenAi).is_ok());
        let e = check(body, Dialect::Ollama).expect_err("refused");
        assert_eq!(e.message, "invalid tool call arguments");
    }
}
