//! `/v1/chat/completions` over HTTP.

use std::time::Duration;

use serde_json::{json, Value};
use voice_ua_fake_pipeline::{
    ChatScript, Dialect, Failure, FakePipeline, Reply, Role, Settings, Stage, ToolRule,
};

use crate::client::{error_of, frames, read, sse_data, whole, Client};

const PATH: &str = "/v1/chat/completions";

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_balance", "description": "The caller's balance",
        "parameters": {"type": "object", "properties": {"account": {"type": "string"}}}}}])
}

fn script() -> ChatScript {
    ChatScript::new().rule(
        ToolRule::new("balance", "get_balance", r#"{"account":"A-17 \"main\""}"#)
            .then_reply("Your balance is {result}. Anything else?"),
    )
}

/// Every chunk of a streamed body, parsed; the `[DONE]` checked and dropped.
fn chunks(body: &[u8]) -> Vec<Value> {
    let mut data = sse_data(body);
    assert_eq!(data.pop().as_deref(), Some("[DONE]"));
    data.iter().map(|d| serde_json::from_str(d).expect("each chunk is JSON")).collect()
}

/// Content, and per index (id, name, concatenated arguments), of a stream's chunks.
fn assemble(chunks: &[Value]) -> (String, Vec<(String, String, String)>) {
    let (mut text, mut calls): (String, Vec<(String, String, String)>) = (String::new(), Vec::new());
    for c in chunks {
        let Some(delta) = c["choices"].get(0).map(|c| &c["delta"]) else { continue };
        text.push_str(delta["content"].as_str().unwrap_or(""));
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().expect("every tool call delta has an index") as usize;
            if calls.len() <= index {
                calls.resize(index + 1, Default::default());
            }
            if let Some(id) = call["id"].as_str() {
                calls[index].0 = id.to_owned();
                calls[index].1 = call["function"]["name"].as_str().expect("a name with the id").to_owned();
            }
            calls[index].2.push_str(call["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    (text, calls)
}

#[tokio::test]
async fn openai_stream_tool_call_then_reply_with_the_result() {
    let fake = FakePipeline::start(Settings::new().script(script())).await.expect("start");
    let mut client = Client::connect(fake.addr()).await;
    let mut messages = vec![
        json!({"role": "system", "content": "You are the bank's phone agent."}),
        json!({"role": "user", "content": "What is my Balance?"}),
    ];
    let request = |messages: &Vec<Value>| {
        json!({"model": "gpt-4o-mini", "messages": messages, "tools": tools(), "tool_choice": "auto",
               "stream": true, "stream_options": {"include_usage": true}, "max_completion_tokens": 300})
    };
    let response = client.send(PATH, "application/json", &[], whole(request(&messages).to_string())).await;
    assert_eq!(
        response.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/event-stream; charset=utf-8")
    );
    let (status, body) = read(response).await;
    assert_eq!(status, 200);
    let chunks = chunks(&body);
    let (text, calls) = assemble(&chunks);
    assert_eq!(text, "");
    assert_eq!(calls.len(), 1);
    let (id, name, arguments) = &calls[0];
    assert_eq!((id.as_str(), name.as_str()), ("call_1", "get_balance"));
    let parsed: Value = serde_json::from_str(arguments).expect("the fragments join into JSON");
    assert_eq!(parsed, json!({"account": "A-17 \"main\""}));
    let fragments = chunks.iter().filter(|c| c["choices"][0]["delta"]["tool_calls"].is_array()).count();
    assert!(fragments > 5, "arguments come in many fragments ({fragments})");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    let u = &usage["usage"];
    assert_eq!(
        u["total_tokens"].as_u64(),
        Some(u["prompt_tokens"].as_u64().unwrap_or(0) + u["completion_tokens"].as_u64().unwrap_or(0))
    );
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c["usage"].is_null() && c.get("usage").is_some()));

    // The next turn: the call and its result go back; the reply speaks the result.
    messages.push(json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}]}));
    messages.push(json!({"role": "tool", "tool_call_id": id, "content": "42 hryvnias"}));
    let (status, body) = client.json(PATH, &request(&messages)).await;
    assert_eq!(status, 200);
    let chunks = self::chunks(&body);
    assert_eq!(assemble(&chunks).0, "Your balance is 42 hryvnias. Anything else?");
    assert_eq!(chunks[chunks.len() - 2]["choices"][0]["finish_reason"], "stop");
    let cached = chunks[chunks.len() - 1]["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64();
    assert!(cached.is_some_and(|c| c > 0), "the repeated prefix counts as cached: {cached:?}");

    let records = fake.chats();
    assert_eq!(records.len(), 2);
    let second = &records[1];
    let roles: Vec<Role> = second.messages().iter().map(|m| m.role).collect();
    assert_eq!(roles, vec![Role::System, Role::User, Role::Assistant, Role::Tool]);
    assert_eq!(second.messages()[3].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(second.messages()[2].tool_calls[0].arguments, *arguments);
    assert_eq!(second.tool_names(), vec!["get_balance".to_owned()]);
    assert!(second.had_tool_choice() && !second.cut_by_client() && second.http.completed());
    assert!(fake.records().refused().is_empty());
}

#[tokio::test]
async fn strictness_unknown_tool_call_id_and_ollama_tool_choice() {
    let fake = FakePipeline::start(Settings::new()).await.expect("start");
    let mut client = Client::connect(fake.addr()).await;
    let messages = json!([
        {"role": "user", "content": "balance"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_9", "type": "function", "function": {"name": "get_balance", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_8", "content": "42"},
    ]);
    let (status, body) =
        client.json(PATH, &json!({"model": "m", "messages": messages, "tools": tools()})).await;
    let (kind, message) = error_of(&body);
    assert_eq!((status, kind.as_str()), (400, "invalid_request_error"));
    assert!(message.contains("'call_8' not found"), "{message}");

    fake.update(|s| s.chat.dialect = Dialect::Ollama);
    let user = json!([{"role": "user", "content": "hi"}]);
    let (status, body) = client
        .json(PATH, &json!({"model": "m", "messages": user, "tools": tools(), "tool_choice": "auto"}))
        .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let response = client
        .send(PATH, "text/plain", &[], whole(json!({"model": "m", "messages": user}).to_string()))
        .await;
    assert_eq!(read(response).await.0, 400, "JSON must say so");

    let records = fake.chats();
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r.http.refused.is_some() && r.request.is_none()));
    assert!(records[1].had_tool_choice());
    assert_eq!(fake.records().refused().len(), 3);
}

