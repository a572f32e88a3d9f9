//! Interop test ring: the `voice-ua` binary against real SIP peers on
//! 127.0.0.1 — Kamailio 5.6 as a registrar with digest auth
//! (`register_kamailio`) and sipp playing scripted registrars
//! (`register_sipp`); calls placed by sipp (`calls_sipp`) and by baresip
//! (`calls_baresip`, which also checks the echo in what it heard); and
//! `agent_e2e`: baresip -> Kamailio as registrar + proxy -> voice-ua bridged
//! to the fake Deepgram Voice Agent (greeting, tool call, barge-in,
//! transfer, fallback on failure), `agent_openai`: the same with the fake OpenAI
//! Realtime server (greeting, tool call), the fake WebSocket bots (`websocket_*`: the
//! Twilio dialect and ASP, greeting heard by baresip), and `pipecat_twilio`: voice-ua
//! bridged to Pipecat, a real Twilio Media Streams peer (greeting, answer, close, clear).
//! `agent_pipeline`: voice-ua's own pipeline with the real speech engines (Whisper hears
//! baresip's piper speech, the scripted LLM `fake-pipeline` calls a tool and answers,
//! piper speaks it, Whisper reads back what baresip heard; barge-in; an ignored latency
//! measurement); build `fake-pipeline` too (`cargo build -p voice-ua-fake-pipeline`).
//! `speech_server` proves the ring's local speech engines (Whisper tiny.en and piper
//! behind an OpenAI-compatible server, `support/speech.rs`) on their own.
//! `g722` checks our G.722 codec bit for bit against ffmpeg's and libspandsp's.
//! `selfcheck` proves the peers' configs and the
//! harness with sipp as the UA, without voice-ua.
//!
//! Needs `kamailio`, `kamcmd` and `sipp` (Debian: kamailio, sip-tester),
//! and for the baresip tests `baresip` (and `sox` for `calls_baresip`).
//! When they are missing each test prints a SKIP line and passes, unless
//! `VOICE_UA_REQUIRE_INTEROP=1`, which turns that into a failure.
//! The binary under test is `$VOICE_UA_BIN`, else `<target>/debug/voice-ua`
//! next to this test executable: build it first with `cargo build -p voice-ua`.
//!
//! Each test starts its own peers on fresh ports in its own run directory
//! (under `$TMPDIR/voice-ua-interop/`, kept when the test fails), so tests
//! run in parallel.

mod agent_e2e;
mod agent_openai;
mod agent_pipeline;
mod bots_e2e;
mod calls_baresip;
mod calls_sipp;
mod g722;
mod pipecat_twilio;
mod register_kamailio;
mod register_sipp;
mod selfcheck;
mod speech_server;
mod support;
