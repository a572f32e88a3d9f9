#!/usr/bin/env python3
"""Call benchmark for voice-ua, on 127.0.0.1 only: the performance report's one entry point.

    scripts/bench-calls.py [--agent echo|deepgram|openai|twilio|asp|pipeline|both|all] [--plays K]
                           [--window S] [--rate CPS] [--log FILTER] [--wait-idle S] [--same-rtp]
                           [--keep] [--no-build] [--no-invite] [N ...]

Defaults: echo and deepgram (`both`; `all` adds openai, twilio, asp and pipeline),
N = 1 50 200. Builds the release binaries first (honours CARGO_TARGET_DIR, else target/):
voice-ua, and for a bridged run its dev-only fake server (`fake-deepgram`, `fake-openai`,
`fake-bot`, `fake-pipeline` from the voice-ua-fake-* crates).

1. Sizes: the stripped release binary (x86_64; and the aarch64 one when
   <target>/aarch64-unknown-linux-gnu/release/voice-ua exists, see deploy/build-aarch64.sh).
2. INVITE -> 200 OK (ring_ms = 0: voice-ua's own latency; the default ring adds 200 ms):
   30 sequential calls straight to voice-ua from a minimal UAC written here.
3. Concurrent calls, PBX-like: Kamailio with tests/kamailio/pbx.cfg (registrar with
   digest auth + record-routing proxy) on 127.0.0.1; voice-ua registers there as 9000;
   sipp places N concurrent calls to sip:9000@<kamailio>. Each call offers PCMA and plays
   Debian's g711a.pcap (sip-tester) K times, 8 s apart (the scenario is uac_pcap's, plus
   the Route set, so ACK and BYE pass the proxy). Each play's RTP continues the last
   one's sequence numbers and timestamps, as one phone's talkspurts would (sipp sends a
   pcap's headers unchanged: `--same-rtp` replays the file as it is, which restarts them
   every 8 s and has the jitter buffer drop part of every later play as late). Once
   voice-ua reports all N calls active (/metrics) and a settle time has passed,
   voice-ua's CPU (utime + stime from /proc/PID/stat) and RSS are sampled over a window;
   the fake agent, sipp and Kamailio are sampled separately and never counted as
   voice-ua's. Per call = (all up - idle) / N. Wakeups per call per second: the context
   switches of all of voice-ua's threads (/proc/PID/task/*/status, voluntary +
   involuntary) over the window, less the idle process's rate, over N.
   - echo agent: voice-ua's built-in echo test answers.
   - deepgram: voice-ua bridges every call over ws:// loopback to `fake-deepgram`
     (greeting, then every 5 s a user turn and a 3 s spoken reply, for the whole call).
   - openai: the same over ws:// loopback to `fake-openai` (OpenAI Realtime GA: the
     greeting, then every 5 s a caller turn and a 3 s reply, sent ahead of real time).
   - twilio, asp: `[agent.websocket]` to `fake-bot --dialect twilio|asp` (a 2 s greeting,
     then every 5 s of caller audio a 3 s reply).
   - pipeline: `provider = "pipeline"` with its STT, LLM and TTS URLs all on one
     `fake-pipeline` (2 threads) over http:// loopback. No turn is scripted by time:
     voice-ua's own endpointer hears the pcap's speech, each utterance goes to STT (a
     scripted transcript back), the chat answer streams (the same two sentences every
     turn) and each sentence comes back as 24 kHz PCM (4x faster than real time),
     resampled to the call's 8 kHz; a greeting opens every call. The turns
     that happened (voice-ua's /metrics, read just outside the window) are printed per
     call beside CPU and RSS, with the barge-ins and the fake's requests.

Prints Markdown tables for docs/performance.md. Every child process runs in its own
process group and is stopped on exit, on Ctrl-C and on SIGTERM. Needs kamailio, kamcmd
and sipp (Debian: kamailio, sip-tester).
"""
import argparse, atexit, csv, datetime, json, os, platform, re, shutil, signal, socket, statistics, \
    subprocess, sys, tempfile, time, urllib.error, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
TICK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
PCAPS = os.environ.get("VOICE_UA_SIPP_PCAPS", "/usr/share/sip-tester")
KAM_PASSWORD = "bench-9000-Secret!"
FAKE_KEY = "bench-fake-agent-key-0123456789"
# Ports below the ephemeral range, away from the interop tests' blocks (20000-31999).
UA_RTP_PORTS = "12000-13998"   # 1000 even ports
SIPP_MEDIA_BASE = 16000        # [auto_media_port] = base + 4 * (call - 1)

CHILDREN = []  # Popen objects, each the leader of its own process group


# ------------------------------------------------------------------ processes

def spawn(cmd, log_path, **kw):
    """Start cmd in its own process group, stdout+stderr to log_path (unless given)."""
    out = open(log_path, "wb")
    kw.setdefault("stdout", out)
    kw.setdefault("stderr", out)
    p = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL, **kw)
    out.close()
    CHILDREN.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=10):
    """Signal p's process group, wait, then SIGKILL the group if it is still there."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)  # stragglers (Kamailio's children)
    except (ProcessLookupError, PermissionError):
        pass
    if p.poll() is None:
        p.wait(timeout=5)
    if p in CHILDREN:
        CHILDREN.remove(p)


def stop_all():
    for p in list(reversed(CHILDREN)):
        stop(p, timeout=5)


def on_signal(signum, _frame):
    print(f"\nbench-calls: signal {signum}, stopping every child process", file=sys.stderr)
    stop_all()
    sys.exit(130)


def free_port(kind=socket.SOCK_DGRAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_tcp_port():
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free for both UDP and TCP")


def wait_for(pred, timeout, step=0.1):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


# ---------------------------------------------------------------- /proc reads

def proc_cpu_rss(pid):
    """(utime + stime in seconds, VmRSS in KiB) of one process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return cpu, rss


