//! The process's metrics, for `GET /metrics` (Prometheus text format 0.0.4).
//!
//! One [`Metrics`] handle (behind an `Arc`) is shared by the registration watcher and
//! every call. Updates are atomic increments; they happen on events (registration
//! changes, call start and end, barge-in, tool calls, agent errors), never per frame.

use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use std::time::Duration;
use voice_ua_agent::ReplyFigures;
use voice_ua_records::{CallOutcome, MediaStats, RecordWriter, TurnStage};
use voice_ua_sip::refusals::RefusalCounts;
use voice_ua_sip::RegStatus;

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Buckets of the agent turn latency histogram, seconds.
const TURN_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0];

/// Buckets of the turn stage histogram, seconds: the turn's, and two finer ones below
/// them (a local STT or a TTS's first byte takes tens of milliseconds).
const STAGE_BUCKETS: [f64; 12] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0];

/// The `outcome` labels a call can end with (see `call.rs`), then those of INVITEs the
/// SIP layer refused before they became calls: every [`CallOutcome`] but the records'
/// own `in_progress` and `interrupted`.
pub const OUTCOMES: [CallOutcome; 13] = end_outcomes();

const fn end_outcomes() -> [CallOutcome; 13] {
    let mut out = [CallOutcome::Failed; 13];
    let (mut i, mut n) = (0, 0);
    while i < CallOutcome::ALL.len() {
        if CallOutcome::ALL[i].is_end() {
            out[n] = CallOutcome::ALL[i];
            n += 1;
        }
        i += 1;
    }
    assert!(n == out.len(), "OUTCOMES holds every call-end outcome");
    out
}

