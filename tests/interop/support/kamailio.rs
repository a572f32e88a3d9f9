//! Kamailio 5.6 as registrar (tests/kamailio/registrar.cfg) or as a PBX-like
//! registrar + proxy (tests/kamailio/pbx.cfg), one instance
//! per test: foreground (`-DD -E`), own process group, its own ports, ctl
//! socket and run directory; stopped with SIGTERM to the group on drop.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::logs;
use super::ports::{free_port, is_listening};
use super::process::Proc;
use super::{tests_dir, wait_until, RunDir, Tools};

/// Password for extension 9000, passed to the cfg as `-A AUTH_PASSWORD`.
pub const PASSWORD: &str = "kam-9000-Secret!";

/// Where the Debian package and common builds put the modules.
fn module_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("VOICE_UA_KAMAILIO_MODULES") {
        return Some(PathBuf::from(dir));
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        // Debian multiarch: /usr/lib/<triplet>/kamailio/modules
        for entry in entries.flatten() {
            candidates.push(entry.path().join("kamailio/modules"));
        }
    }
    candidates.extend(
        [
            "/usr/lib/kamailio/modules",
            "/usr/lib64/kamailio/modules",
            "/usr/local/lib64/kamailio/modules",
            "/usr/local/lib/kamailio/modules",
        ]
        .map(PathBuf::from),
    );
    candidates.into_iter().find(|dir| dir.join("registrar.so").is_file())
}

/// One xlog'ed REGISTER as Kamailio received it (`INTEROP-REGISTER|...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterSeen {
    pub call_id: String,
    pub cseq: u64,
    pub auth: bool,
    /// The Expires header, "<null>" when absent.
    pub expires: String,
    /// The Contact header, "<null>" when absent.
    pub contact: String,
    /// proto:ip:port it came from.
    pub src: String,
}

impl RegisterSeen {
    /// Whether this REGISTER asked to remove its binding (Expires: 0 or
    /// ;expires=0 on the Contact).
    pub fn is_removal(&self) -> bool {
        self.expires.trim() == "0"
            || self.contact.to_ascii_lowercase().split(';').any(|p| p.trim() == "expires=0")
            || self.contact.trim() == "*"
    }
}

/// A contact bound in the location table.
#[derive(Clone, Debug)]
pub struct Binding {
    pub address: String,
    /// Seconds left (kamcmd "Expires").
    pub expires: u64,
}

pub struct Kamailio {
    proc: Proc,
    pub port: u16,
    ctl: String,
    kamcmd: PathBuf,
}

impl Kamailio {
    /// Starts Kamailio listening on a fresh UDP+TCP port on 127.0.0.1;
    /// `max_expires` caps the granted expiry (registrar `max_expires`).
    pub fn start(run: &RunDir, tools: &Tools, max_expires: Option<u32>) -> Kamailio {
        Self::start_cfg(run, tools, "registrar.cfg", max_expires)
    }

