#!/usr/bin/env bash
# A second, independent WebRTC stack (aiortc, from PyPI) against the server through plain
# WHIP and WHEP: H.264 + Opus (what OBS sends) and VP8. aiortc's ICE ignores loopback,
# so the server runs in a network namespace this script creates, joined to ours by a veth
# pair with private addresses; nothing leaves the machine. Needs root and iproute2.
# Usage: bash tests/interop/run.sh [path to switchboard binary]
set -euo pipefail
cd "$(dirname "$0")"
BIN=$(realpath "${1:-../../target/debug/switchboard}")
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; then
  echo "SKIPPED: needs root and iproute2 to create a network namespace"
  exit 0
fi
VENV=.venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import aiortc' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "aiortc==1.16.*"
fi
# Everything below runs in a private network namespace with only loopback, plus the
# namespace and veth pair made here: every packet provably stays inside.
export BIN VENV
exec unshare -n bash -euo pipefail -c '
ip link set lo up
NS=sbinterop$$
VA=sbia$$; VB=sbib$$
cleanup() {
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$NS"
ip link add "$VA" type veth peer name "$VB" netns "$NS"
ip addr add 10.203.1.2/24 dev "$VA"
ip link set "$VA" up
ip netns exec "$NS" ip addr add 10.203.1.1/24 dev "$VB"
ip netns exec "$NS" ip link set "$VB" up
ip netns exec "$NS" ip link set lo up
PORT=$((20000 + RANDOM % 20000))
# Not loopback, so keys (a keyless server serves only on loopback), with the development
# token route on: the test fetches its tokens there.
SWITCHBOARD_KEYS=interop:interop-tests-only-secret-0123 SWITCHBOARD_DEV=true \
ip netns exec "$NS" "$BIN" --http 10.203.1.1:$PORT --rtc-bind 10.203.1.1 --rtc-port $((PORT + 1)) \
  --workers 1 >server.log 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -sf "http://10.203.1.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
for codec in H264 VP8; do
  timeout 120 "$VENV/bin/python" whip_aiortc.py --base "http://10.203.1.1:$PORT" --codec $codec
done
'
