#!/usr/bin/env bash
# The README's first command on a fresh machine: builds the server (release) with Rust and a
# C compiler only — cmake, pkg-config and anything named *-pkg-config are hidden from PATH,
# so no system -dev library can be found — into an empty target directory, then checks that
# the server starts and answers. Run from the project root (scripts/test.sh does, last):
#   bash tests/fresh-build/run.sh          # target dir: a new temporary one, removed after
#   FRESH_PROFILE=dev bash tests/fresh-build/run.sh   # unoptimized (CI: the build scripts,
#                                          # where a missing tool shows, run the same)
set -u
root=$(pwd)
[ -f "$root/Cargo.toml" ] || { echo "run it from the project root"; exit 2; }
bin=$(mktemp -d)
target=${FRESH_TARGET:-$(mktemp -d)}
trap 'rm -rf "$bin"; [ -z "${FRESH_TARGET:-}" ] && rm -rf "$target"' EXIT
for f in /usr/bin/* /usr/local/bin/* "${CARGO_HOME:-$HOME/.cargo}"/bin/*; do
  b=$(basename "$f")
  case $b in cmake|ctest|cpack|pkg-config|pkgconf|*-pkg-config) continue;; esac
  [ -e "$bin/$b" ] || ln -s "$f" "$bin/$b"
done
profile=${FRESH_PROFILE:-release}
start=$SECONDS
if ! env -i HOME="$HOME" PATH="$bin" CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" \
     CARGO_TARGET_DIR="$target" cargo build --profile "$profile" --locked -p server 2>&1 | tail -5; then
  echo "FAILED: the release build needs something a fresh machine lacks (see above)"; exit 1
fi
out=release; [ "$profile" = dev ] && out=debug
[ -x "$target/$out/switchboard" ] || { echo "FAILED: no binary (see above)"; exit 1; }
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$target/$out/switchboard" --http 127.0.0.1:$port --rtc-port $((port + 1)) > /dev/null 2>&1 &
pid=$!
ok=0
for _ in $(seq 50); do
  if curl -s -o /dev/null -m 1 "http://127.0.0.1:$port/"; then ok=1; break; fi
  sleep 0.2
done
kill $pid 2>/dev/null; wait $pid 2>/dev/null
[ $ok = 1 ] || { echo "FAILED: built, but the server did not answer"; exit 1; }
echo "OK: built ($profile) without cmake or pkg-config in $((SECONDS - start)) s, and the server answers"