pub struct Metrics {
    registry: Registry,
    registered: IntGauge,
    reg_attempts: IntCounter,
    reg_failures: IntCounterVec,
    active_calls: IntGauge,
    calls: IntCounterVec,
    rtp_in: IntCounter,
    rtp_out: IntCounter,
    rtp_lost: IntCounter,
    rtp_late: IntCounter,
    rtp_concealed: IntCounter,
    last_jitter: Gauge,
    turn_latency: Histogram,
    /// `voice_ua_agent_turn_stage_seconds`, one series per stage, made at start.
    turn_stages: [(TurnStage, Histogram); 4],
    barge_ins: IntCounter,
    tool_calls: IntCounterVec,
    agent_errors: IntCounterVec,
    /// `voice_ua_agent_reconnects_total{provider,result}`.
    agent_reconnects: IntCounterVec,
    /// The SIP layer's refusal counters, read at each scrape.
    refusals: std::sync::OnceLock<std::sync::Arc<RefusalCounts>>,
    /// SIP requests refused outside the call counts: in-dialog 403s and dropped datagrams.
    sip_refused: IntCounterVec,
    records_failed: IntCounter,
    records_dropped: IntCounter,
    /// The call records writer, its counters read at each scrape and health check.
    records: std::sync::OnceLock<RecordWriter>,
    /// Records are on in the configuration but their database could not be opened.
    records_not_opened: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::build().expect("the metric names and labels are valid")
    }

    fn build() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        fn reg<M: prometheus::core::Collector + Clone + 'static>(
            r: &Registry,
            m: M,
        ) -> prometheus::Result<M> {
            r.register(Box::new(m.clone()))?;
            Ok(m)
        }
        let counter = |name: &str, help: &str| reg(&registry, IntCounter::new(name, help)?);
        let labelled = |name: &str, help: &str, label: &str| {
            reg(&registry, IntCounterVec::new(Opts::new(name, help), &[label])?)
        };
        let calls = labelled("voice_ua_calls_total", "Calls handled, by how they ended", "outcome")?;
        // Known outcomes start at 0, so rate() and increase() see the first call.
        for outcome in OUTCOMES {
            calls.with_label_values(&[outcome.as_str()]);
        }
        let stages = reg(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "voice_ua_agent_turn_stage_seconds",
                    "A turn's stages as the agent reports them: endpointing (the caller's last \
                     speech to the end of turn decided), transcribe (speech to text), think (to \
                     the LLM's first token), speak (to the TTS's first audio byte)",
                )
                .buckets(STAGE_BUCKETS.to_vec()),
                &["stage"],
            )?,
        )?;
        // Every stage's series exists from the start (0 observations), like the outcomes.
        let turn_stages = TurnStage::ALL.map(|s| (s, stages.with_label_values(&[s.as_str()])));
        Ok(Metrics {
            registered: reg(
                &registry,
                IntGauge::new(
                    "voice_ua_registered",
                    "1 while the extension is registered on the PBX, else 0",
                )?,
            )?,
            reg_attempts: counter(
                "voice_ua_registration_attempts_total",
                "Registration outcomes reported (successes and failures, refreshes included)",
            )?,
            reg_failures: labelled(
                "voice_ua_registration_failures_total",
                "Failed registrations by kind (credentials_rejected, refused, failed, lapsed)",
                "kind",
            )?,
            active_calls: reg(&registry, IntGauge::new("voice_ua_active_calls", "Calls in progress")?)?,
            calls,
            rtp_in: counter("voice_ua_rtp_packets_in_total", "RTP packets received (summed at call end)")?,
            rtp_out: counter("voice_ua_rtp_packets_out_total", "RTP packets sent (summed at call end)")?,
            rtp_lost: counter(
                "voice_ua_rtp_packets_lost_total",
                "RTP packets lost (RFC 3550, summed at call end)",
            )?,
            rtp_late: counter(
                "voice_ua_rtp_packets_late_total",
                "RTP packets dropped for arriving after their playout time (summed at call end)",
            )?,
            rtp_concealed: counter(
                "voice_ua_rtp_frames_concealed_total",
                "20 ms frames concealed because their audio was missing (summed at call end)",
            )?,
            last_jitter: reg(
                &registry,
                Gauge::new(
                    "voice_ua_last_call_jitter_seconds",
                    "RTP interarrival jitter of the last call to end",
                )?,
            )?,
            turn_latency: reg(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "voice_ua_agent_turn_latency_seconds",
                        "From the caller's end of speech to the first RTP packet of the agent's reply",
                    )
                    .buckets(TURN_BUCKETS.to_vec()),
                )?,
            )?,
            turn_stages,
            barge_ins: counter("voice_ua_barge_ins_total", "Agent audio flushed because the caller spoke")?,
            tool_calls: reg(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "voice_ua_tool_calls_total",
                        "Tool calls by name (transfer, hangup, dtmf, or the HTTP function's name) and result",
                    ),
                    &["name", "result"],
                )?,
            )?,
            agent_errors: reg(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "voice_ua_agent_errors_total",
                        "Agent failures by kind and the agent's error code (e.g. Deepgram's CLIENT_MESSAGE_TIMEOUT)",
                    ),
                    &["kind", "code"],
                )?,
            )?,
            agent_reconnects: reg(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "voice_ua_agent_reconnects_total",
                        "Agent connections that dropped mid-call and were opened again (result ok: the \
                         call went on with the conversation; failed: no attempt worked, the fallback played)",
                    ),
                    &["provider", "result"],
                )?,
            )?,
            refusals: std::sync::OnceLock::new(),
            sip_refused: reg(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "voice_ua_sip_refused_total",
                        "SIP requests refused that are not calls: in_dialog_forbidden (403 to a request \
                         inside a call from outside its route), dropped (over a source's budget, or \
                         from a stranger and nothing a stranger is answered)",
                    ),
                    &["reason"],
                )?,
            )?,
            records_failed: counter(
                "voice_ua_records_failed_total",
                "Call record writes that failed (disk full, I/O error): the call went on, that record is lost",
            )?,
            records_dropped: counter(
                "voice_ua_records_dropped_total",
                "Call records never queued for writing (the records writer was stalled or had stopped)",
            )?,
            records: std::sync::OnceLock::new(),
            records_not_opened: std::sync::atomic::AtomicBool::new(false),
            registry,
        })
    }

    /// The exposition text (Prometheus text format 0.0.4).
    pub fn render(&self) -> String {
        if let Some(r) = self.refusals.get() {
            let r = r.snapshot();
            for (outcome, n) in [
                (CallOutcome::Refused403, r.forbidden),
                (CallOutcome::Refused486, r.busy),
                (CallOutcome::Refused422, r.timer_too_small),
                (CallOutcome::RefusedUnavailable, r.unavailable),
            ] {
                let c = self.calls.with_label_values(&[outcome.as_str()]);
                c.inc_by(n.saturating_sub(c.get()));
            }
            for (reason, n) in [("in_dialog_forbidden", r.in_dialog_forbidden), ("dropped", r.dropped)] {
                let c = self.sip_refused.with_label_values(&[reason]);
                c.inc_by(n.saturating_sub(c.get()));
            }
        }
        if let Some(w) = self.records.get() {
            let stats = w.stats();
            self.records_failed.inc_by(stats.failed.saturating_sub(self.records_failed.get()));
            self.records_dropped.inc_by(stats.dropped.saturating_sub(self.records_dropped.get()));
        }
        TextEncoder::new().encode_to_string(&self.registry.gather()).unwrap_or_default()
    }

    /// Report the SIP layer's refusals (403, 486, 422, 480) in `voice_ua_calls_total`.
    pub fn watch_refusals(&self, counts: std::sync::Arc<RefusalCounts>) {
        let _ = self.refusals.set(counts);
    }

    /// Report the call records writer's failures in `voice_ua_records_failed_total` and
    /// `voice_ua_records_dropped_total`, and in [`degradations`](Self::degradations).
    pub fn watch_records(&self, writer: RecordWriter) {
        let _ = self.records.set(writer);
    }

    /// Call records are on, but their database could not be opened (logged at start):
    /// calls are answered without records, and [`degradations`](Self::degradations) says so.
    pub fn records_not_opened(&self) {
        self.records_not_opened.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// What works less than it should while calls go on, one phrase each, for `/healthz`:
    /// call records that are not kept, could not be written, or were dropped.
    pub fn degradations(&self) -> Vec<String> {
        if self.records_not_opened.load(std::sync::atomic::Ordering::Relaxed) {
            return vec![
                "call records are not kept: the records database could not be opened (the log at start says why)"
                    .into(),
            ];
        }
        let Some(w) = self.records.get() else { return Vec::new() };
        let stats = w.stats();
        let mut out = Vec::new();
        if stats.failed > 0 {
            let plural = if stats.failed == 1 { "record" } else { "records" };
            let last = w.last_failure().map(|e| format!("; last error: {e}")).unwrap_or_default();
            out.push(format!("{} call {plural} could not be written (disk full?{last})", stats.failed));
        }
        if stats.dropped > 0 {
            let plural = if stats.dropped == 1 { "record was" } else { "records were" };
            out.push(format!(
                "{} call {plural} dropped (the records writer is stalled or has stopped)",
                stats.dropped
            ));
        }
        out
    }

    /// A registration status change (from `SipUa::status()`).
    pub fn on_reg_status(&self, status: &RegStatus) {
        match status {
            RegStatus::Registered { .. } => {
                self.registered.set(1);
                self.reg_attempts.inc();
            }
            RegStatus::NotRegistered { kind, .. } => {
                self.registered.set(0);
                self.reg_attempts.inc();
                self.reg_failures.with_label_values(&[kind.label()]).inc();
            }
            RegStatus::Starting | RegStatus::Stopped => self.registered.set(0),
        }
    }

    /// A call reached voice-ua: counted as active until the guard drops, then once
    /// in `voice_ua_calls_total` with the outcome set on the guard ("failed" unless set).
    pub fn call_started(self: &std::sync::Arc<Self>) -> CallGuard {
        self.active_calls.inc();
        CallGuard { metrics: self.clone(), outcome: CallOutcome::Failed }
    }

    /// A call's media figures, at its end.
    pub fn rtp_summary(&self, r: &MediaStats) {
        self.rtp_in.inc_by(r.packets_in);
        self.rtp_out.inc_by(r.packets_out);
        self.rtp_lost.inc_by(r.lost);
        self.rtp_late.inc_by(r.late);
        self.rtp_concealed.inc_by(r.concealed);
        self.last_jitter.set(r.jitter_ms / 1000.0);
    }

    /// A turn: its latency as the call measured it, into
    /// `voice_ua_agent_turn_latency_seconds`, and each stage the agent reported into
    /// `voice_ua_agent_turn_stage_seconds{stage}`.
    pub fn turn(&self, latency: Duration, figures: &ReplyFigures) {
        self.turn_latency.observe(latency.as_secs_f64());
        for (stage, histogram) in &self.turn_stages {
            if let Some(d) = stage_of(figures, *stage) {
                histogram.observe(d.as_secs_f64());
            }
        }
    }

    pub fn barge_in(&self) {
        self.barge_ins.inc();
    }

    /// A built-in tool the agent called: `name` is transfer, hangup or dtmf.
    pub fn tool_call(&self, name: &str, result: &str) {
        self.tool_calls.with_label_values(&[name, result]).inc();
    }

    /// A reconnect of `provider`'s session ended: `ok`, or it failed.
    pub fn agent_reconnect(&self, provider: &str, ok: bool) {
        self.agent_reconnects.with_label_values(&[provider, if ok { "ok" } else { "failed" }]).inc();
    }

    /// An agent failure, by the error's variant and the agent's own code when it gave one.
    pub fn agent_error(&self, e: &voice_ua_agent::AgentError) {
        self.agent_errors.with_label_values(&[e.kind(), e.code().unwrap_or("none")]).inc();
    }
}

