//! Harness shared by the interop tests: tool discovery, run directories,
//! polling, and the modules driving each process.

pub mod calls;
pub mod digest;
pub mod kamailio;
pub mod logs;
pub mod ports;
pub mod process;
pub mod rtp;
pub mod sipp;
pub mod siptrace;
pub mod speech;
pub mod voice_ua;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The PBX extension every test registers.
pub const EXT: &str = "9000";

/// Env var that turns "tools missing, SKIP" into a test failure.
pub const REQUIRE_ENV: &str = "VOICE_UA_REQUIRE_INTEROP";

/// This crate's directory (`tests/`), where the peers' configs live.
pub fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Finds an executable on `PATH`, then in the sbin directories (kamailio and
/// kamcmd live in /usr/sbin, which is not on every user's `PATH`).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// The external tools a test needs, by name.
pub struct Tools {
    found: Vec<(String, PathBuf)>,
}

impl Tools {
    pub fn get(&self, name: &str) -> &Path {
        self.found
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.as_path())
            .unwrap_or_else(|| panic!("tool {name} was not requested by this test"))
    }
}

/// Returns the tools, or `None` after a loud SKIP line when one is missing;
/// panics instead when `VOICE_UA_REQUIRE_INTEROP=1`.
pub fn require_tools(test: &str, names: &[&str]) -> Option<Tools> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        match find_tool(name) {
            Some(path) => found.push((name.to_string(), path)),
            None => missing.push(*name),
        }
    }
    if missing.is_empty() {
        return Some(Tools { found });
    }
    let what = format!(
        "{test}: interop tool(s) not found: {} (Debian packages: kamailio, sip-tester)",
        missing.join(", ")
    );
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        panic!("{what}; {REQUIRE_ENV}=1 so this is a failure");
    }
    eprintln!("\n*** SKIP *** {what}; set {REQUIRE_ENV}=1 to make this fail\n");
    None
}

/// A fresh directory for one test run: peers' logs, sipp traces, the UA's
/// working directory. Removed when the test passes, kept (and its path
/// printed) when it fails or when `VOICE_UA_INTEROP_KEEP=1`.
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    pub fn new(test: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join("voice-ua-interop").join(format!("{test}-{}-{n}", std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path).unwrap_or_else(|e| panic!("cannot clean {}: {e}", path.display()));
        }
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        RunDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// A new empty subdirectory.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let dir = self.path.join(name);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        dir
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let keep = std::env::var("VOICE_UA_INTEROP_KEEP").is_ok_and(|v| v == "1");
        if std::thread::panicking() || keep {
            eprintln!("interop: run directory kept for inspection: {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// A Python venv's interpreter, made by `support/<script>` (which prints its path last),
/// once per test process through `cell`; `None` after a SKIP line naming `what` when it
/// cannot be made, a panic instead under `VOICE_UA_REQUIRE_INTEROP=1`.
pub fn venv_python(
    test: &str,
    script: &str,
    what: &str,
    cell: &'static std::sync::OnceLock<Result<PathBuf, String>>,
) -> Option<PathBuf> {
    let found = cell.get_or_init(|| {
        let script = format!("{}/interop/support/{script}", env!("CARGO_MANIFEST_DIR"));
        let out = std::process::Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|e| format!("cannot run {script}: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        match stdout.lines().last().map(PathBuf::from) {
            Some(p) if out.status.success() && p.is_file() => Ok(p),
            _ => Err(format!("{script} failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
        }
    });
    match found {
        Ok(p) => Some(p.clone()),
        Err(why) if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") => {
            panic!("{test}: no {what} venv: {why}; {REQUIRE_ENV}=1 so this is a failure")
        }
        Err(why) => {
            eprintln!("\n*** SKIP *** {test}: no {what} venv: {why}\n");
            None
        }
    }
}

/// Calls `probe` every `every` until it returns `Some` or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, every: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// True when `text` names `127.0.0.1:<port>` (and not a longer port number).
pub fn names_loopback_port(text: &str, port: u16) -> bool {
    let needle = format!("127.0.0.1:{port}");
    text.match_indices(&needle)
        .any(|(at, _)| !text[at + needle.len()..].chars().next().is_some_and(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::{find_tool, names_loopback_port};

    #[test]
    fn finds_tools_on_path_only_when_present() {
        assert!(find_tool("sh").is_some());
        assert!(find_tool("voice-ua-interop-no-such-tool").is_none());
    }

    #[test]
    fn loopback_port_match_is_exact() {
        assert!(names_loopback_port("sip:9000@127.0.0.1:5070;transport=udp", 5070));
        assert!(names_loopback_port("<sip:9000@127.0.0.1:5070>", 5070));
        assert!(!names_loopback_port("sip:9000@127.0.0.1:50701", 5070));
        assert!(!names_loopback_port("sip:9000@127.0.0.1:5071", 5070));
    }
}
