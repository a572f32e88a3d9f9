#!/usr/bin/env bash
# Checks deploy/voice-ua.service and deploy/voice-ua.sysusers offline, without
# installing voice-ua or needing a running systemd:
#   1. systemd-analyze verify, in a throw-away root that holds the unit, a stand-in
#      /usr/bin/voice-ua and the host's own unit files (for sysinit.target etc.).
#      systemd-analyze exits 0 on unknown keys and bad values; it only prints them, so
#      any line it prints about voice-ua fails the check.
#   2. systemd-analyze security --offline: prints the exposure score and fails above
#      VOICE_UA_MAX_EXPOSURE (default 2.0; 0 is best, 10 is an unhardened service).
#   3. systemd-sysusers --dry-run on the sysusers file, in the same root.
# And first, without systemd: what keeps secrets in place. The unit has LimitCORE=0 (no
# core dumps holding the keys); the package installs /etc/voice-ua/voice-ua.toml mode 640
# (bin/voice-ua/Cargo.toml and deploy/cargo-deb.toml); deploy/postinst, run against a
# scratch /etc/voice-ua, leaves the directory 0750 and its files 0640 root:voice-ua.
#
# Exit status: 0 clean, 1 a warning or error about the unit, 3 skipped (no systemd-analyze
# and it cannot be installed; the one line printed says why).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
unit="$here/voice-ua.service"
sysusers="$here/voice-ua.sysusers"
postinst="$here/postinst"
max_exposure=${VOICE_UA_MAX_EXPOSURE:-2.0}
failed=0

# --- secrets: no core dumps, the configuration 0640 root:voice-ua -------------------------
if grep -qx 'LimitCORE=0' "$unit"; then
  echo "check-unit: LimitCORE=0: core dumps are off"
else
  echo "check-unit: FAIL: voice-ua.service has no LimitCORE=0 (a core dump would hold the SIP password and the Deepgram key)"
  failed=1
fi
for manifest in "$here/../bin/voice-ua/Cargo.toml" "$here/cargo-deb.toml"; do
  mode=$(sed -n 's/.*"etc\/voice-ua\/voice-ua.toml", *"\([0-7]*\)".*/\1/p' "$manifest")
  if [ "$mode" = 640 ]; then
    echo "check-unit: $(basename "$manifest"): /etc/voice-ua/voice-ua.toml is installed mode 640"
  else
    echo "check-unit: FAIL: $manifest installs /etc/voice-ua/voice-ua.toml mode '${mode:-?}', not 640 (it can hold secrets)"
    failed=1
  fi
done
# Run the postinst on a scratch root with stand-ins for systemd-sysusers and chown (the
# voice-ua group need not exist here): the modes are real, the owners are what chown got.
scratch=$(mktemp -d)
mkdir -p "$scratch/root/etc/voice-ua" "$scratch/bin"
printf '#!/bin/sh\nexit 0\n' >"$scratch/bin/systemd-sysusers"
printf '#!/bin/sh\necho "$@" >>"%s/chown.log"\n' "$scratch" >"$scratch/bin/chown"
chmod 755 "$scratch/bin/systemd-sysusers" "$scratch/bin/chown"
install -m 0644 /dev/null "$scratch/root/etc/voice-ua/voice-ua.toml"
install -m 0644 /dev/null "$scratch/root/etc/voice-ua/deepgram-key"
install -m 0604 /dev/null "$scratch/root/etc/voice-ua/env"
chmod 0755 "$scratch/root/etc/voice-ua"
if [ ! -x "$postinst" ] || ! grep -q '^#DEBHELPER#$' "$postinst"; then
  echo "check-unit: FAIL: $postinst is missing, not executable, or has no #DEBHELPER# line"
  failed=1
elif ! PATH="$scratch/bin:$PATH" DPKG_ROOT="$scratch/root" sh "$postinst" configure >"$scratch/out" 2>&1; then
  sed 's/^/  /' "$scratch/out"
  echo "check-unit: FAIL: deploy/postinst configure failed"
  failed=1
