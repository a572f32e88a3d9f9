//! `/v1/audio/speech` over HTTP.

use std::time::Duration;

use serde_json::json;
use voice_ua_fake_pipeline::{wav, Failure, FakePipeline, Settings, Stage};

use crate::client::{error_of, frames, read, whole, Client};

const PATH: &str = "/v1/audio/speech";

fn ask(input: &str) -> serde_json::Value {
    json!({"model": "tts-1", "input": input, "voice": "alloy", "response_format": "pcm"})
}

#[tokio::test]
async fn pcm_length_follows_text_and_rate_in_chunks() {
    let fake = FakePipeline::start(Settings::new()).await.expect("start");
    fake.update(|s| s.tts.speedup = 0.0);
    let mut client = Client::connect(fake.addr()).await;
    let ten = "0123456789";
    let response = client.send(PATH, "application/json", &[], whole(ask(ten).to_string())).await;
    assert_eq!(response.headers().get("transfer-encoding").and_then(|v| v.to_str().ok()), Some("chunked"));
    assert_eq!(response.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("audio/pcm"));
    let got = frames(response).await;
    let audio: Vec<u8> = got.iter().flat_map(|(_, d)| d.to_vec()).collect();
    assert_eq!(audio.len(), 24_000 * 2 * 550 / 1000, "10 characters at 55 ms, 24 kHz");
    assert!(got.len() > 2 && got.iter().any(|(_, d)| d.len() % 2 == 1), "odd-sized chunks split samples");
    let samples: Vec<i16> = audio.chunks_exact(2).map(|s| i16::from_le_bytes([s[0], s[1]])).collect();
    let level = wav::rms_dbfs(&samples);
    assert!((level + 15.3).abs() < 0.5, "audible, about -12 dBFS peak: {level}");

    let (_, twenty) = client.json(PATH, &ask(&ten.repeat(2))).await;
    assert_eq!(twenty.len(), 2 * audio.len(), "twice the text, twice the audio");

    fake.update(|s| s.tts.sample_rate = 16_000);
    let (_, at_16k) = client.json(PATH, &ask(ten)).await;
    assert_eq!(at_16k.len(), 16_000 * 2 * 550 / 1000);
    let mut speaches = ask(ten);
    speaches["sample_rate"] = json!(8000);
    speaches["speed"] = json!(2.0);
    let (_, at_8k) = client.json(PATH, &speaches).await;
    assert_eq!(at_8k.len(), 8000 * 2 * 275 / 1000, "speaches' sample_rate, twice as fast");

    let records = fake.speeches();
    assert_eq!(records.len(), 4);
    assert_eq!((records[0].input(), records[0].voice()), (Some(ten), Some("alloy")));
    assert_eq!(records[0].http.bytes_sent, audio.len());
    let rates: Vec<u32> = records.iter().filter_map(|r| r.speech.map(|s| s.sample_rate)).collect();
    assert_eq!(rates, vec![24_000, 24_000, 16_000, 8000]);
    let pitches: Vec<f64> = records.iter().filter_map(|r| r.speech.map(|s| s.hz)).collect();
    assert!(pitches.windows(2).all(|w| w[0] != w[1]), "each sentence has its own tone: {pitches:?}");
    assert!(records.iter().all(|r| r.http.completed() && r.http.connection == 1));
    assert!(fake.records().refused().is_empty());
}

#[tokio::test]
async fn refused_requests() {
    let fake = FakePipeline::start(Settings::new()).await.expect("start");
    let mut client = Client::connect(fake.addr()).await;
    let mut mp3 = ask("Hello.");
    mp3["response_format"] = json!("mp3");
    let mut sse = ask("Hello.");
    sse["stream_format"] = json!("sse");
    let mut slow = ask("Hello.");
    slow["speed"] = json!(0.1);
    for (body, needle) in [
        (mp3, "mp3"),
        (sse, "sse"),
        (slow, "speed"),
        (ask(""), "empty"),
        (ask(&"a".repeat(4097)), "too long"),
        (json!({"model": "tts-1", "input": "x", "response_format": "pcm"}), "voice"),
    ] {
        let (status, reply) = client.json(PATH, &body).await;
        let (kind, message) = error_of(&reply);
        assert_eq!((status, kind.as_str()), (400, "invalid_request_error"));
        assert!(message.contains(needle), "{message}");
    }
    assert_eq!(fake.records().refused().len(), 6);
}

#[tokio::test]
async fn pacing_faster_than_real_time_after_the_first_byte() {
    let fake = FakePipeline::start(Settings::new()).await.expect("start");
    fake.update(|s| {
        s.tts.first_byte_delay = Duration::from_millis(120);
        s.tts.speedup = 4.0;
    });
    let mut client = Client::connect(fake.addr()).await;
    // 20 characters: 1100 ms of audio, sent in about 275 ms after the first byte.
    let response = client.send(PATH, "application/json", &[], whole(ask(&"x".repeat(20)).to_string())).await;
    let got = frames(response).await;
    let first = got[0].0;
    let last = got.last().map(|f| f.0).unwrap_or_default();
    assert!(first >= Duration::from_millis(110), "first byte at {first:?}");
    let spread = last - first;
    assert!(
        spread >= Duration::from_millis(200) && spread < Duration::from_millis(1000),
        "spread {spread:?}"
    );
}

#[tokio::test]
async fn failures_and_an_early_close() {
    let fake = FakePipeline::start(Settings::new()).await.expect("start");
    let mut client = Client::connect(fake.addr()).await;
    fake.fail_next(Stage::Tts, Failure::Garbage);
    fake.fail_next(Stage::Tts, Failure::OddBytes);
    fake.fail_next(Stage::Tts, Failure::Status(503));
    let response = client.send(PATH, "application/json", &[], whole(ask("Hello.").to_string())).await;
    assert_eq!(
        response.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let (status, body) = read(response).await;
    assert_eq!(status, 200);
    assert_eq!(error_of(&body).0, "server_error", "an error body with status 200");
    let (status, body) = client.json(PATH, &ask("Hello.")).await;
    assert_eq!((status, body.len() % 2), (200, 1), "an odd byte count");
    let (status, _) = client.json(PATH, &ask("Hello.")).await;
    assert_eq!(status, 503);

    // A long sentence, slowly: the client stops listening after the first chunk.
    fake.update(|s| s.tts.speedup = 1.0);
    let response =
        client.send(PATH, "application/json", &[], whole(ask(&"long ".repeat(100)).to_string())).await;
    let mut body = response.into_body();
    use http_body_util::BodyExt;
    body.frame().await.expect("a frame").expect("data");
    drop(body);
    drop(client);
    assert!(
        fake.wait_until(Duration::from_secs(2), |r| r.speeches.get(3).is_some_and(|s| s.http.finished()))
            .await
    );
    let cut = &fake.speeches()[3];
    assert!(cut.cut_by_client());
    let planned = cut.speech.map_or(0, |s| s.bytes);
    assert!(cut.http.bytes_sent < planned, "{} of {planned} bytes sent", cut.http.bytes_sent);
}
