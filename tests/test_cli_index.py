"""The `dossier-bot` command line around the index: build/status JSON, help, clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import edit_manifest, manifest_path, passages_of, segment_dir

from bot.cli import main
from index.build import build_index
from index.store import FORMAT_VERSION

DOSSIER_BOT = Path(sys.executable).with_name("dossier-bot")
REQUIRED_KEYS = {"articles", "chunks", "embedded", "removed", "seconds"}

ARTICLE_A = ("Kazakh customs officers stopped a convoy of forty freight wagons at Khorgos on "
             "Tuesday.\n\nThe wagons carried crates of artillery shells declared as farm "
             "machinery.\n\nOfficials in Astana said the shipment had been sent back to China.\n")
ARTICLE_B = ("Beijing announced new export rules for drone engines on Friday.\n\n"
             "The rules require a licence for every engine sold abroad.\n")
ARTICLE_C = ("Finnish border guards counted three hundred lorries of spare parts in March.\n\n"
             "Most of the lorries were registered in Estonia, the guards said.\n")
QUESTION = "How many freight wagons did customs officers stop at Khorgos?"


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DOSSIER_", "SLACK_", "DISCORD_"))}
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    return env


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([str(DOSSIER_BOT), *args], cwd=cwd, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = start(args, cwd)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def one_json_object(stdout: str) -> dict:
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, stdout
    obj = json.loads(lines[0])
    assert isinstance(obj, dict)
    return obj


@pytest.fixture
def in_process(monkeypatch, embedder) -> CliRunner:
    """A CliRunner whose commands use the session's model instead of loading their own."""
    import bot.runtime

    monkeypatch.setattr(bot.runtime, "load_embedder", lambda *_a, **_k: embedder)
    for name in ("DOSSIER_CORPUS_DIR", "DOSSIER_INDEX_DIR", "DOSSIER_EMBED_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


# --- --help --------------------------------------------------------------------------------


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            found += _commands(cmd, (*path, name))
        else:
            found.append((*path, name))
    return found


COMMANDS = _commands(main)


def test_the_contract_commands_exist():
    for command in [("index", "build"), ("index", "status"), ("ask",), ("chat",), ("eval",),
                    ("serve", "slack"), ("serve", "discord")]:
        assert command in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "dossier-bot")
def test_help_works_on_every_command(command):
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert result.exception is None


