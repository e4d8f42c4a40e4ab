#!/usr/bin/env bash
# Capacity of Switchboard, Janus and mediasoup on one core each, in one command (as root):
#   bash loadtest/capacity.sh [extra capacity flags, e.g. --step-rooms 2]
# The servers run in a network namespace pinned to core 0 (Switchboard with one worker),
# the harness in a second namespace pinned to core 1, joined by a veth pair (Janus's ICE
# does not use loopback); conference rooms of 4 are added step by step (10 s each) until
# loss > 1 % or p99 > 50 ms. Each step line shows the share of its core that the server
# and the harness used in the measured window: a harness near 100 % means the harness,
# not the server, was what saturated. mediasoup (one worker, its Node bridge on the same
# core) is measured when its worker builds (loadtest/mediasoup/build.sh, as compare.sh
# does). Results: target/capacity/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(nproc)" -ge 2 ] || { echo "capacity.sh needs two cores (server and harness apart)"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "capacity.sh creates network namespaces: run it as root"; exit 1; }
if ! command -v janus >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq janus >/dev/null
fi
cargo build --release -p server -p switchboard-loadtest
BIN=$PWD/target/release
OUT=$PWD/target/capacity
mkdir -p "$OUT"
KEYS=loadtest:switchboard-loadtest-secret-0123456789
# The names the harness's address guard accepts (interfaces sblt*, 10.99.N.0/24).
NS_S=sbltA78; NS_C=sbltB78; SIP=10.99.78.1; CIP=10.99.78.2
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -f "bridge.mjs --ip $SIP" 2>/dev/null || true
  ip netns del "$NS_S" 2>/dev/null || true
  ip netns del "$NS_C" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
ip netns add "$NS_S"; ip netns add "$NS_C"
ip link add sblta78 type veth peer name sbltb78
ip link set sblta78 netns "$NS_S"; ip link set sbltb78 netns "$NS_C"
ip -n "$NS_S" addr add "$SIP/24" dev sblta78; ip -n "$NS_C" addr add "$CIP/24" dev sbltb78
for ns in "$NS_S" "$NS_C"; do ip -n "$ns" link set lo up; done
ip -n "$NS_S" link set sblta78 up; ip -n "$NS_C" link set sbltb78 up
STEPS=(--scenario conference --participants 4 --rooms 4 --step-rooms 4 --max-steps 12 --duration 10 --quiet)
harness() { ip netns exec "$NS_C" taskset -c 1 "$BIN/switchboard-loadtest" capacity "${STEPS[@]}" \
  --bind-ip "$CIP" --ns-addr "$SIP" "$@"; }

echo "== switchboard on core 0" >&2
SWITCHBOARD_KEYS=$KEYS ip netns exec "$NS_S" taskset -c 0 "$BIN/switchboard" --http "$SIP:7991" \
  --rtc-bind "$SIP" --rtc-port 47200 --workers 1 >"$OUT/switchboard.log" 2>&1 &
pids+=($!)
sleep 1
SB=$(pgrep -f "switchboard --http $SIP:7991" | head -1)
harness --url "http://$SIP:7991" --keys "$KEYS" --server-pid "$SB" "${@}" | tee "$OUT/switchboard.txt"
kill "$SB" 2>/dev/null || true

echo "== janus on core 0" >&2
"$BIN/switchboard-loadtest" janus-config --dir "$OUT/janus-config" --ip "$SIP"
rm -f "$OUT/janus.log"
ip netns exec "$NS_S" taskset -c 0 janus -C "$OUT/janus-config/janus.jcfg" -F "$OUT/janus-config" \
  -N -L "$OUT/janus.log" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 200); do grep -q "HTTP webserver started" "$OUT/janus.log" 2>/dev/null && break; sleep 0.1; done
sleep 0.5
JA=$(pgrep -f "janus -C $OUT/janus-config" | head -1)
harness --url "http://$SIP:8088" --server janus --server-pid "$JA" "${@}" | tee "$OUT/janus.txt"
kill "$JA" 2>/dev/null || true
servers=(switchboard janus)

if bash loadtest/mediasoup/build.sh >"$OUT/mediasoup-build.log" 2>&1; then
  echo "== mediasoup (one worker and its Node bridge) on core 0" >&2
  rm -f "$OUT/mediasoup.log"
  (cd loadtest/mediasoup && exec ip netns exec "$NS_S" taskset -c 0 node bridge.mjs --ip "$SIP" \
    --port 3000 --workers 1 >"$OUT/mediasoup.log" 2>&1) &
  pids+=($!)
  for _ in $(seq 200); do grep -q "mediasoup bridge listening" "$OUT/mediasoup.log" 2>/dev/null && break; sleep 0.1; done
  # Node and its worker, counted together (the harness reports each alone too).
  MS=$(sed -nE 's/^pids node=([0-9]+) workers=([0-9,]+).*/\1,\2/p' "$OUT/mediasoup.log" | head -1)
  harness --url "http://$SIP:3000" --server mediasoup --server-pid "$MS" "${@}" | tee "$OUT/mediasoup.txt"
  pkill -f "bridge.mjs --ip $SIP" 2>/dev/null || true
  servers+=(mediasoup)
else
  echo "mediasoup could not be built (see $OUT/mediasoup-build.log): measured without it" >&2
fi

last() { grep -E '^step .* held$' "$1" | tail -1 | sed -E 's/^step [0-9]+: ([0-9]+) rooms.*/\1/'; }
{
  echo "| server (one core) | rooms of 4 held | the last step that held |"
  echo "|---|---:|---|"
  for s in "${servers[@]}"; do
    echo "| $s | $(last "$OUT/$s.txt") | $(grep -E ' held$' "$OUT/$s.txt" | tail -1 | sed 's/ -> held//') |"
  done
} | tee "$OUT/summary.md"
