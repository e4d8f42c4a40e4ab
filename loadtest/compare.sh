#!/usr/bin/env bash
# Switchboard vs Janus vs mediasoup on this machine, in one command:
#   bash loadtest/compare.sh            # the three scenarios of docs/benchmarks.md, three
#                                       # alternating rounds each; rewrites its table there
#   bash loadtest/compare.sh [flags]    # one scenario, e.g. --scenario webinar --viewers 16
# Builds the release binaries, installs Debian's janus if missing, builds mediasoup's
# worker if missing (loadtest/mediasoup/build.sh; if that fails, the comparison goes on
# without mediasoup and says so), and runs `compare` (as root: it creates and removes two
# network namespaces). Results: target/compare/.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
if ! command -v janus >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq janus >/dev/null
fi
mkdir -p target
if ! $SUDO bash loadtest/mediasoup/build.sh > target/mediasoup-build.log 2>&1; then
  echo "mediasoup could not be built (see target/mediasoup-build.log): compared without it" >&2
fi
cargo build --release -p server -p switchboard-loadtest
BIN=./target/release/switchboard-loadtest
if [ $# -gt 0 ]; then
  exec $SUDO "$BIN" compare "$@" --out-dir target/compare
fi

REPEAT="${COMPARE_REPEAT:-3}"
SUITE=target/compare/suite.md
mkdir -p target/compare
{
  echo "Measured $(date -u +%F) by \`bash loadtest/compare.sh\` ($REPEAT alternating rounds per scenario;"
  echo "$(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r);"
  echo "Janus $(dpkg-query -W -f='${Version}' janus 2>/dev/null || echo '?'), mediasoup 3.27.1; each server with one media worker per core)."
  echo
} > "$SUITE"
run() {
  local name="$1"; shift
  echo "== $name: compare $* --repeat $REPEAT" >&2
  $SUDO "$BIN" compare "$@" --repeat "$REPEAT" --out-dir "target/compare/$name" >/dev/null
  {
    echo "#### $name"
    echo
    echo "\`switchboard-loadtest compare $* --repeat $REPEAT\`"
    echo
    cat "target/compare/$name/compare.md"
    echo
  } >> "$SUITE"
}
run "conference-1x4" --participants 4 --duration 20
run "conference-8x4" --rooms 8 --participants 4 --ramp 20 --duration 20
run "webinar-1x16" --scenario webinar --viewers 16 --duration 20
python3 - "$SUITE" docs/benchmarks.md <<'PY'
import sys
suite, doc = sys.argv[1], sys.argv[2]
table = open(suite).read().strip()
text = open(doc).read()
begin, end = "<!-- compare:begin -->", "<!-- compare:end -->"
a, b = text.index(begin) + len(begin), text.index(end)
open(doc, "w").write(text[:a] + "\n" + table + "\n" + text[b:])
PY
cat "$SUITE"
echo "docs/benchmarks.md updated (between the compare markers)" >&2
