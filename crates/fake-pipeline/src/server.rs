//! The HTTP shell: one hyper HTTP/1.1 connection per client (keep-alive, chunked bodies
//! both ways), each request routed to its stage, checked, recorded, and answered (or
//! failed on purpose) from the [`Shared`] state the test changes while it runs.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use voice_ua_fake_server::Conn;

use crate::body::{PacedBody, Step, Tracker};
use crate::completion::{self, Answer};
use crate::records::{
    ChatRecord, Connection, Exchange, RecordRef, Records, SpeechRecord, TranscriptionRecord,
};
use crate::tts::Speech;
use crate::{chat, multipart, script, stt, tts, wav, ApiError, Dialect, Failure, Reply, Settings, Stage};

/// The largest body read (OpenAI's 25 MB upload limit).
pub(crate) const MAX_BODY: usize = 25 * 1024 * 1024;

/// What a `Failure::Garbage` chat or STT answer carries.
const GARBAGE: &str = "<html><body><h1>502 Bad Gateway</h1>upstream sent nonsense</body></html>\n";

/// Failures waiting for a stage's requests.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub(crate) next: VecDeque<Failure>,
    pub(crate) always: Option<Failure>,
}

/// Everything the requests share; the lock is never held across an await.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) settings: Settings,
    pub(crate) records: Records,
    pub(crate) faults: HashMap<Stage, Faults>,
    pub(crate) replies: VecDeque<Reply>,
    pub(crate) break_next_call: bool,
    next_call: u64,
    next_completion: u64,
    speeches: usize,
    last_prompt: String,
}

/// The state of one fake.
#[derive(Debug)]
pub(crate) struct Shared {
    inner: Mutex<Inner>,
}

impl Shared {
    pub(crate) fn new(settings: Settings) -> Shared {
        Shared {
            inner: Mutex::new(Inner {
                settings,
                records: Records::default(),
                faults: HashMap::new(),
                replies: VecDeque::new(),
                break_next_call: false,
                next_call: 0,
                next_completion: 0,
                speeches: 0,
                last_prompt: String::new(),
            }),
        }
    }

    /// The state, even after a panic elsewhere poisoned the lock.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn with_http(&self, at: RecordRef, f: impl FnOnce(&mut Exchange)) {
        if let Some(h) = self.lock().records.http_mut(at) {
            f(h);
        }
    }
}

impl Inner {
    /// The failure for this request of `stage`: a queued one first, else the standing one.
    /// `OddBytes` means nothing to the other stages: they answer normally.
    fn failure(&mut self, stage: Stage) -> Option<Failure> {
        let faults = self.faults.entry(stage).or_default();
        let failure = faults.next.pop_front().or_else(|| faults.always.clone());
        failure.filter(|f| stage == Stage::Tts || *f != Failure::OddBytes)
    }
}

/// Serve one client connection to its end.
pub(crate) async fn connection(conn: Conn, n: u32, shared: Arc<Shared>) -> Connection {
    let idle = shared.lock().settings.idle_timeout;
    let requests = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&requests);
    let service = hyper::service::service_fn(move |request| {
        counted.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(shared, n, request).await) }
    });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(idle)
        .keep_alive(true)
        .serve_connection(TokioIo::new(conn), service)
        .await;
    let end = match result {
        Ok(()) => "closed".to_owned(),
        Err(e) if e.is_timeout() => "idle timeout".to_owned(),
        Err(e) => e.to_string(),
    };
    Connection { n, requests: requests.load(Ordering::Relaxed), end }
}

