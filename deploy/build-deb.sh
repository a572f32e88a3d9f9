#!/usr/bin/env bash
# Builds the voice-ua Debian package with cargo-deb, then checks what is in it.
#
#   deploy/build-deb.sh                                      # this machine's architecture
#   deploy/build-deb.sh --target aarch64-unknown-linux-gnu   # 64-bit Raspberry Pi OS
#
# The package: /usr/bin/voice-ua, the systemd unit (/usr/lib/systemd/system, which is
# /lib/systemd/system on merged-/usr Debian), the sysusers file for the voice-ua user,
# /etc/voice-ua/voice-ua.toml as a conffile (mode 0640; deploy/postinst gives it to
# root:voice-ua), and the README and docs in
# /usr/share/doc/voice-ua/. The service is installed disabled: configure, then
# `systemctl enable --now voice-ua`.
#
# The metadata lives in bin/voice-ua/Cargo.toml ([package.metadata.deb], the text of
# deploy/cargo-deb.toml). While that table is not there yet, the build runs on a scratch
# copy of the repository in /tmp with deploy/cargo-deb.toml appended to the copy's
# manifest; the work tree itself is never changed.
#
# Environment: VOICE_UA_DEB_OUT (output directory; default <tree>/target/debian),
# CARGO_TARGET_DIR (as usual), VOICE_UA_NO_INSTALL=1 (never `cargo install cargo-deb`).
#
# Exit status: 0 built and checked, 1 failed, 3 skipped (cargo-deb is missing and cannot
# be installed; the one line printed says why).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
target=
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target=${2:?--target needs a triple}; shift 2 ;;
    --target=*) target=${1#--target=}; shift ;;
    -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "build-deb: unknown argument $1 (try --help)"; exit 1 ;;
  esac
done

# 1. cargo-deb.
if ! cargo deb --version >/dev/null 2>&1; then
  [ "${VOICE_UA_NO_INSTALL:-0}" = 1 ] && { echo "build-deb: skipped: cargo-deb is not installed and VOICE_UA_NO_INSTALL=1"; exit 3; }
  echo "build-deb: installing cargo-deb (cargo install cargo-deb --locked)"
  if ! out=$(cargo install cargo-deb --locked 2>&1); then
    echo "build-deb: skipped: cannot install cargo-deb: $(printf '%s\n' "$out" | grep -v '^\s*$' | tail -n 1)"
    exit 3
  fi
fi
command -v dpkg-deb >/dev/null 2>&1 || { echo "build-deb: skipped: dpkg-deb is missing (Debian package dpkg)"; exit 3; }

# 2. Where to build: the work tree, or a scratch copy with the metadata added.
manifest=bin/voice-ua/Cargo.toml
if grep -q '^\[package\.metadata\.deb\]' "$repo/$manifest"; then
  tree=$repo
else
  tree=$(mktemp -d /tmp/voice-ua-deb.XXXXXX)
  echo "build-deb: $manifest has no [package.metadata.deb] yet: building a scratch copy in $tree"
  tar -C "$repo" --exclude=./target --exclude=./.git --exclude=./fuzz/target -cf - . | tar -C "$tree" -xf -
  { echo; cat "$repo/deploy/cargo-deb.toml"; } >>"$tree/$manifest"
fi
out_dir=${VOICE_UA_DEB_OUT:-$tree/target/debian}
mkdir -p "$out_dir"

# 3. Cross-compiling: the same tools as deploy/build-aarch64.sh.
args=(deb -p voice-ua --locked -o "$out_dir")
if [ -n "$target" ]; then
  args+=(--target "$target")
  if [ "$target" = aarch64-unknown-linux-gnu ]; then
    rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target" >/dev/null 2>&1 ||
      { echo "build-deb: skipped: rustup cannot install the $target target"; exit 3; }
    command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 ||
      { echo "build-deb: skipped: no aarch64-linux-gnu-gcc (Debian gcc-aarch64-linux-gnu; deploy/build-aarch64.sh installs it)"; exit 3; }
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
  fi
fi

# 4. Build.
t0=$(date +%s)
stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
(cd "$tree" && cargo "${args[@]}")
deb=$(find "$out_dir" -maxdepth 1 -name 'voice-ua_*.deb' -newer "$stamp" | head -n 1)
[ -n "$deb" ] || { echo "build-deb: error: cargo deb wrote no voice-ua_*.deb into $out_dir"; exit 1; }
secs=$(($(date +%s) - t0))

# 5. Check the contents.
listing=$(dpkg-deb -c "$deb")
conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles 2>/dev/null || true)
missing=()
for path in ./usr/bin/voice-ua ./usr/lib/systemd/system/voice-ua.service ./usr/lib/sysusers.d/voice-ua.conf \
  ./etc/voice-ua/voice-ua.toml ./usr/share/doc/voice-ua/README.md ./usr/share/doc/voice-ua/copyright; do
  printf '%s\n' "$listing" | awk '{print $6}' | grep -qx "$path" || missing+=("$path")
done
printf '%s\n' "$conffiles" | grep -qx /etc/voice-ua/voice-ua.toml || missing+=("conffile /etc/voice-ua/voice-ua.toml")
postinst=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./postinst 2>/dev/null || true)
printf '%s\n' "$postinst" | grep -q 'systemd-sysusers' || missing+=("postinst: systemd-sysusers")
printf '%s\n' "$postinst" | grep -q 'chown root:voice-ua' || missing+=("postinst: /etc/voice-ua to root:voice-ua")
# The configuration can hold secrets: 0640 in the package, its group set by postinst.
printf '%s\n' "$listing" | awk '$6 == "./etc/voice-ua/voice-ua.toml" {print $1}' | grep -qx -- '-rw-r-----' ||
  missing+=("mode 0640 of /etc/voice-ua/voice-ua.toml")

echo
echo "build-deb: package   $deb"
echo "build-deb: size      $(stat -c %s "$deb") bytes; built in ${secs} s"
dpkg-deb -f "$deb" Package Version Architecture Depends Installed-Size | sed 's/^/build-deb:   /'
echo "build-deb: conffiles $(printf '%s' "$conffiles" | tr '\n' ' ')"
echo "build-deb: contents"
printf '%s\n' "$listing" | sed 's/^/  /'
if [ ${#missing[@]} -gt 0 ]; then
  echo "build-deb: FAIL: missing from the package: ${missing[*]}"
  exit 1
fi
echo "build-deb: OK"
