//! What the agent used (AgentEvent::Usage), in virtual time: its reports are summed into
//! the call's record and shown in the summary log line; an agent that reports none leaves
//! the record without usage.

mod harness;

use harness::*;
use std::time::Duration;
use voice_ua_agent::{AgentEvent, Usage};
use voice_ua_records::{AgentUsage, CallOutcome, CallRecord};

fn usage(u: Usage) -> Input {
    Input::Agent(AgentEvent::Usage(u))
}

fn hang_up() -> Input {
    Input::Agent(AgentEvent::HangUp { after_playback: false, reason: "done".into() })
}

/// The record as the call task fills it at the end.
fn record(p: &mut Pair) -> CallRecord {
    let mut r = CallRecord::new("id", "call", "1001", "9000", std::time::SystemTime::UNIX_EPOCH);
    p.core.fill_record(&mut r);
    r
}

/// The line `log_summary` writes, as the service's text log shows it.
fn summary_line(p: &Pair) -> String {
    logged(|| p.core.log_summary(p.now))
}

#[test]
fn two_usage_reports_are_summed_into_the_record_and_the_summary_line() {
    let mut p = Pair::new();
    // One reply's figures, then the next one's (with a cached prefix and a tool call's text).
    p.at(
        1000 * MS,
        usage(Usage {
            input_audio_tokens: 400,
            input_text_tokens: 1200,
            cached_input_tokens: 0,
            output_audio_tokens: 250,
            output_text_tokens: 60,
            cost_micro_usd: 4_100,
        }),
    );
    p.at(
        1500 * MS,
        usage(Usage {
            input_audio_tokens: 700,
            input_text_tokens: 1300,
            cached_input_tokens: 1152,
            output_audio_tokens: 380,
            output_text_tokens: 45,
            cost_micro_usd: 8_200,
        }),
    );
    p.at(2000 * MS, hang_up());
    p.run_until(Duration::from_secs(3));
    assert_eq!(p.core.ending().map(|e| e.outcome), Some(CallOutcome::AgentHangup));

    let line = summary_line(&p);
    assert!(line.contains("agent_tokens=4335") && line.contains("cost=$0.0123"), "{line}");
    let r = record(&mut p);
    assert_eq!(
        r.usage,
        Some(AgentUsage {
            input_audio_tokens: 1100,
            input_text_tokens: 2500,
            cached_input_tokens: 1152,
            output_audio_tokens: 630,
            output_text_tokens: 105,
            cost_micro_usd: 12_300,
        })
    );
}

#[test]
fn tokens_without_a_price_are_kept_and_the_line_shows_no_cost() {
    let mut p = Pair::new();
    p.at(1000 * MS, usage(Usage { input_audio_tokens: 300, output_audio_tokens: 200, ..Usage::default() }));
    p.at(1500 * MS, hang_up());
    p.run_until(Duration::from_secs(2));
    let line = summary_line(&p);
    assert!(line.contains("agent_tokens=500") && !line.contains("cost="), "{line}");
    let u = record(&mut p).usage.expect("tokens were reported");
    assert_eq!((u.total_tokens(), u.cost_micro_usd), (500, 0));
}

#[test]
fn an_agent_that_reports_no_usage_leaves_the_record_without_it() {
    let mut p = Pair::new();
    // An all-zero report (nothing used) is no usage either.
    p.at(1000 * MS, usage(Usage::default()));
    p.at(1500 * MS, hang_up());
    p.run_until(Duration::from_secs(2));
    let line = summary_line(&p);
    assert!(line.contains("call ended: done"), "{line}");
    assert!(!line.contains("agent_tokens") && !line.contains("cost="), "{line}");
    assert_eq!(record(&mut p).usage, None);
}
