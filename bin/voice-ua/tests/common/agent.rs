//! Calls to voice-ua bridged to a fake agent, for the end-to-end tests of every provider:
//! one call talked through and its record read back, and the agent failing mid-call
//! (fallback prompt, REFER, NOTIFY 200, BYE) with what /metrics counted.

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use voice_ua_records::{CallOutcome, CallRecord};

pub use super::finished_record;
use super::{complete_transfer, exact_matches, header, http_get, sample, Call, Received};

/// One call: talk `packets` packets (a tone where `loud`), hang up, stop voice-ua. Returns
/// what the caller heard, the call's record and, when it has one, the recording's bytes
/// (both read before voice-ua stops and its directory goes).
pub async fn talk_and_keep_the_record(
    name: &'static str,
    config: String,
    env: &'static [(&'static str, &'static str)],
    packets: u32,
    loud: fn(u32) -> bool,
) -> (Vec<Received>, (CallRecord, Option<Vec<u8>>), ExitStatus, Vec<String>) {
    tokio::task::spawn_blocking(move || {
        let call = Call::start(name, &config, env);
        let mut got: Vec<Received> = Vec::new();
        call.talk(0, packets, &mut got, loud);
        call.send(&call.in_dialog("BYE", 2, "", ""));
        let _ = call.recv(Duration::from_secs(3));
        let record = finished_record(&call.dir.join("calls.db"));
        let wav = record.recording.as_ref().map(|p| finished_wav(&call.dir.join(p)));
        let (status, logs) = call.stop();
        (got, (record, wav), status, logs)
    })
    .await
    .expect("join")
}

/// The bytes of a WAV once its header counts all its data (the writer patches it last).
pub fn finished_wav(path: &std::path::Path) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(b) = std::fs::read(path) {
            let data = b.get(40..44).map(|d| u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize);
            if b.len() > 44 && data == Some(b.len() - 44) {
                return b;
            }
        }
        assert!(Instant::now() < deadline, "{path:?} never got its final header");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A call whose agent failed mid-call, as the PBX saw it.
pub struct FallbackCall {
    pub got: Vec<Received>,
    pub refer: String,
    pub bye: String,
    pub record: CallRecord,
    pub metrics: String,
    pub status: ExitStatus,
}

/// voice-ua with `config` (whose agent fails mid-call and which has
/// `fallback_transfer = "9001"`, plus a monitoring listener added here): the caller talks
/// through the 7.4 s fallback prompt, the PBX takes the REFER (202) and reports the
/// transfer done (NOTIFY 200), then voice-ua's BYE; the record and /metrics after it.
pub async fn fallback_and_refer(
    name: &'static str,
    config: String,
    env: &'static [(&'static str, &'static str)],
) -> FallbackCall {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let http: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let config = format!("{config}\n[http]\nlisten = \"{http}\"\n");
    tokio::task::spawn_blocking(move || {
        let mut call = Call::start(name, &config, env);
        let mut got: Vec<Received> = Vec::new();
        // The prompt lasts 7.4 s; keep talking while it plays, then expect a REFER.
        call.talk_silence(0, 420, &mut got);
        let (refer, bye) = complete_transfer(&mut call, Duration::from_secs(4));
        let record = finished_record(&call.dir.join("calls.db"));
        // The typed agent error code and the outcome, as /metrics counts them.
        let deadline = Instant::now() + Duration::from_secs(5);
        let metrics = loop {
            let text = http_get(http, "/metrics").map(|(_, t)| t).unwrap_or_default();
            if sample(&text, "voice_ua_calls_total{outcome=\"transferred\"}") == Some(1.0)
                || Instant::now() > deadline
            {
                break text;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let (status, _) = call.stop();
        FallbackCall { got, refer, bye, record, metrics, status }
    })
    .await
    .expect("join")
}

impl FallbackCall {
    /// The caller heard the fallback prompt and went to 9001 with a plain BYE after the
    /// NOTIFY 200; the record says transferred; /metrics counted the agent error with
    /// its typed `code`.
    pub fn assert_heard_and_transferred(&self, code: &str) {
        let FallbackCall { got, refer, bye, record, metrics, status } = self;
        assert!(status.success(), "{status:?}");
        let prompt = include_bytes!("../../../../conf/fallback-en.ulaw");
        let chunks: Vec<&[u8]> = prompt.chunks(160).filter(|c| c.len() == 160).collect();
        let heard = exact_matches(got, &chunks);
        assert!(
            heard >= chunks.len() * 9 / 10,
            "the fallback prompt is heard: {heard} of {} packets",
            chunks.len()
        );
        let refer_to = header(refer, "Refer-To").expect("Refer-To");
        assert!(refer_to.contains("sip:9001@"), "{refer_to}");
        // NOTIFY 200 → a plain BYE, and the record says so.
        assert_eq!(header(bye, "Reason"), None, "{bye}");
        assert_eq!((record.outcome, record.hung_up_by.as_str()), (CallOutcome::Transferred, "voice-ua"));
        assert!(record.transfer_target.as_deref().is_some_and(|t| t.starts_with("sip:9001@")), "{record:?}");
        let error = format!("voice_ua_agent_errors_total{{code=\"{code}\",kind=\"provider\"}}");
        assert_eq!(sample(metrics, &error), Some(1.0), "{metrics}");
        assert_eq!(sample(metrics, "voice_ua_calls_total{outcome=\"transferred\"}"), Some(1.0), "{metrics}");
        assert_eq!(sample(metrics, "voice_ua_calls_total{outcome=\"failed\"}"), Some(0.0), "{metrics}");
    }
}

/// An HTTP function's server on 127.0.0.1: answers every request with `{"ok":true}` and
/// hands `(request head, body)` to the channel. The thread lives until the test exits.
pub fn http_tool() -> (u16, std::sync::mpsc::Receiver<(String, String)>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind the HTTP tool server");
    let port = listener.local_addr().expect("local address").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let (mut buf, mut chunk) = (Vec::new(), [0u8; 4096]);
            let seen = loop {
                let Ok(n) = stream.read(&mut chunk) else { break None };
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let len = header(&head.replace('\n', "\r\n"), "Content-Length")
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break Some((head, String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned()));
                }
            };
            let body = r#"{"ok":true}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            if let Some(seen) = seen {
                let _ = tx.send(seen);
            }
        }
    });
    (port, rx)
}