def proc_wakeups(pid):
    """Context switches (voluntary + involuntary) of every thread of one process so far:
    each is the thread going to sleep or being put off the CPU, so their rate is the
    process's wakeup rate."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                        total += int(line.split()[1])
        except OSError:
            continue  # a thread that ended meanwhile
    return total


def group_cpu(pgid):
    """utime + stime (s) of every live process in process group pgid (Kamailio forks)."""
    total = 0.0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def machine_busy():
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def wait_idle(limit_s, max_busy_pct=25.0):
    """Wait (up to limit_s) until the machine is mostly idle: other builds on a shared
    machine inflate the figures. Returns the busy % last seen (of all cores)."""
    end = time.time() + limit_s
    while True:
        a = machine_busy()
        time.sleep(2)
        b = machine_busy()
        busy = (b[0] - a[0]) / max(1, b[1] - a[1]) * 100
        if busy <= max_busy_pct or time.time() >= end:
            return busy
        print(f"bench-calls: machine {busy:.0f} % busy with other work; waiting", file=sys.stderr, flush=True)


# ------------------------------------------------------------------- machine

def machine():
    model, cores = "?", os.cpu_count()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = re.search(r"^Model name:\s*(.+)$", out, re.M).group(1).strip()
        hyp = re.search(r"^Hypervisor vendor:\s*(.+)$", out, re.M)
        if hyp:
            model += f" ({hyp.group(1).strip()} guest)"
    except Exception:
        pass
    osname = platform.platform()
    try:
        osname = re.search(r'^PRETTY_NAME="(.+)"', open("/etc/os-release").read(), re.M).group(1)
    except Exception:
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    mem_gib = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal:")) / 2**20
    return (f"{model}, {cores} cores, {mem_gib:.0f} GiB RAM, {osname}, kernel {platform.release()}, "
            f"{rustc}, {datetime.date.today().isoformat()}")


def stripped_size(path, strip_tool):
    """Size of path after strip (the release profile already strips: then it is the file size)."""
    if not os.path.isfile(path):
        return None
    tool = shutil.which(strip_tool)
    if tool is None:
        return os.path.getsize(path), "(not re-stripped: no " + strip_tool + ")"
    with tempfile.TemporaryDirectory() as d:
        copy = os.path.join(d, "voice-ua")
        shutil.copy(path, copy)
        subprocess.run([tool, copy], check=True)
        return os.path.getsize(copy), ""


# -------------------------------------------------------------------- voice-ua

def write_ua_config(run, max_calls, http_port, agent, ring_ms=None, codec="pcma", echo_cancel=True):
    cfg = os.path.join(run, "voice-ua.toml")
    with open(cfg, "w") as f:
        f.write(f'[http]\nlisten = "127.0.0.1:{http_port}"\n\n')
        # Call records on, as shipped, in the run directory (never /var/lib/voice-ua).
        f.write(f'[records]\npath = "{os.path.join(run, "calls.db")}"\n\n')
        f.write(f'[calls]\nmax_calls = {max_calls}\nrtp_ports = "{UA_RTP_PORTS}"\n')
        if codec == "g722":
            f.write('codecs = ["G722", "PCMA"]\n')
        if ring_ms is not None:
            f.write(f"ring_ms = {ring_ms}\n")
        if not echo_cancel:
            f.write("echo_cancel = false\n")
        f.write("\n[agent]\n")
        if agent is None:
            f.write('provider = "echo"\n')
        elif agent.name == "pipeline":
            # As a deployment would write it (docs/pipeline.md): one URL per stage, here all
            # on the one fake; the endpointer's [agent.pipeline.turn] left at its defaults.
            f.write(f'provider = "pipeline"\ngreeting = "{PIPELINE_GREETING}"\n'
                    f'prompt = "You answer the phone for a restaurant. Keep every answer short."\n\n'
                    f'[agent.pipeline.stt]\nurl = "{agent.url}"\nmodel = "whisper-1"\nlanguage = "en"\n'
                    f'sample_rate = 16000\n\n'
                    f'[agent.pipeline.llm]\nurl = "{agent.url}"\nmodel = "llama3.2"\nmax_tokens = 300\n\n'
                    f'[agent.pipeline.tts]\nurl = "{agent.url}"\nmodel = "kokoro"\nvoice = "af_heart"\n'
                    f'sample_rate = 24000\n')
        elif agent.name in ("deepgram", "openai"):
            f.write(f'provider = "{agent.name}"\nurl = "{agent.url}"\ngreeting = "Hello"\n')
        else:
            f.write(f'provider = "websocket"\n\n[agent.websocket]\nurl = "{agent.url}"\ndialect = "{agent.name}"\n')
    return cfg


def ua_env(password, keyed):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("VOICE_UA_") and k not in ("DEEPGRAM_API_KEY", "OPENAI_API_KEY")}
    env.update(VOICE_UA_SIP_PASSWORD=password, HOME="/nonexistent")
    env.pop("STATE_DIRECTORY", None)
    env.pop("RUST_LOG", None)
    if keyed:
        env["DEEPGRAM_API_KEY"] = FAKE_KEY
        env["OPENAI_API_KEY"] = FAKE_KEY
    return env


def http_get(port, path, timeout=2):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError:
        return None, ""


def metrics(port):
    """Prometheus text -> {"name{labels}": value}."""
    _, text = http_get(port, "/metrics")
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            try:
                out[key] = float(value)
            except ValueError:
                pass
    return out


def metric_sum(m, name):
    return sum(v for k, v in m.items() if k == name or k.startswith(name + "{"))


def log_summary(path):
    """(warn lines, error lines, most common messages) of voice-ua's JSON log."""
    warn = err = 0
    messages = {}
    with open(path, errors="replace") as f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            level = e.get("level", "")
            if level in ("WARN", "ERROR"):
                warn += level == "WARN"
                err += level == "ERROR"
                msg = str(e.get("fields", {}).get("message", e.get("message", "")))
                msg = re.sub(r"\d+", "#", msg)[:120]
                messages[(level, msg)] = messages.get((level, msg), 0) + 1
    top = sorted(messages.items(), key=lambda kv: -kv[1])[:4]
    return warn, err, top


