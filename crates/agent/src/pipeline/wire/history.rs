//! The conversation kept for the LLM ([`History`]): the system prompt, then at most
//! `max_messages` messages, always a shape every chat template accepts.
//!
//! # The shape kept
//!
//! - The system prompt is always first, and the only system message.
//! - The first message after it is the caller's (strict templates, Gemma's or Mistral's,
//!   reject a conversation that starts with the assistant): text the agent says before the
//!   caller has spoken (the greeting) is added to the system message instead, as "The call
//!   began with you saying: …".
//! - The caller's consecutive messages are joined into one, and so are the agent's (strict
//!   templates want the roles to alternate).
//! - A tool message always follows the assistant message that called it, and every call of
//!   an assistant message is answered before the next message (OpenAI rejects an
//!   unanswered call): a message pushed while calls are unanswered first answers them with
//!   [`NO_RESULT`]. A result for a call that is not open is dropped, and so are tool calls
//!   before the caller has spoken.
//! - Past `max_messages`, the oldest whole exchanges go (everything before the next message
//!   of the caller's). When one exchange alone is too long (a long run of tool calls), its
//!   oldest tool calls go with their results; its last tool calls and their results are
//!   never split, so only they can make it exceed the bound.
//! - No message (other than the system prompt) is longer than `max_message_chars`
//!   characters: a longer one (a huge tool result) is cut on a character boundary, with a
//!   note saying how much was cut.
//!
//! # Barge-in
//!
//! [`History::push_assistant_heard`] records what the caller actually heard of a reply. An
//! interrupted one ends with [`INTERRUPTED_MARK`], `…`: LLMs read a trailing ellipsis as
//! speech that broke off (it is how transcripts and novels write it), so the model answers
//! the interruption rather than assuming the caller heard the rest; and if the model
//! imitates it, TTS reads it as a pause. A bracketed note like `[interrupted]` would be
//! spoken aloud if the model copied it into a reply. An interruption before anything was
//! heard records nothing.
//!
//! For a reply with text and tool calls, push its text first, then its calls, then each
//! result.

use super::chat::{Message, ToolCallRequest};
use crate::tools::ToolCall;

/// Messages kept after the system prompt unless configured.
pub const DEFAULT_MAX_MESSAGES: usize = 24;
/// Characters of one message kept unless configured.
pub const DEFAULT_MAX_MESSAGE_CHARS: usize = 4_000;
/// What ends the text of an interrupted reply.
pub const INTERRUPTED_MARK: &str = "…";
/// The result of a call left unanswered when the conversation moved on.
pub const NO_RESULT: &str = "error: no result: the conversation moved on before this function finished";
/// What introduces the agent's words before the caller spoke, in the system message.
const OPENING_NOTE: &str = "The call began with you saying: ";

/// The conversation for the LLM. See the module documentation for the rules it keeps.
#[derive(Debug, Clone)]
pub struct History {
    /// `messages[0]` is the system message.
    messages: Vec<Message>,
    /// The configured system prompt, without the opening note.
    prompt: String,
    /// What the agent said before the caller spoke.
    opening: String,
    max_messages: usize,
    max_chars: usize,
}

impl History {
    /// A history bounded at [`DEFAULT_MAX_MESSAGES`] messages of at most
    /// [`DEFAULT_MAX_MESSAGE_CHARS`] characters.
    pub fn new(system_prompt: &str) -> History {
        History::with_limits(system_prompt, DEFAULT_MAX_MESSAGES, DEFAULT_MAX_MESSAGE_CHARS)
    }

    /// A history keeping at most `max_messages` (at least 2) messages after the system
    /// prompt, each of at most `max_message_chars` (at least 64) characters.
    pub fn with_limits(system_prompt: &str, max_messages: usize, max_message_chars: usize) -> History {
        History {
            messages: vec![Message::system(system_prompt)],
            prompt: system_prompt.to_owned(),
            opening: String::new(),
            max_messages: max_messages.max(2),
            max_chars: max_message_chars.max(64),
        }
    }