    /// Like [`Kamailio::start`] with another script from `tests/kamailio/`
    /// (`pbx.cfg`: registrar + record-routing proxy).
    pub fn start_cfg(run: &RunDir, tools: &Tools, cfg_name: &str, max_expires: Option<u32>) -> Kamailio {
        let port = free_port();
        let cfg = tests_dir().join("kamailio").join(cfg_name);
        let mut ctl_path = run.file("kamailio-ctl.sock");
        if ctl_path.as_os_str().len() > 100 {
            // unix socket paths are limited to 108 bytes
            ctl_path = std::env::temp_dir().join(format!("vua-kam-{}-{port}.sock", std::process::id()));
        }
        let ctl = format!("unix:{}", ctl_path.display());
        let mut cmd = Command::new(tools.get("kamailio"));
        cmd.current_dir(run.path())
            .arg("-f")
            .arg(&cfg)
            .args(["-DD", "-E", "-n", "2", "-N", "2", "-m", "32", "-M", "8"])
            .arg("-Y")
            .arg(run.path())
            .arg("-w")
            .arg(run.path())
            .arg("-l")
            .arg(format!("udp:127.0.0.1:{port}"))
            .arg("-l")
            .arg(format!("tcp:127.0.0.1:{port}"))
            .arg("-A")
            .arg(format!("CTL_SOCK=\"{ctl}\""))
            .arg("-A")
            .arg(format!("AUTH_PASSWORD=\"{PASSWORD}\""));
        if let Some(max) = max_expires {
            cmd.arg("-A").arg(format!("MAX_EXPIRES={max}"));
        }
        if let Some(dir) = module_dir() {
            cmd.arg("-L").arg(dir);
        }
        let proc = Proc::spawn("kamailio", cmd, run, true);
        let mut kam = Kamailio { proc, port, ctl, kamcmd: tools.get("kamcmd").to_path_buf() };
        let ready = wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
            if !kam.proc.is_running() {
                return Some(false);
            }
            let up =
                is_listening(port, false) && is_listening(port, true) && kam.kamcmd(&["core.uptime"]).is_ok();
            up.then_some(true)
        });
        match ready {
            Some(true) => kam,
            Some(false) => {
                panic!("kamailio exited during start-up ({:?})\n{}", kam.proc.try_status(), kam.diag())
            }
            None => panic!("kamailio not ready within 15 s\n{}", kam.diag()),
        }
    }

    /// Runs `kamcmd -s <ctl> args...`; Err with its output on failure or
    /// when it printed an RPC error.
    pub fn kamcmd(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.kamcmd)
            .arg("-s")
            .arg(&self.ctl)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run kamcmd: {e}"))?;
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.success() && !text.trim_start().starts_with("error:") {
            Ok(text)
        } else {
            Err(text)
        }
    }

    /// The live contacts bound to `aor` (`ul.lookup location s:<aor>`);
    /// empty when the AOR is not in the table. Expired, not yet purged
    /// contacts are not counted.
    pub fn bindings(&self, aor: &str) -> Vec<Binding> {
        let text = match self.kamcmd(&["ul.lookup", "location", &format!("s:{aor}")]) {
            Ok(text) => text,
            Err(text) if text.contains("not found") => return Vec::new(),
            Err(text) => panic!("kamcmd ul.lookup failed: {text}\n{}", self.diag()),
        };
        parse_bindings(&text)
    }

    /// Every REGISTER Kamailio received so far, in arrival order.
    pub fn registers(&self) -> Vec<RegisterSeen> {
        self.tagged_lines("INTEROP-REGISTER").iter().filter_map(|line| parse_register_line(line)).collect()
    }

    /// The script's `TAG|...` lines (TAG and what follows it).
    pub fn tagged_lines(&self, tag: &str) -> Vec<String> {
        let marker = format!("{tag}|");
        logs::read(&self.proc.stderr)
            .lines()
            .filter_map(|line| line.find(&marker).map(|at| line[at..].to_string()))
            .collect()
    }

    /// The script's INTEROP lines and the log tail, for failure messages.
    pub fn diag(&self) -> String {
        let text = logs::read(&self.proc.stderr);
        let script: Vec<&str> = text.lines().filter_map(|l| l.find("INTEROP-").map(|at| &l[at..])).collect();
        format!(
            "--- kamailio script log ({} lines) ---\n{}\n{}",
            script.len(),
            script.join("\n"),
            logs::tail(&self.proc.stderr, 15)
        )
    }
}

fn parse_register_line(line: &str) -> Option<RegisterSeen> {
    let mut seen = RegisterSeen {
        call_id: String::new(),
        cseq: 0,
        auth: false,
        expires: String::new(),
        contact: String::new(),
        src: String::new(),
    };
    for part in line.split('|').skip(1) {
        let (key, value) = part.split_once('=')?;
        match key {
            "ci" => seen.call_id = value.to_string(),
            "cseq" => seen.cseq = value.trim().parse().ok()?,
            "auth" => seen.auth = value == "yes",
            "expires" => seen.expires = value.to_string(),
            "contact" => seen.contact = value.to_string(),
            "src" => seen.src = value.to_string(),
            _ => {}
        }
    }
    Some(seen)
}

fn parse_bindings(text: &str) -> Vec<Binding> {
    let mut out = Vec::new();
    let mut address: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(a) = line.strip_prefix("Address:") {
            address = Some(a.trim().to_string());
        } else if let Some(e) = line.strip_prefix("Expires:") {
            let e = e.trim();
            let expires =
                if e == "permanent" { Some(u64::MAX) } else { e.parse::<u64>().ok().filter(|&s| s > 0) };
            if let (Some(a), Some(expires)) = (address.take(), expires) {
                out.push(Binding { address: a, expires });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_xlog_register_line() {
        let line = "INTEROP-REGISTER|ci=abc@x|cseq=7|auth=yes|expires=<null>|contact=<sip:9000@127.0.0.1:5070>;expires=0|src=udp:127.0.0.1:5070";
        let seen = parse_register_line(line).expect("well-formed line");
        assert_eq!(seen.call_id, "abc@x");
        assert_eq!(seen.cseq, 7);
        assert!(seen.auth);
        assert!(seen.is_removal());
        assert_eq!(seen.src, "udp:127.0.0.1:5070");
    }

    #[test]
    fn parses_ul_lookup_output() {
        let text = "{\n\tAoR: 9000\n\tContacts: {\n\t\tContact: {\n\t\t\tAddress: sip:9000@127.0.0.1:25070;transport=UDP\n\t\t\tExpires: 20\n\t\t\tQ: -1\n\t\t}\n\t\tContact: {\n\t\t\tAddress: sip:9000@127.0.0.1:1\n\t\t\tExpires: expired\n\t\t}\n\t}\n}\n";
        let b = parse_bindings(text);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].address, "sip:9000@127.0.0.1:25070;transport=UDP");
        assert_eq!(b[0].expires, 20);
    }
}
