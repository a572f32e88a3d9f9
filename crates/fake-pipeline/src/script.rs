//! The scripted LLM: [`ChatScript`] (keyword rules that call tools, the reply after a
//! tool's result, a default reply) and [`decide`], which picks the [`Reply`] to a
//! conversation from its messages alone, as a stateless model would.
//!
//! Templates may hold `{user}` (the latest user message), `{result}` (the first tool
//! result of the turn), `{results}` (all of them, joined with "; "), `{tool}` (the name
//! of the first tool called) and `{args}` (its arguments).

use crate::chat::{ChatRequest, Role};

/// "When the latest user message contains `keyword` (case-insensitive), call these
/// tools; when their results come back, say `reply`."
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRule {
    /// Matched case-insensitively in the latest user message.
    pub keyword: String,
    /// Text streamed before the tool calls ("One moment."), if any.
    pub preamble: Option<String>,
    /// `(name, arguments)`: the arguments are sent as they are (normally a JSON object).
    pub calls: Vec<(String, String)>,
    /// The reply once the tool results are in (a template).
    pub reply: String,
}

impl ToolRule {
    /// When the user says `keyword`, call `tool` with `arguments`; then say "Done:
    /// {result}".
    pub fn new(keyword: &str, tool: &str, arguments: &str) -> ToolRule {
        ToolRule {
            keyword: keyword.into(),
            preamble: None,
            calls: vec![(tool.into(), arguments.into())],
            reply: "Done: {result}".into(),
        }
    }

    /// Also call `tool` in the same turn (parallel tool calls, index 1, 2, …).
    pub fn and_call(mut self, tool: &str, arguments: &str) -> ToolRule {
        self.calls.push((tool.into(), arguments.into()));
        self
    }

    /// Say this before the calls.
    pub fn preamble(mut self, text: &str) -> ToolRule {
        self.preamble = Some(text.into());
        self
    }

    /// The reply after the results (a template).
    pub fn then_reply(mut self, template: &str) -> ToolRule {
        self.reply = template.into();
        self
    }
}

/// What the model says in one response.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Text only.
    Text(String),
    /// Optional text, then tool calls `(name, arguments)`.
    ToolCalls {
        /// Text before the calls (may be empty).
        preamble: String,
        /// `(name, arguments)`.
        calls: Vec<(String, String)>,
    },
}

impl Reply {
    /// [`Reply::Text`].
    pub fn text(text: &str) -> Reply {
        Reply::Text(text.into())
    }

    /// One tool call, no text.
    pub fn call(tool: &str, arguments: &str) -> Reply {
        Reply::ToolCalls { preamble: String::new(), calls: vec![(tool.into(), arguments.into())] }
    }
}

/// The scripted model's behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatScript {
    /// Tried in order on the latest user message; a rule whose tools the request does
    /// not offer is skipped, as a model cannot call an undeclared tool.
    pub rules: Vec<ToolRule>,
    /// The reply when no rule applies (a template).
    pub default_reply: String,
    /// The reply after tool results that no rule's calls explain (a template).
    pub after_tool: String,
}

impl Default for ChatScript {
    fn default() -> Self {
        ChatScript {
            rules: Vec::new(),
            default_reply: "You said: {user}. Anything else?".into(),
            after_tool: "Done: {result}".into(),
        }
    }
}

impl ChatScript {
    /// No rules, the default replies.
    pub fn new() -> ChatScript {
        ChatScript::default()
    }

    /// Add a rule.
    pub fn rule(mut self, rule: ToolRule) -> ChatScript {
        self.rules.push(rule);
        self
    }

    /// The default reply.
    pub fn default_reply(mut self, template: &str) -> ChatScript {
        self.default_reply = template.into();
        self
    }
}

