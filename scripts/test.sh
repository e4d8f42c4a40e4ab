#!/usr/bin/env bash
# Runs every test of the project. Installs what the tests need (Chromium and Firefox ESR from Debian,
# npm packages) if it is missing; safe to run again. Used by `.ci/run`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each phase's wall time, printed when the next starts and at the end (CI's 30-minute
# budget: this says where it goes).
phase_name="installing"; phase_start=$SECONDS
phase() {
  echo "   ($phase_name: $((SECONDS - phase_start)) s; total $SECONDS s)"
  phase_name=$1; phase_start=$SECONDS
  echo "== $1"
}
trap 'echo "   ($phase_name: $((SECONDS - phase_start)) s; total $SECONDS s)"' EXIT

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium chromium-driver)
command -v firefox-esr >/dev/null 2>&1 || need_apt+=(firefox-esr)
command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)
# The SIP gateway's tests: baresip (the phones) and sipsak (installed without their
# recommendations: no sound server is needed). Building needs no system library.
need_sip=()
command -v baresip >/dev/null 2>&1 || need_sip+=(baresip-core)
command -v sipsak >/dev/null 2>&1 || need_sip+=(sipsak)
# TURN: Debian's coturn for the relay test (tests/browser/turn.test.mjs).
command -v turnserver >/dev/null 2>&1 || need_sip+=(coturn)
# The cluster: Debian's redis-server, started by the cluster tests on loopback; nginx,
# the TLS proxy in front of a cluster (tests/browser/proxy_tls.test.mjs), run in the
# foreground by the test (the package's own service is not started: policy-rc.d).
command -v redis-server >/dev/null 2>&1 || need_sip+=(redis-server)
command -v nginx >/dev/null 2>&1 || need_sip+=(nginx)
if [ ${#need_sip[@]} -gt 0 ]; then
  echo "== installing ${need_sip[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  [ $had_policy = 1 ] || printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${need_sip[@]}" >/dev/null
  [ $had_policy = 1 ] || rm -f /usr/sbin/policy-rc.d
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Reinstalled when package-lock.json is newer than what npm last installed.
if [ ! -f tests/browser/node_modules/.package-lock.json ] \
   || [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
  echo "== installing npm packages for the browser tests"
  (cd tests/browser && npm ci --no-audit --no-fund)
fi

phase "str0m: the carried copy is the registry's release plus its patches (ADR 0009)"
bash scripts/str0m-copy.sh check

phase "cargo test (unit, simulation, loopback integration)"
cargo build --workspace --all-targets
cargo test --workspace

phase "lints: rustfmt and clippy (warnings are errors)"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings

phase "REST API against its OpenAPI document (schemathesis, bounded)"
bash tests/api-fuzz/run.sh "$PWD/target/debug/switchboard"

phase "Helm chart: lint, render, Kubernetes schema validation (helm-python-sdk, kubernetes-validate)"
bash tests/helm/run.sh "$PWD/target/debug/switchboard"

phase "TLS out: webhooks to an HTTPS receiver and a cluster on rediss:// (and Sentinel) with a private CA (SSL_CERT_FILE)"
python3 tests/tls/webhooks.py "$PWD/target/debug/switchboard"
python3 tests/tls/redis.py "$PWD/target/debug/switchboard"

phase "WHIP/WHEP with a second WebRTC stack (aiortc; H.264 and VP8)"
bash tests/interop/run.sh "$PWD/target/debug/switchboard"

phase "LiveKit's SDKs from PyPI (livekit-api: RoomService over protobuf Twirp, AccessToken)"
bash tests/livekit/run.sh "$PWD/target/debug/switchboard"

phase "SIP gateway with real phones (baresip: tones through rooms, the mix, hang-ups, 404)"
bash tests/sip/run.sh "$PWD/target/debug/switchboard"

phase "client SDK (sdk/js): generated types, the example type-checked against them, node --test"
if [ ! -f sdk/js/node_modules/.package-lock.json ] \
   || [ sdk/js/package-lock.json -nt sdk/js/node_modules/.package-lock.json ]; then
  (cd sdk/js && npm ci --no-audit --no-fund)
fi
(cd sdk/js && npm run -s types && npm run -s typecheck && npm test)

phase "mediasoup bridge (load-test target): SDP translation on recorded SDPs (node --test)"
if [ ! -d loadtest/mediasoup/node_modules/sdp-transform ]; then
  # Sources only: the worker is built by loadtest/mediasoup/build.sh when a comparison needs it.
  (cd loadtest/mediasoup && npm ci --ignore-scripts --no-audit --no-fund)
fi
(cd loadtest/mediasoup && npm test)
# Its smoke test (also part of `cargo test` above), shown uncaptured so that a skip says why
# (`--workspace`: the features `cargo test --workspace` built with, so nothing is rebuilt;
# `-p switchboard-loadtest` alone resolved other features and rebuilt ~100 s of crates).
cargo test -q --workspace --test mediasoup_smoke -- --nocapture

# A smoke run (unoptimized build, 6 s a target: CI's budget); fuzz/run.sh documents long runs.
phase "fuzz targets: regression inputs, then ${FUZZ_SECONDS:-6} s each (cargo-fuzz --dev, libFuzzer + ASan)"
FUZZ_DEV="${FUZZ_DEV:-1}" bash fuzz/run.sh "${FUZZ_SECONDS:-6}"

phase "browser end-to-end tests (headless Chromium and Firefox ESR; Eyevinn's WHIP/WHEP clients)"
# Inside a private network namespace with only loopback when we may create one, so that
# every packet provably stays on 127.0.0.1.
run_browser_tests() { (cd tests/browser && npm test); }
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  export -f run_browser_tests
  unshare -n bash -c 'ip link set lo up && run_browser_tests'
else
  run_browser_tests
fi

# Last, the slowest: the README's first command as a fresh machine runs it (no cmake, no
# pkg-config, an empty target directory). CI builds it unoptimized (about 4 minutes on two
# cores instead of 9): what a fresh machine lacks shows in the build scripts, which run the
# same in both profiles; `FRESH_PROFILE=release bash tests/fresh-build/run.sh` is the
# README's exact command.
phase "fresh-machine build: cargo build -p server without cmake or pkg-config, then the server answers"
FRESH_PROFILE=${FRESH_PROFILE:-dev} bash tests/fresh-build/run.sh
