#!/usr/bin/env bash
# LiveKit's own SDKs from PyPI against the server: `livekit-api` (RoomService over Twirp
# with protobuf bodies, AccessToken). Loopback only.
# Usage: bash tests/livekit/run.sh [path to switchboard binary]
set -euo pipefail
cd "$(dirname "$0")"
BIN=$(realpath "${1:-../../target/debug/switchboard}")
VENV=.venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import livekit.api' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "livekit-api==1.2.*"
fi
timeout 120 "$VENV/bin/python" room_service.py "$BIN"
