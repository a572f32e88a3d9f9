//! The per-frame paths allocate nothing in steady state: a counting global allocator
//! watches jitter push/pop (with loss and reordering), pacer push/tick/DTMF/flush,
//! G.711 and resampling after set-up (among them 22.05 kHz TTS audio to 8 kHz) (counted
//! by the `allocation-counter` crate's global allocator).

use std::time::{Duration, Instant};

use voice_ua_media::g711::Law;
use voice_ua_media::jitter::{JitterBuffer, JitterConfig};
use voice_ua_media::pacer::{Pacer, PacerConfig, PACKET_LEN};
use voice_ua_media::resample::Resampler;
use voice_ua_media::rtp::{RtpHeader, RtpPacket};

#[test]
fn hot_paths_do_not_allocate() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut pacer = Pacer::new(PacerConfig::new(Law::Ulaw, 1, 0, 0), t0);
    let mut up = Resampler::new(8000, 16000).expect("rate");
    let mut down = Resampler::new(24000, 8000).expect("rate");
    let mut piper = Resampler::new(22050, 8000).expect("rate");
    let pcm22 = [100i16; 441];
    let payload = [0x55u8; 160];
    let pcm24 = [100i16; 480];
    let mut pcm8 = [0i16; 160];
    let mut pcm16 = [0i16; 320];
    let mut out = [0u8; PACKET_LEN];
    let info = allocation_counter::measure(|| {
        for k in 0..2000u32 {
            let now = t0 + Duration::from_millis(20) * k;
            // Every 7th packet lost, every 5th swapped with its successor.
            if k % 7 != 3 {
                let seq = if k % 5 == 0 {
                    k + 1
                } else if k % 5 == 1 {
                    k - 1
                } else {
                    k
                };
                let header = RtpHeader {
                    marker: k == 0,
                    payload_type: 0,
                    sequence: seq as u16,
                    timestamp: seq.wrapping_mul(160),
                    ssrc: 1 + k / 1000,
                };
                jb.push(now, &RtpPacket::new(header, &payload));
            }
            let frame = jb.pop(now + Duration::from_millis(3));
            up.process(frame.samples, &mut pcm16);
            down.process(&pcm24, &mut pcm8);
            assert_eq!(piper.process(&pcm22, &mut pcm8), 160);
            pacer.push_linear(&pcm8);
            if k % 100 == 50 {
                pacer.flush();
                pacer.send_dtmf('5', Duration::from_millis(60)).expect("digit");
            }
            while pacer.poll_transmit(now, &mut out).is_some() {}
        }
    });
    let allocations = info.count_total;
    assert_eq!(allocations, 0, "{allocations} allocations on the per-frame path");
    assert!(jb.stats().concealed > 0 && jb.stats().restarts == 2);
}
