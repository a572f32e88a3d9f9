#!/usr/bin/env bash
# Makes the Python venv that runs Pipecat (PyPI `pipecat-ai`), the third-party
# Twilio-dialect peer of the interop ring (tests/interop/support/pipecat_bot.py), if it
# is not there yet, and prints its python's path. Pinned versions; ~35 s and ~530 MB on
# first use, nothing after. Usage: pipecat-venv.sh [DIR] (default: <target>/pipecat-venv).
set -euo pipefail
cd "$(dirname "$0")/../../.."
dir="${1:-${CARGO_TARGET_DIR:-target}/pipecat-venv}"
python="$dir/bin/python"
if ! "$python" -c 'import pipecat.serializers.twilio, uvicorn' >/dev/null 2>&1; then
  echo "pipecat-venv.sh: installing pipecat-ai 1.14.0 into $dir" >&2
  python3 -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check "pipecat-ai[websocket]==1.14.0" "uvicorn==0.55.0" >&2
fi
echo "$(cd "$(dirname "$python")" && pwd)/python"
