"""Commands tell the truth: exit statuses (0 ok, 1 failure, 2 bad input), input checked
before the model loads, an empty corpus warned, one build report for build and watch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import bot.runtime
import bot.watch
from bot.cli import main

ARTICLE = ("# Gas deal\n\nRussia and China signed a gas supply agreement on Monday. "
           "The pipeline will carry ten billion cubic metres a year, officials said.\n")


@pytest.fixture
def runner(monkeypatch, embedder, tmp_path) -> CliRunner:
    monkeypatch.setattr(bot.runtime, "load_embedder", lambda *_a, **_k: embedder)
    for name in ("DOSSIER_CORPUS_DIR", "DOSSIER_INDEX_DIR", "DOSSIER_EMBED_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def where(tmp_path: Path) -> list[str]:
    return ["--corpus", str(tmp_path / "corpus"), "--index", str(tmp_path / "index")]


def test_index_status_without_an_index_exits_1(runner, tmp_path):
    (tmp_path / "corpus").mkdir()
    text = runner.invoke(main, ["index", "status", *where(tmp_path)])
    assert text.exit_code == 1
    assert "No index at" in text.output
    as_json = runner.invoke(main, ["index", "status", "--json", *where(tmp_path)])
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["built"] is False


@pytest.mark.parametrize("question", ["", "   ", "\x1b[31m"])
def test_empty_question_exits_2_before_the_model_loads(monkeypatch, tmp_path, question):
    def no_model(*_a, **_k):
        raise AssertionError("the model was loaded for a question that cannot be asked")

    monkeypatch.setattr(bot.runtime, "load_embedder", no_model)
    monkeypatch.setattr(bot.runtime, "make_answerer", no_model)
    monkeypatch.setenv("DOSSIER_INDEX_DIR", str(tmp_path / "no-index"))
    result = CliRunner().invoke(main, ["ask", question])
    assert result.exit_code == 2
    assert "Please ask a question" in result.output
    as_json = CliRunner().invoke(main, ["ask", "--json", question])
    assert as_json.exit_code == 2
    data = json.loads(as_json.stdout)
    assert data["answered"] is False and data["reason"].startswith("Please ask a question")
    assert data["closest"] == []


def test_usage_error_exits_2(runner):
    assert runner.invoke(main, ["ask"]).exit_code == 2
    assert runner.invoke(main, ["index", "build", "--no-such-option"]).exit_code == 2


def test_missing_corpus_exits_1(runner, tmp_path):
    result = runner.invoke(main, ["index", "build", *where(tmp_path)])
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_empty_corpus_is_warned(runner, tmp_path):
    (tmp_path / "corpus").mkdir()
    result = runner.invoke(main, ["index", "build", *where(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Warning: no articles in" in result.stderr
    as_json = runner.invoke(main, ["index", "build", "--json", *where(tmp_path)])
    assert json.loads(as_json.stdout)["articles"] == 0
    assert "Warning: no articles in" in as_json.stderr


def test_watch_reports_as_build_does(runner, tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "001-gas.md").write_text(ARTICLE, encoding="utf-8")
    (corpus / "junk.txt").write_bytes(b"\x00\x01binary\xff" * 50)
    monkeypatch.setattr(bot.watch, "watch_corpus", lambda *_a, **_k: None)  # one build, stop
    built = runner.invoke(main, ["index", "build", "--json", *where(tmp_path)])
    watched = runner.invoke(main, ["index", "watch", "--json", *where(tmp_path)])
    assert built.exit_code == watched.exit_code == 0, watched.output
    b, w = json.loads(built.stdout), json.loads(watched.stdout.splitlines()[0])
    assert b.keys() == w.keys() and w["articles"] == b["articles"] == 1
    assert built.stderr.count("Skipped") == watched.stderr.count("Skipped") == 1
    text_build = runner.invoke(main, ["index", "build", *where(tmp_path)]).stdout
    text_watch = runner.invoke(main, ["index", "watch", *where(tmp_path)]).stdout
    assert text_build.startswith("Index is up to date: 1 articles")
    assert text_watch.startswith("Index is up to date: 1 articles")


def _read_only(*_args, **_kwargs):
    raise OSError(30, "Read-only file system", "/mnt/ro/index/.build.lock")


def test_an_unwritable_index_folder_is_one_line_and_exit_1(runner, tmp_path, monkeypatch):
    import index.store

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "gas.md").write_text(ARTICLE)
    monkeypatch.setattr(index.store.IndexDir, "build_lock", _read_only)
    for args in (["index", "build"], ["ask", "What will the pipeline carry?"]):
        result = runner.invoke(main, [*args, *where(tmp_path)])
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        assert ("Error: cannot write or read /mnt/ro/index/.build.lock: Read-only file system"
                in result.output)


def test_an_index_path_that_is_a_file_is_bad_input(runner, tmp_path, monkeypatch):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("DOSSIER_INDEX_DIR", str(tmp_path / "afile"))
    monkeypatch.setenv("DOSSIER_CORPUS_DIR", str(tmp_path / "corpus"))
    for args in (["index", "build"], ["ask", "anything?"], ["sources"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 2, result.output
        assert "is a file, not a folder" in result.output and "Traceback" not in result.output


def test_the_console_survives_a_reindex_it_cannot_write(fresh_answerer, monkeypatch):
    from bot.config import Settings
    from bot.console import handle

    def fails(*_args, **_kwargs):
        raise OSError(30, "Read-only file system", "/mnt/ro/index/.build.lock")

    monkeypatch.setattr(fresh_answerer, "rebuild", fails)
    reply = handle("/reindex", fresh_answerer, Settings())
    assert reply is not None and reply.startswith("Could not rebuild the index: cannot write")
    assert handle("/sources", fresh_answerer, Settings())  # still answering


def test_the_console_reindex_names_the_files_it_skipped(fresh_answerer, corpus_copy):
    from bot.config import Settings
    from bot.console import handle

    (corpus_copy / "009-notes.txt").write_bytes(b"\xff\xfe not text \x00\x00")
    reply = handle("/reindex", fresh_answerer, Settings(corpus_dir=corpus_copy))
    assert reply is not None and reply.splitlines()[0].startswith(("Reindexed", "The index"))
    assert "skipped 009-notes.txt: the file looks binary" in reply


def test_a_damaged_index_is_reported_by_status_and_the_start_check(runner, tmp_path):
    from conftest import segment_dir

    from bot.watch import index_staleness

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "gas.md").write_text(ARTICLE)
    assert runner.invoke(main, ["index", "build", *where(tmp_path)]).exit_code == 0
    assert index_staleness(corpus, tmp_path / "index") is None
    faiss_file = segment_dir(tmp_path / "index") / "passages.faiss"
    faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    status = runner.invoke(main, ["index", "status", *where(tmp_path)])
    assert status.exit_code == 1 and "Damaged:" in status.output
    as_json = runner.invoke(main, ["index", "status", "--json", *where(tmp_path)])
    found = json.loads(as_json.stdout)
    assert as_json.exit_code == 1 and found["damaged"] and found["up_to_date"] is False
    # The container's start check sees it too, so the entrypoint rebuilds.
    assert "damaged" in index_staleness(corpus, tmp_path / "index")
    assert runner.invoke(main, ["index", "build", *where(tmp_path)]).exit_code == 0
    assert runner.invoke(main, ["index", "status", *where(tmp_path)]).exit_code == 0


def test_index_status_without_the_corpus_folder_says_so(runner, tmp_path):
    result = runner.invoke(main, ["index", "status", *where(tmp_path)])
    assert result.exit_code == 1
    assert "corpus folder" in result.output and "does not exist" in result.output
    assert "removed" not in result.output
