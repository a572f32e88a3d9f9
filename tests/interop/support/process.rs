//! Child processes that are always stopped: `Proc` kills its child (and,
//! for peers started in their own process group, the whole group) on drop,
//! so a failing or panicking test leaves nothing running.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::RunDir;

pub struct Proc {
    name: String,
    child: Child,
    own_group: bool,
    status: Option<ExitStatus>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdin closed and stdout/stderr captured into
    /// `<name>.stdout.log` / `<name>.stderr.log` in the run directory.
    /// With `own_group` the child leads a new process group, and stopping it
    /// signals the whole group (Kamailio forks workers).
    pub fn spawn(name: &str, mut cmd: Command, run: &RunDir, own_group: bool) -> Proc {
        use std::os::unix::process::CommandExt;
        let stdout = run.file(&format!("{name}.stdout.log"));
        let stderr = run.file(&format!("{name}.stderr.log"));
        let out = File::create(&stdout).expect("create a stdout log file");
        let err = File::create(&stderr).expect("create a stderr log file");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        if own_group {
            cmd.process_group(0);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc { name: name.to_string(), child, own_group, status: None, stdout, stderr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the child has exited (never blocks).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap_or_else(|e| panic!("waiting for {}: {e}", self.name));
        }
        self.status
    }

    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Waits up to `timeout` for the child to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (e.g. "TERM") to the child's pid only, with kill(1).
    /// Does nothing once the child has been reaped (its pid may be reused).
    pub fn signal(&mut self, signal: &str) {
        if self.is_running() {
            send_signal(signal, &self.child.id().to_string());
        }
    }

    fn signal_all(&mut self, signal: &str) {
        if !self.is_running() {
            return;
        }
        if self.own_group {
            send_signal(signal, &format!("-{}", self.child.id()));
        } else {
            send_signal(signal, &self.child.id().to_string());
        }
    }

    /// TERM, up to 3 s grace, then KILL.
    pub fn stop(&mut self) {
        self.signal_all("TERM");
        if self.wait_timeout(Duration::from_secs(3)).is_none() {
            eprintln!("interop: {} ignored SIGTERM for 3 s, killing it", self.name);
            self.signal_all("KILL");
            let _ = self.child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn send_signal(signal: &str, target: &str) {
    let result = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(target)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Err(e) = result {
        eprintln!("interop: kill -{signal} {target} failed to run: {e}");
    }
}
