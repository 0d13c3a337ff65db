#!/usr/bin/env bash
# Regenerate requirements/*.lock from pyproject.toml and requirements/pins.txt: every package
# pinned with == and the SHA-256 of each published file of that version, for pip's
# --require-hashes mode. Run it (`make lock`) after changing a dependency in pyproject.toml and
# commit the lock files with that change; tests/test_ops_lock.py fails while they disagree.
#
#   scripts/lock.sh                          keep today's pins wherever they still fit
#   scripts/lock.sh --upgrade                newest versions that pyproject.toml allows
#   scripts/lock.sh --upgrade-package rich   just that one
#   scripts/lock.sh --offline                from uv's cache only, without the network
#
# Each also holds the build backend (requirements/build.in): the project is installed with
# --no-build-isolation, so nothing unlocked comes in to build it.
#
# Three files, resolved with uv for Python 3.11 and newer on every platform (universal mode):
#   dev.lock      runtime + the `torch` and `dev` extras: what scripts/setup.sh installs
#   export.lock   runtime + the `torch` extra: the Docker build's export environment
#   runtime.lock  runtime only, no torch: the Docker image's environment
# The two smaller ones are resolved under dev.lock as a constraint, so a package has the same
# version in all three: the image runs what the tests ran.
#
# Knobs: UV (the uv binary; else .venv's, else the one on PATH), TORCH_FIND_LINKS (where the
# CPU torch wheel lies, below), and uv's own variables (UV_DEFAULT_INDEX for a PyPI mirror).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

uv=${UV:-}
if [ -z "$uv" ]; then
    if [ -x "$VENV/bin/uv" ]; then
        uv=$VENV/bin/uv
    elif command -v uv >/dev/null 2>&1; then
        uv=uv
    else
        echo "scripts/lock.sh needs uv: run 'make setup' first (uv is in the dev extra)," \
             "or 'pip install uv'." >&2
        exit 1
    fi
fi

# The `+cpu` torch wheels are not on PyPI, and uv reads neither pip's configuration nor its
# PIP_* variables: take pip's find-links (machines with a local copy of the wheel, where this
# then runs without reaching PyTorch's index), else PyTorch's CPU page for torch alone, whose
# listing carries every platform's wheel and hash. Never the whole CPU index: it mirrors other
# packages too, and their files would stand in for PyPI's.
if [ -z "${TORCH_FIND_LINKS:-}" ]; then
    TORCH_FIND_LINKS=${PIP_FIND_LINKS:-$("$PYTHON" -m pip config get global.find-links 2>/dev/null || true)}
    TORCH_FIND_LINKS=${TORCH_FIND_LINKS:-https://download.pytorch.org/whl/cpu/torch/}
fi
find_links=()
for place in $TORCH_FIND_LINKS; do
    find_links+=(--find-links "$place")
done

# Never fetch an interpreter: resolving needs none, and a download would fail offline.
export UV_PYTHON_DOWNLOADS=never
common=(--universal --python-version 3.11 --generate-hashes --quiet
        --custom-compile-command "scripts/lock.sh"
        --constraint requirements/pins.txt "${find_links[@]}" "$@")

compile() {
    local out=$1
    shift
    if ! "$uv" pip compile pyproject.toml requirements/build.in "$@" "${common[@]}" \
            --output-file "$out"; then
        echo "scripts/lock.sh: could not write $out. If torch was not found, point" \
             "TORCH_FIND_LINKS at a folder or page holding the wheel that" \
             "requirements/pins.txt names (now: $TORCH_FIND_LINKS)." >&2
        exit 1
    fi
    echo "$out: $(grep -c '^[A-Za-z0-9]' "$out") packages" >&2
}

# uv reads an existing lock for the pins to keep, and stops at a merge's conflict markers:
# start such a file again from this branch's last commit (or from nothing).
for out in requirements/dev.lock requirements/export.lock requirements/runtime.lock; do
    if [ -f "$out" ] && grep -qE '^(<<<<<<<|=======|>>>>>>>)' "$out"; then
        echo "$out has merge conflicts: rewriting it from HEAD's pins." >&2
        git show "HEAD:$out" > "$out" 2>/dev/null || rm -f "$out"
    fi
done

compile requirements/dev.lock --extra torch --extra dev
compile requirements/export.lock --extra torch --constraint requirements/dev.lock
compile requirements/runtime.lock --constraint requirements/dev.lock
