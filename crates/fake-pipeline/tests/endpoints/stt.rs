//! `/v1/audio/transcriptions` over HTTP.

use voice_ua_fake_pipeline::{multipart, wav, Failure, FakePipeline, Settings, Stage};

use crate::client::{chunked, error_of, read, whole, Client, ReqBody};

const BOUNDARY: &str = "----voiceua7f3a";

fn form(fields: &[(&str, &str)], audio: &[u8]) -> Vec<u8> {
    multipart::build(BOUNDARY, fields, Some(("file", "turn.wav", audio)))
}

async fn post(client: &mut Client, body: ReqBody) -> (u16, hyper::body::Bytes) {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    read(client.send("/v1/audio/transcriptions", &content_type, &[], body).await).await
}

#[tokio::test]
async fn scripted_transcripts_silence_and_tone_words() {
    let fake =
        FakePipeline::start(Settings::new().transcripts(&["what's the weather"])).await.expect("start");
    fake.update(|s| s.stt.tone_words = vec![(500.0, "check".into()), (900.0, "balance".into())]);
    let mut client = Client::connect(fake.addr()).await;
    let speech = wav::encode(8000, &wav::tone(8000, 440.0, 600));
    let quiet = wav::encode(16_000, &wav::silence(16_000, 400));

    let (status, body) = post(&mut client, whole(form(&[("model", "whisper-1")], &quiet))).await;
    assert_eq!((status, body.as_ref()), (200, &br#"{"text":""}"#[..]), "silence says nothing");
    let fields = [("model", "whisper-1"), ("language", "en"), ("prompt", "weather, balance")];
    let (status, body) = post(&mut client, chunked(&form(&fields, &speech), 7)).await;
    assert_eq!((status, body.as_ref()), (200, &br#"{"text":"what's the weather"}"#[..]));

    let mut tones = wav::tone(16_000, 500.0, 300);
    tones.extend(wav::tone(16_000, 900.0, 300));
    let text = [("model", "whisper-1"), ("response_format", "text")];
    let response = client
        .send(
            "/v1/audio/transcriptions",
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            &[],
            whole(form(&text, &wav::encode(16_000, &tones))),
        )
        .await;
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("text/plain; charset=utf-8"));
    let (status, body) = read(response).await;
    assert_eq!((status, body.as_ref()), (200, &b"check balance"[..]), "the script ran out: tones decide");

    // Silence as text: an empty body, sent whole.
    let response = client
        .send(
            "/v1/audio/transcriptions",
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            &[],
            whole(form(&text, &quiet)),
        )
        .await;
    assert_eq!(read(response).await, (200, hyper::body::Bytes::new()));

    let records = fake.transcriptions();
    assert_eq!(records.len(), 4);
    let second = &records[1];
    assert_eq!((second.field("language"), second.field("prompt")), (Some("en"), Some("weather, balance")));
    assert_eq!((second.sample_rate, second.duration_ms), (Some(8000), Some(600)));
    assert!(second.rms_dbfs.is_some_and(|l| (l + 15.3).abs() < 0.5), "{:?}", second.rms_dbfs);
    assert!(second.http.chunked && !records[0].http.chunked);
    assert_eq!(second.text.as_deref(), Some("what's the weather"));
    assert!(records.iter().all(|r| r.http.connection == 1 && r.http.completed()));
    assert!(fake.records().refused().is_empty());
}

#[tokio::test]
async fn bad_forms_and_bad_wavs_are_refused_with_400() {
    let fake = FakePipeline::start(Settings::new()).await.expect("start");
    let mut client = Client::connect(fake.addr()).await;
    let good = wav::encode(8000, &wav::tone(8000, 440.0, 300));
    let mut stereo = good.clone();
    stereo[22] = 2;
    let at_24k = wav::encode(24_000, &wav::tone(24_000, 440.0, 300));
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 100);
    for (body, needle) in [
        (form(&[("model", "whisper-1")], &stereo), "channels"),
        (form(&[("model", "whisper-1")], &at_24k), "sample rate"),
        (form(&[("model", "whisper-1")], &truncated), "RIFF size"),
        (form(&[], &good), "model"),
        (form(&[("model", "whisper-1"), ("response_format", "srt")], &good), "srt"),
        (multipart::build(BOUNDARY, &[("model", "whisper-1")], None), "'file'"),
    ] {
        let (status, reply) = post(&mut client, whole(body)).await;
        let (kind, message) = error_of(&reply);
        assert_eq!((status, kind.as_str()), (400, "invalid_request_error"), "{message}");
        assert!(message.contains(needle), "{message}");
    }
    // A body that is not the form its Content-Type announces.
    let response = client
        .send("/v1/audio/transcriptions", "application/json", &[], whole(r#"{"model":"whisper-1"}"#))
        .await;
    assert_eq!(read(response).await.0, 400);
    assert!(fake.transcriptions().iter().all(|r| r.http.completed()), "each refusal went out whole");
    let refused = fake.records().refused();
    assert_eq!(refused.len(), 7);
    assert!(refused.iter().all(|(path, e)| path == "/v1/audio/transcriptions" && e.status == 400));
}

#[tokio::test]
async fn injected_failures() {
    let fake = FakePipeline::start(Settings::new()).await.expect("start");
    let mut client = Client::connect(fake.addr()).await;
    let good = wav::encode(16_000, &wav::tone(16_000, 440.0, 300));
    fake.fail_next(Stage::Stt, Failure::Status(503));
    fake.fail_next(Stage::Stt, Failure::Garbage);
    let (status, body) = post(&mut client, whole(form(&[("model", "m")], &good))).await;
    assert_eq!((status, error_of(&body).0.as_str()), (503, "server_error"));
    let (status, body) = post(&mut client, whole(form(&[("model", "m")], &good))).await;
    assert_eq!(status, 200);
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err(), "garbage is not JSON");
    let (status, _) = post(&mut client, whole(form(&[("model", "m")], &good))).await;
    assert_eq!(status, 200, "the queue is used up");
    let records = fake.transcriptions();
    assert_eq!(records[0].http.injected, Some(Failure::Status(503)));
    assert!(records[0].http.refused.is_none(), "an injected failure is not the client's fault");
    assert_eq!(records[2].http.injected, None);
}
