#!/usr/bin/env bash
# Cross-compiles voice-ua for a 64-bit Raspberry Pi (aarch64-unknown-linux-gnu), then
# proves the result runs: the unit tests of the sans-IO crates (voice-ua-sip,
# voice-ua-media) and `voice-ua --version` run under qemu-user. Prints the size of the
# stripped binary.
#
#   deploy/build-aarch64.sh              # build + test + --version
#   VOICE_UA_NO_INSTALL=1 deploy/...     # never apt-get install; skip when a tool is missing
#   CARGO_TARGET_DIR=/tmp/t deploy/...   # build elsewhere (cargo honours it as usual)
#
# Exit status:
#   0  built, tests passed, the binary ran under qemu
#   1  the build or a test failed (a real failure)
#   3  skipped: this machine cannot cross-build or run aarch64 (one line says why);
#      a CI step should report "skipped: <that line>" rather than pass or fail
#
# Needs: rustup (it adds the Rust target), Debian's gcc-aarch64-linux-gnu (linker, and C
# compiler for ring), libc6-dev-arm64-cross and qemu-user. Missing Debian packages are
# installed when running as root (or with sudo) unless VOICE_UA_NO_INSTALL=1.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
SKIP=3
started=$(date +%s)

skip() {
  echo "build-aarch64: skipped: $*"
  exit "$SKIP"
}
step() { echo "build-aarch64: $*"; }
elapsed() { echo "$(($(date +%s) - started)) s"; }

# 1. The Rust standard library for the target.
command -v rustup >/dev/null 2>&1 || skip "rustup is not installed, so the $TARGET target cannot be added"
if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
  step "adding the Rust target $TARGET"
  if ! out=$(rustup target add "$TARGET" 2>&1); then
    skip "rustup cannot install the $TARGET target: $(printf '%s\n' "$out" | grep -v '^\s*$' | tail -n 1)"
  fi
fi

# 2. Linker and emulator from Debian.
need=()
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null 2>&1 || command -v qemu-aarch64-static >/dev/null 2>&1 || need+=(qemu-user)
if [ ${#need[@]} -gt 0 ]; then
  [ "${VOICE_UA_NO_INSTALL:-0}" = 1 ] && skip "missing ${need[*]} and VOICE_UA_NO_INSTALL=1"
  command -v apt-get >/dev/null 2>&1 || skip "missing ${need[*]} and there is no apt-get to install them"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || skip "missing ${need[*]}; run as root or install them"
    sudo_cmd=(sudo)
  fi
  step "installing ${need[*]} (Debian)"
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${need[@]}" >/dev/null 2>&1 || skip "apt-get could not install ${need[*]}"
fi
QEMU=$(command -v qemu-aarch64 || command -v qemu-aarch64-static)
SYSROOT=/usr/aarch64-linux-gnu
[ -d "$SYSROOT/lib" ] || skip "no aarch64 sysroot at $SYSROOT (install libc6-dev-arm64-cross)"

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$QEMU -L $SYSROOT"
# ring (rustls's crypto, used by the Deepgram client) compiles C and assembly.
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar

# 3. The release binary.
step "cargo build --release --target $TARGET -p voice-ua"
t0=$(date +%s)
cargo build --release --locked --target "$TARGET" -p voice-ua
build_s=$(($(date +%s) - t0))

target_dir=${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')}
target_dir=${target_dir:-target}
bin="$target_dir/$TARGET/release/voice-ua"
[ -x "$bin" ] || { echo "build-aarch64: error: no binary at $bin after the build"; exit 1; }

# 4. Unit tests of the sans-IO crates, run under qemu by cargo's runner.
step "unit tests of voice-ua-sip and voice-ua-media under $(basename "$QEMU")"
t0=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! cargo test --locked --target "$TARGET" -p voice-ua-sip -p voice-ua-media --lib 2>&1 | tee "$log"; then
  echo "build-aarch64: error: unit tests failed under qemu (see above)"
  exit 1
fi
test_s=$(($(date +%s) - t0))
passed=$(sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
ignored=$(sed -n 's/^test result: ok\..* \([0-9]*\) ignored.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
suites=$(grep -c '^test result: ok\.' "$log" || true)
[ "$passed" -gt 0 ] || { echo "build-aarch64: error: no unit test ran"; exit 1; }

# 5. The binary itself runs on the target architecture.
version=$("$QEMU" -L "$SYSROOT" "$bin" --version) || {
  echo "build-aarch64: error: $bin --version failed under qemu"
  exit 1
}

# 6. Size. The release profile already strips symbols; strip again to be sure it is minimal.
stripped="$target_dir/$TARGET/release/voice-ua.stripped"
aarch64-linux-gnu-strip -o "$stripped" "$bin"
size=$(stat -c %s "$stripped")
file_desc=$(file -b "$bin" 2>/dev/null | cut -d, -f1-2 || true)

echo
echo "build-aarch64: binary        $bin${file_desc:+ ($file_desc)}"
echo "build-aarch64: --version     $version"
printf 'build-aarch64: stripped size %s bytes (%s MiB)\n' "$size" "$(awk -v s="$size" 'BEGIN {printf "%.2f", s/1048576}')"
echo "build-aarch64: unit tests    $passed passed, 0 failed, $ignored ignored ($suites suites, under qemu)"
echo "build-aarch64: time          build ${build_s} s, tests ${test_s} s, total $(elapsed)"
