//! The command line as a user meets it: `check` prints the effective settings with
//! secrets masked, and every mistake is one line on stderr with a non-zero exit.

use std::path::PathBuf;
use std::process::{Command, Output};

fn voice_ua(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voice-ua"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("VOICE_UA_SIP_PASSWORD")
        .env_remove("RUST_LOG")
        .env_remove("DEEPGRAM_API_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("voice-ua runs")
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("voice-ua-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn check_prints_effective_settings_with_the_password_masked() {
    let dir = temp_dir("ok");
    let cfg = dir.join("v.toml");
    std::fs::write(&cfg, "[sip]\nextension = \"9000\"\npbx = \"192.0.2.10\"\npassword = \"file-secret\"\n")
        .expect("write");
    let out = voice_ua(
        &["check", "--config", cfg.to_str().expect("utf8"), "--expires", "120"],
        &[("VOICE_UA_SIP_PASSWORD", "env-secret")],
        &dir,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("extension:          9000"), "{stdout}");
    assert!(stdout.contains("expires:            120 s"), "flag overrides file: {stdout}");
    assert!(stdout.contains("******** (10 characters)"), "env password used, masked: {stdout}");
    assert!(!stdout.contains("secret"), "no secret printed: {stdout}");
    assert!(stdout.contains("configuration OK"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_default_config_path_is_used_when_present() {
    let dir = temp_dir("default");
    std::fs::write(
        dir.join("voice-ua.toml"),
        "[sip]\nextension = \"9001\"\npbx = \"pbx.lan\"\npassword = \"x\"\n",
    )
    .expect("write");
    let out = voice_ua(&["check"], &[], &dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("config file:        ./voice-ua.toml"), "{stdout}");
    assert!(stdout.contains("extension:          9001"), "{stdout}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn every_mistake_is_one_line_and_a_failure_exit() {
    let dir = temp_dir("bad");
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec!["check"], "", "no extension: give --ext 9000"),
        (vec!["check", "--ext", "9000"], "", "no PBX address"),
        (
            vec!["check", "--ext", "9000", "--pbx", "10.0.0.1"],
            "",
            "no SIP password: set VOICE_UA_SIP_PASSWORD",
        ),
        (
            vec!["check", "--ext", "9000", "--pbx", "10.0.0.1", "--bind", "nonsense"],
            "pw",
            "sip.bind = \"nonsense\" is not valid",
        ),
        (
            vec!["check", "--config", "/nonexistent/voice-ua.toml"],
            "",
            "cannot read config file /nonexistent/voice-ua.toml",
        ),
        (
            vec!["check", "--ext", "9000", "--pbx", "10.0.0.1", "--transport", "sctp"],
            "pw",
            "sip.transport = \"sctp\"",
        ),
    ];
    for (args, pw, expect) in cases {
        let env: Vec<(&str, &str)> = if pw.is_empty() { vec![] } else { vec![("VOICE_UA_SIP_PASSWORD", pw)] };
        let out = voice_ua(&args, &env, &dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line for {args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: expected {expect:?} in {stderr}");
    }
    let cfg = dir.join("typo.toml");
    std::fs::write(&cfg, "[sip]\nextension = \"9000\"\npbx_address = \"x\"\n").expect("write");
    let out = voice_ua(&["check", "--config", cfg.to_str().expect("utf8")], &[], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("line 3") && stderr.contains("pbx_address"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn version_and_help_with_examples() {
    let dir = temp_dir("help");
    let out = voice_ua(&["--version"], &[], &dir);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(concat!("voice-ua ", env!("CARGO_PKG_VERSION"))));
    let out = voice_ua(&["register", "--help"], &[], &dir);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--ext") && help.contains("--public-addr") && help.contains("Examples:"), "{help}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_gate_concierge_example_is_a_valid_configuration() {
    let dir = temp_dir("example");
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/gate-concierge/voice-ua.toml");
    let out = voice_ua(
        &["check", "--config", example.to_str().expect("utf8")],
        &[("VOICE_UA_SIP_PASSWORD", "pw"), ("DEEPGRAM_API_KEY", "example-key-not-real")],
        &dir,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("agent:              deepgram"), "{stdout}");
    for f in [
        "check_visitor",
        "find_resident",
        "notify_resident",
        "open_gate",
        "get_recent_plates",
        "register_visitor",
        "transfer_to_guard",
    ] {
        assert!(stdout.contains(f), "function {f} declared: {stdout}");
    }
    assert!(stdout.contains("then transfer to 9001"), "{stdout}");
    assert!(!stdout.contains("example-key-not-real"), "the key is not printed");
    // The same file on OpenAI: one line changed.
    let text = std::fs::read_to_string(&example).expect("example");
    assert_eq!(text.matches("provider = \"deepgram\"\n").count(), 1);
    let switched = dir.join("openai.toml");
    std::fs::write(&switched, text.replace("provider = \"deepgram\"\n", "provider = \"openai\"\n"))
        .expect("write");
    let out = voice_ua(
        &["check", "--config", switched.to_str().expect("utf8")],
        &[("VOICE_UA_SIP_PASSWORD", "pw"), ("OPENAI_API_KEY", "sk-example-key-not-real")],
        &dir,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("agent:              openai at wss://api.openai.com/v1/realtime?model=gpt-realtime"),
        "{stdout}"
    );
    assert!(stdout.contains("noise reduction far_field") && stdout.contains("check_visitor"), "{stdout}");
    assert!(stdout.contains("then transfer to 9001"), "{stdout}");
    assert!(!stdout.contains("sk-example-key-not-real"), "the key is not printed");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn check_validates_the_log_section_too() {
    let dir = temp_dir("log");
    let cfg = dir.join("v.toml");
    let base = "[sip]\nextension = \"9000\"\npbx = \"192.0.2.10\"\npassword = \"x\"\n";
    std::fs::write(&cfg, format!("{base}[log]\nformat = \"xml\"\n")).expect("write");
    let out = voice_ua(&["check", "--config", cfg.to_str().expect("utf8")], &[], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bad log format fails check");
    assert!(stderr.contains("log.format") && stderr.contains("use human or json"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");

    std::fs::write(&cfg, format!("{base}[log]\nformat = \"json\"\nfilter = \"debug,voice_ua=trace\"\n"))
        .expect("write");
    let out = voice_ua(&["check", "--config", cfg.to_str().expect("utf8")], &[], &dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("log:                Json, filter \"debug,voice_ua=trace,rsipstack=warn\""),
        "{stdout}"
    );

    std::fs::write(&cfg, format!("{base}[log]\nfilter = \"info,voice_ua=loud\"\n")).expect("write");
    let out = voice_ua(&["check", "--config", cfg.to_str().expect("utf8")], &[], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bad filter fails check");
    assert!(stderr.contains("log filter") && stderr.contains("not valid"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}
