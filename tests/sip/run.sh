#!/usr/bin/env bash
# SIP gateway end to end with real phones (Debian's baresip), inside a network namespace
# with only loopback. Usage: bash tests/sip/run.sh path/to/switchboard
set -euo pipefail
BIN=$(realpath "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  exec unshare -n bash -c "ip link set lo up && python3 '$HERE/calls.py' '$BIN' && python3 '$HERE/trunks.py' '$BIN'"
fi
python3 "$HERE/calls.py" "$BIN"
exec python3 "$HERE/trunks.py" "$BIN"
