#!/usr/bin/env python3
"""Call benchmark for voice-ua with the echo agent, on 127.0.0.1 only.

1. INVITE -> 200 OK time (ring_ms = 0: voice-ua's own latency; the default ring adds 200 ms): 30 sequential calls from a minimal UAC written here
   (INVITE with a PCMU offer, wait for the 200, ACK, BYE).
2. CPU and RSS per call: sipp's built-in `uac_pcap` scenario (PCMA, plays Debian's
   g711a.pcap, ~9 s per call) places N concurrent calls; while all N are up, voice-ua's
   CPU time and RSS are sampled from /proc. Per call = (busy - idle) / N.

Usage: scripts/bench-calls.py [N ...]   (default: 1 50 200; builds the release binary)
Needs sipp (Debian sip-tester). Prints Markdown tables for docs/performance.md.
"""
import os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NS = [int(a) for a in sys.argv[1:]] or [1, 50, 200]
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return cpu, rss


def start_voice_ua(binary, run, sip_port, max_calls):
    cfg = os.path.join(run, "bench.toml")
    with open(cfg, "w") as f:
        f.write(f'[calls]\nmax_calls = {max_calls}\nrtp_ports = "20000-21998"\nring_ms = 0\n')
    env = dict(os.environ, VOICE_UA_SIP_PASSWORD="bench", RUST_LOG="warn")
    # The registrar address is a silent loopback port: registration keeps retrying
    # (one REGISTER every 10 s at most), and calls come from 127.0.0.1, its IP.
    ua = subprocess.Popen(
        [binary, "--config", cfg, "register", "--ext", "9000", "--pbx", f"127.0.0.1:{free_port()}",
         "--bind", f"127.0.0.1:{sip_port}"],
        cwd=run, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return ua


def invite_times(sip_port, runs=30):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2)
    me = s.getsockname()
    media = free_port()
    times = []
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
    return times


def concurrent(binary, n):
    run = tempfile.mkdtemp(prefix="voice-ua-bench-calls-")
    os.makedirs(os.path.join(run, "pcap"))
    for p in ("g711a.pcap", "dtmf_2833_1.pcap"):
        shutil.copy(f"/usr/share/sip-tester/{p}", os.path.join(run, "pcap"))
    sip_port = free_port()
    ua = start_voice_ua(binary, run, sip_port, n + 10)
    try:
        cpu0, rss_idle = proc_stat(ua.pid)
        time.sleep(2)
        cpu1, _ = proc_stat(ua.pid)
        idle_cpu = (cpu1 - cpu0) / 2
        rate = max(1, min(n, 50))
        sipp = subprocess.Popen(
            ["sipp", "-sn", "uac_pcap", f"127.0.0.1:{sip_port}", "-s", "9000", "-i", "127.0.0.1",
             "-mi", "127.0.0.1", "-ci", "127.0.0.1", "-p", str(free_port()), "-l", str(n), "-m", str(n),
             "-r", str(rate), "-nostdin", "-timeout", "60"],
            cwd=run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(n / rate + 1.5)  # every call up and streaming
        c0, _ = proc_stat(ua.pid)
        t0 = time.time()
        rss_peak = 0
        while time.time() - t0 < 4:
            rss_peak = max(rss_peak, proc_stat(ua.pid)[1])
            time.sleep(0.25)
        c1, _ = proc_stat(ua.pid)
        window = time.time() - t0
        sipp_rc = sipp.wait(timeout=90)
        busy = (c1 - c0) / window
        return {
            "n": n, "sipp_rc": sipp_rc, "busy_pct": busy * 100, "idle_pct": idle_cpu * 100,
            "cpu_per_call_pct": (busy - idle_cpu) * 100 / n,
            "rss_idle_mib": rss_idle / 1024, "rss_peak_mib": rss_peak / 1024,
            "rss_per_call_kib": (rss_peak - rss_idle) / n,
        }
    finally:
        ua.send_signal(signal.SIGTERM)
        ua.wait(timeout=10)
        shutil.rmtree(run, ignore_errors=True)


def main():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "voice-ua"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target", "release", "voice-ua")
    run = tempfile.mkdtemp(prefix="voice-ua-bench-inv-")
    port = free_port()
    ua = start_voice_ua(binary, run, port, 10)
    try:
        times = invite_times(port)
    finally:
        ua.send_signal(signal.SIGTERM)
        ua.wait(timeout=10)
        shutil.rmtree(run, ignore_errors=True)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine: {cpu}, {os.cpu_count()} cores")
    print(f"\n| INVITE → 200 OK (30 calls) | median {statistics.median(times):.2f} ms | "
          f"p90 {sorted(times)[int(len(times) * 0.9)]:.2f} ms | max {max(times):.2f} ms |\n")
    print("| concurrent echo calls | voice-ua CPU (of one core) | CPU per call | RSS idle → all up | RSS per call | sipp exit |")
    print("|---|---|---|---|---|---|")
    for n in NS:
        r = concurrent(binary, n)
        print(f"| {r['n']} | {r['busy_pct']:.1f} % | {r['cpu_per_call_pct']:.3f} % | "
              f"{r['rss_idle_mib']:.1f} → {r['rss_peak_mib']:.1f} MiB | {r['rss_per_call_kib']:.0f} KiB | {r['sipp_rc']} |")


if __name__ == "__main__":
    main()