# ------------------------------------------------------------ INVITE latency

def invite_times(binary, runs=30):
    run = tempfile.mkdtemp(prefix="voice-ua-bench-inv-")
    sip_port = free_port()
    cfg = write_ua_config(run, 10, free_port(socket.SOCK_STREAM), None, ring_ms=0)  # None: the echo agent
    # The registrar is a silent loopback port: registration keeps retrying (at most one
    # REGISTER every 10 s); calls come from 127.0.0.1, the registrar's IP, so they pass.
    ua = spawn([binary, "--config", cfg, "register", "--ext", "9000", "--pbx", f"127.0.0.1:{free_port()}",
                "--bind", f"127.0.0.1:{sip_port}", "--log", "warn"],
               os.path.join(run, "voice-ua.log"), cwd=run, env=ua_env("bench", False))
    time.sleep(1.0)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2)
    me = s.getsockname()
    media = free_port()
    times = []
    try:
        for i in range(runs):
            sdp = (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                   f"m=audio {media} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n")
            common = (f"From: <sip:bench@127.0.0.1>;tag=b{i}\r\nCall-ID: bench-{i}-{os.getpid()}@127.0.0.1\r\n"
                      f"Max-Forwards: 70\r\nContact: <sip:bench@127.0.0.1:{me[1]}>\r\n")
            inv = (f"INVITE sip:9000@127.0.0.1:{sip_port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me[1]};branch=z9hG4bKi{i}\r\n"
                   f"{common}To: <sip:9000@127.0.0.1>\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n"
                   f"Content-Length: {len(sdp)}\r\n\r\n{sdp}")
            t0 = time.perf_counter()
            s.sendto(inv.encode(), ("127.0.0.1", sip_port))
            while True:
                msg = s.recv(65536).decode(errors="replace")
                if msg.startswith("SIP/2.0 200") and "INVITE" in msg:
                    times.append((time.perf_counter() - t0) * 1000)
                    to = re.search(r"^To: (.*)$", msg, re.M).group(1).strip()
                    break
            for method, cseq in (("ACK", 1), ("BYE", 2)):
                s.sendto((f"{method} sip:9000@127.0.0.1:{sip_port} SIP/2.0\r\n"
                          f"Via: SIP/2.0/UDP 127.0.0.1:{me[1]};branch=z9hG4bK{method}{i}\r\n{common}To: {to}\r\n"
                          f"CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n").encode(), ("127.0.0.1", sip_port))
            try:
                while "BYE" not in s.recv(65536).decode(errors="replace"):
                    pass
            except socket.timeout:
                pass
    finally:
        s.close()
        stop(ua)
        shutil.rmtree(run, ignore_errors=True)
    return times


# ------------------------------------------------------------------- Kamailio

def kamailio_module_dir():
    if os.environ.get("VOICE_UA_KAMAILIO_MODULES"):
        return os.environ["VOICE_UA_KAMAILIO_MODULES"]
    cands = [os.path.join("/usr/lib", d, "kamailio/modules") for d in sorted(os.listdir("/usr/lib"))]
    cands += ["/usr/lib/kamailio/modules", "/usr/lib64/kamailio/modules", "/usr/local/lib64/kamailio/modules",
              "/usr/local/lib/kamailio/modules"]
    return next((d for d in cands if os.path.isfile(os.path.join(d, "registrar.so"))), None)


