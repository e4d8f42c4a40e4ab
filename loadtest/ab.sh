#!/usr/bin/env bash
# A/B of two switchboard builds on one scenario, on loopback: alternating rounds (A then B,
# B then A, ...), each server spawned by the harness; prints every round's CPU per forwarded
# packet, delivered Mbps, p99 latency, loss and layer mix, then the medians and the median
# of the per-round B/A ratios (two noisy cores: compare within a round, never across days).
#
#   bash loadtest/ab.sh A_BIN B_BIN ROUNDS [scenario flags of `switchboard-loadtest run`]
#   bash loadtest/ab.sh /tmp/main/switchboard target/release/switchboard 4 \
#       --scenario conference --rooms 8 --participants 4 --duration 20 --server-workers 1
#
# Build A from another checkout (git worktree add /tmp/main main && cd /tmp/main &&
# cargo build --release -p server). Reports land in target/ab/.
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,12p "$0"; exit 2; }
a_bin=$1 b_bin=$2 rounds=$3; shift 3
cd "$(dirname "$0")/.."
lt=target/release/switchboard-loadtest
[ -x "$lt" ] || cargo build --release -p switchboard-loadtest
out=target/ab; rm -rf "$out"; mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then order="A B"; else order="B A"; fi
  for v in $order; do
    bin=$a_bin; [ "$v" = B ] && bin=$b_bin
    "$lt" run --server-bin "$bin" "$@" --json "$out/$v-$r.json" > "$out/$v-$r.log" 2>&1 \
      || { echo "$v round $r failed (see $out/$v-$r.log)"; }
  done
done
python3 - "$out" "$rounds" <<'PY'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def load(v, r):
    p = os.path.join(out, f"{v}-{r}.json")
    return json.load(open(p)) if os.path.exists(p) else None
cpu = {"A": [], "B": []}; ratios = []
for r in range(1, rounds + 1):
    row = {}
    for v in "AB":
        d = load(v, r)
        if not d:
            continue
        s = d["server"]; row[v] = s["cpu_us_per_forwarded_packet"]; cpu[v].append(row[v])
        l = d["layers"]
        print(f"{v} round {r}: {row[v]:6.2f} us/packet  {d['received']['mbps']:6.1f} Mbps  "
              f"p99 {d['latency_ms']['p99']:6.2f} ms  loss {d['loss']['loss_pct']:.3f} %  "
              f"layers f/h/q {l.get('f', 0)}/{l.get('h', 0)}/{l.get('q', 0)}  "
              f"RSS/track {s['rss_kb_per_subscribed_track']:.0f} KB")
    if len(row) == 2:
        ratios.append(row["B"] / row["A"])
for v in "AB":
    if cpu[v]:
        print(f"{v}: median {statistics.median(cpu[v]):.2f} us per forwarded packet")
if ratios:
    print(f"B/A per round: {', '.join(f'{x:.2f}' for x in ratios)}; median {statistics.median(ratios):.2f}")
PY
