#!/usr/bin/env python3
"""SIP flood benchmark for voice-ua, on loopback only (not a timed test).

    scripts/bench-flood.py [--rate MSG_PER_S] [--seconds S] [--log FILTER] [--keep] [--no-build]

voice-ua registers as 9000 at Kamailio (tests/kamailio/pbx.cfg on 127.0.0.1, as
scripts/bench-calls.py starts it). A stranger, 127.0.0.2 (neither the PBX nor in
calls.allow), then floods voice-ua's SIP port for 10 s at 5,000 datagrams/s: INVITE and
OPTIONS alternately, each a new Call-ID and branch (requests outside any dialog). One
real call goes through Kamailio with sipp during the flood (it starts 1 s in and plays
Debian's g711a.pcap once, ~9 s), and another after it (and, unless --no-warmup, one
before it, so that the RSS baseline already holds what a call leaves behind). Reported, for
docs/performance.md ("SIP flood"):

- voice-ua's RSS before, at its peak during and after the flood (growth);
- voice-ua's CPU (utime + stime, % of one core) idle, during the flood, and after;
- log lines voice-ua wrote during the flood (by level, with the most common);
- what the stranger got back (responses by status code, or nothing);
- each real call: sipp's verdict, voice-ua's record (outcome, RTP in/out/lost, jitter).

Reuses scripts/bench-calls.py (process groups, Kamailio, the sipp scenario, /proc and
/metrics readers). Needs kamailio, kamcmd and sipp (Debian: kamailio, sip-tester), and
127.0.0.2 on the loopback interface (Linux routes all of 127.0.0.0/8 there).
"""
import argparse, atexit, importlib.util, json, multiprocessing, os, shutil, signal, socket, sqlite3, \
    subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("bench_calls", os.path.join(HERE, "bench-calls.py"))
bc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bc)

STRANGER = "127.0.0.2"


# ---------------------------------------------------------------------- flood

def flood(target_port, rate, seconds, result):
    """Send `rate` datagrams/s for `seconds` from STRANGER to 127.0.0.1:target_port,
    INVITE and OPTIONS alternately; count what comes back. Runs in its own process."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((STRANGER, 0))
    s.setblocking(False)
    me = s.getsockname()
    sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n"
           "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")

    def request(i):
        method = "INVITE" if i % 2 == 0 else "OPTIONS"
        body = sdp if method == "INVITE" else ""
        ctype = "Content-Type: application/sdp\r\n" if body else ""
        return (f"{method} sip:9000@127.0.0.1:{target_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {me[0]}:{me[1]};branch=z9hG4bKflood{i}\r\n"
                f"From: <sip:intruder@{me[0]}>;tag=f{i}\r\nTo: <sip:9000@127.0.0.1>\r\n"
                f"Call-ID: flood-{i}@{me[0]}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n"
                f"Contact: <sip:intruder@{me[0]}:{me[1]}>\r\n{ctype}Content-Length: {len(body)}\r\n\r\n{body}"
                ).encode()

    codes, sent, errors = {}, 0, 0
    batch = max(1, rate // 200)  # every 5 ms
    t0 = time.perf_counter()
    end = t0 + seconds

    def drain():
        while True:
            try:
                data = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            line = data.split(b"\r\n", 1)[0].decode(errors="replace")
            code = line.split(" ")[1] if line.startswith("SIP/2.0 ") and " " in line else "other"
            codes[code] = codes.get(code, 0) + 1

    while True:
        now = time.perf_counter()
        if now >= end:
            break
        due = int((now - t0) * rate) + batch
        while sent < min(due, int(seconds * rate)):
            try:
                s.sendto(request(sent), ("127.0.0.1", target_port))
            except OSError:
                errors += 1
            sent += 1
        drain()
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    deadline = time.time() + 2
    while time.time() < deadline:  # answers still on their way
        drain()
        time.sleep(0.05)
    s.close()
    result.update(sent=sent, send_errors=errors, seconds=elapsed, codes=codes)


# ------------------------------------------------------------------ real calls

def sipp_call(kam, run, name):
    """One sipp call to 9000 through Kamailio (g711a.pcap played once); returns the Popen
    and its stat file."""
    stat_file = os.path.join(run, f"sipp-{name}.csv")
    p = bc.spawn(["sipp", "-sf", "uac_pcap_proxy.xml", f"127.0.0.1:{kam.port}", "-s", "9000",
                  "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(bc.free_port()),
                  "-mp", str(bc.SIPP_MEDIA_BASE), "-l", "1", "-m", "1", "-nostdin",
                  "-timeout", "60", "-timeout_error", "-trace_stat", "-stf", stat_file, "-fd", "1",
                  "-trace_err", "-error_file", os.path.join(run, f"sipp-{name}-errors.log")],
                 os.path.join(run, f"sipp-{name}.out"), cwd=run)
    return p, stat_file


def sipp_result(p, stat_file, t_start):
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        bc.stop(p)
    ok, failed = bc.sipp_counts(stat_file)
    return {"sipp_rc": p.returncode, "ok": ok, "failed": failed, "seconds": time.time() - t_start}


def records(db):
    """voice-ua's call records, oldest first (read-only)."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        rows = conn.execute("SELECT sip_call_id, outcome, end_reason, codec, packets_in, packets_out, lost, late, "
                            "concealed, jitter_ms, started_ms, ended_ms FROM calls ORDER BY started_ms").fetchall()
        conn.close()
    except sqlite3.Error as e:
        return [{"error": str(e)}]
    keys = ["call_id", "outcome", "end_reason", "codec", "in", "out", "lost", "late", "concealed", "jitter_ms",
            "started_ms", "ended_ms"]
    return [dict(zip(keys, r)) for r in rows]


