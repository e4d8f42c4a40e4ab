#!/usr/bin/env bash
# One command for the Switchboard vs Janus comparison on this machine:
#   bash loadtest/compare.sh [scenario flags, e.g. --scenario webinar --viewers 16]
# Builds the release binaries, installs Debian's janus if missing, and runs `compare`
# (as root: it creates and removes two network namespaces). Results: target/compare/.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
if ! command -v janus >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq janus >/dev/null
fi
cargo build --release -p server -p loadtest
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--participants 4 --duration 20)
$SUDO ./target/release/switchboard-loadtest compare "${args[@]}" --out-dir target/compare
