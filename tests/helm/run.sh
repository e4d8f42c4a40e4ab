#!/usr/bin/env bash
# Lint, render and schema-check the Helm chart (helm-python-sdk and kubernetes-validate
# from PyPI, in a venv made here). Usage: bash tests/helm/run.sh [switchboard binary]
set -euo pipefail
cd "$(dirname "$0")"
BIN=$(realpath "${1:-../../target/debug/switchboard}")
VENV=.venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import helm_python, kubernetes_validate, yaml' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "helm-python-sdk==0.2.*" "kubernetes-validate==1.*" pyyaml
fi
"$VENV/bin/python" check_chart.py ../../helm/switchboard "$BIN"
