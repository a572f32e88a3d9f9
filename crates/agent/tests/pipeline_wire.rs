//! The pipeline agent's wire pieces together, as the provider uses them: a chat
//! completions body's bytes → [`SseDecoder`] → [`ChatStream`] → text into
//! [`SentenceSplitter`] for TTS and tool calls into the [`History`] for the next request.

use proptest::prelude::*;
use serde_json::{json, Value};
use voice_ua_agent::pipeline::wire::{
    ChatRequest, ChatStep, ChatStream, FinishReason, History, Message, SentenceSplitter, SseDecoder,
    SseError, ToolCallRequest,
};

/// What one reply's body turned into.
#[derive(Debug, Default, PartialEq)]
struct Reply {
    sentences: Vec<String>,
    calls: Vec<ToolCallRequest>,
    finish: Option<FinishReason>,
    usage: Option<(u64, u64, u64)>,
    done: bool,
    server_errors: Vec<String>,
    /// The first error of either layer, as text; nothing is read after it.
    error: Option<String>,
}

/// Feed `body` in `pieces`, draining every layer after each piece, as the provider does.
fn play<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Reply {
    let mut sse = SseDecoder::new();
    let mut chat = ChatStream::new();
    let mut splitter = SentenceSplitter::new();
    let mut reply = Reply::default();
    for piece in pieces {
        sse.push(piece);
        if !drain(&mut sse, &mut chat, &mut splitter, &mut reply) {
            return reply;
        }
    }
    sse.finish();
    if drain(&mut sse, &mut chat, &mut splitter, &mut reply) {
        let rest = chat.finish();
        take(rest, &mut splitter, &mut reply);
    }
    reply.sentences.extend(splitter.finish());
    reply
}

/// Every event decoded so far through the chat stream; `false` after an error.
fn drain(
    sse: &mut SseDecoder,
    chat: &mut ChatStream,
    splitter: &mut SentenceSplitter,
    reply: &mut Reply,
) -> bool {
    while let Some(event) = sse.next_event() {
        let steps = event
            .map_err(|e: SseError| e.to_string())
            .and_then(|event| chat.push_event(&event).map_err(|e| e.to_string()));
        match steps {
            Ok(steps) => take(steps, splitter, reply),
            Err(e) => {
                reply.error = Some(e);
                return false;
            }
        }
    }
    true
}

fn take(steps: Vec<ChatStep>, splitter: &mut SentenceSplitter, reply: &mut Reply) {
    for step in steps {
        match step {
            ChatStep::Text(t) => splitter.push(&t),
            ChatStep::ToolCalls(calls) => reply.calls.extend(calls),
            ChatStep::Finished(reason) => reply.finish = Some(reason),
            ChatStep::Usage { prompt_tokens, completion_tokens, cached_tokens } => {
                reply.usage = Some((prompt_tokens, completion_tokens, cached_tokens))
            }
            ChatStep::Done => reply.done = true,
            ChatStep::ServerError(e) => reply.server_errors.push(e),
        }
    }
    while let Some(s) = splitter.next_sentence() {
        reply.sentences.push(s);
    }
}