/// The agent's figure for one stage of its reply.
fn stage_of(f: &ReplyFigures, stage: TurnStage) -> Option<Duration> {
    match stage {
        TurnStage::Endpointing => f.endpointing,
        TurnStage::Transcribe => f.transcribe,
        TurnStage::Think => f.think,
        TurnStage::Speak => f.speak,
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Counts a call as active while alive; on drop, counts its outcome.
pub struct CallGuard {
    metrics: std::sync::Arc<Metrics>,
    outcome: CallOutcome,
}

impl CallGuard {
    pub fn set_outcome(&mut self, outcome: CallOutcome) {
        self.outcome = outcome;
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.metrics.active_calls.dec();
        self.metrics.calls.with_label_values(&[self.outcome.as_str()]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use voice_ua_sip::RegFailure;

    fn line<'a>(text: &'a str, name: &str) -> Option<&'a str> {
        text.lines().find(|l| l.split_once(' ').map(|(n, _)| n) == Some(name))
    }

    #[test]
    fn the_exposition_text_is_prometheus_0_0_4() {
        let m = Arc::new(Metrics::new());
        m.on_reg_status(&RegStatus::NotRegistered {
            kind: RegFailure::CredentialsRejected { status: 403 },
            why: "PBX rejected the password for 9000@pbx (403)".into(),
        });
        m.on_reg_status(&RegStatus::Registered { expires: 300 });
        {
            let mut call = m.call_started();
            m.barge_in();
            m.turn(Duration::from_millis(300), &ReplyFigures::default());
            m.tool_call("transfer", "accepted");
            m.agent_error(&voice_ua_agent::AgentError::Provider {
                provider: "deepgram".into(),
                detail: "Deepgram error CLIENT_MESSAGE_TIMEOUT: We waited too long".into(),
                code: voice_ua_agent::ProviderCode::new("CLIENT_MESSAGE_TIMEOUT"),
            });
            m.agent_error(&voice_ua_agent::AgentError::AgentStopped { provider: "deepgram".into() });
            m.agent_reconnect("deepgram", true);
            m.agent_reconnect("deepgram", true);
            m.agent_reconnect("openai", false);
            m.rtp_summary(&MediaStats {
                packets_in: 200,
                packets_out: 198,
                lost: 2,
                late: 1,
                concealed: 3,
                jitter_ms: 4.0,
            });
            assert!(m.render().contains("\nvoice_ua_active_calls 1\n"));
            call.set_outcome(CallOutcome::CallerHangup);
        }
        let text = m.render();
        assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4");
        for (name, value) in [
            ("voice_ua_registered", "1"),
            ("voice_ua_registration_attempts_total", "2"),
            ("voice_ua_registration_failures_total{kind=\"credentials_rejected\"}", "1"),
            ("voice_ua_active_calls", "0"),
            ("voice_ua_calls_total{outcome=\"caller_hangup\"}", "1"),
            ("voice_ua_rtp_packets_in_total", "200"),
            ("voice_ua_rtp_packets_out_total", "198"),
            ("voice_ua_rtp_packets_lost_total", "2"),
            ("voice_ua_rtp_packets_late_total", "1"),
            ("voice_ua_rtp_frames_concealed_total", "3"),
            ("voice_ua_last_call_jitter_seconds", "0.004"),
            ("voice_ua_barge_ins_total", "1"),
            ("voice_ua_tool_calls_total{name=\"transfer\",result=\"accepted\"}", "1"),
            ("voice_ua_agent_errors_total{code=\"CLIENT_MESSAGE_TIMEOUT\",kind=\"provider\"}", "1"),
            ("voice_ua_agent_errors_total{code=\"none\",kind=\"agent_stopped\"}", "1"),
            ("voice_ua_agent_reconnects_total{provider=\"deepgram\",result=\"ok\"}", "2"),
            ("voice_ua_agent_reconnects_total{provider=\"openai\",result=\"failed\"}", "1"),
            ("voice_ua_agent_turn_latency_seconds_bucket{le=\"0.25\"}", "0"),
            ("voice_ua_agent_turn_latency_seconds_bucket{le=\"0.5\"}", "1"),
            ("voice_ua_agent_turn_latency_seconds_bucket{le=\"+Inf\"}", "1"),
            ("voice_ua_agent_turn_latency_seconds_count", "1"),
        ] {
            assert_eq!(line(&text, name), Some(format!("{name} {value}").as_str()), "{name} in\n{text}");
        }
        assert!(text.contains("# TYPE voice_ua_calls_total counter\n"), "{text}");
        assert!(text.contains("voice_ua_calls_total{outcome=\"media_timeout\"} 0\n"), "{text}");
        assert!(text.contains("# TYPE voice_ua_registered gauge\n"), "{text}");
        assert!(text.contains("# TYPE voice_ua_agent_turn_latency_seconds histogram\n"), "{text}");
        assert!(text.contains("# HELP voice_ua_active_calls Calls in progress\n"), "{text}");
        // The SIP layer's refusals, read at each scrape.
        let counts = Arc::new(RefusalCounts::default());
        m.watch_refusals(counts.clone());
        assert!(m.render().contains("voice_ua_calls_total{outcome=\"refused_403\"} 0\n"));
        counts.count(403);
        counts.count(403);
        counts.count(486);
        let text = m.render();
        assert!(text.contains("voice_ua_calls_total{outcome=\"refused_403\"} 2\n"), "{text}");
        assert!(text.contains("voice_ua_calls_total{outcome=\"refused_486\"} 1\n"), "{text}");
        assert!(text.contains("voice_ua_sip_refused_total{reason=\"dropped\"} 0\n"), "{text}");
        counts.count_dropped();
        counts.count_dropped();
        counts.count_in_dialog_forbidden();
        let text = m.render();
        assert!(text.contains("voice_ua_sip_refused_total{reason=\"dropped\"} 2\n"), "{text}");
        assert!(text.contains("voice_ua_sip_refused_total{reason=\"in_dialog_forbidden\"} 1\n"), "{text}");
        assert!(
            m.render().contains("voice_ua_calls_total{outcome=\"refused_403\"} 2\n"),
            "not counted twice"
        );
        m.on_reg_status(&RegStatus::NotRegistered { kind: RegFailure::Lapsed, why: "lapsed".into() });
        assert!(m.render().contains("\nvoice_ua_registered 0\n"));
        assert!(m.render().contains("voice_ua_registration_failures_total{kind=\"lapsed\"} 1\n"));
    }

    #[test]
    fn each_stage_the_agent_reported_is_observed_under_its_label() {
        let m = Metrics::new();
        let text = m.render();
        for stage in ["endpointing", "transcribe", "think", "speak"] {
            let name = format!("voice_ua_agent_turn_stage_seconds_count{{stage=\"{stage}\"}}");
            assert_eq!(line(&text, &name), Some(format!("{name} 0").as_str()), "from the start: {text}");
        }
        assert!(text.contains("# TYPE voice_ua_agent_turn_stage_seconds histogram\n"), "{text}");
        let ms = Duration::from_millis;
        // The pipeline: every stage.
        let all = ReplyFigures {
            total: Some(ms(800)),
            endpointing: Some(ms(600)),
            transcribe: Some(ms(90)),
            think: Some(ms(70)),
            speak: Some(ms(8)),
        };
        m.turn(ms(820), &all);
        // Deepgram: think and speak only.
        let some = ReplyFigures { think: Some(ms(1200)), speak: Some(ms(30)), ..ReplyFigures::default() };
        m.turn(ms(1400), &some);
        // Echo: none.
        m.turn(ms(40), &ReplyFigures::default());
        let text = m.render();
        for (name, value) in [
            ("voice_ua_agent_turn_latency_seconds_count", "3"),
            ("voice_ua_agent_turn_latency_seconds_bucket{le=\"0.05\"}", "1"),
            ("voice_ua_agent_turn_latency_seconds_bucket{le=\"1\"}", "2"),
            ("voice_ua_agent_turn_stage_seconds_count{stage=\"endpointing\"}", "1"),
            ("voice_ua_agent_turn_stage_seconds_count{stage=\"transcribe\"}", "1"),
            ("voice_ua_agent_turn_stage_seconds_count{stage=\"think\"}", "2"),
            ("voice_ua_agent_turn_stage_seconds_count{stage=\"speak\"}", "2"),
            ("voice_ua_agent_turn_stage_seconds_sum{stage=\"endpointing\"}", "0.6"),
            ("voice_ua_agent_turn_stage_seconds_sum{stage=\"think\"}", "1.27"),
            ("voice_ua_agent_turn_stage_seconds_bucket{stage=\"speak\",le=\"0.01\"}", "1"),
            ("voice_ua_agent_turn_stage_seconds_bucket{stage=\"speak\",le=\"0.025\"}", "1"),
            ("voice_ua_agent_turn_stage_seconds_bucket{stage=\"speak\",le=\"0.05\"}", "2"),
            ("voice_ua_agent_turn_stage_seconds_bucket{stage=\"transcribe\",le=\"0.05\"}", "0"),
            ("voice_ua_agent_turn_stage_seconds_bucket{stage=\"transcribe\",le=\"0.1\"}", "1"),
            ("voice_ua_agent_turn_stage_seconds_bucket{stage=\"think\",le=\"+Inf\"}", "2"),
        ] {
            assert_eq!(line(&text, name), Some(format!("{name} {value}").as_str()), "{name} in\n{text}");
        }
    }
}