fn header(request: &Request<Incoming>, name: hyper::header::HeaderName) -> Option<String> {
    request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn json_response(status: u16, body: String, tracker: Option<Tracker>) -> Response<PacedBody> {
    typed(status, "application/json", PacedBody::full(body, tracker))
}

fn typed(status: u16, content_type: &'static str, body: PacedBody) -> Response<PacedBody> {
    let mut response = Response::new(body);
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

async fn handle(shared: Arc<Shared>, connection: u32, request: Request<Incoming>) -> Response<PacedBody> {
    let method = request.method().as_str().to_owned();
    let path =
        request.uri().path_and_query().map_or_else(|| request.uri().path().to_owned(), |p| p.to_string());
    let mut http = Exchange::new(connection, &method, &path);
    http.authorization = header(&request, AUTHORIZATION);
    http.content_type = header(&request, CONTENT_TYPE);
    http.chunked =
        header(&request, TRANSFER_ENCODING).is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    let stage = match (method.as_str(), request.uri().path()) {
        ("POST", "/v1/audio/transcriptions") => Some(Stage::Stt),
        ("POST", "/v1/chat/completions") => Some(Stage::Chat),
        ("POST", "/v1/audio/speech") => Some(Stage::Tts),
        _ => None,
    };
    let body = Limited::new(request.into_body(), MAX_BODY).collect().await.map(|b| b.to_bytes());
    let (body, early) = match body {
        Ok(body) => {
            http.body_bytes = body.len();
            (body, None)
        }
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => (
            Bytes::new(),
            Some(
                ApiError::invalid(None, format!("Maximum content size limit ({MAX_BODY}) exceeded."))
                    .with_status(413),
            ),
        ),
        Err(e) => {
            (Bytes::new(), Some(ApiError::invalid(None, format!("could not read the request body: {e}"))))
        }
    };
    let key = shared.lock().settings.api_key.clone();
    let early = early.or_else(|| match (&key, stage) {
        (Some(key), Some(_)) if http.authorization.as_deref() != Some(&format!("Bearer {key}")) => {
            Some(ApiError::for_status(401))
        }
        (_, None) => Some(ApiError {
            status: 404,
            ..ApiError::invalid(None, format!("Invalid URL ({method} {})", http.path))
        }),
        _ => None,
    });
    let at = record(&shared, stage, http);
    let tracker = Tracker::new(Arc::clone(&shared), at);
    if let Some(error) = early {
        return refuse(&shared, at, error, tracker);
    }
    match at {
        RecordRef::Stt(i) => transcription(shared, i, &body, tracker).await,
        RecordRef::Chat(i) => chat(shared, i, &body, tracker).await,
        RecordRef::Tts(i) => speech(shared, i, &body, tracker).await,
        RecordRef::Other(_) => refuse(&shared, at, ApiError::for_status(404), tracker),
    }
}

/// A new record for the request; where it is.
fn record(shared: &Shared, stage: Option<Stage>, http: Exchange) -> RecordRef {
    let mut inner = shared.lock();
    let records = &mut inner.records;
    match stage {
        Some(Stage::Stt) => {
            records.transcriptions.push(TranscriptionRecord {
                http,
                fields: Default::default(),
                filename: None,
                file_content_type: None,
                sample_rate: None,
                duration_ms: None,
                rms_dbfs: None,
                text: None,
            });
            RecordRef::Stt(records.transcriptions.len() - 1)
        }
        Some(Stage::Chat) => {
            records.chats.push(ChatRecord {
                http,
                raw: None,
                request: None,
                reply: None,
                answer: None,
                malformed_arguments: false,
            });
            RecordRef::Chat(records.chats.len() - 1)
        }
        Some(Stage::Tts) => {
            records.speeches.push(SpeechRecord { http, raw: None, request: None, speech: None });
            RecordRef::Tts(records.speeches.len() - 1)
        }
        None => {
            records.other.push(http);
            RecordRef::Other(records.other.len() - 1)
        }
    }
}

/// The request was wrong: its 4xx, recorded as refused.
fn refuse(shared: &Shared, at: RecordRef, error: ApiError, tracker: Tracker) -> Response<PacedBody> {
    let status = error.status;
    let body = error.body();
    shared.with_http(at, |h| {
        h.status = Some(status);
        h.refused = Some(error);
    });
    json_response(status, body, Some(tracker))
}

fn set_status(shared: &Shared, at: RecordRef, status: u16) {
    shared.with_http(at, |h| h.status = Some(status));
}

/// A failure on purpose, for the non-streamed answers (`Garbage` is the stage's own).
async fn fail(
    shared: &Shared,
    at: RecordRef,
    failure: &Failure,
    tracker: Tracker,
    garbage: impl FnOnce(Tracker) -> Response<PacedBody>,
) -> Response<PacedBody> {
    shared.with_http(at, |h| h.injected = Some(failure.clone()));
    match failure {
        Failure::Status(status) => {
            set_status(shared, at, *status);
            json_response(*status, ApiError::for_status(*status).body(), Some(tracker))
        }
        Failure::Hang => {
            let _kept = tracker;
            std::future::pending::<()>().await;
            json_response(500, String::new(), None)
        }
        Failure::Garbage => {
            set_status(shared, at, 200);
            garbage(tracker)
        }
        Failure::StallAfter(_) | Failure::OddBytes => {
            // Not streamed: the headers, then nothing.
            set_status(shared, at, 200);
            typed(200, "application/json", PacedBody::steps(vec![(None, Bytes::new())], Some(tracker)))
        }
    }
}

async fn transcription(shared: Arc<Shared>, i: usize, body: &[u8], tracker: Tracker) -> Response<PacedBody> {
    let at = RecordRef::Stt(i);
    let content_type = shared.lock().records.transcriptions[i].http.content_type.clone().unwrap_or_default();
    let parts = multipart::boundary(&content_type).and_then(|b| multipart::parse(body, &b));
    let parts = match parts {
        Ok(parts) => parts,
        Err(e) => return refuse(&shared, at, ApiError::invalid(None, e.0), tracker),
    };
    // Record what the form says before judging it.
    {
        let mut inner = shared.lock();
        let r = &mut inner.records.transcriptions[i];
        for p in parts.iter().filter(|p| p.name != "file") {
            r.fields.insert(p.name.clone(), String::from_utf8_lossy(&p.data).into_owned());
        }
        if let Some(file) = parts.iter().find(|p| p.name == "file") {
            r.filename = file.filename.clone();
            r.file_content_type = file.content_type.clone();
            if let Ok(w) = wav::parse(&file.data) {
                r.sample_rate = Some(w.sample_rate);
                r.duration_ms = Some(w.duration_ms());
                r.rms_dbfs = Some(wav::rms_dbfs(&w.samples));
            }
        }
    }
    let request = match stt::validate(parts) {
        Ok(r) => r,
        Err(e) => return refuse(&shared, at, e, tracker),
    };
    let (failure, delay, text) = {
        let mut inner = shared.lock();
        let failure = inner.failure(Stage::Stt);
        let text = stt::transcribe(&mut inner.settings.stt, &request.wav);
        (failure, inner.settings.stt.delay, text)
    };
    tokio::time::sleep(delay).await;
    if let Some(failure) = failure {
        return fail(&shared, at, &failure, tracker, |t| {
            typed(200, "application/json", PacedBody::full(GARBAGE, Some(t)))
        })
        .await;
    }
    shared.lock().records.transcriptions[i].text = Some(text.clone());
    set_status(&shared, at, 200);
    match request.response_format {
        stt::ResponseFormat::Json => {
            json_response(200, serde_json::json!({"text": text}).to_string(), Some(tracker))
        }
        stt::ResponseFormat::Text => {
            typed(200, "text/plain; charset=utf-8", PacedBody::full(text, Some(tracker)))
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

async fn chat(shared: Arc<Shared>, i: usize, body: &[u8], tracker: Tracker) -> Response<PacedBody> {
    let at = RecordRef::Chat(i);
    let (dialect, content_type) = {
        let mut inner = shared.lock();
        let dialect = inner.settings.chat.dialect;
        let r = &mut inner.records.chats[i];
        r.raw = serde_json::from_slice(body).ok();
        (dialect, r.http.content_type.clone().unwrap_or_default())
    };
    if !content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")) {
        let e = ApiError::invalid(None, format!("Content-Type {content_type:?}: send application/json"));
        return refuse(&shared, at, e, tracker);
    }
    let request = match chat::validate(body, dialect) {
        Ok(r) => r,
        Err(e) => return refuse(&shared, at, e, tracker),
    };
    let (answer, failure, first, interval) = {
        let mut inner = shared.lock();
        let reply = match inner.replies.pop_front() {
            Some(reply) => reply,
            None => script::decide(&inner.settings.chat.script, &request),
        };
        let breaks = matches!(reply, Reply::ToolCalls { .. }) && std::mem::take(&mut inner.break_next_call);
        let mut next = inner.next_call;
        let mut answer = Answer::new(
            &reply,
            || {
                next += 1;
                format!("call_{next}")
            },
            request.token_cap(dialect),
            breaks,
        );
        inner.next_call = next;
        inner.next_completion += 1;
        answer.id = format!("chatcmpl-{}", inner.next_completion);
        answer.model = request.model.clone();
        answer.created = unix_now();
        let prompt = request.prompt_text();
        answer.usage.prompt_tokens = completion::tokens(&prompt);
        answer.usage.cached_tokens = (common_prefix(&prompt, &inner.last_prompt) / 4) as u64;
        inner.last_prompt = prompt;
        let failure = inner.failure(Stage::Chat);
        let (first, interval) = (inner.settings.chat.first_token_delay, inner.settings.chat.chunk_interval);
        let r = &mut inner.records.chats[i];
        r.reply = Some(reply);
        r.malformed_arguments = breaks;
        r.answer = Some(answer.clone());
        r.request = Some(request.clone());
        (answer, failure, first, interval)
    };
    let sse = match dialect {
        Dialect::OpenAi => "text/event-stream; charset=utf-8",
        Dialect::Ollama => "text/event-stream",
    };
    if !request.stream {
        let events = completion::stream_events(&answer, dialect, false).len() as u32;
        if let Some(Failure::StallAfter(_)) | Some(Failure::Hang) | Some(Failure::Status(_)) | None = failure
        {
            tokio::time::sleep(first + interval * events).await;
        }
        if let Some(failure) = failure {
            return fail(&shared, at, &failure, tracker, |t| {
                typed(200, "application/json", PacedBody::full(GARBAGE, Some(t)))
            })
            .await;
        }
        set_status(&shared, at, 200);
        return json_response(200, completion::completion_json(&answer, dialect), Some(tracker));
    }
    let events = completion::stream_events(&answer, dialect, request.include_usage);
    let stall_after = match failure {
        Some(Failure::Garbage) => {
            shared.with_http(at, |h| h.injected = Some(Failure::Garbage));
            set_status(&shared, at, 200);
            let steps = vec![(Some(first), Bytes::from_static(GARBAGE.as_bytes()))];
            return typed(200, sse, PacedBody::steps(steps, Some(tracker)));
        }
        Some(Failure::StallAfter(n)) => {
            shared.with_http(at, |h| h.injected = Some(Failure::StallAfter(n)));
            Some(n)
        }
        Some(other) => {
            return fail(&shared, at, &other, tracker, |_| json_response(500, String::new(), None)).await
        }
        None => None,
    };
    let mut steps: Vec<Step> = events
        .into_iter()
        .enumerate()
        .map(|(k, e)| (Some(if k == 0 { first } else { interval }), Bytes::from(e)))
        .collect();
    if let Some(n) = stall_after {
        steps.truncate(n);
        steps.push((None, Bytes::new()));
    }
    set_status(&shared, at, 200);
    let mut response = typed(200, sse, PacedBody::steps(steps, Some(tracker)));
    response.headers_mut().insert("cache-control", HeaderValue::from_static("no-cache"));
    response
}

/// `len` bytes of the PCM16 LE tone of `speech`, from byte `from`.
fn pcm_bytes(speech: &Speech, from: usize, len: usize) -> Vec<u8> {
    let first = from / 2;
    let last = (from + len).div_ceil(2);
    let samples = wav::tone_from(speech.sample_rate, speech.hz, first as u64, last - first);
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let skip = from - first * 2;
    bytes[skip..skip + len].to_vec()
}

async fn speech(shared: Arc<Shared>, i: usize, body: &[u8], tracker: Tracker) -> Response<PacedBody> {
    let at = RecordRef::Tts(i);
    let (settings, content_type) = {
        let mut inner = shared.lock();
        let settings = inner.settings.tts.clone();
        let r = &mut inner.records.speeches[i];
        r.raw = serde_json::from_slice(body).ok();
        (settings, r.http.content_type.clone().unwrap_or_default())
    };
    if !content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")) {
        let e = ApiError::invalid(None, format!("Content-Type {content_type:?}: send application/json"));
        return refuse(&shared, at, e, tracker);
    }
    let request = match tts::validate(body, &settings) {
        Ok(r) => r,
        Err(e) => return refuse(&shared, at, e, tracker),
    };
    let (speech, failure) = {
        let mut inner = shared.lock();
        inner.speeches += 1;
        let speech = Speech::plan(&request, &settings, inner.speeches);
        let failure = inner.failure(Stage::Tts);
        let r = &mut inner.records.speeches[i];
        r.request = Some(request);
        r.speech = Some(speech);
        (speech, failure)
    };
    let mut total = speech.bytes;
    let mut stall_after = None;
    match failure {
        Some(Failure::Garbage) => {
            shared.with_http(at, |h| h.injected = Some(Failure::Garbage));
            set_status(&shared, at, 200);
            let e = ApiError::for_status(500).body();
            return json_response(200, e, Some(tracker));
        }
        Some(Failure::OddBytes) => {
            shared.with_http(at, |h| h.injected = Some(Failure::OddBytes));
            total += 1;
        }
        Some(Failure::StallAfter(n)) => {
            shared.with_http(at, |h| h.injected = Some(Failure::StallAfter(n)));
            stall_after = Some(n);
        }
        Some(other) => {
            return fail(&shared, at, &other, tracker, |_| json_response(500, String::new(), None)).await
        }
        None => {}
    }
    let chunk = settings.chunk_bytes.max(1);
    let (mut sent, mut chunks) = (0usize, 0usize);
    let source = Box::new(move || {
        if stall_after.is_some_and(|n| chunks >= n) {
            return Some((None, Bytes::new()));
        }
        if sent >= total {
            return None;
        }
        let len = chunk.min(total - sent);
        let audio = len.min(speech.bytes.saturating_sub(sent));
        let mut bytes = pcm_bytes(&speech, sent, audio);
        bytes.resize(len, 0);
        let wait = if chunks == 0 {
            settings.first_byte_delay
        } else if settings.speedup > 0.0 {
            // The previous chunk's audio time, divided by the speed-up.
            Duration::from_secs_f64(chunk as f64 / 2.0 / f64::from(speech.sample_rate) / settings.speedup)
        } else {
            Duration::ZERO
        };
        sent += len;
        chunks += 1;
        Some((Some(wait), Bytes::from(bytes)))
    });
    set_status(&shared, at, 200);
    typed(200, "audio/pcm", PacedBody::new(source, Some(tracker)))
}
