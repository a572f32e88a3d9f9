//! `gate-backend [--addr IP:PORT]`: the example gate concierge backend.
//!
//! The address comes from `--addr`, then `GATE_BACKEND_ADDR`, then 127.0.0.1:8088.
//! `GATE_BACKEND_API_KEY` (or `--api-key`, which shows in `ps`) makes every function
//! endpoint require that value in an `X-Api-Key` header.

use std::process::ExitCode;

use gate_backend::{serve, Config, DEFAULT_ADDR};

const USAGE: &str = "\
usage: gate-backend [--addr IP:PORT] [--api-key KEY] [--quiet]

Example HTTP backend for voice-ua's gate concierge: POST /<function> with the
function arguments as JSON; GET /health.

  --addr IP:PORT   listen address (env GATE_BACKEND_ADDR; default 127.0.0.1:8088)
  --api-key KEY    require this X-Api-Key (env GATE_BACKEND_API_KEY; prefer the env)
  --quiet          no log line per request";

#[tokio::main]
async fn main() -> ExitCode {
    let mut addr = std::env::var("GATE_BACKEND_ADDR").ok().filter(|a| !a.is_empty());
    let mut config =
        Config { api_key: std::env::var("GATE_BACKEND_API_KEY").ok().filter(|k| !k.is_empty()), log: true };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" | "--api-key" => {
                let Some(value) = args.next() else {
                    eprintln!("gate-backend: {arg} needs a value\n{USAGE}");
                    return ExitCode::from(2);
                };
                if arg == "--addr" {
                    addr = Some(value);
                } else {
                    config.api_key = Some(value);
                }
            }
            "--quiet" => config.log = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("gate-backend: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let addr = addr.unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("gate-backend: cannot listen on {addr}: {e}; pick another address with --addr");
            return ExitCode::from(2);
        }
    };
    let shown = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
    let key = if config.api_key.is_some() { "X-Api-Key required" } else { "no API key" };
    eprintln!("gate-backend listening on http://{shown} ({key})");
    tokio::select! {
        () = serve(listener, config) => {}
        _ = tokio::signal::ctrl_c() => eprintln!("gate-backend stopping"),
    }
    ExitCode::SUCCESS
}
