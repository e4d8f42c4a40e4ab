#!/usr/bin/env bash
# Property-based run of the REST API against its own OpenAPI document (schemathesis),
# bounded in examples and time. Every request goes to a server this script starts on
# 127.0.0.1 and stops. Usage: bash tests/api-fuzz/run.sh [path to switchboard binary]
set -euo pipefail
cd "$(dirname "$0")"
BIN=${1:-../../target/debug/switchboard}
VENV=.venv
if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==4.*"
fi
PORT=$((20000 + RANDOM % 20000))
KEYS="fuzz:schemathesis-secret-0123456789"
SWITCHBOARD_KEYS=$KEYS "$BIN" --http 127.0.0.1:$PORT --rtc-port $((PORT + 1)) --workers 1 \
  --api-rate 100000 --api-burst 100000 >server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
TOKEN=$("$BIN" token create --identity fuzzer --no-join --admin --room-create --room-list --keys "$KEYS")
set +e
timeout 300 "$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/api/v1/openapi.json" \
  -H "Authorization: Bearer $TOKEN" --max-examples 25 --seed 1 \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  >schemathesis.log 2>&1
rc=$?
set -e
# The summary only (generated bodies can be huge): the SUMMARY block to the end.
sed -n '/= SUMMARY =/,$p' schemathesis.log | cut -c1-200
if ! kill -0 $SERVER 2>/dev/null; then echo "the server died during the run"; exit 1; fi
exit $rc
