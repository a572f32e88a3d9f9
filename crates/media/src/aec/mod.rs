//! Echo cancellation for the caller's audio, with what we played to them as the
//! reference: [`EchoCanceller`], a line-echo canceller in the G.168 sense, and
//! [`SpeechOverEcho`], which tells caller speech from what is left of the echo.
//!
//! The canceller, per 20 ms frame (8 or 16 kHz):
//! - **delay** (`delay.rs`): the echo's bulk delay, 0–250 ms, from a 1 kHz
//!   cross-correlation of the reference and the caller's audio; a second of playback
//!   without one means the line has no echo worth the name ([`EchoCanceller::echo_found`]);
//! - **linear filter** (`filter.rs`): a partitioned-block frequency-domain NLMS filter
//!   over 64 ms starting 24 ms before that delay (a jitter buffer that shrinks by a
//!   frame moves the echo 20 ms sooner), in 4 ms blocks;
//! - **double talk**: a Geigel detector (the caller's block peak against the reference's
//!   peak over the tail, the threshold following the measured peak ratio, never above
//!   0.5), and once the filter has converged also the error standing 6 dB above what
//!   the filter leaves, freezes adaptation while the caller talks (40 ms hangover); a
//!   block where the filter adds more than it removes passes the caller's audio as is;
//! - **residual echo suppressor**: a broadband gain per block, from the residual the
//!   filter leaves (its measured leakage, capped by its ERLE of the last seconds, × the
//!   echo estimate) against the error's power, down to -30 dB, opening at once and
//!   closing over a few blocks;
//! - **echo bound** ([`EchoCanceller::echo_bound_dbfs`]): how loud the echo left in a
//!   frame can be, for [`SpeechOverEcho`].
//!
//! When nothing has been sent for longer than the echo can last, the frame passes
//! untouched and costs next to nothing. No allocation after [`EchoCanceller::new`].
//!
//! The echo path test signals (`echo_path`) are public for the tests and benches of
//! this and other crates, and hidden from the docs.

mod delay;
#[doc(hidden)]
pub mod echo_path;
mod fft;
mod filter;
mod talk;

pub use delay::MAX_DELAY_MS;
pub use talk::SpeechOverEcho;

use crate::error::MediaError;
use delay::DelayEstimator;
use filter::BlockFilter;
use std::time::Duration;

/// The adaptive filter's block, in ms.
const BLOCK_MS: usize = 4;
/// Partitions: the echo tail the filter models is `PARTS × BLOCK_MS` = 64 ms.
const PARTS: usize = 16;
/// The tail modelled, in ms.
pub const TAIL_MS: usize = PARTS * BLOCK_MS;
/// The filter's window starts this long before the estimated delay: room for the
/// estimate's error and for the echo coming back sooner when the PBX's or our jitter
/// buffer shrinks (by 20 ms steps), so such a move needs no new estimate.
const LEAD_MS: usize = 24;
/// A far-end frame this loud (dBFS) or more may echo.
const FAR_ACTIVE_DBFS: f32 = -55.0;
/// NLMS step.
const MU: f32 = 0.5;
/// Blocks the double-talk decision holds after the caller's last detected peak.
const DT_HANGOVER_BLOCKS: u32 = 10;
/// The least echo return loss a line is assumed to have (G.168 assumes 6 dB).
const ASSUMED_ERL_DB: f32 = 6.0;
/// Frames of playback after which a line without a delay estimate is taken to have no
/// echo (1 s).
const NO_ECHO_AFTER_FRAMES: u32 = 50;
/// The echo return loss assumed then.
const NO_ECHO_ERL_DB: f32 = 30.0;
/// How fast the held ERLE falls, per frame (1 dB/s).
const ERLE_HOLD_DECAY_DB: f32 = 0.02;
/// From this ERLE on, the filter's own residual estimate bounds the echo left.
const CONVERGED_ERLE_DB: f32 = 6.0;
/// Blocks over which the largest echo-to-reference peak ratio is taken (0.5 s).
const ERL_WINDOW_BLOCKS: u32 = 125;
/// The residual suppressor's lowest gain (-30 dB).
const NLP_MIN_GAIN: f32 = 0.0316;
/// Far-end frame levels kept (20 ms each): the longest delay plus the tail.
const FAR_LEVELS: usize = (MAX_DELAY_MS + TAIL_MS) / 20 + 2;

