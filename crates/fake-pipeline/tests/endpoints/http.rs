//! The connection side: keep-alive, unknown paths, the API key, TLS, the idle timeout.

use std::time::Duration;

use serde_json::json;
use voice_ua_fake_pipeline::{FakePipeline, Settings};

use crate::client::{error_of, read, whole, Client};

fn chat() -> serde_json::Value {
    json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
}

fn speech() -> serde_json::Value {
    json!({"model": "tts-1", "input": "Hi.", "voice": "alloy", "response_format": "pcm"})
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let fake = FakePipeline::start(Settings::new()).await.expect("start");
    assert_eq!(fake.base_url(), format!("http://{}/v1", fake.addr()));
    let mut client = Client::connect(fake.addr()).await;
    assert_eq!(client.json("/v1/chat/completions", &chat()).await.0, 200);
    assert_eq!(client.json("/v1/audio/speech", &speech()).await.0, 200);
    assert_eq!(client.json("/v1/chat/completions", &chat()).await.0, 200);
    let mut other = Client::connect(fake.addr()).await;
    assert_eq!(other.json("/v1/chat/completions", &chat()).await.0, 200);
    let records = fake.records();
    let connections: Vec<u32> = records.exchanges().iter().map(|e| e.connection).collect();
    assert_eq!(connections, vec![1, 1, 1, 2]);
    drop(client);
    drop(other);
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    while fake.connections().len() < 2 && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut served: Vec<(u32, u32)> = fake.connections().iter().map(|c| (c.n, c.requests)).collect();
    served.sort();
    assert_eq!(served, vec![(1, 3), (2, 1)]);
}

#[tokio::test]
async fn unknown_paths_and_a_wrong_key_are_refused() {
    let fake = FakePipeline::start(Settings::new().api_key("sk-test")).await.expect("start");
    let mut client = Client::connect(fake.addr()).await;
    let (status, body) = client.json("/v1/chat/completions", &chat()).await;
    assert_eq!(status, 401);
    assert_eq!(error_of(&body).1, "Incorrect API key provided.");
    let auth = [("authorization", "Bearer sk-test")];
    let response =
        client.send("/v1/chat/completions", "application/json", &auth, whole(chat().to_string())).await;
    assert_eq!(read(response).await.0, 200);
    let response = client.send("/v1/completions", "application/json", &auth, whole("{}")).await;
    let (status, body) = read(response).await;
    assert_eq!(status, 404);
    assert!(error_of(&body).1.contains("Invalid URL (POST /v1/completions)"));
    let records = fake.records();
    assert_eq!(records.chats[1].http.authorization.as_deref(), Some("Bearer sk-test"));
    let refused: Vec<u16> = records.refused().iter().map(|(_, e)| e.status).collect();
    assert_eq!(refused, vec![401, 404]);
}

#[tokio::test]
async fn https_with_the_test_ca() {
    let fake = FakePipeline::start(Settings::new().tls(true)).await.expect("start");
    assert!(fake.base_url().starts_with("https://127.0.0.1:"));
    assert!(fake.ca_file().is_some_and(|p| p.exists()));
    let mut client = Client::connect_tls(fake.addr(), fake.ca_pem().expect("a CA")).await;
    assert_eq!(client.json("/v1/chat/completions", &chat()).await.0, 200);
    assert_eq!(client.json("/v1/audio/speech", &speech()).await.0, 200);
    assert_eq!(fake.records().exchanges().iter().filter(|e| e.connection == 1).count(), 2);
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let mut settings = Settings::new();
    settings.idle_timeout = Some(Duration::from_millis(200));
    let fake = FakePipeline::start(settings).await.expect("start");
    let mut client = Client::connect(fake.addr()).await;
    assert_eq!(client.json("/v1/chat/completions", &chat()).await.0, 200);
    let closed = tokio::time::timeout(Duration::from_secs(2), &mut client.closed).await;
    assert!(closed.is_ok(), "the server closed the idle connection");
    assert!(fake.connections().first().is_some_and(|c| c.requests == 1));
}
