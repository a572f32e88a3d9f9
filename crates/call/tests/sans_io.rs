//! The core stays sans-IO: no file under `crates/call/src` reads a clock, sleeps, spawns,
//! or opens a socket or a file. (tokio cannot creep in unseen either: it is not a
//! dependency of this crate, so `use tokio` would not compile.)

use std::path::Path;

const FORBIDDEN: [&str; 9] = [
    "Instant::now",
    "SystemTime::now",
    "thread::sleep",
    "thread::spawn",
    "UdpSocket",
    "TcpStream",
    "std::fs",
    "File::",
    "tokio",
];

#[test]
fn the_core_reads_no_clock_and_does_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = 0;
    for entry in std::fs::read_dir(&src).expect("crates/call/src") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            files += 1;
            let text = std::fs::read_to_string(&path).expect("source");
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for word in FORBIDDEN {
                    assert!(
                        !code.contains(word),
                        "{}:{}: `{word}` in the sans-IO core: {line}",
                        path.display(),
                        n + 1
                    );
                }
            }
        }
    }
    assert!(files >= 8, "read {files} source files");
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).expect("manifest");
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|d| d.split("[dev-dependencies]").next())
        .unwrap_or("");
    assert!(!deps.contains("tokio"), "tokio is a dependency of the call core");
}
