//! voice-ua: the command line. Parses flags, loads the configuration, sets up
//! logging, and runs a command: `register` (be the extension until SIGINT/SIGTERM),
//! `check` (validate and print the effective settings) or `calls` (list call records).

mod call;
mod config;
mod http;
mod metrics;
mod records_cli;

use clap::{Parser, Subcommand};
use config::{AgentChoice, LogFormat, Overrides};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;
use voice_ua_agent::{AgentProvider, DeepgramProvider, EchoProvider, OpenAiProvider, WebSocketProvider};
use voice_ua_media::JitterConfig;
use voice_ua_sip::{RegStatus, SipUa};

const EXAMPLES: &str = "\
Examples:
  voice-ua register --ext 9000 --pbx 192.168.1.10        (password from VOICE_UA_SIP_PASSWORD)
  voice-ua register --config /etc/voice-ua/voice-ua.toml
  voice-ua check --config conf/voice-ua.example.toml
  voice-ua calls --last 5                                (the newest call records)
  RUST_LOG=debug voice-ua --log-format json register --ext 9000 --pbx ucm.lan:5060";

#[derive(Parser, Debug)]
#[command(name = "voice-ua", version, about = "An AI voice agent as a drop-in extension on a SIP PBX", after_help = EXAMPLES)]
struct Cli {
    /// Configuration file (default: ./voice-ua.toml, then /etc/voice-ua/voice-ua.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    /// Log filter, RUST_LOG syntax (RUST_LOG itself wins when set), e.g. "info" or "debug,rsipstack=info".
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Register as an extension on the PBX and stay registered until stopped.
    #[command(after_help = EXAMPLES)]
    Register(RegisterArgs),
    /// Validate the configuration and print the effective settings (secrets masked).
    Check(CheckArgs),
    /// List the newest call records (works while the service runs).
    Calls(records_cli::CallsArgs),
}

#[derive(clap::Args, Debug, Default)]
struct CheckArgs {
    #[command(flatten)]
    base: RegisterArgs,
    /// Also connect to the agent (Deepgram or OpenAI) and check that the key and settings work.
    #[arg(long)]
    agent: bool,
}

#[derive(clap::Args, Debug, Default)]
struct RegisterArgs {
    /// Extension to register as, e.g. 9000.
    #[arg(long = "ext", value_name = "EXTENSION")]
    ext: Option<String>,
    /// The PBX (registrar): HOST or HOST:PORT.
    #[arg(long, value_name = "HOST[:PORT]")]
    pbx: Option<String>,
    /// SIP password. Prefer VOICE_UA_SIP_PASSWORD or sip.password_file: argv is visible to other users.
    #[arg(long, value_name = "P")]
    password: Option<String>,
    /// Authentication user, when it differs from the extension.
    #[arg(long, value_name = "U")]
    auth_user: Option<String>,
    /// Only answer challenges for this realm.
    #[arg(long, value_name = "R")]
    realm: Option<String>,
    /// Signalling transport: udp or tcp.
    #[arg(long, value_name = "udp|tcp")]
    transport: Option<String>,
    /// Local address to listen on [default: 0.0.0.0:5060].
    #[arg(long, value_name = "IP:PORT")]
    bind: Option<String>,
    /// Address to advertise in Contact/Via when it differs from the bound one.
    #[arg(long, value_name = "IP")]
    public_addr: Option<String>,
    /// Registration lifetime to ask for, seconds [default: 300].
    #[arg(long, value_name = "SECONDS")]
    expires: Option<u32>,
}

