//! What a fake server's binary does around its server (`fake-deepgram`, and the fake
//! bots' `fake-bot`): the exit codes of its command line, the runtime, the URL on stdout
//! and the wait for SIGTERM or SIGINT.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// Run a fake's `main`: `parsed` is its options (`Err("")` asks for `usage`, another
/// `Err` is a usage error, status 2), then `run` on a runtime of `threads` workers.
pub fn main<O, F>(name: &str, usage: &str, parsed: Result<O, String>, threads: usize, run: F) -> ExitCode
where
    F: FnOnce(O) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>>>>,
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
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("{name}: cannot start the tokio runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The URL as stdout's first line, the test CA's path (wss://) as its second.
pub fn announce(url: &str, ca_file: Option<&Path>) -> Result<(), String> {
    let mut lines = format!("{url}\n");
    if let Some(ca) = ca_file {
        lines.push_str(&format!("{}\n", ca.display()));
    }
    let mut out = std::io::stdout().lock();
    out.write_all(lines.as_bytes()).and_then(|()| out.flush()).map_err(|e| format!("stdout: {e}"))
}

/// Call `report` every 500 ms until SIGTERM or SIGINT, then once more.
pub async fn until_signal(mut report: impl FnMut()) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};

    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => report(),
        }
    }
    report();
    Ok(())
}

/// Log the sessions in `records` that ended since `from` (one `describe` line each on
/// stderr); the new count.
pub fn report<R>(records: &[R], from: usize, describe: impl Fn(usize, &R) -> String) -> usize {
    for (i, r) in records.iter().enumerate().skip(from) {
        eprintln!("{}", describe(i + 1, r));
    }
    records.len().max(from)
}