class Kamailio:
    """tests/kamailio/pbx.cfg on 127.0.0.1 (as tests/interop/support/kamailio.rs starts it)."""

    def __init__(self, run):
        self.port = free_udp_tcp_port()
        self.ctl = f"unix:{os.path.join(run, 'kam-ctl.sock')}"
        if len(self.ctl) > 100:
            self.ctl = f"unix:/tmp/vua-bench-kam-{os.getpid()}.sock"
        cmd = ["kamailio", "-f", os.path.join(ROOT, "tests/kamailio/pbx.cfg"), "-DD", "-E",
               "-n", "2", "-N", "2", "-m", "64", "-M", "8", "-Y", run, "-w", run,
               "-l", f"udp:127.0.0.1:{self.port}", "-l", f"tcp:127.0.0.1:{self.port}",
               "-A", f'CTL_SOCK="{self.ctl}"', "-A", f'AUTH_PASSWORD="{KAM_PASSWORD}"']
        mods = kamailio_module_dir()
        if mods:
            cmd += ["-L", mods]
        self.log = os.path.join(run, "kamailio.log")
        self.proc = spawn(cmd, self.log, cwd=run)
        if not wait_for(lambda: self.proc.poll() is not None or self.kamcmd("core.uptime") is not None, 15):
            raise RuntimeError(f"Kamailio not ready in 15 s; see {self.log}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"Kamailio exited during start-up; see {self.log}")

    def kamcmd(self, *args):
        r = subprocess.run(["kamcmd", "-s", self.ctl, *args], capture_output=True, text=True)
        text = r.stdout + r.stderr
        return text if r.returncode == 0 and not text.lstrip().startswith("error") else None

    def bound(self, aor):
        out = self.kamcmd("ul.lookup", "location", f"s:{aor}")
        return bool(out and re.search(r"Expires:\s*\d+", out))


# ------------------------------------------------------------------------ sipp

PLAY_S = 8  # one play of g711a.pcap every 8 s


def continued_pcaps(src, dst_dir, plays):
    """Copies of src, pcap/play-K.pcap for K = 0 .. plays - 1, whose RTP continues from play
    to play as one phone's stream would: sequence numbers + K * packets, timestamps + K * 8 s
    (the silence between talkspurts; each play starts with the marker bit, as the file's
    first packet has it). sipp sends a pcap's RTP headers as they are: replaying the one
    file restarts them every 8 s, and a jitter buffer drops much of plays 2.. as late or
    restarts on them (see --same-rtp). UDP checksums are zeroed (none, for IPv4). Returns
    the file names, relative to the run directory."""
    with open(src, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        e = "<"
    elif magic == b"\xa1\xb2\xc3\xd4":
        e = ">"
    else:
        raise RuntimeError(f"{src}: not a classic pcap file")
    if int.from_bytes(data[20:24], "little" if e == "<" else "big") != 1:
        raise RuntimeError(f"{src}: not Ethernet frames")
    records, off = [], 24
    while off + 16 <= len(data):
        incl = int.from_bytes(data[off + 8:off + 12], "little" if e == "<" else "big")
        records.append((data[off:off + 16], bytearray(data[off + 16:off + 16 + incl])))
        off += 16 + incl
    rtp_at = []
    for _, frame in records:
        ip = 14
        if frame[12:14] != b"\x08\x00" or frame[ip + 9] != 17:
            raise RuntimeError(f"{src}: a packet that is not IPv4/UDP")
        udp = ip + (frame[ip] & 0x0F) * 4
        rtp_at.append(udp)
    names = []
    for k in range(plays):
        out = bytearray(data[:24])
        for (head, frame), udp in zip(records, rtp_at):
            frame = bytearray(frame)
            frame[udp + 6:udp + 8] = b"\0\0"
            rtp = udp + 8
            seq = (int.from_bytes(frame[rtp + 2:rtp + 4], "big") + k * len(records)) % 2**16
            ts = (int.from_bytes(frame[rtp + 4:rtp + 8], "big") + k * PLAY_S * 8000) % 2**32
            frame[rtp + 2:rtp + 4] = seq.to_bytes(2, "big")
            frame[rtp + 4:rtp + 8] = ts.to_bytes(4, "big")
            out += head + frame
        name = f"pcap/play-{k}.pcap"
        with open(os.path.join(dst_dir, name), "wb") as f:
            f.write(out)
        names.append(name)
    return names


def g722_pcap(src, dst, encoder):
    """src (g711a.pcap) with each RTP payload re-encoded as G.722: the A-law decoded,
    upsampled to 16 kHz (linear interpolation; a benchmark's audio), encoded by our codec
    (`encoder`: the g722_file example), 160 bytes per 20 ms packet as before, payload type
    9; timestamps unchanged (G.722's RTP clock is 8 kHz, RFC 3551)."""
    with open(src, "rb") as f:
        data = f.read()
    e = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    order = "little" if e == "<" else "big"
    records, off = [], 24
    while off + 16 <= len(data):
        incl = int.from_bytes(data[off + 8:off + 12], order)
        records.append((data[off:off + 16], bytearray(data[off + 16:off + 16 + incl])))
        off += 16 + incl

    def alaw(code):
        code ^= 0x55
        mag = (code & 0x0F) << 4 | 8
        seg = (code & 0x70) >> 4
        if seg:
            mag = (mag + 0x100) << (seg - 1)
        return mag if code & 0x80 else -mag

    pcm8, spans = [], []
    for _, frame in records:
        rtp = 14 + (frame[14] & 0x0F) * 4 + 8
        payload = frame[rtp + 12:]
        spans.append((rtp, len(payload)))
        pcm8.extend(alaw(c) for c in payload)
    pcm16 = bytearray()
    for i, x in enumerate(pcm8):
        nxt = pcm8[i + 1] if i + 1 < len(pcm8) else x
        pcm16 += int(x).to_bytes(2, "little", signed=True) + int((x + nxt) // 2).to_bytes(2, "little", signed=True)
    codes = subprocess.run([encoder, "enc"], input=bytes(pcm16), capture_output=True, check=True).stdout
    out, at = bytearray(data[:24]), 0
    for (head, frame), (rtp, n) in zip(records, spans):
        frame[rtp + 1] = (frame[rtp + 1] & 0x80) | 9
        frame[rtp + 12:rtp + 12 + n] = codes[at:at + n]
        at += n
        out += head + frame
    with open(dst, "wb") as f:
        f.write(out)


def scenario(plays, codec="pcma"):
    """uac_pcap (sipp -sd uac_pcap) with the Route set learned from the 200 (rrs) and
    [next_url] for ACK/BYE, so they pass a record-routing proxy; g711a.pcap (A-law,
    ~7 s of speech) played `len(plays)` times, 8 s apart (`plays`: the pcap file of each,
    see continued_pcaps); no DTMF."""
    media = "".join(
        f'  <nop><action><exec play_pcap_audio="{name}"/></action></nop>\n'
        f'  <pause milliseconds="{PLAY_S * 1000}"/>\n' for name in plays)
    head = """      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      Call-ID: [call_id]
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70"""
    in_dialog = lambda method, cseq: f"""  <send retrans="500">
    <![CDATA[

      {method} [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
{head}
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      CSeq: {cseq} {method}
      Content-Length: 0

    ]]>
  </send>
"""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="voice-ua bench: uac_pcap through a record-routing proxy">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
{head}
      To: <sip:[service]@[remote_ip]:[remote_port]>
      CSeq: 1 INVITE
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      {"m=audio [auto_media_port] RTP/AVP 9 101" if codec == "g722" else "m=audio [auto_media_port] RTP/AVP 8 101"}
      {"a=rtpmap:9 G722/8000" if codec == "g722" else "a=rtpmap:8 PCMA/8000"}
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-11,16

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
{in_dialog("ACK", 1).replace(' retrans="500"', '')}{media}{in_dialog("BYE", 2)}  <recv response="200" crlf="true"/>
</scenario>
"""


def sipp_counts(stat_file):
    """(successful, failed) calls from sipp's -trace_stat CSV (its last row)."""
    try:
        with open(stat_file, newline="") as f:
            rows = list(csv.reader(f, delimiter=";"))
        header, last = rows[0], rows[-1]
        col = lambda name: int(last[header.index(name)])
        return col("SuccessfulCall(C)"), col("FailedCall(C)")
    except Exception:
        return None, None


# ----------------------------------------------------------------- fake agent

# What the pipeline's callers "say" (the fake's STT answers these, in turn, whatever the audio),
# and the reply to each: two sentences (two TTS requests, ~3 s of speech), the same every
# turn whatever the history holds, so that every turn costs the same.
PIPELINE_UTTERANCES = ["I'd like to book a table for two tonight.", "Can you tell me your opening hours?",
                       "Is there parking near the restaurant?", "Thanks, that's all for now."]
PIPELINE_GREETING = "Hello, thank you for calling. How can I help you?"
PIPELINE_REPLY = "Sure, I can help you with that. Is there anything else?"

# agent name -> (cargo package, binary, its arguments)
FAKES = {
    "deepgram": ("voice-ua-fake-deepgram", "fake-deepgram", ["--key", FAKE_KEY]),
    "openai": ("voice-ua-fake-openai", "fake-openai", ["--key", FAKE_KEY]),
    "twilio": ("voice-ua-fake-bots", "fake-bot", ["--dialect", "twilio"]),
    "asp": ("voice-ua-fake-bots", "fake-bot", ["--dialect", "asp"]),
    # Transcripts are added per run (pipeline_transcripts): the fake hands them out in order.
    "pipeline": ("voice-ua-fake-pipeline", "fake-pipeline",
                 ["--threads", "2", "--tts-rate", "24000", "--reply", PIPELINE_REPLY]),
}


def pipeline_transcripts(a):
    """--transcript flags for every utterance the endpointer can find in all rounds: at most
    one per 0.9 s of audio (min_speech_ms 200 + end_silence_ms 700), so 9 per 8 s play.
    When they run out the fake's STT would answer "" (no turn): they must not."""
    count = sum(a.ns) * a.plays * 9 + 20
    args = []
    for i in range(count):
        args += ["--transcript", PIPELINE_UTTERANCES[i % len(PIPELINE_UTTERANCES)]]
    return args, count


class FakeAgent:
    """One of the fake agent servers, on 127.0.0.1; its first stdout line is its URL."""

    def __init__(self, name, run, extra=()):
        _, binary, args = FAKES[name]
        self.name = name
        self.bin = binary
        self.log = os.path.join(run, f"{binary}-{name}.log")
        self.proc = spawn([os.path.join(TARGET, "release", binary)] + args + list(extra), self.log,
                          stdout=subprocess.PIPE)
        line = self.proc.stdout.readline().decode().strip()
        scheme = "http" if name == "pipeline" else "ws"
        if not line.startswith(f"{scheme}://127.0.0.1:"):
            raise RuntimeError(f"{binary} printed {line!r}, not its {scheme}:// URL; see {self.log}")
        self.url = line
        self.transcripts = 0  # scripted transcripts it was given (pipeline)

    def sessions(self):
        """Per-session lines logged so far: (count, errors by code)."""
        n, errors = 0, {}
        with open(self.log, errors="replace") as f:
            for line in f:
                if line.startswith("session "):
                    n += 1
                    for code in re.findall(r'"([A-Z_]+)"', line.split("errors=", 1)[1] if "errors=" in line else ""):
                        errors[code] = errors.get(code, 0) + 1
                elif line.startswith("request "):  # fake-pipeline: one line per request ended
                    n += 1
        return n, errors

    def requests(self):
        """fake-pipeline's request lines so far, counted: transcription, chat, speech, empty
        transcripts, refused, not 200, cut by the client (barge-in)."""
        c = dict.fromkeys(("transcription", "chat", "speech", "empty", "refused", "not_200", "cut"), 0)
        with open(self.log, errors="replace") as f:
            for line in f:
                m = re.match(r"request \d+: (transcription|chat|speech)\b", line)
                if not m:
                    continue
                c[m.group(1)] += 1
                c["empty"] += m.group(1) == "transcription" and line.rstrip().endswith('-> ""')
                c["refused"] += "REFUSED" in line
                c["not_200"] += " status 200," not in line
                c["cut"] += "cut by the client" in line
        return c


# ---------------------------------------------------------------- one round

def concurrent(binary, kam, agent_name, fake, n, a):
    run = tempfile.mkdtemp(prefix=f"voice-ua-bench-{agent_name}-{n}-")
    os.makedirs(os.path.join(run, "pcap"))
    source = os.path.join(PCAPS, "g711a.pcap")
    if a.codec == "g722":
        source = os.path.join(run, "pcap", "g722.pcap")
        g722_pcap(os.path.join(PCAPS, "g711a.pcap"), source, os.path.join(TARGET, "release", "examples", "g722_file"))
    if a.same_rtp:
        if a.codec != "g722":
            shutil.copy(source, os.path.join(run, "pcap"))
        plays = ["pcap/" + os.path.basename(source)] * a.plays
    else:
        plays = continued_pcaps(source, run, a.plays)
    with open(os.path.join(run, "uac_pcap_proxy.xml"), "w") as f:
        f.write(scenario(plays, a.codec))
    sip_port, http_port = free_port(), free_port(socket.SOCK_STREAM)
    cfg = write_ua_config(run, min(1000, n + 10), http_port, fake, codec=a.codec,
                          echo_cancel=not a.no_echo_cancel)
    ua_log = os.path.join(run, "voice-ua.log")
    ua = spawn([binary, "--config", cfg, "register", "--ext", "9000", "--pbx", f"127.0.0.1:{kam.port}",
                "--bind", f"127.0.0.1:{sip_port}", "--log-format", "json", "--log", a.log],
               ua_log, cwd=run, env=ua_env(KAM_PASSWORD, fake is not None))
    sipp = None
    r = {"n": n, "agent": agent_name}
    try:
        if a.wait_idle:
            r["busy_before"] = wait_idle(a.wait_idle)
        ok = wait_for(lambda: http_get(http_port, "/healthz")[0] == 200 and kam.bound("9000"), 10)
        if not ok:
            raise RuntimeError(f"voice-ua did not register at Kamailio in 10 s; see {ua_log}, {kam.log}")
        time.sleep(2)
        rss_idle = 0
        c0, _ = proc_cpu_rss(ua.pid)
        w0 = proc_wakeups(ua.pid)
        for _ in range(6):
            rss_idle = max(rss_idle, proc_cpu_rss(ua.pid)[1])
            time.sleep(0.5)
        c1, _ = proc_cpu_rss(ua.pid)
        idle_cpu = (c1 - c0) / 3.0
        idle_wakeups = (proc_wakeups(ua.pid) - w0) / 3.0
        fake_before = fake.sessions()[0] if fake else 0
        req_before = fake.requests() if fake and fake.name == "pipeline" else None

        stat_file = os.path.join(run, "sipp-stats.csv")
        hold = a.plays * 8 + 1
        sipp = spawn(["sipp", "-sf", "uac_pcap_proxy.xml", f"127.0.0.1:{kam.port}", "-s", "9000",
                      "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(free_port()), "-mp", str(SIPP_MEDIA_BASE),
                      "-l", str(n), "-m", str(n), "-r", str(min(n, a.rate)), "-nostdin",
                      "-timeout", str(hold + 90), "-timeout_error", "-trace_stat", "-stf", stat_file, "-fd", "5",
                      "-trace_err", "-error_file", os.path.join(run, "sipp-errors.log")],
                     os.path.join(run, "sipp.out"), cwd=run)
        t_start = time.time()
        ramp = n / min(n, a.rate)
        # All N up: voice-ua's own gauge (read before the window only).
        up = wait_for(lambda: metric_sum(metrics(http_port), "voice_ua_active_calls") >= n or sipp.poll() is not None,
                      ramp + 20, step=0.25)
        active = metric_sum(metrics(http_port), "voice_ua_active_calls")
        r["all_up_s"] = time.time() - t_start if up and active >= n else None
        r["active_at_window"] = int(active)
        time.sleep(a.settle)
        pg_sipp, pg_kam = sipp.pid, kam.proc.pid
        m0 = metrics(http_port)  # turns so far (read outside the CPU window)
        s0 = (proc_cpu_rss(ua.pid)[0], proc_cpu_rss(fake.proc.pid)[0] if fake else 0.0, group_cpu(pg_sipp),
              group_cpu(pg_kam), machine_busy())
        wk0 = proc_wakeups(ua.pid)
        t0 = time.time()
        rss_peak, fake_rss = 0, 0
        while time.time() - t0 < a.window:
            rss_peak = max(rss_peak, proc_cpu_rss(ua.pid)[1])
            if fake:
                fake_rss = max(fake_rss, proc_cpu_rss(fake.proc.pid)[1])
            time.sleep(0.25)
        s1 = (proc_cpu_rss(ua.pid)[0], proc_cpu_rss(fake.proc.pid)[0] if fake else 0.0, group_cpu(pg_sipp),
              group_cpu(pg_kam), machine_busy())
        wk1 = proc_wakeups(ua.pid)
        window = time.time() - t0
        m1 = metrics(http_port)
        r["load1"] = os.getloadavg()[0]
        r["window_s"] = window
        r["window_ended_s"] = time.time() - t_start
        r["call_s"] = hold
        try:
            sipp.wait(timeout=hold + 120)
        except subprocess.TimeoutExpired:
            stop(sipp)
        r["sipp_rc"] = sipp.returncode
        r["ok"], r["failed"] = sipp_counts(stat_file)
        time.sleep(1)
        m = metrics(http_port)
        busy = (s1[0] - s0[0]) / window
        r.update(
            busy_pct=busy * 100, idle_pct=idle_cpu * 100, cpu_per_call_pct=(busy - idle_cpu) * 100 / n,
            wakeups_per_call_s=((wk1 - wk0) / window - idle_wakeups) / n, idle_wakeups_s=idle_wakeups,
            rss_idle=rss_idle, rss_peak=rss_peak, rss_per_call=(rss_peak - rss_idle) / n,
            fake_pct=(s1[1] - s0[1]) / window * 100, fake_rss=fake_rss,
            sipp_pct=(s1[2] - s0[2]) / window * 100, kam_pct=(s1[3] - s0[3]) / window * 100,
            machine_pct=(s1[4][0] - s0[4][0]) / max(1, s1[4][1] - s0[4][1]) * 100,
            others_pct=max(0.0, (s1[4][0] - s0[4][0]) / max(1, s1[4][1] - s0[4][1]) * 100 * (os.cpu_count() or 1)
                           - ((s1[0] - s0[0]) + (s1[1] - s0[1]) + (s1[2] - s0[2]) + (s1[3] - s0[3])) / window * 100),
            outcomes={k.split('"')[1]: int(v) for k, v in m.items()
                      if k.startswith("voice_ua_calls_total{") and v and '"' in k},
            agent_errors=int(metric_sum(m, "voice_ua_agent_errors_total")),
            rtp_in=int(metric_sum(m, "voice_ua_rtp_packets_in_total")),
            rtp_lost=int(metric_sum(m, "voice_ua_rtp_packets_lost_total")),
            rtp_late=int(metric_sum(m, "voice_ua_rtp_packets_late_total")),
            concealed=int(metric_sum(m, "voice_ua_rtp_frames_concealed_total")),
        )
        turns = lambda mm: metric_sum(mm, "voice_ua_agent_turn_latency_seconds_count")
        lat = lambda mm: metric_sum(mm, "voice_ua_agent_turn_latency_seconds_sum")
        r.update(
            turns_window=turns(m1) - turns(m0), turns_total=turns(m),
            barge_window=metric_sum(m1, "voice_ua_barge_ins_total") - metric_sum(m0, "voice_ua_barge_ins_total"),
            barge_total=metric_sum(m, "voice_ua_barge_ins_total"),
            latency_mean_s=lat(m) / turns(m) if turns(m) else None,
            stage_mean_s={k.split('"')[1]: metric_sum(m, "voice_ua_agent_turn_stage_seconds_sum{" + k.split("{", 1)[1])
                          / v for k, v in m.items()
                          if k.startswith("voice_ua_agent_turn_stage_seconds_count{") and v and '"' in k},
        )
        stop(ua)
        r["warn"], r["error"], r["top_log"] = log_summary(ua_log)
        if fake:
            time.sleep(1)
            total, errors = fake.sessions()
            r["fake_sessions"] = total - fake_before
            r["fake_errors"] = errors
            if req_before is not None:
                after = fake.requests()
                r["fake_requests"] = {k: after[k] - req_before[k] for k in after}
                r["transcripts_left"] = fake.transcripts - after["transcription"] + after["empty"]
        return r
    finally:
        if sipp is not None:
            stop(sipp)
        stop(ua)
        if a.keep:
            print(f"  (run directory kept: {run})", file=sys.stderr)
        else:
            shutil.rmtree(run, ignore_errors=True)


# ------------------------------------------------------------------- report

def kib(v):
    return f"{v / 1024:.1f} MiB" if v >= 1024 else f"{v:.0f} KiB"


def print_round_table(agent, rows):
    title = {"echo": "echo agent", "deepgram": "bridged to the fake Deepgram (ws:// loopback)",
             "openai": "bridged to the fake OpenAI Realtime server (ws:// loopback)",
             "twilio": "bridged to the fake Twilio Media Streams bot (ws:// loopback)",
             "asp": "bridged to the fake ASP agent (ws:// loopback)",
             "pipeline": "bridged pipeline: STT, LLM and TTS on one fake-pipeline (http:// loopback)"}[agent]
    turns_col = agent == "pipeline"
    print(f"\n**{title}**\n")
    print("| concurrent calls | voice-ua CPU (% of one core) | CPU per call | RSS idle → all up | RSS per call "
          + "| wakeups per call per s (idle process) "
          + ("| turns per call: in window / whole call " if turns_col else "")
          + "| calls completed / failed |")
    print("|---|---|---|---|---|---|---|" + ("---|" if turns_col else ""))
    for r in rows:
        turns = (f"{r['turns_window'] / r['n']:.2f} / {r['turns_total'] / r['n']:.2f} | " if turns_col else "")
        print(f"| {r['n']} | {r['busy_pct']:.1f} % | {r['cpu_per_call_pct']:.3f} % | "
              f"{r['rss_idle'] / 1024:.1f} → {r['rss_peak'] / 1024:.1f} MiB | {r['rss_per_call']:.0f} KiB | "
              f"{r['wakeups_per_call_s']:.0f} ({r['idle_wakeups_s']:.0f}/s) | {turns}"
              f"{r['ok']} / {r['failed']} (sipp exit {r['sipp_rc']}) |")
    print("\nSame window, the rest of the machine (not counted as voice-ua's):\n")
    fake_col = agent != "echo"
    print("| calls | all up after | active in window | fake agent CPU / RSS | sipp CPU | Kamailio CPU "
          "| other processes (% of one core), load avg | voice-ua warn / error lines | RTP in / lost / late / concealed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        up = f"{r['all_up_s']:.1f} s" if r.get("all_up_s") is not None else "never"
        fk = f"{r['fake_pct']:.1f} % / {r['fake_rss'] / 1024:.1f} MiB" if fake_col else "—"
        print(f"| {r['n']} | {up} | {r['active_at_window']} | {fk} | {r['sipp_pct']:.1f} % | {r['kam_pct']:.1f} % "
              f"| {r['others_pct']:.0f} %, {r['load1']:.1f} | {r['warn']} / {r['error']} "
              f"| {r['rtp_in']} / {r['rtp_lost']} / {r['rtp_late']} / {r['concealed']} |")
    for r in rows:
        extra = []
        if r.get("outcomes"):
            extra.append("outcomes " + ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items())))
        if r.get("agent_errors"):
            extra.append(f"agent errors {r['agent_errors']}")
        if turns_col:
            lat = f"{r['latency_mean_s'] * 1000:.0f} ms" if r.get("latency_mean_s") is not None else "—"
            stages = ", ".join(f"{k} {v * 1000:.0f}" for k, v in sorted(r.get("stage_mean_s", {}).items()))
            q = r.get("fake_requests", {})
            extra.append(f"turns {r['turns_window']:.0f} in the {r['window_s']:.1f} s window, {r['turns_total']:.0f} "
                         f"in all; barge-ins {r['barge_window']:.0f} in the window, {r['barge_total']:.0f} in all; "
                         f"turn latency mean {lat} (stages, ms: {stages or '—'})")
            extra.append(f"fake requests: STT {q.get('transcription')} ({q.get('empty')} empty), chat {q.get('chat')}, "
                         f"TTS {q.get('speech')} ({q.get('cut')} cut by voice-ua), refused {q.get('refused')}, "
                         f"not 200 {q.get('not_200')}; scripted transcripts left {r.get('transcripts_left')}")
        elif fake_col:
            extra.append(f"fake sessions {r.get('fake_sessions')} (errors {r.get('fake_errors') or 'none'})")
        for (level, msg), count in r.get("top_log", []):
            extra.append(f"{count}× {level} \"{msg}\"")
        print(f"- N = {r['n']}: " + "; ".join(extra))


def build(a):
    env = dict(os.environ, CARGO_TARGET_DIR=TARGET)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "voice-ua"], cwd=ROOT, check=True, env=env)
    if a.codec == "g722":
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "voice-ua-media", "--example", "g722_file"],
                       cwd=ROOT, check=True, env=env)
    for package, binary, _ in {FAKES[x][:2] + (None,) for x in agents_of(a) if x in FAKES}:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", package, "--bin", binary],
                       cwd=ROOT, check=True, env=env)


