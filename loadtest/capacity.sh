#!/usr/bin/env bash
# Capacity of Switchboard and Janus on one core each, in one command:
#   bash loadtest/capacity.sh [extra capacity flags, e.g. --step-rooms 4]
# The server runs pinned to core 0 (Switchboard with one worker), the harness pinned to
# core 1; conference rooms of 4 are added step by step (10 s each) until loss > 1 % or
# p99 > 50 ms. Each step line shows how much of its core the server and the harness
# used: a harness near 100 % means the harness, not the server, was what saturated.
# Loopback only. Results: target/capacity/{switchboard,janus}.txt and a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(nproc)" -ge 2 ] || { echo "capacity.sh needs two cores (server and harness apart)"; exit 1; }
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
if ! command -v janus >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq janus >/dev/null
fi
cargo build --release -p server -p loadtest
BIN=./target/release
OUT=target/capacity
mkdir -p "$OUT"
KEYS=loadtest:switchboard-loadtest-secret-0123456789
STEPS=(--scenario conference --participants 4 --rooms 4 --step-rooms 4 --max-steps 12 --duration 10 --quiet)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

echo "== switchboard on core 0" >&2
SWITCHBOARD_KEYS=$KEYS taskset -c 0 $BIN/switchboard --http 127.0.0.1:7991 --rtc-port 47200 \
  --workers 1 >"$OUT/switchboard.log" 2>&1 &
pids+=($!); SB=$!
sleep 1
taskset -c 1 $BIN/switchboard-loadtest capacity "${STEPS[@]}" "$@" --url http://127.0.0.1:7991 \
  --keys "$KEYS" --server-pid "$SB" | tee "$OUT/switchboard.txt"
kill "$SB"; wait "$SB" 2>/dev/null || true

echo "== janus on core 0" >&2
$BIN/switchboard-loadtest janus-config --dir "$OUT/janus-config" --ip 127.0.0.1
taskset -c 0 janus -C "$OUT/janus-config/janus.jcfg" -F "$OUT/janus-config" -N \
  -L "$OUT/janus.log" >/dev/null 2>&1 &
pids+=($!); JA=$!
for _ in $(seq 100); do grep -q "HTTP webserver started" "$OUT/janus.log" 2>/dev/null && break; sleep 0.1; done
sleep 0.5
taskset -c 1 $BIN/switchboard-loadtest capacity "${STEPS[@]}" "$@" --url http://127.0.0.1:8088 \
  --server janus --server-pid "$JA" | tee "$OUT/janus.txt"

last() { grep -E '^step .* held$' "$1" | tail -1 | sed -E 's/^step [0-9]+: ([0-9]+) rooms.*/\1/'; }
{
  echo "| server (one core) | rooms of 4 held | last step that held |"
  echo "|---|---:|---|"
  echo "| switchboard | $(last "$OUT/switchboard.txt") | $(grep -E ' held$' "$OUT/switchboard.txt" | tail -1) |"
  echo "| janus | $(last "$OUT/janus.txt") | $(grep -E ' held$' "$OUT/janus.txt" | tail -1) |"
} | tee "$OUT/summary.md"