#[tokio::test]
async fn ollama_stream_sends_each_tool_call_whole() {
    let fake =
        FakePipeline::start(Settings::new().dialect(Dialect::Ollama).script(script())).await.expect("start");
    let mut client = Client::connect(fake.addr()).await;
    let body = json!({"model": "llama3.1", "stream": true, "stream_options": {"include_usage": true},
        "tools": tools(), "messages": [{"role": "user", "content": "my balance please"}]});
    let (status, body) = client.json(PATH, &body).await;
    assert_eq!(status, 200);
    let chunks = chunks(&body);
    let with_calls: Vec<&Value> = chunks
        .iter()
        .filter(|c| c["choices"].get(0).is_some_and(|c| c["delta"]["tool_calls"].is_array()))
        .collect();
    assert_eq!(with_calls.len(), 1, "one chunk carries the whole call");
    let call = &with_calls[0]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(call["function"]["arguments"], r#"{"account":"A-17 \"main\""}"#);
    assert!(chunks.iter().filter_map(|c| c["choices"].get(0)).all(|c| c["delta"]["role"] == "assistant"));
    let usage = &chunks[chunks.len() - 1];
    assert_eq!((usage["choices"].clone(), usage["usage"]["total_tokens"].is_u64()), (json!([]), true));
    assert!(usage["usage"].get("prompt_tokens_details").is_none());
}

#[tokio::test]
async fn not_streamed_one_completion() {
    let fake = FakePipeline::start(Settings::new()).await.expect("start");
    fake.push_reply(Reply::text("First sentence. Second sentence! Third?"));
    let mut client = Client::connect(fake.addr()).await;
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hello"}]});
    let (status, reply) = client.json(PATH, &body).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&reply).expect("JSON");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "First sentence. Second sentence! Third?");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let (_, reply) = client.json(PATH, &body).await;
    let v: Value = serde_json::from_slice(&reply).expect("JSON");
    assert_eq!(v["choices"][0]["message"]["content"], "You said: hello. Anything else?", "the queue ran out");
}

