//! What the fake agent servers (fake Deepgram, fake OpenAI) share: [`FakeServer`], a
//! listener on 127.0.0.1 that serves each connection on its own task over `ws://` or
//! `wss://` (a test CA and a server certificate for `127.0.0.1`/`localhost` generated
//! with rcgen when it starts, the CA written to a temp file for the client to trust), and
//! keeps the [`Record`] each connection leaves when it ends; and the [`tone`] they speak
//! with. A crate of its own
//! (`publish = false`), so the production crates neither contain nor compile it.

mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use voice_ua_agent::AudioFormat;

/// `ms` of a 440 Hz tone at about -12 dBFS in `format`: what the fakes speak with.
pub fn tone(format: AudioFormat, ms: u32) -> Vec<u8> {
    tone_hz(format, ms, 440.0)
}

/// `ms` of a tone at `hz` (about -12 dBFS) in `format`, from phase 0.
pub fn tone_hz(format: AudioFormat, ms: u32, hz: f64) -> Vec<u8> {
    let rate = f64::from(format.sample_rate());
    let samples = (u64::from(format.sample_rate()) * u64::from(ms) / 1000) as usize;
    let mut out = Vec::with_capacity(samples * format.bytes_per_sample());
    for i in 0..samples {
        let x = (std::f64::consts::TAU * hz * i as f64 / rate).sin() * 8000.0;
        format.push_sample(&mut out, x as i16);
    }
    out
}

/// A byte stream to a client: plain TCP, or TLS over it.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A client's connection, as a fake's handler gets it.
pub type Conn = Box<dyn Stream>;

/// What one connection left when it ended.
pub trait Record: Clone + Send + 'static {
    /// The record of a client whose TLS handshake failed.
    fn tls_failed(error: String) -> Self;
}

/// A fake failed to start.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    /// Bind or write.
    #[error("fake agent server: {0}")]
    Io(#[from] std::io::Error),
    /// Certificate generation or TLS setup.
    #[error("fake agent server TLS: {0}")]
    Tls(String),
}

/// Serves one connection (its number, from 1) to its end.
type Handler<R> = Arc<dyn Fn(Conn, u32) -> Pin<Box<dyn Future<Output = R> + Send>> + Send + Sync>;

/// A running fake. Dropping it stops the server and removes the CA file.
pub struct FakeServer<R> {
    addr: SocketAddr,
    ca_pem: Option<String>,
    ca_file: Option<PathBuf>,
    records: Arc<Mutex<Vec<R>>>,
    task: JoinHandle<()>,
}

impl<R> std::fmt::Debug for FakeServer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer").field("addr", &self.addr).field("ca_file", &self.ca_file).finish()
    }
}

impl<R> Drop for FakeServer<R> {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(path) = &self.ca_file {
            let _ = std::fs::remove_file(path);
        }
    }
}

static INSTANCE: AtomicU32 = AtomicU32::new(0);