    /// The conversation to send: the system message first.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The caller's words (a transcript). Blank text is ignored.
    pub fn push_user(&mut self, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        self.answer_open_calls();
        match self.messages.last_mut() {
            Some(Message::User { content }) => {
                content.push(' ');
                content.push_str(text);
                *content = clip(content, self.max_chars);
            }
            _ => self.messages.push(Message::user(&clip(text, self.max_chars))),
        }
        self.trim();
    }

    /// The agent's whole reply, heard to the end.
    pub fn push_assistant(&mut self, text: &str) {
        self.push_assistant_heard(text, false);
    }

    /// What the caller heard of a reply; `interrupted` marks it with [`INTERRUPTED_MARK`].
    /// Nothing heard records nothing.
    pub fn push_assistant_heard(&mut self, heard: &str, interrupted: bool) {
        let heard = heard.trim();
        if heard.is_empty() {
            return;
        }
        let text = if interrupted { broken_off(heard) } else { heard.to_owned() };
        if !self.has_user() {
            self.add_opening(&text);
            return;
        }
        self.answer_open_calls();
        match self.messages.last_mut() {
            Some(Message::Assistant { content: Some(content), tool_calls }) if tool_calls.is_empty() => {
                content.push(' ');
                content.push_str(&text);
                *content = clip(content, self.max_chars);
            }
            _ => self.messages.push(Message::assistant(&clip(&text, self.max_chars))),
        }
        self.trim();
    }

    /// The functions a reply called, as [`ToolCallRequest::to_tool_call`] has them; they
    /// join the reply's text when it was pushed just before.
    pub fn push_tool_calls(&mut self, calls: &[ToolCallRequest]) {
        if calls.is_empty() || !self.has_user() {
            return;
        }
        self.answer_open_calls();
        let mut new_calls: Vec<ToolCall> = Vec::with_capacity(calls.len());
        for call in calls {
            // Results are matched by id: a repeated id could not be answered twice.
            if !new_calls.iter().any(|c| c.id == call.id) {
                new_calls.push(call.to_tool_call());
            }
        }
        match self.messages.last_mut() {
            Some(Message::Assistant { tool_calls, .. }) if tool_calls.is_empty() => *tool_calls = new_calls,
            _ => self.messages.push(Message::Assistant { content: None, tool_calls: new_calls }),
        }
        self.trim();
    }

    /// The result of call `id` of the last tool calls; dropped if that call is not open.
    pub fn push_tool_result(&mut self, id: &str, content: &str) {
        if !self.open_calls().iter().any(|open| open == id) {
            return;
        }
        self.messages.push(Message::tool(id, &clip(content, self.max_chars)));
        self.trim();
    }

    /// A message of the caller's is kept.
    fn has_user(&self) -> bool {
        self.messages.len() > 1
    }

    /// The agent spoke before the caller: into the system message.
    fn add_opening(&mut self, text: &str) {
        if !self.opening.is_empty() {
            self.opening.push(' ');
        }
        self.opening.push_str(text);
        self.opening = clip(&self.opening, self.max_chars);
        let system = format!("{}\n\n{OPENING_NOTE}\"{}\"", self.prompt, self.opening);
        if let Some(first) = self.messages.first_mut() {
            *first = Message::System { content: system };
        }
    }

    /// The ids of the last tool calls not yet answered.
    fn open_calls(&self) -> Vec<String> {
        let answered_from = self.messages.iter().rposition(|m| !matches!(m, Message::Tool { .. }));
        let Some(at) = answered_from else { return Vec::new() };
        let Some(Message::Assistant { tool_calls, .. }) = self.messages.get(at) else { return Vec::new() };
        let answered = self.messages.get(at + 1..).unwrap_or_default();
        tool_calls
            .iter()
            .filter(|call| {
                !answered
                    .iter()
                    .any(|m| matches!(m, Message::Tool { tool_call_id, .. } if *tool_call_id == call.id))
            })
            .map(|call| call.id.clone())
            .collect()
    }