#[tokio::test]
async fn malformed_arguments_status_garbage_and_stall() {
    let fake = FakePipeline::start(Settings::new().script(script())).await.expect("start");
    let mut client = Client::connect(fake.addr()).await;
    let body = json!({"model": "m", "stream": true, "tools": tools(),
        "messages": [{"role": "user", "content": "balance"}]});
    fake.break_next_tool_call();
    let (_, reply) = client.json(PATH, &body).await;
    let (_, calls) = assemble(&chunks(&reply));
    assert!(serde_json::from_str::<Value>(&calls[0].2).is_err(), "broken on purpose: {}", calls[0].2);
    assert!(fake.chats()[0].malformed_arguments);
    let (_, reply) = client.json(PATH, &body).await;
    let (_, calls) = assemble(&chunks(&reply));
    assert!(serde_json::from_str::<Value>(&calls[0].2).is_ok(), "only the next call");

    fake.fail_next(Stage::Chat, Failure::Status(500));
    fake.fail_next(Stage::Chat, Failure::Status(401));
    fake.fail_next(Stage::Chat, Failure::Garbage);
    let (status, reply) = client.json(PATH, &body).await;
    assert_eq!((status, error_of(&reply).0.as_str()), (500, "server_error"));
    let (status, reply) = client.json(PATH, &body).await;
    assert_eq!(status, 401);
    assert!(error_of(&reply).1.contains("API key"));
    let (status, reply) = client.json(PATH, &body).await;
    assert_eq!(status, 200);
    assert!(!reply.starts_with(b"data: "), "garbage is not SSE");

    // A stream that stalls after two chunks: the client gives up and closes.
    fake.fail_next(Stage::Chat, Failure::StallAfter(2));
    let response = client.send(PATH, "application/json", &[], whole(body.to_string())).await;
    let mut body = response.into_body();
    use http_body_util::BodyExt;
    for _ in 0..2 {
        let frame = body.frame().await.expect("a frame").expect("data");
        assert!(frame.into_data().is_ok_and(|d| d.starts_with(b"data: ")));
    }
    let more = tokio::time::timeout(Duration::from_millis(200), body.frame()).await;
    assert!(more.is_err(), "nothing after the stall");
    drop(body);
    drop(client);
    assert!(
        fake.wait_until(Duration::from_secs(2), |r| r.chats.get(5).is_some_and(|c| c.http.closed_early))
            .await
    );
    assert_eq!(fake.chats()[5].http.chunks_sent, 2);
}

#[tokio::test]
async fn hang_and_barge_in_are_recorded_as_cut_by_the_client() {
    let fake = FakePipeline::start(Settings::new()).await.expect("start");
    fake.update(|s| s.chat.chunk_interval = Duration::from_millis(20));
    let long = "This is a long answer. ".repeat(20);
    fake.push_reply(Reply::text(&long));
    let body = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "tell me"}]});

    let mut client = Client::connect(fake.addr()).await;
    let response = client.send(PATH, "application/json", &[], whole(body.to_string())).await;
    let mut stream = response.into_body();
    use http_body_util::BodyExt;
    for _ in 0..3 {
        stream.frame().await.expect("a frame").expect("data");
    }
    // Barge-in: the client drops the stream and its connection mid-answer.
    drop(stream);
    drop(client);
    assert!(
        fake.wait_until(Duration::from_secs(2), |r| r.chats.first().is_some_and(|c| c.http.finished())).await
    );
    let cut = &fake.chats()[0];
    assert!(cut.cut_by_client());
    assert!(cut.http.chunks_sent < 20, "sent {} chunks", cut.http.chunks_sent);

    fake.fail_next(Stage::Chat, Failure::Hang);
    let mut client = Client::connect(fake.addr()).await;
    let waited = tokio::time::timeout(
        Duration::from_millis(300),
        client.send(PATH, "application/json", &[], whole(body.to_string())),
    )
    .await;
    assert!(waited.is_err(), "no answer");
    drop(client);
    assert!(
        fake.wait_until(Duration::from_secs(2), |r| r.chats.get(1).is_some_and(|c| c.http.finished())).await
    );
    let hung = &fake.chats()[1];
    assert!(hung.cut_by_client() && hung.http.status.is_none() && hung.http.injected == Some(Failure::Hang));

    // A whole stream is not cut.
    let mut client = Client::connect(fake.addr()).await;
    let (status, _) = client.json(PATH, &body).await;
    assert_eq!(status, 200);
    assert!(
        fake.wait_until(Duration::from_secs(2), |r| r.chats.get(2).is_some_and(|c| c.http.finished())).await
    );
    assert!(!fake.chats()[2].cut_by_client());
}

#[tokio::test]
async fn first_token_delay_and_chunk_pacing() {
    let fake = FakePipeline::start(Settings::new()).await.expect("start");
    fake.update(|s| {
        s.chat.first_token_delay = Duration::from_millis(150);
        s.chat.chunk_interval = Duration::from_millis(10);
    });
    fake.push_reply(Reply::text("Hello there. How are you?"));
    let mut client = Client::connect(fake.addr()).await;
    let body = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let response = client.send(PATH, "application/json", &[], whole(body.to_string())).await;
    let got = frames(response).await;
    assert!(got[0].0 >= Duration::from_millis(140), "first chunk at {:?}", got[0].0);
    let last = got.last().map(|f| f.0).unwrap_or_default();
    assert!(last - got[0].0 >= Duration::from_millis(10 * (got.len() as u64 - 2)), "paced: {last:?}");
}
