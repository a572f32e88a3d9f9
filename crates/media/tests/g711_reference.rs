//! Proves `g711` bit-exact against an independent implementation (Python's `audioop`),
//! for all 65,536 linear inputs and all 256 codes, and cross-checks decoding with sox.

use std::path::{Path, PathBuf};
use std::process::Command;

use voice_ua_media::g711;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("voice-ua-media-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn reference_tables() -> PathBuf {
    let dir = temp_dir("g711");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/g711_reference.py");
    let output = Command::new("python3").arg(&script).arg(&dir).output().unwrap_or_else(|e| {
        panic!("cannot run python3 ({e}): the G.711 reference test needs python3 with audioop (3.11/3.12)")
    });
    assert!(
        output.status.success(),
        "{} failed: {}\nthe G.711 reference test needs python3 with the audioop module (Python 3.11/3.12)",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    dir
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

fn read_i16(dir: &Path, name: &str) -> Vec<i16> {
    read(dir, name).chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

#[test]
fn g711_matches_audioop_for_every_input_and_code() {
    let dir = reference_tables();
    let ulaw = read(&dir, "ulaw_encode.bin");
    let alaw = read(&dir, "alaw_encode.bin");
    assert_eq!(ulaw.len(), 65536);
    assert_eq!(alaw.len(), 65536);

    let mut ulaw_rounding_differences = 0;
    for (i, x) in (i16::MIN..=i16::MAX).enumerate() {
        assert_eq!(g711::alaw_encode(x), alaw[i], "A-law encode of {x}");
        let ours = g711::ulaw_encode(x);
        if x >= 0 {
            assert_eq!(ours, ulaw[i], "μ-law encode of {x}");
            continue;
        }
        // audioop (Sun's code) shifts a negative sample right by 2 (rounding towards -inf)
        // and then negates it: its 14-bit magnitude is ceil(|x| / 4) = floor((|x| + 3) / 4).
        // G.191 takes the one's complement first: floor((|x| - 1) / 4), always exactly one
        // unit less. The codes differ only where that unit crosses a decision level (508
        // inputs), and G.191's code for x is audioop's code for x + 4 (magnitude |x| - 4).
        if ours != ulaw[i] {
            ulaw_rounding_differences += 1;
            assert_eq!(ours, ulaw[i] + 1, "μ-law {x}: G.191 is one level smaller");
        }
        if x <= -5 {
            assert_eq!(ours, ulaw[i + 4], "μ-law encode of {x} vs audioop({})", x + 4);
        } else {
            assert_eq!(ours, 0x7F, "μ-law encode of {x}");
        }
    }
    assert_eq!(ulaw_rounding_differences, 508, "documented audioop rounding differences");

    let ulaw_decoded = read_i16(&dir, "ulaw_decode.bin");
    let alaw_decoded = read_i16(&dir, "alaw_decode.bin");
    for code in 0..=255u8 {
        assert_eq!(g711::ulaw_decode(code), ulaw_decoded[usize::from(code)], "μ-law decode {code:#04x}");
        assert_eq!(g711::alaw_decode(code), alaw_decoded[usize::from(code)], "A-law decode {code:#04x}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// sox has its own G.711 decoder: when it is installed, all 256 codes must decode alike.
#[test]
fn g711_decoding_matches_sox_when_installed() {
    if Command::new("sox").arg("--version").output().is_err() {
        eprintln!("sox not installed: skipping the sox cross-check");
        return;
    }
    let dir = temp_dir("sox");
    let codes: Vec<u8> = (0..=255).collect();
    std::fs::write(dir.join("codes.raw"), &codes).expect("write codes");
    for (kind, decode) in [("ul", g711::ulaw_decode as fn(u8) -> i16), ("al", g711::alaw_decode)] {
        let out = dir.join(format!("{kind}.s16"));
        let status = Command::new("sox")
            .args(["-t", kind, "-r", "8000", "-c", "1"])
            .arg(dir.join("codes.raw"))
            .args(["-t", "s16", "-e", "signed-integer", "-b", "16", "-L"])
            .arg(&out)
            .status()
            .expect("run sox");
        assert!(status.success(), "sox failed to decode {kind}");
        let decoded = read_i16(&dir, &format!("{kind}.s16"));
        assert_eq!(decoded.len(), 256);
        for code in 0..=255u8 {
            assert_eq!(decode(code), decoded[usize::from(code)], "{kind} decode {code:#04x} vs sox");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