# ------------------------------------------------------------------------ logs

def log_lines(path, start=0, end=None):
    """Lines `start` to `end` of voice-ua's JSON log: (count, by level, top messages)."""
    levels, messages, n = {}, {}, 0
    with open(path, errors="replace") as f:
        for i, line in enumerate(f):
            if i < start or (end is not None and i >= end):
                continue
            n += 1
            try:
                e = json.loads(line)
            except ValueError:
                levels["unparsed"] = levels.get("unparsed", 0) + 1
                continue
            level = e.get("level", "?")
            levels[level] = levels.get(level, 0) + 1
            msg = str(e.get("fields", {}).get("message", ""))[:90]
            messages[(level, msg)] = messages.get((level, msg), 0) + 1
    top = sorted(messages.items(), key=lambda kv: -kv[1])[:3]
    return n, levels, top


def count_lines(path):
    with open(path, errors="replace") as f:
        return sum(1 for _ in f)


# ------------------------------------------------------------------------ main

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=int, default=5000, help="flood datagrams per second (default 5000)")
    p.add_argument("--seconds", type=float, default=10, help="flood duration (default 10)")
    p.add_argument("--log", default="info", help="voice-ua's log filter (default info, as shipped)")
    p.add_argument("--no-build", action="store_true", help="use the release binary already built")
    p.add_argument("--keep", action="store_true", help="keep the run directory (logs, records)")
    p.add_argument("--no-warmup", dest="warmup", action="store_false",
                   help="no call before the flood (by default one runs, so the RSS baseline holds a call's)")
    p.add_argument("--binary", help="the voice-ua binary to run (default: the release build; implies --no-build)")
    a = p.parse_args()
    for tool in ("kamailio", "kamcmd", "sipp"):
        if shutil.which(tool) is None:
            sys.exit(f"bench-flood: {tool} not found (Debian: apt-get install kamailio sip-tester)")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((STRANGER, 0))
    except OSError as e:
        sys.exit(f"bench-flood: cannot bind {STRANGER} ({e}); the stranger needs it on loopback")

    atexit.register(bc.stop_all)
    signal.signal(signal.SIGINT, bc.on_signal)
    signal.signal(signal.SIGTERM, bc.on_signal)
    if not (a.no_build or a.binary):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "voice-ua"], cwd=bc.ROOT, check=True,
                       env=dict(os.environ, CARGO_TARGET_DIR=bc.TARGET))
    binary = os.path.abspath(a.binary) if a.binary else os.path.join(bc.TARGET, "release", "voice-ua")
    commit = subprocess.run(["git", "log", "-1", "--format=%h %s"], cwd=bc.ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=bc.ROOT,
                           capture_output=True, text=True).stdout.strip()

    run = tempfile.mkdtemp(prefix="voice-ua-bench-flood-")
    os.makedirs(os.path.join(run, "pcap"))
    shutil.copy(os.path.join(bc.PCAPS, "g711a.pcap"), os.path.join(run, "pcap"))
    with open(os.path.join(run, "uac_pcap_proxy.xml"), "w") as f:
        f.write(bc.scenario(1))
    kam = bc.Kamailio(run)
    sip_port, http_port = bc.free_port(), bc.free_port(socket.SOCK_STREAM)
    cfg = bc.write_ua_config(run, 4, http_port, "echo")
    ua_log = os.path.join(run, "voice-ua.log")
    ua = bc.spawn([binary, "--config", cfg, "register", "--ext", "9000", "--pbx", f"127.0.0.1:{kam.port}",
                   "--bind", f"127.0.0.1:{sip_port}", "--log-format", "json", "--log", a.log],
                  ua_log, cwd=run, env=bc.ua_env(bc.KAM_PASSWORD, False))
    r = {}
    try:
        if not bc.wait_for(lambda: bc.http_get(http_port, "/healthz")[0] == 200 and kam.bound("9000"), 10):
            raise RuntimeError(f"voice-ua did not register at Kamailio in 10 s; see {ua_log}")
        time.sleep(2)
        r["rss_registered"] = bc.proc_cpu_rss(ua.pid)[1]
        if a.warmup:
            # One call first, so that the RSS before the flood already holds what any
            # call leaves behind (allocator pools, the agent's buffers): the growth
            # measured across the flood is then the flood's.
            r["warmup"] = sipp_result(*sipp_call(kam, run, "warmup"), time.time())
            time.sleep(2)
        c0, rss_before = bc.proc_cpu_rss(ua.pid)
        time.sleep(3)
        c1, rss = bc.proc_cpu_rss(ua.pid)
        rss_before = max(rss_before, rss)
        r["idle_cpu"] = (c1 - c0) / 3 * 100

        # The flood, with a real call 1 s in.
        lines_before = count_lines(ua_log)
        manager = multiprocessing.Manager()
        fres = manager.dict()
        flooder = multiprocessing.Process(target=flood, args=(sip_port, a.rate, a.seconds, fres), daemon=True)
        cpu0, _ = bc.proc_cpu_rss(ua.pid)
        t0 = time.time()
        flooder.start()
        time.sleep(1)
        call_a = sipp_call(kam, run, "during")
        t_a = time.time()
        rss_peak = 0
        while flooder.is_alive():
            rss_peak = max(rss_peak, bc.proc_cpu_rss(ua.pid)[1])
            time.sleep(0.25)
        flooder.join()
        cpu1, rss_end = bc.proc_cpu_rss(ua.pid)
        flood_s = time.time() - t0
        r["flood"] = dict(fres)
        r["flood_cpu"] = (cpu1 - cpu0) / flood_s * 100
        r["flood_cpu_s"] = cpu1 - cpu0
        r["rss_peak"] = max(rss_peak, rss_end)
        lines_flood_end = count_lines(ua_log)
        r["during"] = sipp_result(*call_a, t_a)
        r["health_after_flood"] = bc.http_get(http_port, "/healthz")

        # After the flood: settle, then the second call.
        time.sleep(2)
        c2, r["rss_after"] = bc.proc_cpu_rss(ua.pid)
        call_b = sipp_call(kam, run, "after")
        r["after"] = sipp_result(*call_b, time.time())
        time.sleep(1)
        c3, r["rss_final"] = bc.proc_cpu_rss(ua.pid)
        r["rss_before"] = rss_before
        m = bc.metrics(http_port)
        r["outcomes"] = {k.split('"')[1]: int(v) for k, v in m.items()
                         if k.startswith("voice_ua_calls_total{") and v and '"' in k}
        r["sip_refused"] = {k.split('"')[1]: int(v) for k, v in m.items()
                            if k.startswith("voice_ua_sip_refused_total{") and '"' in k}
        bc.stop(ua)
        r["records"] = records(os.path.join(run, "calls.db"))
        r["log_flood"] = log_lines(ua_log, lines_before, lines_flood_end)
    finally:
        bc.stop(ua)
        bc.stop(kam.proc)
        if a.keep:
            print(f"(run directory kept: {run})", file=sys.stderr)
        else:
            shutil.rmtree(run, ignore_errors=True)
    report(r, a, commit, dirty)


