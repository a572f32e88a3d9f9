//! G.722 codec properties over arbitrary input: decoding any bytes and encoding any
//! samples never panics and stays within bounds; the per-frame encode and decode
//! allocate nothing. (Bit-exactness with the reference implementations is checked in
//! the interop ring, tests/interop/g722.rs.)

use proptest::prelude::*;
use voice_ua_media::g722::{G722Decoder, G722Encoder, FRAME_BYTES, FRAME_SAMPLES};

proptest! {
    #[test]
    fn decoding_any_bytes_never_panics(codes in prop::collection::vec(any::<u8>(), 0..2000), out_len in 0usize..5000) {
        let mut dec = G722Decoder::new();
        let mut out = vec![0i16; out_len];
        let n = dec.decode(&codes, &mut out);
        prop_assert_eq!(n, 2 * codes.len().min(out_len / 2));
        // The state stays usable: a second pass decodes the same count.
        prop_assert_eq!(dec.decode(&codes, &mut out), n);
    }

    #[test]
    fn encoding_any_samples_never_panics(pcm in prop::collection::vec(any::<i16>(), 0..4000), out_len in 0usize..3000) {
        let mut enc = G722Encoder::new();
        let mut out = vec![0u8; out_len];
        let n = enc.encode(&pcm, &mut out);
        prop_assert_eq!(n, (pcm.len() / 2).min(out_len));
        let mut back = vec![0i16; 2 * n];
        prop_assert_eq!(G722Decoder::new().decode(&out[..n], &mut back), 2 * n);
    }
}

#[test]
fn per_frame_encode_and_decode_do_not_allocate() {
    let mut enc = G722Encoder::new();
    let mut dec = G722Decoder::new();
    let pcm: Vec<i16> = (0..FRAME_SAMPLES).map(|i| ((i * 977) % 20_000) as i16 - 10_000).collect();
    let mut codes = [0u8; FRAME_BYTES];
    let mut out = [0i16; FRAME_SAMPLES];
    let info = allocation_counter::measure(|| {
        for _ in 0..500 {
            assert_eq!(enc.encode(&pcm, &mut codes), FRAME_BYTES);
            assert_eq!(dec.decode(&codes, &mut out), FRAME_SAMPLES);
        }
    });
    assert_eq!(info.count_total, 0, "{} allocations", info.count_total);
}