impl RegisterArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            extension: self.ext.clone(),
            pbx: self.pbx.clone(),
            password: self.password.clone(),
            auth_user: self.auth_user.clone(),
            realm: self.realm.clone(),
            transport: self.transport.clone(),
            bind: self.bind.clone(),
            public_addr: self.public_addr.clone(),
            expires: self.expires,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("voice-ua: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let args = match &cli.command {
        Command::Register(a) => a,
        Command::Check(c) => &c.base,
        // Reads the records only: no SIP settings, password or agent needed.
        Command::Calls(a) => return records_cli::run(a, cli.config.as_deref()),
    };
    let (path, file) = config::load(cli.config.as_deref())?;
    let checked = config::check(path, &file, &args.overrides(), cli.log_format, cli.log.clone())?;
    match cli.command {
        Command::Check(check) => {
            print!("{}", checked.describe());
            if check.agent {
                voice_ua_agent::install_crypto_provider();
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                let checked = match &checked.agent {
                    AgentChoice::Deepgram(d) => rt.block_on(voice_ua_agent::check_key(d)).map(|id| {
                        format!("OK (Deepgram accepted the key and the Settings; request {id})")
                    }),
                    AgentChoice::OpenAi(o) => rt.block_on(voice_ua_agent::openai::check_key(o)).map(|id| {
                        format!("OK (OpenAI accepted the key and the session.update; session {id})")
                    }),
                    AgentChoice::Echo => anyhow::bail!(
                        "--agent checks the agent's key, but none is configured (DEEPGRAM_API_KEY, OPENAI_API_KEY or agent.key_file)"
                    ),
                    AgentChoice::WebSocket(_) => anyhow::bail!(
                        "--agent checks a provider's API key; a WebSocket bot has none to check (place a test call instead)"
                    ),
                    AgentChoice::Pipeline(p) => rt.block_on(voice_ua_agent::pipeline::check(p)).map(|stages| {
                        let each: Vec<String> = stages
                            .iter()
                            .map(|s| format!("{} {} in {} ms", s.stage, s.answer, s.took.as_millis()))
                            .collect();
                        format!("OK (each server answered: {})", each.join("; "))
                    }),
                };
                match checked {
                    Ok(line) => println!("agent check:        {line}"),
                    Err(e) => anyhow::bail!("agent check failed: {e}"),
                }
            }
            println!("configuration OK");
            Ok(ExitCode::SUCCESS)
        }
        Command::Register(_) => {
            init_logging(checked.log_format, checked.log_filter);
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            let config::Checked { sip, calls, agent, fallback, http, records, privacy, .. } = checked;
            voice_ua_agent::privacy::set_log_text(privacy.log_transcripts);
            rt.block_on(register(sip, calls, agent, (fallback, privacy), http, records))
        }
        Command::Calls(args) => records_cli::run(&args, cli.config.as_deref()),
    }
}

/// Open the call records (and the recorder) off the async threads. A store that cannot
/// be opened is one error line: the phone keeps working, without records.
async fn open_records(
    records: Option<config::RecordSettings>,
) -> (Option<voice_ua_records::RecordWriter>, Option<voice_ua_records::Recorder>) {
    let Some(settings) = records else {
        tracing::info!("call records are off (records.path = \"\")");
        return (None, None);
    };
    let opened = tokio::task::spawn_blocking(move || {
        let path = settings.path.clone();
        let recordings = settings.retention.recordings_dir.clone();
        let store =
            voice_ua_records::RecordStore::open(&path, settings.retention).map_err(|e| e.to_string())?;
        let interrupted = store.interrupted_on_open();
        let writer = store.into_writer().map_err(|e| format!("cannot start the records writer: {e}"))?;
        let recorder = match recordings {
            Some(dir) => match voice_ua_records::Recorder::start(&dir) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::error!("calls are not recorded: {e}");
                    None
                }
            },
            None => None,
        };
        Ok::<_, String>((path, interrupted, writer, recorder))
    })
    .await;
    match opened {
        Ok(Ok((path, interrupted, writer, recorder))) => {
            tracing::info!(path = %path.display(), interrupted, recordings = recorder.is_some(), "call records open");
            (Some(writer), recorder)
        }
        Ok(Err(e)) => {
            tracing::error!("calls are answered but not recorded: {e}");
            (None, None)
        }
        Err(e) => {
            tracing::error!("calls are answered but not recorded: the records task failed: {e}");
            (None, None)
        }
    }
}