    /// Answer the last tool calls' open ones with [`NO_RESULT`].
    fn answer_open_calls(&mut self) {
        for id in self.open_calls() {
            self.messages.push(Message::tool(&id, NO_RESULT));
        }
    }

    /// Drop the oldest messages past the bound (see the module documentation).
    fn trim(&mut self) {
        while self.messages.len() - 1 > self.max_messages {
            // The oldest exchange: from the first message to the caller's next one.
            let next_user = self.messages.iter().skip(2).position(|m| matches!(m, Message::User { .. }));
            if let Some(offset) = next_user {
                self.messages.drain(1..offset + 2);
                continue;
            }
            // One exchange: its oldest reply message and that one's results, unless they are
            // the last ones.
            let group_end = self
                .messages
                .iter()
                .skip(3)
                .position(|m| !matches!(m, Message::Tool { .. }))
                .map(|offset| offset + 3);
            match group_end {
                Some(end) => {
                    self.messages.drain(2..end);
                }
                None => break,
            }
        }
    }
}

/// `text` of at most `max` characters; a longer one cut with a note.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((at, _)) => {
            let kept = text.get(..at).unwrap_or_default();
            let cut = text.chars().count() - max;
            format!("{kept} … [{cut} more characters cut]")
        }
    }
}

/// An interrupted reply's heard text, marked.
fn broken_off(heard: &str) -> String {
    let text = heard.trim_end_matches([',', ';', ':', '-', '–', '—']).trim_end();
    if text.ends_with(['.', '!', '?', '…']) {
        format!("{text} {INTERRUPTED_MARK}")
    } else {
        format!("{text}{INTERRUPTED_MARK}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn call(id: &str, name: &str) -> ToolCallRequest {
        ToolCallRequest { id: id.into(), name: name.into(), arguments: Ok(json!({})) }
    }

    fn roles(history: &History) -> Vec<&'static str> {
        history.messages().iter().map(Message::role).collect()
    }

    #[test]
    fn a_turn_with_a_tool_call() {
        let mut history = History::new("You are a receptionist.");
        history.push_user("Is Anna in?");
        history.push_assistant("Let me check.");
        history.push_tool_calls(&[call("c1", "lookup")]);
        history.push_tool_result("c1", "Anna is out until 3 pm");
        history.push_assistant("Anna is out until three.");
        assert_eq!(roles(&history), ["system", "user", "assistant", "tool", "assistant"]);
        let Message::Assistant { content, tool_calls } = &history.messages()[2] else {
            panic!("an assistant message")
        };
        assert_eq!(content.as_deref(), Some("Let me check."), "the text and its calls are one message");
        assert_eq!(tool_calls.len(), 1);
        assert_eq!(tool_calls[0].arguments, "{}");
    }

    #[test]
    fn the_greeting_goes_into_the_system_message() {
        let mut history = History::new("Be kind.");
        history.push_assistant("Hello, Acme here.");
        history.push_assistant_heard("How can I", true);
        history.push_tool_calls(&[call("c", "f")]);
        history.push_tool_result("c", "x");
        assert_eq!(roles(&history), ["system"]);
        assert_eq!(
            history.messages()[0].content(),
            "Be kind.\n\nThe call began with you saying: \"Hello, Acme here. How can I…\""
        );
        history.push_user("Hi");
        assert_eq!(roles(&history), ["system", "user"]);
    }

    #[test]
    fn barge_in_records_what_was_heard_marked() {
        let mut history = History::new("S");
        history.push_user("Book a taxi");
        history.push_assistant_heard("Sure, which address should the taxi ", true);
        history.push_user("Main street 5");
        history.push_assistant_heard("Booked.", true);
        history.push_user("Thanks");
        history.push_assistant_heard("  ", true);
        history.push_user("Hello?");
        let contents: Vec<&str> = history.messages().iter().map(Message::content).collect();
        assert_eq!(
            contents,
            [
                "S",
                "Book a taxi",
                "Sure, which address should the taxi…",
                "Main street 5",
                "Booked. …",
                "Thanks Hello?"
            ]
        );
    }

    #[test]
    fn consecutive_messages_of_one_role_are_joined() {
        let mut history = History::new("S");
        history.push_user("One");
        history.push_user("two");
        history.push_assistant("Three.");
        history.push_assistant("Four.");
        assert_eq!(roles(&history), ["system", "user", "assistant"]);
        assert_eq!(history.messages()[1].content(), "One two");
        assert_eq!(history.messages()[2].content(), "Three. Four.");
    }

    #[test]
    fn unanswered_calls_are_answered_and_stray_results_dropped() {
        let mut history = History::new("S");
        history.push_user("Do two things");
        history.push_tool_calls(&[call("a", "f"), call("b", "g"), call("a", "f")]);
        history.push_tool_result("a", "done");
        history.push_tool_result("a", "twice");
        history.push_tool_result("zzz", "who?");
        history.push_user("Never mind");
        history.push_tool_result("b", "late");
        let messages = history.messages();
        assert_eq!(roles(&history), ["system", "user", "assistant", "tool", "tool", "user"]);
        let Message::Assistant { tool_calls, .. } = &messages[2] else { panic!("an assistant message") };
        assert_eq!(tool_calls.len(), 2, "a repeated id is one call");
        assert_eq!(messages[3], Message::tool("a", "done"));
        assert_eq!(messages[4], Message::tool("b", NO_RESULT));
    }

    #[test]
    fn the_oldest_exchanges_go_first() {
        let mut history = History::with_limits("S", 4, 1000);
        for i in 0..5 {
            history.push_user(&format!("q{i}"));
            history.push_assistant(&format!("a{i}"));
        }
        let contents: Vec<&str> = history.messages().iter().map(Message::content).collect();
        assert_eq!(contents, ["S", "q3", "a3", "q4", "a4"]);
        history.push_user("q5");
        history.push_tool_calls(&[call("x", "f")]);
        history.push_tool_result("x", "r");
        let contents: Vec<&str> = history.messages().iter().map(Message::content).collect();
        assert_eq!(contents, ["S", "q5", "", "r"], "never starts with an assistant or tool message");
    }

    #[test]
    fn one_long_exchange_loses_its_oldest_tool_calls() {
        let mut history = History::with_limits("S", 4, 1000);
        history.push_user("go");
        for i in 0..4 {
            let id = format!("c{i}");
            history.push_tool_calls(&[call(&id, "f")]);
            history.push_tool_result(&id, &format!("r{i}"));
        }
        let contents: Vec<&str> = history.messages().iter().map(Message::content).collect();
        assert_eq!(contents, ["S", "go", "", "r3"]);
    }

    #[test]
    fn a_huge_message_is_cut_with_a_note() {
        let mut history = History::with_limits("S", 24, 100);
        history.push_user("hi");
        history.push_tool_calls(&[call("c", "f")]);
        let result = "ж".repeat(150);
        history.push_tool_result("c", &result);
        let content = history.messages()[3].content();
        assert!(content.starts_with(&"ж".repeat(100)));
        assert!(content.ends_with(" … [50 more characters cut]"), "{content}");
    }

    #[derive(Debug, Clone)]
    enum Push {
        User(String),
        Assistant(String),
        Heard(String, bool),
        Calls(Vec<String>),
        Result(String),
    }

    fn push() -> impl Strategy<Value = Push> {
        let id = prop_oneof![Just("a".to_owned()), Just("b".to_owned()), Just("c".to_owned())];
        prop_oneof![
            "[a-z ]{0,6}".prop_map(Push::User),
            "[a-z ]{0,6}".prop_map(Push::Assistant),
            ("[a-z ]{0,6}", any::<bool>()).prop_map(|(t, i)| Push::Heard(t, i)),
            proptest::collection::vec(id.clone(), 0..4).prop_map(Push::Calls),
            id.prop_map(Push::Result),
        ]
    }

    /// Everything the module documentation promises about the shape.
    fn check_invariants(history: &History, max: usize) -> Result<(), TestCaseError> {
        let messages = history.messages();
        prop_assert!(matches!(messages.first(), Some(Message::System { .. })), "the system message first");
        let rest = &messages[1..];
        prop_assert!(rest.iter().all(|m| !matches!(m, Message::System { .. })), "one system message");
        if let Some(first) = rest.first() {
            prop_assert!(matches!(first, Message::User { .. }), "starts with the caller: {:?}", first);
        }
        let user = |m: &Message| matches!(m, Message::User { .. });
        let assistant = |m: &Message| matches!(m, Message::Assistant { .. });
        let text_only =
            |m: &Message| matches!(m, Message::Assistant { tool_calls, .. } if tool_calls.is_empty());
        for pair in rest.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            prop_assert!(!(user(a) && user(b)), "two caller messages in a row: {:?}", pair);
            prop_assert!(!(assistant(a) && assistant(b)), "two agent messages in a row: {:?}", pair);
            prop_assert!(!text_only(a) || user(b), "agent text is followed by the caller: {:?}", pair);
        }
        for (i, m) in rest.iter().enumerate() {
            if let Message::Assistant { tool_calls, .. } = m {
                if tool_calls.is_empty() {
                    continue;
                }
                let results: Vec<&str> = rest[i + 1..]
                    .iter()
                    .map_while(|m| match m {
                        Message::Tool { tool_call_id, .. } => Some(tool_call_id.as_str()),
                        _ => None,
                    })
                    .collect();
                let is_last_group = i + 1 + results.len() == rest.len();
                for (k, id) in results.iter().enumerate() {
                    prop_assert!(
                        tool_calls.iter().any(|c| c.id == *id),
                        "a result for a call of its message"
                    );
                    prop_assert!(!results[..k].contains(id), "one result per call");
                }
                if !is_last_group {
                    prop_assert_eq!(
                        results.len(),
                        tool_calls.len(),
                        "every call answered before the conversation goes on"
                    );
                }
            }
            if let Message::Tool { .. } = m {
                let owner = rest[..i].iter().rev().find(|m| !matches!(m, Message::Tool { .. }));
                prop_assert!(
                    matches!(owner, Some(Message::Assistant { tool_calls, .. }) if !tool_calls.is_empty()),
                    "a tool message follows its calls"
                );
            }
        }
        if rest.len() > max {
            // Only the exchange's last calls and their results, which cannot be split.
            prop_assert!(
                matches!(rest.get(1), Some(Message::Assistant { .. })),
                "over the bound: {:?}",
                rest
            );
            prop_assert!(
                rest[2..].iter().all(|m| matches!(m, Message::Tool { .. })),
                "over the bound: {:?}",
                rest
            );
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn invariants_hold_after_any_pushes(
            pushes in proptest::collection::vec(push(), 0..60),
            max in 2usize..8,
        ) {
            let mut history = History::with_limits("S", max, 64);
            for p in pushes {
                match p {
                    Push::User(t) => history.push_user(&t),
                    Push::Assistant(t) => history.push_assistant(&t),
                    Push::Heard(t, interrupted) => history.push_assistant_heard(&t, interrupted),
                    Push::Calls(ids) => {
                        let calls: Vec<_> = ids.iter().map(|id| call(id, "f")).collect();
                        history.push_tool_calls(&calls);
                    }
                    Push::Result(id) => history.push_tool_result(&id, "r"),
                }
                check_invariants(&history, max)?;
            }
        }
    }
}