else
  modes=$(cd "$scratch/root/etc/voice-ua" && stat -c '%n %a' . voice-ua.toml deepgram-key env | tr '\n' ' ')
  owners=$(sed "s|$scratch/root||" "$scratch/chown.log" | sort | tr '\n' ' ')
  want_modes='. 750 voice-ua.toml 640 deepgram-key 640 env 600 '
  want_owners='root:voice-ua /etc/voice-ua root:voice-ua /etc/voice-ua/deepgram-key root:voice-ua /etc/voice-ua/voice-ua.toml '
  if [ "$modes" = "$want_modes" ] && [ "$owners" = "$want_owners" ]; then
    echo "check-unit: postinst: /etc/voice-ua 0750, its files 0640 root:voice-ua, env not readable by others"
  else
    echo "check-unit: FAIL: after deploy/postinst: modes [$modes] (want [$want_modes]), chown [$owners] (want [$want_owners])"
    failed=1
  fi
fi
rm -rf "$scratch"

if ! command -v systemd-analyze >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1 && [ "${VOICE_UA_NO_INSTALL:-0}" != 1 ]; then
    echo "check-unit: installing Debian's systemd package for systemd-analyze"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null 2>&1 || true
  fi
  command -v systemd-analyze >/dev/null 2>&1 || {
    echo "check-unit: skipped: systemd-analyze is not installed (Debian package systemd)"
    exit $((failed ? 1 : 3))
  }
fi

units_dir=
for d in /usr/lib/systemd/system /lib/systemd/system; do
  [ -f "$d/sysinit.target" ] && units_dir=$d && break
done
[ -n "$units_dir" ] || {
  echo "check-unit: skipped: no systemd unit files (sysinit.target) on this machine to verify against"
  exit $((failed ? 1 : 3))
}

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/bin" "$root/usr/lib/systemd" "$root/usr/lib/sysusers.d" "$root/etc/systemd/system" \
  "$root/tmp" "$root/usr/share/doc/voice-ua"
cp -a "$units_dir" "$root/usr/lib/systemd/system"
ln -s usr/lib "$root/lib"
printf '#!/bin/sh\nexit 0\n' >"$root/usr/bin/voice-ua"
chmod 755 "$root/usr/bin/voice-ua"
cp "$unit" "$root/etc/systemd/system/voice-ua.service"
cp "$sysusers" "$root/usr/lib/sysusers.d/voice-ua.conf"

echo "check-unit: systemd-analyze verify voice-ua.service ($(systemd-analyze --version | head -n 1))"
set +e
out=$(systemd-analyze verify --root="$root" /etc/systemd/system/voice-ua.service 2>&1)
rc=$?
set -e
if [ -n "$out" ]; then
  printf '%s\n' "$out" | sed 's/^/  /'
fi
if [ $rc -ne 0 ] || printf '%s\n' "$out" | grep -q 'voice-ua'; then
  echo "check-unit: FAIL: systemd-analyze verify reported problems with voice-ua.service (status $rc)"
  failed=1
else
  echo "check-unit: verify: no warnings"
fi

set +e
sec=$(systemd-analyze security --offline=yes --root="$root" /etc/systemd/system/voice-ua.service 2>&1)
rc=$?
set -e
score=$(printf '%s\n' "$sec" | sed -n 's/.*Overall exposure level for voice-ua.service: \([0-9.]*\).*/\1/p')
if [ $rc -ne 0 ] || [ -z "$score" ]; then
  printf '%s\n' "$sec" | tail -n 5 | sed 's/^/  /'
  echo "check-unit: FAIL: systemd-analyze security could not rate the unit"
  failed=1
elif awk -v s="$score" -v m="$max_exposure" 'BEGIN {exit !(s > m)}'; then
  printf '%s\n' "$sec" | grep '✗' | sed 's/^/  /'
  echo "check-unit: FAIL: exposure $score is above $max_exposure"
  failed=1
else
  echo "check-unit: security: exposure $score (at most $max_exposure; 0 best, 10 unhardened)"
fi

set +e
out=$(systemd-sysusers --root="$root" --dry-run 2>&1)
rc=$?
set -e
if [ $rc -ne 0 ] || ! printf '%s\n' "$out" | grep -q "voice-ua"; then
  printf '%s\n' "$out" | sed 's/^/  /'
  echo "check-unit: FAIL: systemd-sysusers did not accept voice-ua.sysusers"
  failed=1
else
  echo "check-unit: sysusers: $(printf '%s\n' "$out" | grep -m1 'voice-ua')"
fi

if [ $failed -ne 0 ]; then
  exit 1
fi
echo "check-unit: OK"
