"""The console chat's history: written where it can be, else kept in memory, and a failure
to write it never breaks the chat (compose runs the bot with `read_only: true`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from bot.config import Settings
from bot.console import _prompt_lines, history_candidates, make_history, run_console


def chat(answerer, settings: Settings, typed: str) -> list[str]:
    """Run the real console loop on the real prompt, the keys typed through a pipe."""
    out: list[str] = []
    with create_pipe_input() as pipe:
        pipe.send_text(typed)
        lines = _prompt_lines(settings, input=pipe, output=DummyOutput())
        run_console(answerer, settings, lines=lines, write=out.append)
    return out


@pytest.fixture
def unwritable(tmp_path, monkeypatch) -> Settings:
    """No place for the history: beside the index is a folder where the file should be, and
    the state folder is under /proc, which refuses new entries even to root (as a read-only
    root file system does)."""
    index_parent = tmp_path / "data"
    (index_parent / "chat_history").mkdir(parents=True)
    monkeypatch.setenv("XDG_STATE_HOME", "/proc/self")
    return Settings(index_dir=index_parent / "index", corpus_dir=tmp_path / "corpus")


def test_no_writable_place_keeps_the_history_in_memory(unwritable):
    history = make_history(history_candidates(unwritable))
    assert isinstance(history, InMemoryHistory)


def test_read_only_chat_answers_every_question(answerer, unwritable):
    out = chat(answerer, unwritable,
               "Where does Alexander Korolev teach?\r/sources\rWho is Hu Xijin?\r/quit\r")
    replies = [o for o in out if o]
    assert replies[0].startswith("dossier-bot: 5 article(s) loaded")
    assert len(replies) == 4 and "holds 5 article(s)" in replies[2]


def test_history_written_beside_the_index_when_it_can_be(answerer, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    settings = Settings(index_dir=tmp_path / "data" / "index", corpus_dir=tmp_path / "corpus")
    chat(answerer, settings, "/sources\r/quit\r")
    assert "+/sources" in (tmp_path / "data" / "chat_history").read_text()


def test_state_folder_used_when_beside_the_index_is_not_writable(answerer, tmp_path,
                                                                  monkeypatch):
    (tmp_path / "data" / "chat_history").mkdir(parents=True)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    settings = Settings(index_dir=tmp_path / "data" / "index", corpus_dir=tmp_path / "corpus")
    chat(answerer, settings, "/help\r/quit\r")
    assert "+/help" in (tmp_path / "state" / "dossier-bot" / "chat_history").read_text()


def test_history_failing_mid_chat_does_not_break_it(answerer, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("XDG_STATE_HOME", "/proc/self")
    path = tmp_path / "data" / "chat_history"
    settings = Settings(index_dir=tmp_path / "data" / "index", corpus_dir=tmp_path / "corpus")
    history = make_history(history_candidates(settings))
    assert Path(history.filename) == path
    path.unlink()
    path.mkdir()  # the file is gone and cannot be written again (like a remount read-only)
    for n in range(3):
        history.append_string(f"question {n}")
    assert list(history.get_strings())[-3:] == ["question 0", "question 1", "question 2"]
    assert sum("chat history not saved" in r.message for r in caplog.records) == 1
