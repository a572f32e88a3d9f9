//! The whole path on loopback with `agent.provider = "websocket"`: Kamailio as
//! registrar and proxy, voice-ua registered as 9000 and bridged over wss:// to the fake
//! WebSocket bots (`crates/fake-bots`), baresip as 1001 dialling 9000 and recording what
//! it hears. The rig is `agent_e2e`'s.
//!
//! * Twilio Media Streams: baresip hears the bot's greeting tone; the bot gets its mark
//!   back once the greeting has played, and the caller's audio.
//! * ASP (voice-ua in place of theo-ai-voice-agent's media server): baresip hears the
//!   agent's greeting (PCM16 from the agent, PCMU to baresip); `session.end` at the hangup.

use std::time::Duration;

use voice_ua_fake_bots::{BotConfig, FakeBot, Record, Step};
use voice_ua_fake_server::FakeServer;

use crate::agent_e2e::{Agent, FakeAgent, Rig, ToneScan};
use crate::support::calls;

/// A fake bot and the dialect voice-ua is configured for.
pub(crate) struct Bot {
    fake: FakeBot,
    dialect: &'static str,
}

impl FakeAgent for Bot {
    type Record = Record;
    const PROVIDER: &'static str = "websocket";
    // The bots take no key; voice-ua gets a variable it does not read.
    const KEY_ENV: &'static str = "BOT_UNUSED_KEY";
    fn url(&self) -> String {
        self.fake.url()
    }
    fn server(&self) -> Option<&FakeServer<Record>> {
        Some(&self.fake)
    }
    fn section(&self, _functions: &str) -> String {
        let ca = self.fake.ca_file().expect("the wss fake has a CA file");
        format!(
            "[agent]\nfallback_transfer = \"9001\"\n[agent.websocket]\nurl = \"{}\"\ndialect = \"{}\"\nca_file = \"{}\"\n",
            self.fake.url(),
            self.dialect,
            ca.display()
        )
    }
}

fn bot(config: BotConfig, dialect: &'static str) -> Agent<Bot> {
    let rt = Agent::<Bot>::runtime();
    let fake = rt.block_on(FakeBot::start(config.tls(true))).expect("fake bot starts");
    Agent::new(Bot { fake, dialect }, "", rt)
}

/// What baresip heard of a 1.5 s greeting tone: there, about 1.5 s long, unbroken, and
/// nothing like it after.
fn assert_heard_greeting<F: FakeAgent>(rig: &Rig<F>, name: &str) {
    let (heard, rate, dec) = rig.baresip.heard();
    let scan = ToneScan::new(&heard, rate);
    let (start, end) = scan
        .span()
        .unwrap_or_else(|| panic!("{name}: no 440 Hz tone heard: {}\n{}", dec.display(), rig.diag()));
    let length = end - start;
    let report = format!(
        "tone {start:.2}-{end:.2} s = {length:.2} s, {:.0}% covered, max amplitude after {:.0}",
        scan.coverage(start, end) * 100.0,
        scan.max_amp(end + 0.1, scan.duration_s())
    );
    eprintln!("{name}: {report}");
    assert!((1.3..=1.7).contains(&length), "{name}: the greeting lasts 1.5 s: {report}");
    assert!(scan.coverage(start, end) > 0.9, "{name}: {report}");
    assert!(scan.max_amp(end + 0.1, scan.duration_s()) < 40.0, "{name}: {report}");
}

#[test]
fn websocket_twilio_bot_greeting_reaches_the_caller() {
    let script = vec![Step::speak("Hello", 1500), Step::mark("greeting"), Step::WaitMark("greeting".into())];
    let agent = bot(BotConfig::twilio().script(script), "twilio");
    let Some(mut rig) = Rig::call("websocket_twilio", agent, "", false) else {
        return;
    };
    std::thread::sleep(Duration::from_millis(3500));
    rig.baresip.command("/hangup");
    calls::wait_calls_ended(&rig.ua, 1, Duration::from_secs(5));
    rig.baresip.quit();
    assert_heard_greeting(&rig, "websocket_twilio");
    let records = rig.agent.records(1, Duration::from_secs(5));
    let r = &records[0];
    assert!(r.violations.is_empty() && r.script_done && r.stopped, "{r:?}");
    assert_eq!(r.marks_echoed, ["greeting"]);
    assert!(r.audio_frames >= 100, "baresip's audio reached the bot: {}", r.audio_frames);
    assert!(!rig.ua_events("calls are answered by the WebSocket bot").is_empty(), "{}", rig.diag());
}

#[test]
fn websocket_asp_agent_greeting_reaches_the_caller() {
    let script = vec![Step::speak("Olá", 1500)];
    let agent = bot(BotConfig::asp().script(script), "asp");
    let Some(mut rig) = Rig::call("websocket_asp", agent, "", false) else {
        return;
    };
    std::thread::sleep(Duration::from_millis(3500));
    rig.baresip.command("/hangup");
    calls::wait_calls_ended(&rig.ua, 1, Duration::from_secs(5));
    rig.baresip.quit();
    assert_heard_greeting(&rig, "websocket_asp");
    let records = rig.agent.records(1, Duration::from_secs(5));
    let r = &records[0];
    assert!(r.violations.is_empty() && r.script_done && r.stopped, "session.end at the hangup: {r:?}");
    assert!(r.audio_frames >= 40, "baresip's audio reached the agent after the greeting: {}", r.audio_frames);
}
