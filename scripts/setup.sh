#!/usr/bin/env bash
# Create .venv and install dossier-bot from requirements/dev.lock: every package at the
# version and SHA-256 recorded there (pip's --require-hashes), torch as the CPU build, then the
# project itself (editable, --no-deps). Safe to re-run: it does nothing when pyproject.toml,
# the lock files and this script have not changed since the last successful install.
# The lock files come from scripts/lock.sh (`make lock`), after any change of dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
LOCK=requirements/dev.lock
# The lock pins torch's CPU build (requirements/pins.txt) with the hash of its Linux x86-64
# wheel for Python 3.11. That wheel is not on PyPI: where pip's own configuration does not
# already find it, point TORCH_INDEX_URL at PyTorch's CPU index (searched besides PyPI; the
# hashes still decide which file may install):
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu make test
# Elsewhere (macOS, aarch64, another Python), TORCH_SPEC installs a torch of your choosing
# first, without a hash, and everything else still comes from the lock:
#   TORCH_SPEC=torch==2.13.0 make test
TORCH_INDEX_URL=${TORCH_INDEX_URL:-}
TORCH_SPEC=${TORCH_SPEC:-}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "dossier-bot needs Python 3.11 or newer ($PYTHON is $("$PYTHON" --version 2>&1))." >&2
    exit 1
fi
if [ ! -f "$LOCK" ]; then
    echo "$LOCK is missing: run scripts/lock.sh (make lock) to write it." >&2
    exit 1
fi

stamp="$VENV/.dossier-installed"
want=$(cat pyproject.toml scripts/setup.sh requirements/*.lock requirements/build.in | sha256sum | cut -d' ' -f1)
want="$want $TORCH_SPEC"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

# Some machines list local package folders that hold only part of the index; pip warns
# about every one it skips. Those lines say nothing about this install.
quiet_pip() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip=(quiet_pip "$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip >/dev/null 2>&1 || true

index=()
[ -z "$TORCH_INDEX_URL" ] || index=(--extra-index-url "$TORCH_INDEX_URL")
lock=$LOCK
if [ -n "$TORCH_SPEC" ]; then
    echo "Installing PyTorch as TORCH_SPEC asks ($TORCH_SPEC), without a hash check…" >&2
    "${pip[@]}" install "$TORCH_SPEC" ${index[@]+"${index[@]}"}
    # The same lock without its torch entry (the pin line and its --hash lines).
    lock=$(mktemp)
    trap 'rm -f "$lock"' EXIT
    awk '/^torch==/ { skip = 1; next } skip && /^ / { next } { skip = 0; print }' \
        "$LOCK" > "$lock"
fi
echo "Installing the locked dependencies ($LOCK)…" >&2
# --no-deps: the lock is the whole environment; nothing outside it may come in.
"${pip[@]}" install --require-hashes --no-deps -r "$lock" ${index[@]+"${index[@]}"}
echo "Installing dossier-bot…" >&2
# --no-build-isolation: built by the locked setuptools (requirements/build.in), not by
# whatever version PyPI serves today. setuptools warns that the checkout's folders share the
# packages' names, which an editable install of this layout means by design.
PYTHONWARNINGS="ignore:Editable installation" "${pip[@]}" install --no-deps --no-build-isolation -e .
# A dependency added to pyproject.toml but not yet locked shows up here, not at import time.
if ! problems=$("$VENV/bin/python" -m pip check 2>&1); then
    echo "$problems" >&2
    echo "The lock files do not satisfy pyproject.toml: run 'make lock' and commit" \
         "requirements/*.lock." >&2
    exit 1
fi
# Questions and builds run the model through onnxruntime: export it once from the
# hash-verified weights (checked against sentence-transformers' vectors; a no-op when a
# verified export is there). The bot would export on its first build otherwise.
echo "Exporting the embedding model to ONNX…" >&2
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$VENV/bin/python" -m index.onnx_embed export >&2
echo "$want" > "$stamp"