/// A line-echo canceller for one call. See the module comment.
#[derive(Debug, Clone)]
pub struct EchoCanceller {
    rate: u32,
    frame: usize,
    n: usize,
    /// The reference, newest at the end: the longest delay, two blocks and a frame.
    history: Vec<f32>,
    near: Vec<f32>,
    echo: Vec<f32>,
    err: Vec<f32>,
    delay: DelayEstimator,
    filter: BlockFilter,
    /// Where the filter's window starts, in samples behind the reference (None until
    /// the delay is known).
    offset: Option<usize>,
    /// Peak |x| of each of the last PARTS reference blocks at the filter's offset.
    far_peaks: [f32; PARTS],
    far_peak_head: usize,
    /// Frames since the reference was last active.
    since_far: u32,
    /// Frames with an active reference, in all.
    far_frames: u32,
    /// Far-end frame levels (dBFS), a ring; `far_level_head` is the next slot.
    far_levels: [f32; FAR_LEVELS],
    far_level_head: usize,
    /// The echo's amplitude relative to the reference, as the Geigel test sees it.
    erl_amp: f32,
    erl_window_max: f32,
    erl_window_blocks: u32,
    dt_hold: u32,
    /// The quietest recent error power per block (the line's noise).
    noise: f32,
    /// The filter's residual relative to its echo estimate (power).
    leak: f32,
    leak_err: f32,
    leak_echo: f32,
    gain: f32,
    near_power: f32,
    err_power: f32,
    /// The line's noise, summed as `near_power` and `err_power` are.
    noise_power: f32,
    double_talk_frame: bool,
    /// The ERLE's best of the last seconds (dB), falling 1 dB a second.
    erle_hold: f32,
    erl_db: f32,
    /// The residual echo the filter estimates it left in this frame (summed power).
    residual: f32,
}

impl EchoCanceller {
    /// A canceller for `rate_hz` audio in 20 ms frames (8000 or 16000 Hz).
    pub fn new(rate_hz: u32) -> Result<EchoCanceller, MediaError> {
        if rate_hz != 8000 && rate_hz != 16000 {
            return Err(MediaError::EchoRate(rate_hz));
        }
        let per_ms = rate_hz as usize / 1000;
        let frame = per_ms * 20;
        let n = per_ms * BLOCK_MS;
        Ok(EchoCanceller {
            rate: rate_hz,
            frame,
            n,
            history: vec![0.0; frame + per_ms * MAX_DELAY_MS + 2 * n],
            near: vec![0.0; frame],
            echo: vec![0.0; n],
            err: vec![0.0; n],
            delay: DelayEstimator::new(rate_hz),
            filter: BlockFilter::new(n, PARTS),
            offset: None,
            far_peaks: [0.0; PARTS],
            far_peak_head: 0,
            since_far: u32::MAX,
            far_frames: 0,
            far_levels: [crate::vad::SILENCE_DBFS; FAR_LEVELS],
            far_level_head: 0,
            erl_amp: 0.25,
            erl_window_max: 0.0,
            erl_window_blocks: 0,
            dt_hold: 0,
            noise: 0.0,
            leak: 1.0,
            leak_err: 0.0,
            leak_echo: 0.0,
            gain: 1.0,
            near_power: 0.0,
            err_power: 0.0,
            noise_power: 0.0,
            double_talk_frame: false,
            residual: 0.0,
            erle_hold: 0.0,
            erl_db: ASSUMED_ERL_DB,
        })
    }