impl<R: Record> FakeServer<R> {
    /// Bind 127.0.0.1 (`port` 0: a free one) and serve every connection with `handler`
    /// until dropped; `name` names the test CA and its file (`fake-openai`).
    pub async fn start<F, Fut>(name: &str, tls: bool, port: u16, handler: F) -> Result<Self, FakeError>
    where
        F: Fn(Conn, u32) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
    {
        voice_ua_agent::install_crypto_provider();
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let (acceptor, ca_pem, ca_file) = if tls {
            let (acceptor, pem) = tls::acceptor(name)?;
            let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "voice-ua-{name}-ca-{}-{}-{n}.pem",
                std::process::id(),
                addr.port()
            ));
            std::fs::write(&path, &pem)?;
            (Some(acceptor), Some(pem), Some(path))
        } else {
            (None, None, None)
        };
        let records = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler<R> = Arc::new(move |conn, n| Box::pin(handler(conn, n)));
        let task = tokio::spawn(serve(listener, acceptor, handler, Arc::clone(&records)));
        Ok(FakeServer { addr, ca_pem, ca_file, records, task })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws` or `wss`.
    pub fn scheme(&self) -> &'static str {
        if self.ca_pem.is_some() {
            "wss"
        } else {
            "ws"
        }
    }

    /// The test CA (PEM), for wss://.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A temp file holding [`FakeServer::ca_pem`] (removed on drop): the client's extra
    /// CA file.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// Records of the connections that have ended so far.
    pub fn records(&self) -> Vec<R> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Wait until `n` connections have ended (or `timeout`); their records.
    pub async fn wait_records(&self, n: usize, timeout: Duration) -> Vec<R> {
        let until = Instant::now() + timeout;
        loop {
            let records = self.records();
            if records.len() >= n || Instant::now() >= until {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn serve<R: Record>(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    handler: Handler<R>,
    records: Arc<Mutex<Vec<R>>>,
) {
    let mut n = 0u32;
    while let Ok((tcp, _)) = listener.accept().await {
        n += 1;
        // 20 ms audio frames must not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let (acceptor, handler, records) = (acceptor.clone(), Arc::clone(&handler), Arc::clone(&records));
        tokio::spawn(async move {
            let record = match acceptor {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(tls) => handler(Box::new(tls), n).await,
                    Err(e) => R::tls_failed(format!("TLS handshake failed: {e}")),
                },
                None => handler(Box::new(tcp), n).await,
            };
            if let Ok(mut all) = records.lock() {
                all.push(record);
            }
        });
    }
}

/// For the fakes' binaries: a tokio runtime with `threads` workers.
pub fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))
}

/// For the fakes' binaries: run `main` with the parsed command line: `Err("")` asks
/// for `usage` (printed, status 0), another `Err` is a usage error (status 2); else `run`
/// on a runtime of `threads` workers (its error: status 1).
pub fn run_main<O, F>(name: &str, usage: &str, parsed: Result<O, String>, threads: usize, run: F) -> ExitCode
where
    F: FnOnce(O) -> Pin<Box<dyn Future<Output = Result<(), String>>>>,
{
    let options = match parsed {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{usage}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{name}: {e}\n{usage}");
            return ExitCode::from(2);
        }
    };
    match runtime(threads).and_then(|rt| rt.block_on(run(options))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// For the fakes' binaries: print `url` (and the CA file, for wss://) on stdout, one line
/// each; log each connection that ends on stderr (`describe(n, record)`) until SIGTERM or
/// SIGINT; then every record.
pub async fn serve_until_signal<R>(
    url: &str,
    ca_file: Option<&Path>,
    records: impl Fn() -> Vec<R>,
    describe: impl Fn(usize, &R) -> String,
) -> Result<Vec<R>, String> {
    use std::io::Write;
    use tokio::signal::unix::{signal, SignalKind};

    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
    {
        let mut out = std::io::stdout().lock();
        let mut lines = format!("{url}\n");
        if let Some(ca) = ca_file {
            lines.push_str(&format!("{}\n", ca.display()));
        }
        out.write_all(lines.as_bytes()).and_then(|()| out.flush()).map_err(|e| format!("stdout: {e}"))?;
    }
    let report = |from: usize| {
        let all = records();
        for (i, r) in all.iter().enumerate().skip(from) {
            eprintln!("{}", describe(i + 1, r));
        }
        all.len().max(from)
    };
    let mut reported = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => reported = report(reported),
        }
    }
    report(reported);
    Ok(records())
}

/// The load a fake's binary plays in benchmarks: a greeting, then turns of (caller audio,
/// caller turn, spoken reply), with the flags both binaries take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    /// The only API key accepted.
    pub key: String,
    /// Serve wss://.
    pub tls: bool,
    /// Greeting length.
    pub greeting_ms: u32,
    /// Caller frames (20 ms) to wait for before each turn.
    pub listen_frames: usize,
    /// Length of each reply.
    pub reply_ms: u32,
    /// Turns per session.
    pub turns: usize,
    /// tokio worker threads.
    pub threads: usize,
}

/// The usage lines of the flags [`Load::parse`] reads (`KEY_ENV` stands for the key's
/// variable).
pub const LOAD_USAGE: &str = "  --key KEY            the only API key accepted (default: $KEY_ENV)
  --tls                serve wss:// with a generated CA (its path is stdout's second line)
  --greeting-ms MS     greeting length (default 2000)
  --listen-frames N    caller audio frames to wait for before each turn (default 250 = 5 s)
  --reply-ms MS        length of each spoken reply (default 3000)
  --turns N            caller turns + replies per session (default 720, about an hour)
  --threads N          tokio worker threads (default 1)";

impl Load {
    /// Parse `args`: the flags above here, any other through `other(flag, value)`
    /// (`value()` takes the flag's value), which says whether it knew the flag. The key
    /// defaults to `env_key`, read from `key_env`. `Err("")` asks for the usage text.
    pub fn parse(
        args: &[String],
        key_env: &str,
        env_key: Option<String>,
        mut other: impl FnMut(&str, &mut dyn FnMut() -> Result<String, String>) -> Result<bool, String>,
    ) -> Result<Load, String> {
        let mut load = Load {
            key: env_key.unwrap_or_default(),
            tls: false,
            greeting_ms: 2000,
            listen_frames: 250,
            reply_ms: 3000,
            turns: 720,
            threads: 1,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--tls" => load.tls = true,
                "-h" | "--help" => return Err(String::new()),
                "--key" => load.key = value()?,
                "--greeting-ms" => load.greeting_ms = number(flag, &value()?)?,
                "--listen-frames" => load.listen_frames = number(flag, &value()?)?,
                "--reply-ms" => load.reply_ms = number(flag, &value()?)?,
                "--turns" => load.turns = number(flag, &value()?)?,
                "--threads" => load.threads = number::<usize>(flag, &value()?)?.max(1),
                _ if other(flag, &mut value)? => {}
                _ => return Err(format!("unknown argument {flag:?}")),
            }
        }
        load.key = load.key.trim().to_owned();
        if load.key.is_empty() {
            return Err(format!("no key: pass --key KEY or set {key_env}"));
        }
        Ok(load)
    }
}

/// `value` of `flag` as a whole number of type `T`.
pub fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{flag}: {value:?} is not a whole number in range"))
}
