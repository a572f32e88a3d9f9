//! G.722 on files: `g722_file enc` reads 16 kHz 16-bit little-endian PCM on stdin and
//! writes G.722 (64 kbit/s) bytes on stdout; `g722_file dec` the reverse. Used by
//! `scripts/bench-calls.py --codec g722` to make its G.722 pcap.
//!
//! Run: `cargo run --release -p voice-ua-media --example g722_file -- enc < in.raw > out.g722`

use std::io::{Read, Write};

use voice_ua_media::g722::{G722Decoder, G722Encoder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input)?;
    let output: Vec<u8> = match mode.as_str() {
        "enc" => {
            let pcm: Vec<i16> = input.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
            let mut codes = vec![0u8; pcm.len() / 2];
            let n = G722Encoder::new().encode(&pcm, &mut codes);
            codes.truncate(n);
            codes
        }
        "dec" => {
            let mut pcm = vec![0i16; input.len() * 2];
            let n = G722Decoder::new().decode(&input, &mut pcm);
            pcm.iter().take(n).flat_map(|s| s.to_le_bytes()).collect()
        }
        _ => return Err("usage: g722_file enc|dec < input > output".into()),
    };
    std::io::stdout().write_all(&output)?;
    Ok(())
}
