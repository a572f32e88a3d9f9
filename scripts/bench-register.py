#!/usr/bin/env python3
"""Registration benchmark: time from process start to "registered" on loopback against
Kamailio (tests/kamailio/registrar.cfg, digest auth, so each run is REGISTER -> 401 ->
REGISTER -> 200), idle RSS after registering, and the stripped release binary size.

Usage: scripts/bench-register.py [RUNS]   (builds the release binary first)
Only 127.0.0.1 is used. Prints a Markdown table for docs/performance.md.
"""
import datetime, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
PASSWORD = "bench-9000-pw"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def main():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "voice-ua"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target", "release", "voice-ua")
    kamailio = shutil.which("kamailio") or "/usr/sbin/kamailio"
    run = tempfile.mkdtemp(prefix="voice-ua-bench-")
    kport = free_port()
    kam = subprocess.Popen(
        [kamailio, "-f", os.path.join(ROOT, "tests", "kamailio", "registrar.cfg"), "-DD", "-E",
         "-n", "1", "-N", "0", "-m", "32", "-M", "8", "-Y", run, "-w", run,
         "-l", f"udp:127.0.0.1:{kport}", "-A", f'CTL_SOCK="unix:{run}/ctl.sock"',
         "-A", f'AUTH_PASSWORD="{PASSWORD}"'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    times_ms, rss = [], []
    try:
        for i in range(RUNS):
            uport = free_port()
            env = dict(os.environ, VOICE_UA_SIP_PASSWORD=PASSWORD, RUST_LOG="info")
            t0 = datetime.datetime.now(datetime.timezone.utc)
            ua = subprocess.Popen(
                [binary, "--log-format", "json", "register", "--ext", "9000",
                 "--pbx", f"127.0.0.1:{kport}", "--bind", f"127.0.0.1:{uport}"],
                cwd=run, env=env, stderr=subprocess.PIPE, text=True)
            registered = None
            deadline = time.time() + 10
            while time.time() < deadline:
                line = ua.stderr.readline()
                if not line:
                    break
                ev = json.loads(line)
                if ev.get("fields", {}).get("message") == "registered":
                    registered = datetime.datetime.fromisoformat(ev["timestamp"].replace("Z", "+00:00"))
                    break
            if registered is None:
                ua.kill()
                sys.exit(f"run {i}: voice-ua did not register")
            times_ms.append((registered - t0).total_seconds() * 1000)
            if i < 3:
                time.sleep(3)  # idle after registering, then sample
                rss.append(rss_kib(ua.pid))
            ua.send_signal(signal.SIGTERM)
            ua.wait(timeout=5)
    finally:
        kam.send_signal(signal.SIGTERM)
        kam.wait(timeout=5)
        shutil.rmtree(run, ignore_errors=True)
    size = os.path.getsize(binary)
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    print(f"machine: {cpu}, {os.cpu_count()} cores; {RUNS} runs")
    print("| measure | value |")
    print("|---|---|")
    print(f"| start → registered (median) | {statistics.median(times_ms):.1f} ms |")
    print(f"| start → registered (min / max) | {min(times_ms):.1f} / {max(times_ms):.1f} ms |")
    print(f"| idle RSS after registering (max of {len(rss)}) | {max(rss) / 1024:.1f} MiB |")
    print(f"| stripped release binary (x86_64) | {size / 1e6:.2f} MB |")


if __name__ == "__main__":
    main()
