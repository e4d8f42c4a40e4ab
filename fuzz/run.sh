#!/usr/bin/env bash
# Build every fuzz target (cargo-fuzz, libFuzzer + AddressSanitizer) and run each on its
# committed seeds and regression inputs for a bounded time. cargo-fuzz's sanitizer flags
# are nightly-only; RUSTC_BOOTSTRAP=1 lets this stable toolchain take them.
# Usage: bash fuzz/run.sh [seconds per target, default 20] [target ...]
# FUZZ_DEV=1 builds the targets unoptimized (cargo fuzz --dev): a cold build takes ≈ 6 min
# instead of ≈ 10 on two cores, at a lower execution rate; scripts/test.sh uses it for
# its short smoke run, a long run (bash fuzz/run.sh 600) should not.
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:-20}
shift || true
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz@0.13.2
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(demux media_payloads signaling_message signaling_session livekit_signal rest_api rewriter_ops allocator shard_ops shard_datagrams sip_phone_input relay_input)
PROFILE=()
[ "${FUZZ_DEV:-0}" = 1 ] && PROFILE=(--dev)
cargo fuzz build ${PROFILE[@]+"${PROFILE[@]}"} >/dev/null
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "regressions/$t"
  # Regression inputs first (every crash ever found, kept by name), then a bounded run.
  log=$(mktemp)
  if ! cargo fuzz run ${PROFILE[@]+"${PROFILE[@]}"} "$t" "corpus/$t" "seeds/$t" "regressions/$t" -- \
      -max_total_time="$SECS" -print_final_stats=1 -close_fd_mask=3 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz target $t FAILED (crash input above; add it to fuzz/regressions/$t/ under a name)"
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  echo "fuzz $t: $runs executions in ${SECS}s ($rate/s), $cov, no crash"
  rm -f "$log"
done
