"""Votes on answers (👍/👎 from Slack and Discord), kept in one SQLite file.

One vote per user per answer: a user who presses 👎 twenty times has voted once, and one
who changes their mind has the latest vote counted. The answer is named by ``answer_key``
(the platform's message or answer id); rows from before the key existed keep a NULL key,
which SQLite's unique index lets repeat, so old databases open unchanged.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    platform TEXT NOT NULL,
    user_id TEXT NOT NULL,
    question TEXT NOT NULL,
    quotes TEXT NOT NULL,
    vote INTEGER NOT NULL CHECK (vote IN (-1, 1)),
    answer_key TEXT
)
"""
_ONE_VOTE = ("CREATE UNIQUE INDEX IF NOT EXISTS feedback_one_vote"
             " ON feedback (platform, user_id, answer_key)")


@dataclass(frozen=True)
class Vote:
    at: float
    platform: str
    user_id: str
    question: str
    quotes: tuple[dict, ...]
    vote: int


@dataclass(frozen=True)
class FeedbackSummary:
    total: int
    up: int
    down: int
    by_platform: dict[str, tuple[int, int]]
    worst: tuple[tuple[str, int], ...]  # questions with the most 👎


class FeedbackStore:
    """Thread-safe: adapters record votes from handler threads and the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(feedback)")}
            if "answer_key" not in columns:  # a database from before one-vote-per-user
                db.execute("ALTER TABLE feedback ADD COLUMN answer_key TEXT")
            db.execute(_ONE_VOTE)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def record(self, *, platform: str, user_id: str, question: str,
               quotes: Sequence[dict], vote: int, answer_key: str | None = None) -> int | None:
        """Record ``user_id``'s vote on the answer ``answer_key`` (latest counts). Returns
        the vote it replaced (None: a first vote). Without a key the answer is named by its
        question, so repeated votes still count once."""
        if vote not in (-1, 1):
            raise ValueError("vote must be 1 (👍) or -1 (👎)")
        key = answer_key if answer_key is not None else f"question:{question}"
        with self._lock, self._connect() as db:
            before = db.execute(
                "SELECT vote FROM feedback WHERE platform = ? AND user_id = ? AND answer_key = ?",
                (platform, user_id, key)).fetchone()
            db.execute(
                "INSERT INTO feedback (at, platform, user_id, question, quotes, vote, answer_key)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (platform, user_id, answer_key) DO UPDATE SET"
                " at = excluded.at, vote = excluded.vote, quotes = excluded.quotes",
                (time.time(), platform, user_id, question, json.dumps(list(quotes)), vote, key),
            )
        return before[0] if before else None

    def votes(self) -> list[Vote]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT at, platform, user_id, question, quotes, vote FROM feedback ORDER BY id"
            ).fetchall()
        return [Vote(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), r[5]) for r in rows]

    def summary(self, worst: int = 5) -> FeedbackSummary:
        with self._connect() as db:
            up, down = db.execute(
                "SELECT COALESCE(SUM(vote = 1), 0), COALESCE(SUM(vote = -1), 0) FROM feedback"
            ).fetchone()
            by_platform = {
                p: (u, d) for p, u, d in db.execute(
                    "SELECT platform, SUM(vote = 1), SUM(vote = -1) FROM feedback GROUP BY platform"
                )
            }
            bad = db.execute(
                "SELECT question, COUNT(*) FROM feedback WHERE vote = -1 GROUP BY question"
                " ORDER BY COUNT(*) DESC, question LIMIT ?", (worst,)
            ).fetchall()
        return FeedbackSummary(up + down, up, down, by_platform, tuple((q, n) for q, n in bad))