    /// Samples per 20 ms frame.
    pub fn frame_len(&self) -> usize {
        self.frame
    }

    /// The sample rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The echo's delay behind the reference, once found.
    pub fn delay_estimate(&self) -> Option<Duration> {
        self.delay.estimate_ms().map(|ms| Duration::from_millis(ms as u64))
    }

    /// Whether the line echoes our playback: `Some(true)` once the echo's delay is
    /// found, `Some(false)` after a second of playback without finding any, `None`
    /// before that.
    pub fn echo_found(&self) -> Option<bool> {
        if self.delay.estimate_ms().is_some() {
            Some(true)
        } else if self.far_frames >= NO_ECHO_AFTER_FRAMES {
            Some(false)
        } else {
            None
        }
    }

    /// Echo return loss enhancement of the linear filter (dB), over the last second or
    /// so of echo without the caller talking, the line's noise taken off both sides
    /// (at most 40 dB); 0 before there is any.
    pub fn erle_db(&self) -> f32 {
        let echo = self.near_power - self.noise_power;
        if echo <= 0.0 {
            return 0.0;
        }
        let left = (self.err_power - self.noise_power).max(echo * 1e-4);
        (10.0 * (echo / left).log10()).max(0.0)
    }

    /// The double-talk detector held during the last frame (the caller talked over
    /// the echo).
    pub fn double_talk(&self) -> bool {
        self.double_talk_frame
    }

    /// The loudest the echo left in the last frame's output can be (dBFS), before the
    /// suppressor: the loudest reference that can be echoing into it, less the echo
    /// return loss (measured, slowly; 6 dB until then) and the filter's ERLE (its best
    /// of the last seconds: a caller talking over the echo upsets the filter for a
    /// moment and must not raise the bound while they talk). When a second of playback
    /// found no echo at all, 30 dB below the reference. Silence when nothing we sent can
    /// be echoing.
    pub fn echo_bound_dbfs(&self) -> f32 {
        let loudest = self.far_window_dbfs();
        if loudest <= crate::vad::SILENCE_DBFS {
            return crate::vad::SILENCE_DBFS;
        }
        // No echo found after a second of playback: none worth the name (an echo 20 dB
        // down is found in a quarter of a second).
        if self.echo_found() == Some(false) {
            return loudest - NO_ECHO_ERL_DB;
        }
        loudest - self.erl_db - self.erle_hold.min(30.0)
    }

    /// The loudest reference level (dBFS) that can be echoing into the current frame.
    fn far_window_dbfs(&self) -> f32 {
        let window = match self.delay.estimate_ms() {
            Some(ms) => (ms.saturating_sub(LEAD_MS) / 20)..((ms + TAIL_MS) / 20 + 2).min(FAR_LEVELS),
            None => 0..FAR_LEVELS,
        };
        let mut loudest = crate::vad::SILENCE_DBFS;
        for age in window {
            // age 0 is the newest level.
            let i = (self.far_level_head + 2 * FAR_LEVELS - 1 - age) % FAR_LEVELS;
            loudest = loudest.max(self.far_levels[i]);
        }
        loudest
    }

    /// The echo return loss (dB), as the bound uses it: the loudest reference in the
    /// window over the caller's level, in frames with echo and no double talk, slowly
    /// followed (a 2 s time constant); 6 dB until measured.
    pub fn erl_db(&self) -> f32 {
        self.erl_db
    }

