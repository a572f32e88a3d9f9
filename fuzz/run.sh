#!/usr/bin/env bash
# Builds the fuzz targets on the stable toolchain (libfuzzer-sys with the
# sanitizer-coverage passes given by hand: no cargo-fuzz, no nightly) and runs each
# for a bounded time. A crash (or a timeout/leak libFuzzer reports) fails the script
# and leaves the input in $FUZZ_OUT/<target>/artifacts/.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default 10 s, every [[bin]])
#
# Seeds come from fuzz/corpus/<target>/ (read only); what libFuzzer finds goes to a
# scratch corpus under $FUZZ_OUT (default: target/fuzz-run), which later runs reuse.
set -euo pipefail
cd "$(dirname "$0")"

secs="${1:-10}"
shift || true
if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -vx 'voice-ua-fuzz')
fi
triple="$(rustc -vV | sed -n 's/^host: //p')"
# The fuzz crate's own target dir, whatever CARGO_TARGET_DIR the caller exported for the
# workspace (the binaries are run from here below).
export CARGO_TARGET_DIR="$PWD/target"
out="${FUZZ_OUT:-$PWD/target/fuzz-run}"

# --target keeps the flags off build scripts and proc macros (as cargo-fuzz does).
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cdebug-assertions -Coverflow-checks"
cargo build --release --locked --bins --target "$triple"

failed=()
for t in "${targets[@]}"; do
  bin="target/$triple/release/$t"
  work="$out/$t"
  mkdir -p "$work/corpus" "$work/artifacts" "corpus/$t"
  echo "fuzz: $t for ${secs} s"
  if ! "$bin" "$work/corpus" "corpus/$t" -max_total_time="$secs" -timeout=5 -rss_limit_mb=1024 \
      -max_len=8192 -print_final_stats=1 -artifact_prefix="$work/artifacts/" >"$work/log" 2>&1; then
    echo "fuzz: $t FAILED; last lines of $work/log:"
    tail -n 30 "$work/log"
    failed+=("$t")
  else
    grep -E '^stat::number_of_executed_units' "$work/log" | sed "s/^/fuzz: $t /"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in ${failed[*]} (inputs under $out/<target>/artifacts/)"
  exit 1
fi