def agents_of(a):
    return {"both": ["echo", "deepgram"], "all": ["echo", "deepgram", "openai", "twilio", "asp", "pipeline"]}.get(
        a.agent, [a.agent])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ns", nargs="*", type=int, default=[1, 50, 200], metavar="N", help="concurrent calls")
    p.add_argument("--agent", choices=["echo", "deepgram", "openai", "twilio", "asp", "pipeline", "both", "all"],
                   default="both")
    p.add_argument("--plays", type=int, default=4, help="g711a.pcap plays per call, 8 s each (default 4)")
    p.add_argument("--window", type=float, default=10, help="sampling window with all calls up, s (default 10)")
    p.add_argument("--settle", type=float, default=2, help="wait after all calls are up, s (default 2)")
    p.add_argument("--rate", type=int, default=25, help="calls per second while ramping up (default 25)")
    p.add_argument("--log", default="info", help="voice-ua's log filter (default info, as shipped)")
    p.add_argument("--same-rtp", action="store_true",
                   help="replay g711a.pcap's RTP unchanged each play (sequence numbers and timestamps "
                        "restart every 8 s, as before; the default continues them)")
    p.add_argument("--codec", choices=["pcma", "g722"], default="pcma",
                   help="what the calls offer and send: PCMA (g711a.pcap as it is), or G.722 (the same "
                        "speech re-encoded by our codec; voice-ua then prefers G.722)")
    p.add_argument("--no-echo-cancel", action="store_true",
                   help="calls.echo_cancel = false: the same calls without the echo canceller and "
                        "the barge-in gate (the before figure for echo cancellation's cost)")
    p.add_argument("--no-build", action="store_true", help="use the binaries already built")
    p.add_argument("--no-invite", action="store_true", help="skip the INVITE -> 200 OK latency")
    p.add_argument("--keep", action="store_true", help="keep each round's run directory (logs)")
    p.add_argument("--wait-idle", type=float, default=0, metavar="S",
                   help="before each round, wait up to S seconds for the machine to be ≤ 25 %% busy")
    a = p.parse_args()
    if (a.ns and max(a.ns) + 10 > 1000) or (a.ns and min(a.ns) < 1):
        p.error("N must be 1..990 (voice-ua's max_calls is at most 1000)")
    if a.plays * 8 < (max(a.ns) / a.rate) + a.settle + a.window + 3:
        p.error("calls end before the window does: raise --plays or --rate, or shorten --window")
    for tool in ("kamailio", "kamcmd", "sipp"):
        if shutil.which(tool) is None:
            sys.exit(f"bench-calls: {tool} not found (Debian: apt-get install kamailio sip-tester)")
    if not os.path.isfile(os.path.join(PCAPS, "g711a.pcap")):
        sys.exit(f"bench-calls: {PCAPS}/g711a.pcap missing (Debian package sip-tester)")

    atexit.register(stop_all)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if not a.no_build:
        build(a)
    binary = os.path.join(TARGET, "release", "voice-ua")

    print(f"machine: {machine()}")
    print(f"voice-ua: {binary}; log filter {a.log!r}; calls: {a.codec.upper()}, {a.plays} × g711a.pcap "
          f"({a.plays * 8 + 1} s; RTP {'restarted' if a.same_rtp else 'continued'} each play), "
          f"ramp {a.rate} calls/s, window {a.window:.0f} s after all up + {a.settle:.0f} s\n")
    print("| binary | stripped size |\n|---|---|")
    for label, path, tool in (("x86_64", binary, "strip"),
                              ("aarch64", os.path.join(TARGET, "aarch64-unknown-linux-gnu/release/voice-ua"),
                               "aarch64-linux-gnu-strip")):
        s = stripped_size(path, tool)
        if s:
            print(f"| {label} ({os.path.relpath(path, ROOT) if path.startswith(ROOT) else path}) "
                  f"| {s[0]:,} bytes = {s[0] / 2**20:.2f} MiB {s[1]} |")
        else:
            print(f"| {label} | not built ({path}); see deploy/build-aarch64.sh |")

    if not a.no_invite:
        times = invite_times(binary)
        print(f"\n| INVITE → 200 OK (30 calls, `ring_ms = 0`) | median {statistics.median(times):.2f} ms | "
              f"p90 {sorted(times)[int(len(times) * 0.9)]:.2f} ms | max {max(times):.2f} ms |\n|---|---|---|---|")

    run = tempfile.mkdtemp(prefix="voice-ua-bench-kam-")
    kam = Kamailio(run)
    fake = None
    idle = []
    try:
        for agent in agents_of(a):
            if agent == "pipeline":
                extra, given = pipeline_transcripts(a)
                fake = FakeAgent(agent, run, extra)
                fake.transcripts = given
            elif agent in FAKES:
                fake = FakeAgent(agent, run)
            rows = []
            for n in a.ns:
                print(f"bench-calls: {agent}, {n} concurrent calls ...", file=sys.stderr, flush=True)
                r = concurrent(binary, kam, agent, fake, n, a)
                idle.append(r["rss_idle"])
                rows.append(r)
            print_round_table(agent, rows)
            if fake:
                stop(fake.proc)
                fake = None
        print(f"\nidle RSS after registering at Kamailio (before the calls of each round): "
              f"min {min(idle) / 1024:.1f} MiB, max {max(idle) / 1024:.1f} MiB over {len(idle)} rounds")
    finally:
        if fake:
            stop(fake.proc)
        stop(kam.proc)
        if a.keep:
            print(f"(Kamailio run directory kept: {run})", file=sys.stderr)
        else:
            shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    main()