    /// One 20 ms frame: `far_end` is the reference (what the caller heard, zeros when
    /// nothing; the echo in `near` lags it by 0–250 ms), `near` the caller's audio,
    /// cleaned in place. Frames of another length pass untouched.
    pub fn process(&mut self, far_end: &[i16], near: &mut [i16]) {
        let frame = self.frame;
        if far_end.len() != frame || near.len() != frame {
            return;
        }
        self.residual = 0.0;
        // The reference into the history.
        let h = self.history.len();
        self.history.copy_within(frame.., 0);
        for (d, &s) in self.history[h - frame..].iter_mut().zip(far_end) {
            *d = f32::from(s);
        }
        let far_level = crate::pcm_level_dbfs(far_end);
        self.far_levels[self.far_level_head] = far_level;
        self.far_level_head = (self.far_level_head + 1) % FAR_LEVELS;
        let far_active = far_level > FAR_ACTIVE_DBFS;
        self.since_far = if far_active { 0 } else { self.since_far.saturating_add(1) };
        self.far_frames = self.far_frames.saturating_add(u32::from(far_active));
        for (d, &s) in self.near.iter_mut().zip(near.iter()) {
            *d = f32::from(s);
        }
        // The caller talking over the echo would only blur the correlation.
        let talking = self.dt_hold > 0;
        self.delay.push(&self.history[h - frame..], &self.near, far_active && !talking);
        self.follow_delay();
        self.double_talk_frame = false;
        let Some(offset) = self.offset else { return };
        // Nothing sent for longer than the echo lasts: nothing to cancel.
        let echo_frames = ((offset / (self.rate as usize / 1000) + TAIL_MS) / 20 + 2) as u32;
        if self.since_far > echo_frames {
            self.gain = 1.0;
            return;
        }
        let near_level = crate::pcm_level_dbfs(near);
        for b in 0..frame / self.n {
            self.block(b, offset, near);
        }
        self.follow_levels(near_level);
    }

    /// After a processed frame: the ERLE's recent best, and the echo return loss.
    fn follow_levels(&mut self, near_level: f32) {
        self.erle_hold = self.erle_db().max(self.erle_hold - ERLE_HOLD_DECAY_DB);
        let noise = power_dbfs(self.noise / self.n as f32);
        let far = self.far_window_dbfs();
        if !self.double_talk_frame && far > FAR_ACTIVE_DBFS && near_level > noise + 10.0 {
            let erl = (far - near_level).clamp(0.0, 40.0);
            self.erl_db += 0.01 * (erl - self.erl_db);
        }
    }

    /// Move the filter's window when the delay estimate moved by more than the lead.
    fn follow_delay(&mut self) {
        let Some(ms) = self.delay.estimate_ms() else { return };
        let per_ms = self.rate as usize / 1000;
        let want = ms.saturating_sub(LEAD_MS) * per_ms;
        if self.offset.is_some_and(|o| o.abs_diff(want) <= LEAD_MS * per_ms) {
            return;
        }
        self.offset = Some(want);
        self.filter.reset();
        self.far_peaks = [0.0; PARTS];
        self.near_power = 0.0;
        self.err_power = 0.0;
        self.noise_power = 0.0;
        self.leak = 1.0;
        self.erle_hold = 0.0;
        self.leak_err = 0.0;
        self.leak_echo = 0.0;
    }

