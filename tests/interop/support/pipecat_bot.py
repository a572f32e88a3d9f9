#!/usr/bin/env python3
"""A scripted Twilio Media Streams peer built from Pipecat's own pieces.

Test support for voice-ua's `websocket` agent provider (Twilio dialect).
voice-ua is the WebSocket client; this is the server ("the bot").

What it is made of (all third-party Pipecat code, nothing re-implemented):
  * pipecat.serializers.twilio.TwilioFrameSerializer  (JSON <-> frames,
    mu-law <-> PCM16), with auto_hang_up=False so it never calls Twilio REST;
  * pipecat.transports.websocket.fastapi.FastAPIWebsocketTransport (pacing,
    chunking, `clear` on interruption), served by uvicorn/FastAPI;
  * a Pipeline [transport.input(), ScriptedBot, transport.output()].

The script needs no cloud service and no keys:
  1. When the pipeline starts (right after `start` was read), it plays the
     greeting: a 1000 Hz tone (--greeting-hz / --greeting-ms) or the mono
     16-bit WAV given by --greeting.
  2. It measures caller audio (RMS of each decoded PCM16 frame above
     --speech-rms counts as voiced). After --answer-after-ms (1000) of voiced
     audio it plays the answer: a 600 Hz tone (--answer-hz / --answer-ms).
     The voiced counter then restarts; at most --max-answers answers (1,
     0 = unlimited).
  3. Optional: --barge-in greeting|all makes caller speech heard while the
     bot plays (>= --barge-in-ms voiced, default 300) interrupt it, through
     Pipecat's own interruption (InterruptionFrame): the serializer sends
     `clear` and the transport drops the audio (and marks) still queued.
     "greeting" only interrupts until the first answer is queued.
     --marks sends a Twilio `mark` after each clip ("greeting", "answer-N"),
     queued behind that clip's audio (stock Pipecat sends no marks).
     --hangup-after-answers N ends the pipeline once the Nth answer has been
     played; the server then closes the WebSocket (the only "hangup" a
     Twilio-dialect server has in band).
     --on-stop close makes the server close the socket when `stop` arrives
     (stock Pipecat ignores `stop` and waits for the client to close).

Outgoing media: with the default --sample-rate 8000 each `media` frame holds
exactly --chunk-ms of mu-law (40 ms = 320 bytes, Pipecat's default; Twilio
uses 20 ms = 160 bytes), sent in real time (one frame per chunk duration).
At other pipeline rates the serializer's streaming resampler makes the
payload sizes irregular (about 95 ms bursts at 16 kHz), as in a stock
Pipecat bot.

Serving: ws://127.0.0.1:PORT/<any path>; Pipecat's own runner uses /ws for
telephony, so use /ws. Query strings are ignored. Bound to 127.0.0.1 only.
--port 0 picks a free port. When listening it prints exactly one line
"READY <port>" to stdout.

Setup (not run by this script; installs nothing by itself):
  tests/interop/support/pipecat-venv.sh makes the venv and prints its python
  (pip install "pipecat-ai[websocket]==1.14.0" "uvicorn==0.55.0"; the extra
  brings fastapi; uvicorn is not part of it). Verified with
  Python 3.11.7, pipecat-ai 1.14.0, fastapi 0.165.0, starlette 1.10.0,
  uvicorn 0.55.0, websockets 17.4, numpy 2.4.6. Ready ~1 s after launch.
  Run: "$(tests/interop/support/pipecat-venv.sh)" pipecat_bot.py --port 0 [--log-file F]

Observability: each Twilio event received is logged to stderr
("pipecat_bot: event start ...") and, with --log-file, appended to that file
one event name per line (--log-format json writes the whole message instead,
with media payloads replaced by their decoded length).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import socket
import sys
import time
import wave

_T0 = time.monotonic()


def _parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = any free port)")
    p.add_argument("--sample-rate", type=int, default=8000,
                   help="pipeline/transport sample rate in Hz (the serializer converts to/from 8 kHz mu-law)")
    p.add_argument("--chunk-ms", type=int, default=40, choices=[10, 20, 30, 40, 50, 60, 80, 100],
                   help="audio per outgoing media frame (Pipecat's audio_out_10ms_chunks * 10); "
                        "40 is Pipecat's stock default, Twilio itself uses 20")
    p.add_argument("--greeting", help="mono 16-bit PCM WAV played at start instead of the tone")
    p.add_argument("--greeting-hz", type=float, default=1000.0)
    p.add_argument("--greeting-ms", type=int, default=1000)
    p.add_argument("--no-greeting", action="store_true", help="play nothing at start")
    p.add_argument("--answer-hz", type=float, default=600.0)
    p.add_argument("--answer-ms", type=int, default=1000)
    p.add_argument("--answer-after-ms", type=int, default=1000,
                   help="voiced caller audio needed before the answer tone")
    p.add_argument("--max-answers", type=int, default=1, help="0 = unlimited")
    p.add_argument("--speech-rms", type=float, default=500.0,
                   help="PCM16 RMS above which a caller frame counts as voiced")
    p.add_argument("--amplitude", type=float, default=0.5, help="tone peak, fraction of full scale")
    p.add_argument("--barge-in", choices=["off", "greeting", "all"], default="off",
                   help="interrupt bot playback (Pipecat sends `clear`) when the caller speaks over it: "
                        "never, only during the greeting (before any answer was queued), or always")
    p.add_argument("--barge-in-ms", type=int, default=300)
    p.add_argument("--marks", action="store_true", help="send a Twilio `mark` after each clip")
    p.add_argument("--hangup-after-answers", type=int, default=0,
                   help="close the WebSocket after the Nth answer has played (0 = never)")
    p.add_argument("--on-stop", choices=["ignore", "close"], default="ignore",
                   help="what to do when `stop` arrives (stock Pipecat: ignore)")
    p.add_argument("--end-silence-ms", type=int, default=0,
                   help="silence Pipecat sends before closing (audio_out_end_silence_secs, whole seconds)")
    p.add_argument("--start-timeout", type=float, default=10.0,
                   help="seconds to wait for the `start` event before closing")
    p.add_argument("--subprotocol", help="accept this WebSocket subprotocol if the client offers it")
    p.add_argument("--log-file", help="append each received Twilio event to this file")
    p.add_argument("--log-format", choices=["names", "json"], default="names")
    p.add_argument("--verbose", action="store_true", help="Pipecat's own DEBUG logs on stderr")
    return p.parse_args(argv)


ARGS = _parse_args()

# Heavy imports after argument parsing so --help is fast.
import numpy as np  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI, WebSocket, WebSocketDisconnect  # noqa: E402
from loguru import logger  # noqa: E402

logger.remove()
logger.add(sys.stderr, level="DEBUG" if ARGS.verbose else os.environ.get("PIPECAT_LOG_LEVEL", "WARNING"))

from pipecat.frames.frames import (  # noqa: E402
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    OutputTransportMessageFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pipecat.serializers.twilio import TwilioFrameSerializer  # noqa: E402
from pipecat.transports.websocket.fastapi import (  # noqa: E402
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)

# Pipecat 1.14 (pinned in pipecat-venv.sh): workers and their runner.
from pipecat.frames.frames import EndWorkerFrame as _EndPipelineFrame  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

try:
    import pipecat as _pipecat

    PIPECAT_VERSION = getattr(_pipecat, "__version__", "?")
except Exception:  # pragma: no cover
    PIPECAT_VERSION = "?"


def say(msg: str) -> None:
    print(f"pipecat_bot: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Event log


class EventLog:
    def __init__(self, path: str | None, fmt: str):
        self._path = path
        self._fmt = fmt

    def record(self, message: dict) -> None:
        if not self._path:
            return
        if self._fmt == "json":
            m = message
            if m.get("event") == "media":
                m = json.loads(json.dumps(m))
                payload = m.get("media", {}).get("payload")
                if payload is not None:
                    try:
                        m["media"]["payload"] = f"<{len(base64.b64decode(payload))} bytes>"
                    except Exception:
                        m["media"]["payload"] = "<undecodable>"
            line = json.dumps(m, separators=(",", ":"))
        else:
            line = str(message.get("event", "?"))
        with open(self._path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


EVENTS = EventLog(ARGS.log_file, ARGS.log_format)


# --------------------------------------------------------------------------
# Audio


def tone(hz: float, ms: int, rate: int, amplitude: float) -> bytes:
    n = int(rate * ms / 1000)
    t = np.arange(n, dtype=np.float64) / rate
    x = np.sin(2 * math.pi * hz * t) * amplitude
    ramp = min(n // 2, int(rate * 0.005))  # 5 ms fade in/out, no clicks
    if ramp > 0:
        env = np.linspace(0.0, 1.0, ramp)
        x[:ramp] *= env
        x[-ramp:] *= env[::-1]
    return (x * 32767).astype("<i2").tobytes()


def read_wav(path: str) -> tuple[bytes, int]:
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            raise SystemExit(f"{path}: need 16-bit PCM WAV")
        rate, channels = w.getframerate(), w.getnchannels()
        data = w.readframes(w.getnframes())
    if channels > 1:
        a = np.frombuffer(data, dtype="<i2").reshape(-1, channels).mean(axis=1)
        data = a.astype("<i2").tobytes()
    return data, rate


def rms(pcm: bytes) -> float:
    if len(pcm) < 2:
        return 0.0
    a = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(a * a)))


# --------------------------------------------------------------------------
# Pipecat pieces


class LoggingTwilioSerializer(TwilioFrameSerializer):
    """Pipecat's TwilioFrameSerializer, plus a look at each raw event."""

    def __init__(self, *args, on_event=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._on_event = on_event
        self.media_count = 0

    async def deserialize(self, data):
        try:
            msg = json.loads(data)
        except Exception:
            say(f"non-JSON frame ({type(data).__name__}, {len(data)} bytes)")
            msg = None
        if isinstance(msg, dict):
            note_event(msg, self)
            if self._on_event:
                await self._on_event(msg)
        return await super().deserialize(data)


def note_event(msg: dict, ser: LoggingTwilioSerializer | None = None) -> None:
    ev = msg.get("event")
    EVENTS.record(msg)
    if ev == "media":
        if ser is not None:
            ser.media_count += 1
            if ser.media_count == 1:
                say("event media (first; further media events are only counted)")
        return
    detail = ""
    if ev == "start":
        s = msg.get("start", {})
        detail = (f" streamSid={s.get('streamSid')} callSid={s.get('callSid')} "
                  f"tracks={s.get('tracks')} mediaFormat={json.dumps(s.get('mediaFormat'))} "
                  f"customParameters={json.dumps(s.get('customParameters'))}")
    elif ev == "dtmf":
        detail = f" digit={msg.get('dtmf', {}).get('digit')!r}"
    elif ev == "mark":
        detail = f" name={msg.get('mark', {}).get('name')!r}"
    elif ev == "stop" and ser is not None:
        detail = f" (after {ser.media_count} media events)"
    say(f"event {ev}{detail}")


class ScriptedBot(FrameProcessor):
    """Greeting at start, answer tone after enough caller speech."""

    def __init__(self, stream_sid: str, rate: int, **kwargs):
        super().__init__(**kwargs)
        self._sid = stream_sid
        self._rate = rate
        self._voiced_ms = 0.0
        self._overlap_ms = 0.0
        self._answers = 0
        self._bot_speaking = False
        self._ended = False

    async def _play(self, pcm: bytes, rate: int, label: str):
        say(f"playing {label} ({len(pcm) // 2 * 1000 // rate} ms)")
        # Framed like a TTS service's output, so the output transport tracks
        # "bot speaking" (needed for barge-in) exactly as it would for speech.
        await self.push_frame(TTSStartedFrame(context_id=label))
        await self.push_frame(TTSAudioRawFrame(audio=pcm, sample_rate=rate, num_channels=1, context_id=label))
        await self.push_frame(TTSStoppedFrame(context_id=label))
        if ARGS.marks:
            await self.push_frame(OutputTransportMessageFrame(
                message={"event": "mark", "streamSid": self._sid, "mark": {"name": label}}))

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)

        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            if not ARGS.no_greeting:
                if ARGS.greeting:
                    pcm, rate = read_wav(ARGS.greeting)
                else:
                    pcm, rate = tone(ARGS.greeting_hz, ARGS.greeting_ms, self._rate, ARGS.amplitude), self._rate
                await self._play(pcm, rate, "greeting")
            return

        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
            self._overlap_ms = 0.0

        if isinstance(frame, InputDTMFFrame):
            say(f"dtmf frame {frame.button.value!r}")

        if isinstance(frame, InputAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            ms = len(frame.audio) / 2 / frame.sample_rate * 1000
            voiced = rms(frame.audio) > ARGS.speech_rms
            barge = ARGS.barge_in == "all" or (ARGS.barge_in == "greeting" and self._answers == 0)
            if voiced and barge and self._bot_speaking:
                self._overlap_ms += ms
                if self._overlap_ms >= ARGS.barge_in_ms:
                    say("caller spoke over the bot: interrupting (Pipecat sends `clear`)")
                    self._overlap_ms = 0.0
                    self._bot_speaking = False
                    await self.broadcast_interruption()
            if voiced:
                self._voiced_ms += ms
            limit_ok = ARGS.max_answers == 0 or self._answers < ARGS.max_answers
            if limit_ok and self._voiced_ms >= ARGS.answer_after_ms:
                self._voiced_ms = 0.0
                self._answers += 1
                n = self._answers
                await self._play(tone(ARGS.answer_hz, ARGS.answer_ms, self._rate, ARGS.amplitude),
                                 self._rate, f"answer-{n}")
                if ARGS.hangup_after_answers and n >= ARGS.hangup_after_answers and not self._ended:
                    self._ended = True
                    say("hanging up after this answer (pipeline ends, WebSocket closes)")
                    # Queued behind the answer audio, so it plays out first.
                    await self.push_frame(_EndPipelineFrame())

        await self.push_frame(frame, direction)


# --------------------------------------------------------------------------
# Server

app = FastAPI()


async def _read_until_start(ws: WebSocket) -> dict | None:
    """Read the handshake like Pipecat's parse_telephony_websocket does, but log it."""
    deadline = time.monotonic() + ARGS.start_timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            raw = await asyncio.wait_for(ws.receive_text(), timeout=left)
        except (asyncio.TimeoutError, WebSocketDisconnect, RuntimeError, KeyError):
            return None
        try:
            msg = json.loads(raw)
        except json.JSONDecodeError:
            say(f"non-JSON text before start: {raw[:80]!r}")
            continue
        if not isinstance(msg, dict):
            continue
        note_event(msg)
        if msg.get("event") == "start":
            return msg


@app.websocket("/{path:path}")
async def twilio_media_stream(ws: WebSocket, path: str = ""):
    offered = ws.headers.get("sec-websocket-protocol", "")
    sub = None
    if ARGS.subprotocol and ARGS.subprotocol in [s.strip() for s in offered.split(",")]:
        sub = ARGS.subprotocol
    say(f"connection path=/{path} query={ws.url.query!r} subprotocols={offered!r}")
    await ws.accept(subprotocol=sub)

    start = await _read_until_start(ws)
    if start is None:
        say("no `start` event; closing")
        try:
            await ws.close()
        except Exception:
            pass
        return
    s = start.get("start", {})
    stream_sid = s.get("streamSid") or start.get("streamSid") or ""
    call_sid = s.get("callSid")

    worker_box: dict = {}

    async def on_event(msg: dict):
        if msg.get("event") == "stop" and ARGS.on_stop == "close" and "w" in worker_box:
            say("`stop` received: closing (--on-stop close)")
            asyncio.get_running_loop().create_task(worker_box["w"].cancel())

    serializer = LoggingTwilioSerializer(
        stream_sid=stream_sid,
        call_sid=call_sid,
        params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
        on_event=on_event,
    )
    transport = FastAPIWebsocketTransport(
        websocket=ws,
        params=FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            audio_out_10ms_chunks=ARGS.chunk_ms // 10,
            audio_out_end_silence_secs=ARGS.end_silence_ms // 1000,
            add_wav_header=False,
            allowed_origins=[],
            serializer=serializer,
        ),
    )
    bot = ScriptedBot(stream_sid, ARGS.sample_rate)
    pipeline = Pipeline([transport.input(), bot, transport.output()])
    kwargs = dict(
        params=PipelineParams(audio_in_sample_rate=ARGS.sample_rate, audio_out_sample_rate=ARGS.sample_rate),
        idle_timeout_secs=None,
    )
    try:
        worker = PipelineWorker(pipeline, enable_rtvi=False, **kwargs)
    except TypeError:
        worker = PipelineWorker(pipeline, **kwargs)
    worker_box["w"] = worker

    @transport.event_handler("on_client_disconnected")
    async def _gone(_transport, _ws):
        say(f"client disconnected (after {serializer.media_count} media events)")
        await worker.cancel()

    t0 = time.monotonic()
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()
    say(f"call {call_sid} ended after {time.monotonic() - t0:.2f} s")


async def _main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", ARGS.port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    serve = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serve.done():
            await serve  # raises the startup error
            raise SystemExit("server failed to start")
        await asyncio.sleep(0.01)
    say(f"pipecat-ai {PIPECAT_VERSION}, listening on ws://127.0.0.1:{port}/ws "
        f"(ready {time.monotonic() - _T0:.2f} s after launch)")
    print(f"READY {port}", flush=True)
    await serve


if __name__ == "__main__":
    try:
        asyncio.run(_main())
    except KeyboardInterrupt:
        pass