/// Flush and close the records writer, then the recorder (blocking joins, off the async
/// threads). The records get until `deadline`: a writer that has not committed every
/// queued record by then (a stalled disk) is left behind, not waited for.
async fn close_records(
    writer: Option<voice_ua_records::RecordWriter>,
    recorder: Option<voice_ua_records::Recorder>,
    deadline: tokio::time::Instant,
) {
    let budget = deadline.saturating_duration_since(tokio::time::Instant::now());
    let _ = tokio::task::spawn_blocking(move || {
        if let Some(w) = writer {
            if w.flush_within(budget) {
                let stats = w.close();
                tracing::info!(
                    written = stats.written,
                    dropped = stats.dropped,
                    failed = stats.failed,
                    "call records closed"
                );
            } else {
                tracing::error!(
                    budget_ms = budget.as_millis() as u64,
                    "call records not all written before the shutdown deadline (is the disk stalled?)"
                );
            }
        }
        if let Some(r) = recorder {
            r.close();
        }
    })
    .await;
}

/// SIGTERM/SIGINT to exit, everything included: BYEs, records, un-register.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(2);

/// The calls' share of [`SHUTDOWN_DEADLINE`]: each sends its BYE at once and waits a
/// little for the answer; a call still running after this is cut off (its record says
/// ended by shutdown all the same).
const SHUTDOWN_CALLS: Duration = Duration::from_millis(700);

/// Targets that log what goes over the agent's connection: tungstenite logs the
/// WebSocket handshake request, `Authorization: Token <key>` included, at trace, and the
/// TLS and HTTP crates log handshake details (hyper, behind the pipeline's and the tools'
/// requests with their `Authorization` headers, is built without its tracing feature;
/// capped all the same). Capped at warn whatever RUST_LOG, `--log` or `log.filter` say,
/// naming them included: a secret never reaches the log.
const SECRET_BEARING_TARGETS: [&str; 9] = [
    "tungstenite",
    "tokio_tungstenite",
    "rustls",
    "tokio_rustls",
    "webpki",
    "rustls_pki_types",
    "http",
    "hyper",
    "hyper_util",
];

/// The cap on [`SECRET_BEARING_TARGETS`]: a filter that passes everything else.
fn secret_cap() -> tracing_subscriber::filter::Targets {
    SECRET_BEARING_TARGETS
        .iter()
        .fold(tracing_subscriber::filter::Targets::new(), |t, target| {
            t.with_target(*target, tracing::Level::WARN)
        })
        .with_default(tracing::Level::TRACE)
}

/// Install the subscriber with the filter `run` has already parsed and checked, under
/// the [`secret_cap`].
fn init_logging(format: LogFormat, filter: tracing_subscriber::EnvFilter) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let registry = tracing_subscriber::registry().with(secret_cap()).with(filter);
    match format {
        LogFormat::Human => registry.with(fmt).init(),
        LogFormat::Json => registry.with(fmt.json()).init(),
    }
}

