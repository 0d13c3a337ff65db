#!/usr/bin/env bash
# Create .venv and install dossier-bot with a CPU-only PyTorch. Safe to re-run: it does
# nothing when pyproject.toml has not changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
# torch is installed first, pinned, so that sentence-transformers does not pull the CUDA
# build (several GB). Elsewhere, point TORCH_INDEX_URL at PyTorch's CPU wheel index, e.g.
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu TORCH_SPEC=torch make test
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "dossier-bot needs Python 3.11 or newer ($PYTHON is $("$PYTHON" --version 2>&1))." >&2
    exit 1
fi

stamp="$VENV/.dossier-installed"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

# Some machines list local package folders that hold only part of the index; pip warns
# about every one it skips. Those lines say nothing about this install.
quiet_pip() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip=(quiet_pip "$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip >/dev/null 2>&1 || true
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    echo "Installing PyTorch (CPU build: $TORCH_SPEC)…" >&2
    if [ -n "$TORCH_INDEX_URL" ]; then
        "${pip[@]}" install "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL"
    else
        "${pip[@]}" install "$TORCH_SPEC"
    fi
fi
echo "Installing dossier-bot and its dependencies…" >&2
"${pip[@]}" install -e '.[dev,torch]'
# Questions and builds run the model through onnxruntime: export it once from the
# hash-verified weights (checked against sentence-transformers' vectors; a no-op when a
# verified export is there). The bot would export on its first build otherwise.
echo "Exporting the embedding model to ONNX…" >&2
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$VENV/bin/python" -m index.onnx_embed export >&2
echo "$want" > "$stamp"