fn sse_body(events: &[Value]) -> String {
    let mut body = String::new();
    for e in events {
        body.push_str(&format!("data: {e}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    body
}

fn content(text: &str) -> Value {
    json!({"id":"chatcmpl-7","object":"chat.completion.chunk","created":1,"model":"llama3.1:8b","system_fingerprint":"fp_ollama",
           "choices":[{"index":0,"delta":{"role":"assistant","content":text},"finish_reason":null}]})
}

#[test]
fn an_ollama_reply_with_text_then_a_tool_call() {
    let mut events: Vec<Value> = [
        "Sure",
        "!",
        " I'll",
        " put",
        " you",
        " through",
        " to",
        " Dr.",
        " Shevchenko",
        " now",
        ".",
        " One",
        " moment",
        "...",
    ]
    .iter()
    .map(|t| content(t))
    .collect();
    events.push(json!({"id":"chatcmpl-7","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"",
        "tool_calls":[{"id":"call_k3j","index":0,"type":"function","function":{"name":"transfer","arguments":"{\"department\":\"clinic\"}"}}]},"finish_reason":null}]}));
    events.push(json!({"id":"chatcmpl-7","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"tool_calls"}]}));
    events.push(json!({"id":"chatcmpl-7","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":512,"completion_tokens":31,"total_tokens":543}}));
    let body = sse_body(&events);
    let reply = play(body.as_bytes().chunks(7));
    assert_eq!(
        reply,
        Reply {
            sentences: vec![
                "Sure!".into(),
                "I'll put you through to Dr. Shevchenko now.".into(),
                "One moment...".into()
            ],
            calls: vec![ToolCallRequest {
                id: "call_k3j".into(),
                name: "transfer".into(),
                arguments: Ok(json!({"department": "clinic"}))
            }],
            finish: Some(FinishReason::ToolCalls),
            usage: Some((512, 31, 0)),
            done: true,
            server_errors: vec![],
            error: None,
        }
    );

    // The next request carries the reply's text, its call and the result.
    let mut history = History::new("You answer the phone for a clinic.");
    history.push_user("Can I talk to the doctor?");
    history.push_assistant(&reply.sentences.join(" "));
    history.push_tool_calls(&reply.calls);
    history.push_tool_result("call_k3j", "transferred");
    let request = ChatRequest::new("llama3.1:8b", history.messages(), &[]);
    let body: Value = serde_json::from_slice(&request.to_json().expect("JSON")).expect("valid JSON");
    assert_eq!(
        body["messages"][2],
        json!({"role":"assistant","content":"Sure! I'll put you through to Dr. Shevchenko now. One moment...",
               "tool_calls":[{"id":"call_k3j","type":"function","function":{"name":"transfer","arguments":"{\"department\":\"clinic\"}"}}]})
    );
    assert_eq!(body["messages"][3], json!({"role":"tool","tool_call_id":"call_k3j","content":"transferred"}));
    assert_eq!(history.messages().len(), 4);
    assert!(matches!(history.messages()[1], Message::User { .. }));
}

#[test]
fn a_body_that_is_not_an_event_stream() {
    let reply = play([&b"<html><body>502 Bad Gateway</body></html>"[..]]);
    assert_eq!(reply.error, None, "no line end and no event: nothing at all");
    assert!(!reply.done);
    let reply = play([&b"{\"detail\":\"Not Found\"}\n\n"[..]]);
    assert_eq!(reply.error, None, "a line that is not a field names nothing");
    let reply = play([&b"data: <html>\n\n"[..]]);
    assert!(reply.error.is_some_and(|e| e.contains("not a completion chunk")));
}

/// A reply body: text in random pieces and calls with fragmented arguments, with `\n`,
/// `\r\n` or `\r` line ends and a keep-alive comment now and then.
fn body_strategy() -> impl Strategy<Value = (String, Vec<u8>)> {
    (
        proptest::collection::vec(
            prop_oneof![
                "[A-Za-z]{1,7}",
                Just(" ".to_owned()),
                Just(". ".to_owned()),
                Just("? ".to_owned()),
                Just("3.5".to_owned()),
                Just("Mr. ".to_owned()),
                Just("\n".to_owned()),
                Just("é€".to_owned())
            ],
            0..30,
        ),
        proptest::collection::vec(("[a-z]{1,6}", "[a-z0-9 ]{0,10}"), 0..3),
        prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
        1usize..5,
    )
        .prop_map(|(words, calls, eol, cut)| {
            let text: String = words.concat();
            let mut events = Vec::new();
            let chars: Vec<char> = text.chars().collect();
            for piece in chars.chunks(cut) {
                events.push(content(&piece.iter().collect::<String>()).to_string());
            }
            for (i, (name, value)) in calls.iter().enumerate() {
                let args = json!({ "v": value }).to_string();
                let mut first = true;
                let args: Vec<char> = args.chars().collect();
                for piece in args.chunks(cut + 1) {
                    let piece: String = piece.iter().collect();
                    let call = if first {
                        json!({"index": i, "id": format!("c{i}"), "type": "function", "function": {"name": name, "arguments": piece}})
                    } else {
                        json!({"index": i, "function": {"arguments": piece}})
                    };
                    first = false;
                    events.push(json!({"choices":[{"index":0,"delta":{"tool_calls":[call]},"finish_reason":null}]}).to_string());
                }
            }
            let reason = if calls.is_empty() { "stop" } else { "tool_calls" };
            events.push(json!({"choices":[{"index":0,"delta":{},"finish_reason":reason}]}).to_string());
            events.push(json!({"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5}}).to_string());
            events.push("[DONE]".to_owned());
            let mut body = String::new();
            for (n, e) in events.iter().enumerate() {
                if n % 3 == 1 {
                    body.push_str(&format!(": keep-alive{eol}"));
                }
                body.push_str(&format!("data: {e}{eol}{eol}"));
            }
            (text, body.into_bytes())
        })
}

fn split<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut at = 0;
    for p in points {
        pieces.push(&input[at..p]);
        at = p;
    }
    pieces.push(&input[at..]);
    pieces
}

fn letters(text: &str) -> String {
    text.chars().filter(|c| c.is_alphanumeric()).collect()
}

proptest! {
    #[test]
    fn however_the_body_is_split_the_reply_is_the_same(
        (text, body) in body_strategy(),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let whole = play([&body[..]]);
        prop_assert_eq!(&whole, &play(split(&body, &cuts)));
        prop_assert_eq!(&whole, &play(body.chunks(1)));
        prop_assert!(whole.error.is_none() && whole.done, "{:?}", whole);
        prop_assert_eq!(letters(&whole.sentences.concat()), letters(&text));
        prop_assert_eq!(whole.usage, Some((10, 5, 0)));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_split_does_not_matter(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        prop_assert_eq!(play([&body[..]]), play(split(&body, &cuts)));
    }
}
