//! Privacy defaults in virtual time: transcript lines stay out of the log unless turned
//! on (the record keeps them either way), and the consent prompt plays before the
//! agent's first words — a barge-in does not cut it, and the agent's count of its own
//! audio leaves it out.

mod harness;

use harness::*;
use std::time::{Duration, SystemTime};
use voice_ua_agent::{AgentEvent, CallInput, Role};
use voice_ua_call::CallSettings;
use voice_ua_records::CallRecord;
use voice_ua_sip::session_timer::TimerRequest;

fn pair(settings: CallSettings) -> Pair {
    Pair::with(settings, PbxScript::default(), Some(offer("sendrecv")), TimerRequest::default())
}

fn said(text: &str, role: Role) -> Input {
    Input::Agent(AgentEvent::Transcript { role, text: text.into(), at: SystemTime::UNIX_EPOCH })
}

fn record(p: &mut Pair) -> CallRecord {
    let mut r = CallRecord::new("id", "call", "1001", "9000", SystemTime::UNIX_EPOCH);
    p.core.fill_record(&mut r);
    r
}

fn run_transcripts(log_transcripts: bool) -> (String, CallRecord) {
    let mut p = pair(CallSettings { log_transcripts, ..settings() });
    p.at(500 * MS, said("my PIN is 4711", Role::User));
    p.at(600 * MS, said("Thank you, Carlos", Role::Agent));
    let log = logged(|| p.run_until(Duration::from_secs(1)));
    (log, record(&mut p))
}

#[test]
fn transcript_text_is_not_logged_by_default_but_the_record_keeps_it() {
    let (log, r) = run_transcripts(false);
    assert!(!log.contains("4711") && !log.contains("Carlos"), "{log}");
    let texts: Vec<&str> = r.transcript.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["my PIN is 4711", "Thank you, Carlos"]);

    let (log, r) = run_transcripts(true);
    assert!(log.contains("my PIN is 4711") && log.contains("Thank you, Carlos"), "{log}");
    assert_eq!(r.transcript.len(), 2);
}

/// The PBX's payloads from `from` to `to` (after the INVITE).
fn payloads(p: &Pair, from: Duration, to: Duration) -> Vec<u8> {
    p.heard_since(from).filter(|h| h.at <= p.t(to)).flat_map(|h| h.payload.iter().copied()).collect()
}

fn speech_bytes(ms: u32) -> Vec<u8> {
    agent_speech(ms)
        .into_iter()
        .flat_map(|e| if let AgentEvent::Audio(f) = e { f.as_bytes().to_vec() } else { Vec::new() })
        .collect()
}

#[test]
fn the_consent_prompt_plays_before_the_greeting_and_a_barge_in_does_not_cut_it() {
    let prompt = prompt_ulaw(1000);
    let mut p = pair(CallSettings { consent_prompt: prompt.clone(), ..settings() });
    // The greeting arrives at once, the caller talks over the prompt at 600 ms.
    p.agent_says(270 * MS, 400);
    p.at(600 * MS, Input::Agent(AgentEvent::FlushPlayback));
    p.agent_says(700 * MS, 400);
    p.run_until(Duration::from_secs(3));
    let first = p.heard_since(Duration::ZERO).find(|h| h.loud()).expect("sound");
    let start = first.at - p.t0;
    let heard = payloads(&p, start, start + 980 * MS);
    assert_eq!(heard, prompt, "the whole prompt first, uncut by the barge-in");
    // Then the agent's reply after the flush (the greeting was dropped by it).
    let after = payloads(&p, start + 1000 * MS, start + 1380 * MS);
    assert_eq!(after, speech_bytes(400));
    // The agent heard none of its own audio when it was flushed: the prompt is not its.
    let flushed: Vec<u64> = p
        .agent
        .inputs
        .iter()
        .filter_map(|(_, i)| {
            if let CallInput::PlaybackFlushed { played_samples } = i {
                Some(*played_samples)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(flushed, [0]);
}

#[test]
fn without_a_consent_prompt_the_greeting_is_first() {
    let mut p = pair(settings());
    p.agent_says(270 * MS, 400);
    p.run_until(Duration::from_secs(2));
    let first = p.heard_since(Duration::ZERO).find(|h| h.loud()).expect("sound");
    let start = first.at - p.t0;
    assert_eq!(payloads(&p, start, start + 380 * MS), speech_bytes(400));
}
