"""The vote store: one vote per user per answer (the latest counts), old databases kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.feedback import FeedbackStore


def test_votes_count_once_per_user_and_answer(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3")
    vote = dict(platform="slack", user_id="U1", question="q?", quotes=[], answer_key="a1")
    assert store.record(**vote, vote=-1) is None
    assert [store.record(**vote, vote=-1) for _ in range(19)] == [-1] * 19
    assert store.record(**{**vote, "answer_key": "a2"}, vote=-1) is None  # another answer
    assert store.record(**{**vote, "platform": "discord"}, vote=-1) is None
    assert store.record(**vote, vote=1) == -1
    reopened = FeedbackStore(tmp_path / "f.sqlite3")
    summary = reopened.summary()
    assert (summary.total, summary.up, summary.down) == (3, 1, 2)


def test_a_database_from_before_keeps_its_votes(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,"
                   " platform TEXT NOT NULL, user_id TEXT NOT NULL, question TEXT NOT NULL,"
                   " quotes TEXT NOT NULL, vote INTEGER NOT NULL CHECK (vote IN (-1, 1)))")
        for _ in range(2):
            db.execute("INSERT INTO feedback (at, platform, user_id, question, quotes, vote)"
                       " VALUES (1.0, 'slack', 'U1', 'q?', '[]', -1)")
    store = FeedbackStore(path)
    assert store.summary().total == 2
    store.record(platform="slack", user_id="U1", question="q?", quotes=[], vote=1)
    store.record(platform="slack", user_id="U1", question="q?", quotes=[], vote=1)
    assert (store.summary().total, store.summary().up) == (3, 1)


def test_the_feedback_summary_reads_and_creates_nothing(tmp_path: Path, monkeypatch) -> None:
    import json

    from click.testing import CliRunner

    from bot.cli import main

    db = tmp_path / "votes.sqlite3"
    monkeypatch.setenv("DOSSIER_FEEDBACK_DB", str(db))
    result = CliRunner().invoke(main, ["feedback", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["total"] == 0
    assert not db.exists(), "a summary creates no database"
    FeedbackStore(db).record(platform="slack", user_id="U1", question="q?", quotes=[],
                             answer_key="a1", vote=1)
    result = CliRunner().invoke(main, ["feedback"])
    assert result.exit_code == 0 and "1 votes: 1 👍, 0 👎" in result.output