/// The reply to `request` under `script`.
pub fn decide(script: &ChatScript, request: &ChatRequest) -> Reply {
    let messages = &request.messages;
    let user = messages.iter().rev().find(|m| m.role == Role::User).and_then(|m| m.content.clone());
    let user = user.unwrap_or_default();
    // The turn's tool results: the trailing run of tool messages.
    let results: Vec<&str> = {
        let tail = messages.iter().rev().take_while(|m| m.role == Role::Tool).count();
        messages[messages.len() - tail..].iter().map(|m| m.content.as_deref().unwrap_or("")).collect()
    };
    if !results.is_empty() {
        // The assistant message the results answer comes right before them.
        let called = messages
            .iter()
            .rev()
            .find(|m| m.role == Role::Assistant && !m.tool_calls.is_empty())
            .map(|m| m.tool_calls.clone())
            .unwrap_or_default();
        let names: Vec<&str> = called.iter().map(|c| c.name.as_str()).collect();
        let template = script
            .rules
            .iter()
            .find(|r| r.calls.iter().map(|(n, _)| n.as_str()).eq(names.iter().copied()))
            .map_or(script.after_tool.as_str(), |r| r.reply.as_str());
        let (tool, args) =
            called.first().map(|c| (c.name.as_str(), c.arguments.as_str())).unwrap_or(("", ""));
        return Reply::Text(fill(template, &user, &results, tool, args));
    }
    let said = user.to_lowercase();
    let offered = |name: &str| request.tools.iter().any(|t| t == name);
    let rule = script.rules.iter().find(|r| {
        !r.keyword.is_empty()
            && said.contains(&r.keyword.to_lowercase())
            && r.calls.iter().all(|(name, _)| offered(name))
    });
    match rule {
        Some(rule) => Reply::ToolCalls {
            preamble: rule.preamble.as_deref().map(|p| fill(p, &user, &[], "", "")).unwrap_or_default(),
            calls: rule.calls.clone(),
        },
        None => Reply::Text(fill(&script.default_reply, &user, &[], "", "")),
    }
}

/// `template` with its placeholders filled.
pub fn fill(template: &str, user: &str, results: &[&str], tool: &str, args: &str) -> String {
    template
        .replace("{user}", user)
        .replace("{results}", &results.join("; "))
        .replace("{result}", results.first().copied().unwrap_or(""))
        .replace("{tool}", tool)
        .replace("{args}", args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatMessage, ToolCall};

    fn message(role: Role, content: &str) -> ChatMessage {
        ChatMessage { role, content: Some(content.into()), ..ChatMessage::default() }
    }

    fn request(messages: Vec<ChatMessage>, tools: &[&str]) -> ChatRequest {
        ChatRequest {
            messages,
            tools: tools.iter().map(|t| (*t).to_owned()).collect(),
            ..ChatRequest::default()
        }
    }

    #[test]
    fn keyword_calls_the_tool_then_the_result_is_spoken() {
        let script = ChatScript::new().rule(
            ToolRule::new("weather", "get_weather", r#"{"city":"Kyiv"}"#)
                .then_reply("It is {result} in Kyiv."),
        );
        let asked = request(
            vec![message(Role::System, "be brief"), message(Role::User, "What's the WEATHER like?")],
            &["get_weather"],
        );
        assert_eq!(decide(&script, &asked), Reply::call("get_weather", r#"{"city":"Kyiv"}"#));
        let not_offered = request(asked.messages.clone(), &["other"]);
        assert_eq!(
            decide(&script, &not_offered),
            Reply::text("You said: What's the WEATHER like?. Anything else?"),
            "a tool the request does not offer is never called"
        );
        let mut answered = asked.messages.clone();
        answered.push(ChatMessage {
            role: Role::Assistant,
            tool_calls: vec![ToolCall {
                id: "call_1".into(),
                name: "get_weather".into(),
                arguments: "{}".into(),
            }],
            ..ChatMessage::default()
        });
        answered.push(ChatMessage { tool_call_id: Some("call_1".into()), ..message(Role::Tool, "sunny") });
        assert_eq!(
            decide(&script, &request(answered, &["get_weather"])),
            Reply::text("It is sunny in Kyiv.")
        );
    }

    #[test]
    fn templates_fill_every_placeholder() {
        assert_eq!(
            fill("{user}|{result}|{results}|{tool}|{args}", "hi", &["a", "b"], "t", "{}"),
            "hi|a|a; b|t|{}"
        );
    }
}
