//! sipp 3.6 as a scripted peer (scenarios in tests/sipp/), run in the
//! foreground as a child with its pid (never `-bg`, which loses the exit
//! code). Everything is bound to 127.0.0.1: SIP (`-i`), media (`-mi`) and
//! sipp's UDP control socket (`-ci`, which otherwise binds 0.0.0.0).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use super::logs;
use super::ports::{free_port, is_listening};
use super::process::Proc;
use super::{tests_dir, wait_until, RunDir};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// sipp's `-t` value: one socket (u1 / t1).
    fn sipp_flag(self) -> &'static str {
        match self {
            Transport::Udp => "u1",
            Transport::Tcp => "t1",
        }
    }

    /// voice-ua's `--transport` value.
    pub fn ua_flag(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

pub fn scenario(name: &str) -> PathBuf {
    tests_dir().join("sipp").join(name)
}

/// A caller scenario for [`Sipp::start_call_uac`].
pub struct UacCall<'a> {
    pub label: &'a str,
    /// Path under tests/sipp/, e.g. "calls/uac_call.xml".
    pub scenario: &'a str,
    pub local_ip: &'a str,
    pub local_port: u16,
    pub media_port: u16,
    pub remote_port: u16,
    pub keys: &'a [(&'a str, &'a str)],
    pub extra: &'a [&'a str],
}

/// A sipp instance running one scenario.
pub struct Sipp {
    proc: Proc,
    pub port: u16,
    errors: PathBuf,
    log: PathBuf,
    messages: PathBuf,
}

#[allow(clippy::too_many_arguments)]
fn base_command(
    sipp: &Path,
    run: &RunDir,
    label: &str,
    scenario_file: &Path,
    transport: Transport,
    local_ip: &str,
    port: u16,
    keys: &[(&str, &str)],
) -> (Command, PathBuf, PathBuf, PathBuf) {
    let errors = run.file(&format!("{label}.errors.log"));
    let log = run.file(&format!("{label}.actions.log"));
    let messages = run.file(&format!("{label}.messages.log"));
    let mut cmd = Command::new(sipp);
    cmd.current_dir(run.path())
        .arg("-sf")
        .arg(scenario_file)
        .args(["-i", local_ip, "-mi", local_ip, "-ci", local_ip])
        .arg("-p")
        .arg(port.to_string())
        .args(["-t", transport.sipp_flag(), "-m", "1", "-nostdin"])
        // no BYE for an aborted "call": these are REGISTER transactions
        .args(["-default_behaviors", "all,-bye"])
        // global bound: sipp quits (and fails) after 30 s whatever happens
        .args(["-timeout", "30s", "-timeout_error"])
        .arg("-trace_err")
        .arg("-error_file")
        .arg(&errors)
        .arg("-trace_logs")
        .arg("-log_file")
        .arg(&log)
        .arg("-trace_msg")
        .arg("-message_file")
        .arg(&messages);
    for (key, value) in keys {
        cmd.arg("-key").arg(key).arg(value);
    }
    (cmd, errors, log, messages)
}

impl Sipp {
    /// Starts a registrar scenario (UAS) on a fresh port and waits until it
    /// listens. `keys` become `-key NAME VALUE` (e.g. auth_user/auth_pw).
    pub fn start_uas(
        run: &RunDir,
        sipp: &Path,
        scenario_name: &str,
        transport: Transport,
        keys: &[(&str, &str)],
    ) -> Sipp {
        let port = free_port();
        let (cmd, errors, log, messages) =
            base_command(sipp, run, "sipp-uas", &scenario(scenario_name), transport, "127.0.0.1", port, keys);
        let mut uas = Sipp { proc: Proc::spawn("sipp-uas", cmd, run, true), port, errors, log, messages };
        let listening = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            if !uas.proc.is_running() {
                return Some(false);
            }
            is_listening(port, transport == Transport::Tcp).then_some(true)
        });
        if listening != Some(true) {
            panic!(
                "sipp {scenario_name} did not start listening on 127.0.0.1:{port} ({:?})\n{}",
                uas.proc.try_status(),
                uas.diag()
            );
        }
        uas
    }

    /// Runs a UA scenario (UAC) from `local_port` against `remote_port` to
    /// completion (at most 40 s); `extra` are more sipp arguments (-au, -ap,
    /// -s, -key ...). Returns the exit status and the instance.
    pub fn run_uac(
        run: &RunDir,
        sipp: &Path,
        label: &str,
        scenario_name: &str,
        transport: Transport,
        (local_port, remote_port): (u16, u16),
        extra: &[&str],
    ) -> (ExitStatus, Sipp) {
        let (mut cmd, errors, log, messages) =
            base_command(sipp, run, label, &scenario(scenario_name), transport, "127.0.0.1", local_port, &[]);
        cmd.args(["-recv_timeout", "5000"]).args(extra).arg(format!("127.0.0.1:{remote_port}"));
        let mut uac =
            Sipp { proc: Proc::spawn(label, cmd, run, true), port: local_port, errors, log, messages };
        let status = uac
            .wait(Duration::from_secs(40))
            .unwrap_or_else(|| panic!("sipp {label} still running after 40 s\n{}", uac.diag()));
        (status, uac)
    }

    /// Starts a caller scenario (UAC) without waiting for it: SIP and media
    /// bound to `local_ip` (127.0.0.1, or 127.0.0.2 as a second source
    /// address), `-mp media_port`, aimed at 127.0.0.1:`remote_port`.
    /// `keys` become `-key NAME VALUE`, `extra` more sipp arguments (they
    /// come after the defaults, so `-default_behaviors all` or `-timeout`
    /// there win).
    pub fn start_call_uac(run: &RunDir, sipp: &Path, call: &UacCall<'_>) -> Sipp {
        let (mut cmd, errors, log, messages) = base_command(
            sipp,
            run,
            call.label,
            &scenario(call.scenario),
            Transport::Udp,
            call.local_ip,
            call.local_port,
            call.keys,
        );
        cmd.arg("-mp").arg(call.media_port.to_string()).args(call.extra);
        cmd.arg(format!("127.0.0.1:{}", call.remote_port));
        Sipp { proc: Proc::spawn(call.label, cmd, run, true), port: call.local_port, errors, log, messages }
    }

    /// The `-trace_msg` file: every SIP message sipp sent or received.
    pub fn messages_file(&self) -> &Path {
        &self.messages
    }

    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.proc.wait_timeout(timeout)
    }

    /// Lines written by the scenario's `<log>` actions.
    pub fn log_lines(&self) -> Vec<String> {
        logs::read(&self.log).lines().map(str::to_string).collect()
    }

    /// Errors, scenario log and message trace, for failure messages.
    pub fn diag(&self) -> String {
        format!(
            "{}{}{}{}",
            logs::tail(&self.errors, 40),
            logs::tail(&self.log, 40),
            logs::tail(&self.messages, 80),
            logs::tail(&self.proc.stderr, 10)
        )
    }
}