    /// One block of the frame: filter, double talk, adapt, suppress.
    fn block(&mut self, b: usize, offset: usize, near: &mut [i16]) {
        let (n, h, frame) = (self.n, self.history.len(), self.frame);
        let end = h - frame + (b + 1) * n - offset;
        let far = &self.history[end - 2 * n..end];
        self.filter.push_far(far);
        let peak = far[n..].iter().fold(0.0f32, |m, x| m.max(x.abs()));
        self.far_peaks[self.far_peak_head] = peak;
        self.far_peak_head = (self.far_peak_head + 1) % PARTS;
        let far_peak = self.far_peaks.iter().fold(0.0f32, |m, &x| m.max(x));

        self.filter.estimate(&mut self.echo);
        let d = &self.near[b * n..(b + 1) * n];
        let (mut pd, mut pe, mut py, mut near_peak) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
        for ((e, &d), &y) in self.err.iter_mut().zip(d).zip(&self.echo) {
            *e = d - y;
            pd += d * d;
            pe += *e * *e;
            py += y * y;
            near_peak = near_peak.max(d.abs());
        }
        // Double talk (Geigel): the caller's peak above what the echo of the tail's
        // loudest peak can be, given the echo return loss seen so far (never above the
        // classic 0.5, which assumes at least 6 dB). Once the filter has converged, the
        // error must also stand 6 dB above the residual it leaves plus the line's
        // noise: a peak the filter explains is echo.
        let far_meaningful = far_peak > 60.0;
        let geigel = near_peak > (2.0 * self.erl_amp).clamp(0.1, 0.5) * far_peak;
        let unexplained = self.erle_db() < CONVERGED_ERLE_DB || pe > 4.0 * (self.leak * py + self.noise);
        if far_meaningful && geigel && unexplained {
            self.dt_hold = DT_HANGOVER_BLOCKS;
        } else {
            self.dt_hold = self.dt_hold.saturating_sub(1);
        }
        let talking = self.dt_hold > 0;
        self.double_talk_frame |= talking;
        // The line's noise in the error: follows quieter blocks at once, louder slowly.
        self.noise = if pe < self.noise { pe } else { self.noise * 1.02 };
        if far_meaningful && !talking {
            // The echo return loss: the largest peak ratio of each half second, smoothed.
            self.erl_window_max = self.erl_window_max.max(near_peak / far_peak);
            self.erl_window_blocks += 1;
            if self.erl_window_blocks >= ERL_WINDOW_BLOCKS {
                self.erl_amp += 0.3 * (self.erl_window_max - self.erl_amp);
                self.erl_window_max = 0.0;
                self.erl_window_blocks = 0;
            }
            self.filter.adapt(&self.err, MU, 2.0 * n as f32 * 1000.0);
            self.near_power = self.near_power * 0.995 + pd;
            self.err_power = self.err_power * 0.995 + pe;
            self.noise_power = self.noise_power * 0.995 + self.noise;
            // (Only where the filter takes at least 3 dB off: a caller the detector
            // missed must not make the residual look large.)
            if py > 4.0 * self.noise && 2.0 * pe < py {
                // The residual over the echo estimate, a ratio of smoothed sums.
                self.leak_err = self.leak_err * 0.98 + (pe - self.noise).max(0.0);
                self.leak_echo = self.leak_echo * 0.98 + py;
                self.leak = (self.leak_err / self.leak_echo).clamp(1e-4, 4.0);
            }
        }
        // The residual echo suppressor.
        // The residual: the filter's recent leakage, but never more than what its ERLE
        // of the last seconds leaves.
        let leak = self.leak.min(10f32.powf(-self.erle_hold / 10.0));
        let residual = leak * py;
        self.residual += residual;
        // Over-subtract the residual twice, once while the caller talks.
        let over = if talking { 1.0 } else { 2.0 };
        let target = if pe > 0.0 { (1.0 - over * residual / pe).clamp(NLP_MIN_GAIN, 1.0) } else { 1.0 };
        let next = if target > self.gain { target } else { 0.5 * self.gain + 0.5 * target };
        let start = self.gain;
        self.gain = next;
        // A filter that adds more than it takes away (still converging, or upset by
        // the caller) is bypassed for the block: the caller's audio goes on as it came.
        let source = if pe > pd { &self.near[b * n..(b + 1) * n] } else { &self.err[..] };
        let out = &mut near[b * n..(b + 1) * n];
        for (i, (o, &e)) in out.iter_mut().zip(source).enumerate() {
            let g = start + (next - start) * (i + 1) as f32 / n as f32;
            *o = (e * g).round().clamp(-32768.0, 32767.0) as i16;
        }
    }
}

/// Mean power (16-bit units²) in dBFS, as [`crate::pcm_level_dbfs`] reports it.
fn power_dbfs(mean: f32) -> f32 {
    if mean < 1.0 {
        return crate::vad::SILENCE_DBFS;
    }
    (10.0 * (mean / (32768.0 * 32768.0)).log10()).max(crate::vad::SILENCE_DBFS)
}
