//! Criterion benchmarks for the media hot paths (figures in docs/performance.md, `## Media`).
//!
//! Run: `cargo bench -p voice-ua-media --bench media`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use voice_ua_media::endpoint::{EndpointSettings, Endpointer};
use voice_ua_media::g711::{self, Law};
use voice_ua_media::g722::{G722Decoder, G722Encoder, FRAME_BYTES, FRAME_SAMPLES};
use voice_ua_media::jitter::{JitterBuffer, JitterConfig};
use voice_ua_media::pacer::{Pacer, PacerConfig, PACKET_LEN};
use voice_ua_media::resample::Resampler;
use voice_ua_media::rtp::{RtpHeader, RtpPacket};
use voice_ua_media::AudioCodec;

fn g711_codec(c: &mut Criterion) {
    let pcm: Vec<i16> = (0..65536u32).map(|i| (i as i16).wrapping_mul(7)).collect();
    let mut codes = vec![0u8; pcm.len()];
    let mut back = vec![0i16; pcm.len()];
    let mut group = c.benchmark_group("g711");
    group.throughput(Throughput::Elements(pcm.len() as u64));
    group.bench_function("ulaw_encode", |b| b.iter(|| g711::encode_ulaw(black_box(&pcm), &mut codes)));
    group.bench_function("alaw_encode", |b| b.iter(|| g711::encode_alaw(black_box(&pcm), &mut codes)));
    g711::encode_ulaw(&pcm, &mut codes);
    group.bench_function("ulaw_decode", |b| b.iter(|| g711::decode_ulaw(black_box(&codes), &mut back)));
    group.bench_function("alaw_decode", |b| b.iter(|| g711::decode_alaw(black_box(&codes), &mut back)));
    group.bench_function("ulaw_to_alaw", |b| b.iter(|| g711::ulaw_to_alaw_in_place(black_box(&mut codes))));
    group.finish();
}

/// One 20 ms G.722 frame (320 samples ↔ 160 bytes) each way: the per-call codec cost.
fn g722_codec(c: &mut Criterion) {
    let pcm: Vec<i16> = (0..FRAME_SAMPLES)
        .map(|i| (6000.0 * (i as f64 * 0.3).sin() + 2000.0 * (i as f64 * 2.1).sin()) as i16)
        .collect();
    let mut enc = G722Encoder::new();
    let mut dec = G722Decoder::new();
    let mut codes = [0u8; FRAME_BYTES];
    let mut back = [0i16; FRAME_SAMPLES];
    let mut group = c.benchmark_group("g722");
    group.throughput(Throughput::Elements(FRAME_SAMPLES as u64));
    group.bench_function("encode_20ms", |b| b.iter(|| enc.encode(black_box(&pcm), &mut codes)));
    enc.encode(&pcm, &mut codes);
    group.bench_function("decode_20ms", |b| b.iter(|| dec.decode(black_box(&codes), &mut back)));
    group.bench_function("encode_decode_20ms", |b| {
        b.iter(|| {
            enc.encode(black_box(&pcm), &mut codes);
            dec.decode(black_box(&codes), &mut back)
        })
    });
    group.finish();
}

fn rtp_parse(c: &mut Criterion) {
    let header = RtpHeader { marker: false, payload_type: 0, sequence: 1, timestamp: 160, ssrc: 7 };
    let mut plain = [0u8; 172];
    header.write_packet(&[0xFF; 160], &mut plain).expect("fits");
    let csrcs = [0, 0, 0, 1, 0, 0, 0, 2];
    let ext_data = [1u8; 8];
    let full_packet = RtpPacket::new(header, &[0xFF; 160])
        .with_csrc_bytes(&csrcs)
        .and_then(|p| p.with_extension(voice_ua_media::rtp::Extension { profile: 0xBEDE, data: &ext_data }))
        .expect("valid")
        .with_padding(4);
    let mut full = [0u8; 256];
    let n = full_packet.write(&mut full).expect("fits");
    let full = &full[..n];
    let mut group = c.benchmark_group("rtp_parse");
    for (name, bytes) in [("plain_172B", &plain[..]), ("csrc_ext_pad", full)] {
        group.bench_function(format!("ours/{name}"), |b| {
            b.iter(|| {
                let p = RtpPacket::parse(black_box(bytes)).expect("valid");
                black_box((p.header.sequence, p.payload().len()))
            })
        });
        group.bench_function(format!("rtp-rs/{name}"), |b| {
            b.iter(|| {
                let p = rtp_rs::RtpReader::new(black_box(bytes)).expect("valid");
                black_box((p.sequence_number(), p.payload().len()))
            })
        });
    }
    group.bench_function("ours/write_172B", |b| {
        let mut out = [0u8; 172];
        b.iter(|| header.write_packet(black_box(&[0xFF; 160]), &mut out))
    });
    group.finish();
}