async fn register(
    mut settings: voice_ua_sip::SipSettings,
    calls: config::CallSettings,
    agent_choice: AgentChoice,
    (fallback, privacy): (config::Fallback, config::Privacy),
    http_listen: Option<std::net::SocketAddr>,
    records: Option<config::RecordSettings>,
) -> anyhow::Result<ExitCode> {
    let records_wanted = records.is_some();
    let (record_writer, recorder) = open_records(records).await;
    settings.accept_calls = true;
    settings.allow = calls.allow.clone();
    settings.max_calls = calls.max_calls;
    let domain = settings.domain.clone().unwrap_or_else(|| settings.pbx.clone());
    let extension = settings.extension.clone();
    let bind_ip = settings.bind.ip();
    let pbx_ip = call::resolve_ip(&settings.pbx).await;
    let mut agent = SipUa::start(settings).await?;
    let metrics = Arc::new(metrics::Metrics::new());
    metrics.watch_refusals(agent.refusals());
    if let Some(w) = &record_writer {
        metrics.watch_records(w.clone());
    } else if records_wanted {
        metrics.records_not_opened();
    }
    let mut reg_status = agent.status();
    let reg_metrics = metrics.clone();
    let reg_watch = tokio::spawn(async move {
        loop {
            reg_metrics.on_reg_status(&reg_status.borrow_and_update().clone());
            if reg_status.changed().await.is_err() {
                break;
            }
        }
    });
    let http_server = match http_listen {
        None => None,
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(%addr, "serving /metrics and /healthz over HTTP");
                Some(tokio::spawn(http::serve(l, metrics.clone(), agent.status())))
            }
            // Monitoring must not stop the phone: log it and carry on.
            Err(e) => {
                tracing::error!("cannot listen for HTTP on {addr}: {e}; set http.listen to a free IP:PORT, or \"\" to turn it off");
                None
            }
        },
    };
    let mut incoming = agent.take_calls().ok_or_else(|| anyhow::anyhow!("the SIP agent offers no calls"))?;
    let jitter = JitterConfig {
        start_delay: calls.jitter_start,
        min_delay: Duration::from_millis(20).min(calls.jitter_start),
        max_delay: calls.jitter_max,
    };
    let cfg = Arc::new(call::CallConfig {
        core: Arc::new(voice_ua_call::CallSettings {
            codecs: calls.codecs.clone(),
            media_timeout: calls.media_timeout,
            ring: calls.ring,
            ack_wait: voice_ua_sip::ACK_WAIT,
            jitter,
            domain,
            fallback,
            consent_prompt: privacy.consent_prompt,
            log_transcripts: privacy.log_transcripts,
        }),
        media_ip: agent.contact().ip(),
        bind_ip,
        pbx_ip,
        ports: call::PortPool::new(calls.rtp_ports.0, calls.rtp_ports.1),
        metrics,
        records: record_writer.clone(),
        recorder: recorder.clone(),
        extension,
        agent_name: agent_choice.name(),
    });
    let provider: Arc<dyn AgentProvider> = match agent_choice {
        AgentChoice::Echo => {
            tracing::info!("no agent key configured: calls are answered by the echo agent (it repeats what the caller says)");
            Arc::new(EchoProvider::default())
        }
        AgentChoice::Deepgram(d) => {
            voice_ua_agent::install_crypto_provider();
            tracing::info!(url = %d.url, "calls are answered by the Deepgram Voice Agent");
            Arc::new(DeepgramProvider::new(*d)?)
        }
        AgentChoice::WebSocket(w) => {
            tracing::info!(url = %w.url, dialect = %w.dialect, "calls are answered by the WebSocket bot");
            Arc::new(WebSocketProvider::new(*w)?)
        }
        AgentChoice::OpenAi(o) => {
            voice_ua_agent::install_crypto_provider();
            tracing::info!(url = %o.request_url(), voice = %o.voice, "calls are answered by the OpenAI Realtime API");
            Arc::new(OpenAiProvider::new(*o)?)
        }
        AgentChoice::Pipeline(p) => {
            tracing::info!(
                stt = %p.stt.url, llm = %p.llm.url, model = %p.llm.model, tts = %p.tts.url,
                "calls are answered by the pipeline (STT, LLM, TTS)"
            );
            Arc::new(voice_ua_agent::pipeline::PipelineProvider::new(*p)?)
        }
    };
    let stop_calls = tokio_util::sync::CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            r = &mut signal => { r?; break; }
            c = incoming.recv() => {
                let Some(c) = c else { break };
                let span = tracing::info_span!("call", id = %c.info.sip_call_id, from = %c.info.from);
                span.in_scope(|| tracing::info!(source = %c.info.source, "incoming call"));
                tasks.spawn(call::run_call(c, cfg.clone(), provider.clone(), stop_calls.clone()).instrument(span));
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tracing::info!(calls = tasks.len(), "stopping: hanging up calls, then un-registering");
    let started = tokio::time::Instant::now();
    let deadline = started + SHUTDOWN_DEADLINE - Duration::from_millis(100);
    stop_calls.cancel();
    let _ = tokio::time::timeout_at(started + SHUTDOWN_CALLS, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if !tasks.is_empty() {
        tracing::warn!(calls = tasks.len(), "calls still ending at the shutdown deadline: cut off");
        // Dropping a call's task hands its record (ended by shutdown) to the writer.
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    // Every call's record is on disk before the process goes; the un-register meanwhile
    // (it ends by itself within the deadline).
    let (_, unregistered) = tokio::join!(close_records(record_writer, recorder, deadline), agent.shutdown());
    match unregistered {
        RegStatus::Stopped => {}
        other => tracing::warn!(?other, "stopped before the un-register finished"),
    }
    reg_watch.abort();
    if let Some(h) = http_server {
        h.abort();
    }
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