def report(r, a, commit, dirty):
    f = r["flood"]
    kib = lambda v: f"{v / 1024:.1f} MiB"
    print(f"machine: {bc.machine()}")
    built = f"{a.binary} (given; the work tree is at {commit})" if a.binary else f"release build of {commit}"
    print(f"voice-ua: {built}{' plus uncommitted changes' if dirty and not a.binary else ''}; log filter {a.log!r}\n")
    print(f"Flood: {f['sent']:,} datagrams from {STRANGER} in {f['seconds']:.1f} s "
          f"({f['sent'] / f['seconds']:,.0f}/s), INVITE and OPTIONS alternately, each outside any dialog; "
          f"send errors {f['send_errors']}.\n")
    codes = ", ".join(f"{c}: {n:,}" for c, n in sorted(f["codes"].items())) or "nothing"
    print("| | value |\n|---|---|")
    print(f"| answers the stranger got | {codes} |")
    print(f"| voice-ua RSS registered{' → after a warm-up call' if 'warmup' in r else ''} | "
          f"{kib(r['rss_registered'])}{' → ' + kib(r['rss_before']) if 'warmup' in r else ''} |")
    print(f"| voice-ua RSS before → peak during → after the flood → after the last call | "
          f"{kib(r['rss_before'])} → {kib(r['rss_peak'])} → {kib(r['rss_after'])} → {kib(r['rss_final'])} "
          f"(growth across the flood {r['rss_after'] - r['rss_before']:+,} KiB) |")
    print(f"| voice-ua CPU idle (registered) | {r['idle_cpu']:.1f} % of one core |")
    print(f"| voice-ua CPU during the flood (with the call during it) | {r['flood_cpu']:.1f} % of one core "
          f"({r['flood_cpu_s']:.2f} s CPU) |")
    n, levels, top = r["log_flood"]
    lv = ", ".join(f"{k} {v}" for k, v in sorted(levels.items()))
    print(f"| log lines written during the flood | {n} ({lv or 'none'}) |")
    for (level, msg), count in top:
        print(f"| — most common | {count}× {level} \"{msg}\" |")
    print(f"| /healthz right after the flood | {r['health_after_flood'][0]} {r['health_after_flood'][1].strip()} |")
    print(f"| voice_ua_calls_total | {', '.join(f'{k} {v}' for k, v in sorted(r['outcomes'].items()))} |")
    if r.get("sip_refused"):
        print(f"| voice_ua_sip_refused_total | "
              f"{', '.join(f'{k} {v:,}' for k, v in sorted(r['sip_refused'].items()))} |")
    print("\n| real call | sipp | voice-ua's record: outcome | length | RTP in / out / lost / late | jitter |")
    print("|---|---|---|---|---|---|")
    recs = [x for x in r["records"] if "error" not in x]
    calls = ([("warmup", "before the flood (warm-up)")] if "warmup" in r else []) + \
        [("during", "during the flood"), ("after", "after the flood")]
    for i, (key, name) in enumerate(calls):
        s = r[key]
        verdict = f"{'completed' if s['ok'] == 1 else 'FAILED'} (exit {s['sipp_rc']})"
        if i < len(recs):
            x = recs[i]
            length = f"{(x['ended_ms'] - x['started_ms']) / 1000:.1f} s" if x["ended_ms"] else "—"
            print(f"| {name} | {verdict} | {x['outcome']} ({x['end_reason']}) | {length} | "
                  f"{x['in']} / {x['out']} / {x['lost']} / {x['late']} | {x['jitter_ms']:.1f} ms |")
        else:
            print(f"| {name} | {verdict} | no record | — | — | — |")
    if len(recs) > len(calls):
        print(f"\n{len(recs) - len(calls)} more call records: the flood's INVITEs became calls!")
    if any("error" in x for x in r["records"]):
        print(f"\nrecords: {r['records']}")


if __name__ == "__main__":
    main()