fn jitter_push_pop(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut g722_codes = [0u8; FRAME_BYTES];
    let tone: Vec<i16> = (0..FRAME_SAMPLES).map(|i| (6000.0 * (i as f64 * 0.3).sin()) as i16).collect();
    G722Encoder::new().encode(&tone, &mut g722_codes);
    for (name, codec, pt, payload) in [
        ("jitter/push+pop per packet", AudioCodec::G711(Law::Ulaw), 0u8, [0x55u8; 160]),
        ("jitter/push+pop per packet, G.722 (decode at pop)", AudioCodec::G722, 9, g722_codes),
    ] {
        let mut jb = JitterBuffer::with_codec(JitterConfig::default(), codec);
        let mut k: u32 = 0;
        c.bench_function(name, |b| {
            b.iter(|| {
                let now = t0 + Duration::from_millis(20) * k;
                let header = RtpHeader {
                    marker: false,
                    payload_type: pt,
                    sequence: k as u16,
                    timestamp: k.wrapping_mul(160),
                    ssrc: 1,
                };
                jb.push(now, &RtpPacket::new(header, &payload));
                let frame = jb.pop(now + Duration::from_millis(1));
                k = k.wrapping_add(1);
                black_box(frame.samples[0])
            })
        });
    }
}

fn pacer_tick(c: &mut Criterion) {
    let t0 = Instant::now();
    for (name, codec) in [
        ("pacer/push 20ms linear + tick", AudioCodec::G711(Law::Ulaw)),
        ("pacer/push 20ms linear + tick, G.722 (encode at tick)", AudioCodec::G722),
    ] {
        let mut pacer = Pacer::new(PacerConfig::for_codec(codec, 1, 0, 0), t0);
        let pcm: Vec<i16> =
            (0..codec.frame_samples()).map(|i| (6000.0 * (i as f64 * 0.3).sin()) as i16).collect();
        let mut out = [0u8; PACKET_LEN];
        let mut k: u32 = 0;
        c.bench_function(name, |b| {
            b.iter(|| {
                pacer.push_linear(black_box(&pcm));
                let tx = pacer.poll_transmit(t0 + Duration::from_millis(20) * k, &mut out);
                k = k.wrapping_add(1);
                black_box(tx)
            })
        });
    }
}

fn resample_frame(c: &mut Criterion) {
    let mut group = c.benchmark_group("resample per 20 ms frame");
    for (from, to) in
        [(8000u32, 16000u32), (8000, 24000), (16000, 8000), (24000, 8000), (48000, 8000), (22050, 8000)]
    {
        let mut r = Resampler::new(from, to).expect("rate");
        let input: Vec<i16> = (0..from / 50).map(|i| ((i * 97) % 4000) as i16 - 2000).collect();
        let mut output = vec![0i16; to as usize / 50 + 4];
        group.bench_function(format!("{from}->{to}"), |b| {
            b.iter(|| r.process(black_box(&input), &mut output))
        });
    }
    // The alternatives measured in tests/resample_quality.rs, same job, f32, no allocation.
    for (from, to) in [(8000usize, 16000usize), (24000, 8000)] {
        use rubato::Resampler as _;
        let chunk = from / 50;
        let input = vec![vec![0.25f32; chunk]];
        let mut fft = rubato::FftFixedIn::<f32>::new(from, to, chunk, 1, 1).expect("fft");
        let mut out = fft.output_buffer_allocate(true);
        group.bench_function(format!("rubato-fft {from}->{to}"), |b| {
            b.iter(|| fft.process_into_buffer(black_box(&input), &mut out, None))
        });
        let params = rubato::SincInterpolationParameters {
            sinc_len: 256,
            f_cutoff: 0.95,
            interpolation: rubato::SincInterpolationType::Linear,
            oversampling_factor: 256,
            window: rubato::WindowFunction::BlackmanHarris2,
        };
        let mut sinc =
            rubato::SincFixedIn::<f32>::new(to as f64 / from as f64, 1.0, params, chunk, 1).expect("sinc");
        let mut out = sinc.output_buffer_allocate(true);
        group.bench_function(format!("rubato-sinc {from}->{to}"), |b| {
            b.iter(|| sinc.process_into_buffer(black_box(&input), &mut out, None))
        });
    }
    group.finish();
}