def test_help_of_the_installed_script(tmp_path):
    for args in (["--help"], ["index", "build", "--help"], ["ask", "--help"]):
        result = run(args, tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("Usage: dossier-bot")
    build_help = run(["index", "build", "--help"], tmp_path).stdout
    for option in ("--corpus", "--index", "--json"):
        assert option in build_help


# --- index build --json and index status --json ------------------------------------------


def test_index_build_and_status_json(tmp_path, in_process):
    corpus, index_dir = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    (corpus / "001-a.txt").write_text(ARTICLE_A, encoding="utf-8")
    (corpus / "002-b.txt").write_text(ARTICLE_B, encoding="utf-8")
    (corpus / "junk.txt").write_bytes(b"\x00\x01binary\xff" * 50)
    where = ["--corpus", str(corpus), "--index", str(index_dir)]

    def status_json() -> dict:
        result = in_process.invoke(main, ["index", "status", "--json", *where])
        assert result.exit_code == 0, result.output
        return one_json_object(result.stdout)

    status = one_json_object(run(["index", "status", "--json", *where], tmp_path).stdout)
    assert status["built"] is False
    assert sorted(status["added"]) == ["001-a.txt", "002-b.txt", "junk.txt"]

    first = run(["index", "build", "--json", *where], tmp_path)
    assert first.returncode == 0, first.stderr
    report = one_json_object(first.stdout)
    assert set(report) >= REQUIRED_KEYS
    both = passages_of(corpus / "001-a.txt") + passages_of(corpus / "002-b.txt")
    assert (report["articles"], report["chunks"], report["embedded"], report["removed"]) == (
        2, both, both, 0)
    assert isinstance(report["seconds"], float | int) and report["seconds"] >= 0
    assert "Skipped junk.txt:" in first.stderr  # named on stderr; stdout stays one object

    # Nothing changed since the build: the unreadable file was reported then, not "added" now.
    status = status_json()
    assert status["built"] is True
    assert (status["articles"], status["passages"]) == (2, both)
    assert (status["added"], status["changed"], status["removed"]) == ([], [], [])
    assert status["up_to_date"] is True

    (corpus / "003-c.txt").write_text(ARTICLE_C, encoding="utf-8")
    (corpus / "001-a.txt").write_text(ARTICLE_A + "\nA closing line was added.\n", "utf-8")
    (corpus / "002-b.txt").unlink()

    status = status_json()
    assert status["added"] == ["003-c.txt"]
    assert status["changed"] == ["001-a.txt"]
    assert status["removed"] == ["002-b.txt"]
    assert status["up_to_date"] is False
    text = in_process.invoke(main, ["index", "status", *where])
    assert text.exit_code == 0
    for name in ("003-c.txt", "001-a.txt", "002-b.txt", "dossier-bot index build"):
        assert name in text.stdout

    second = in_process.invoke(main, ["index", "build", "--json", *where])
    assert second.exit_code == 0, second.output
    report = one_json_object(second.stdout)
    new = passages_of(corpus / "003-c.txt") + passages_of(corpus / "001-a.txt")
    assert (report["articles"], report["chunks"], report["embedded"], report["removed"]) == (
        2, new, new, 1)

    status = status_json()
    assert (status["added"], status["changed"], status["removed"]) == ([], [], [])
    assert status["up_to_date"] is True and status["cut_current"] is True

    third = in_process.invoke(main, ["index", "build", "--json", *where])
    assert third.exit_code == 0, third.output
    report = one_json_object(third.stdout)
    assert (report["embedded"], report["removed"], report["articles"]) == (0, 0, 2)

    # An index from a release that cut passages another way: stale, and rebuilt whole.
    chunking = json.loads(manifest_path(index_dir).read_text())["chunking"]
    edit_manifest(index_dir, chunking={**chunking, "max_sentences": 3})
    status = status_json()
    assert (status["added"], status["changed"], status["removed"]) == ([], [], [])
    assert status["cut_current"] is False and status["up_to_date"] is False
    text = in_process.invoke(main, ["index", "status", *where])
    assert text.exit_code == 0 and "cut by another release" in text.stdout
    fourth = in_process.invoke(main, ["index", "build", "--json", *where])
    assert fourth.exit_code == 0, fourth.output
    assert one_json_object(fourth.stdout)["embedded"] == new
    assert status_json()["up_to_date"] is True

    noise = [line for line in first.stderr.splitlines() if not line.startswith("Skipped ")]
    assert noise == []  # no library log lines on stderr at the default verbosity


# --- ask with a damaged or mismatched index --------------------------------------------------


def assert_one_error_line(stderr: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error:"), stderr
    assert "Traceback" not in stderr


def _edit(**changes: object) -> Callable[[Path], None]:
    return lambda index_dir: edit_manifest(index_dir, **changes)


def _truncate(name: str) -> Callable[[Path], None]:
    def damage(index_dir: Path) -> None:
        path = segment_dir(index_dir) / name
        path.write_bytes(path.read_bytes()[:100])
    return damage


def _garble(index_dir: Path) -> None:
    manifest_path(index_dir).write_text('{"format": 1, "generation": ')


def _delete_generation(index_dir: Path) -> None:
    manifest_path(index_dir).unlink()


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated npy": _truncate("passage_vectors.npy"),
    "garbled manifest": _garble,
    "generation deleted": _delete_generation,
    "other format": _edit(format=FORMAT_VERSION + 7),
}


@pytest.fixture(scope="module")
def ask_runs(tmp_path_factory, embedder) -> dict[str, subprocess.CompletedProcess]:
    """`dossier-bot ask` (and `index status`) over damaged copies of one index, side by side."""
    root = tmp_path_factory.mktemp("cli-ask")
    (root / "corpus").mkdir()
    (root / "corpus" / "001-a.txt").write_text(ARTICLE_A, encoding="utf-8")
    build_index(root / "corpus", root / "good", embedder)
    procs = {}
    for name, damage in DAMAGE.items():
        index_dir = root / name.replace(" ", "-")
        shutil.copytree(root / "good", index_dir)
        damage(index_dir)
        procs[name] = start(["ask", "--index", str(index_dir), QUESTION], root)
    procs["status of garbled"] = start(
        ["index", "status", "--json", "--index", str(root / "garbled-manifest"),
         "--corpus", str(root / "corpus")], root)
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


def test_ask_json_over_a_good_index_answers(tmp_path, embedder, in_process):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "001-a.txt").write_text(ARTICLE_A, encoding="utf-8")
    build_index(tmp_path / "corpus", tmp_path / "index", embedder)

    result = in_process.invoke(main, ["ask", "--json", "--index", str(tmp_path / "index"),
                                      QUESTION])

    assert result.exit_code == 0, result.output
    answer = one_json_object(result.stdout)
    assert answer["answered"] is True
    quote = answer["quotes"][0]
    assert "forty freight wagons" in quote["text"]
    assert ARTICLE_A[quote["start"]:quote["end"]] == quote["text"]
    assert quote["article"]["path"] == "001-a.txt"


def test_ask_with_an_index_of_another_model_is_one_error_line(tmp_path, embedder, in_process):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "001-a.txt").write_text(ARTICLE_A, encoding="utf-8")
    build_index(tmp_path / "corpus", tmp_path / "index", embedder)
    _edit(model_fingerprint="e" * 64, model="someone/other-model")(tmp_path / "index")

    result = in_process.invoke(main, ["ask", "--index", str(tmp_path / "index"), QUESTION])

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert_one_error_line(result.stderr)
    assert "someone/other-model" in result.stderr and "index build" in result.stderr


@pytest.mark.parametrize("damage", [*DAMAGE, "status of garbled"])
def test_a_damaged_or_mismatched_index_is_one_error_line(ask_runs, damage):
    result = ask_runs[damage]
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert_one_error_line(result.stderr)
    assert "index build" in result.stderr