fn endpoint_push(c: &mut Criterion) {
    let mut group = c.benchmark_group("endpoint");
    for rate in [8000u32, 16000] {
        let mut ep = Endpointer::new(EndpointSettings::default(), rate).expect("valid");
        let n = rate as usize / 50;
        // 1.2 s of speech then 1 s of quiet, over and over: every state of the endpointer.
        let loud: Vec<i16> = (0..n).map(|i| ((i * 97) % 8000) as i16 - 4000).collect();
        let quiet = vec![3i16; n];
        let mut k: u32 = 0;
        group.bench_function(format!("push 20 ms at {rate} Hz"), |b| {
            b.iter(|| {
                let frame = if k % 110 < 60 { &loud } else { &quiet };
                k = k.wrapping_add(1);
                black_box(ep.push(black_box(frame), false))
            })
        });
    }
    group.finish();
}

/// The echo canceller per 20 ms frame: playing (speech-like playback echoed back 80 ms
/// late at -12 dB, the filter converged and adapting) and idle (nothing sent for longer
/// than an echo lasts: the frame passes after the delay search's bookkeeping).
fn echo_cancel(c: &mut Criterion) {
    use voice_ua_media::aec::echo_path::{EchoLine, EchoSettings, Talker};
    use voice_ua_media::EchoCanceller;
    let mut group = c.benchmark_group("aec");
    for rate in [8000u32, 16000] {
        let n = rate as usize / 50;
        let frames = 500;
        let mut talker = Talker::new(rate, -18.0, 1);
        let mut line =
            EchoLine::new(EchoSettings { rate, delay_ms: 80, atten_db: 12.0, noise_dbfs: -50.0, seed: 2 });
        let far = talker.take(frames * n);
        let mut near = vec![0i16; frames * n];
        let mut echo = vec![0i16; n];
        for k in 0..frames {
            line.frame(&far[k * n..(k + 1) * n], &[], &mut echo, &mut near[k * n..(k + 1) * n]);
        }
        let mut aec = EchoCanceller::new(rate).expect("rate");
        let mut out = vec![0i16; n];
        for k in 0..frames {
            out.copy_from_slice(&near[k * n..(k + 1) * n]);
            aec.process(&far[k * n..(k + 1) * n], &mut out);
        }
        let mut k = 0;
        group.bench_function(format!("playing, 20 ms at {rate} Hz"), |b| {
            b.iter(|| {
                k = (k + 1) % frames;
                out.copy_from_slice(&near[k * n..(k + 1) * n]);
                aec.process(black_box(&far[k * n..(k + 1) * n]), black_box(&mut out));
            })
        });
        let silence = vec![0i16; n];
        for _ in 0..50 {
            aec.process(&silence, &mut out);
        }
        group.bench_function(format!("idle, 20 ms at {rate} Hz"), |b| {
            b.iter(|| {
                k = (k + 1) % frames;
                out.copy_from_slice(&near[k * n..(k + 1) * n]);
                aec.process(black_box(&silence), black_box(&mut out));
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    g711_codec,
    g722_codec,
    rtp_parse,
    jitter_push_pop,
    pacer_tick,
    resample_frame,
    endpoint_push,
    echo_cancel
);
criterion_main!(benches);
