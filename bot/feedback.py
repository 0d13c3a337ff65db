"""Votes on answers (👍/👎 from Slack and Discord), kept in one SQLite file."""

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
    vote INTEGER NOT NULL CHECK (vote IN (-1, 1))
)
"""


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

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def record(self, *, platform: str, user_id: str, question: str,
               quotes: Sequence[dict], vote: int) -> None:
        if vote not in (-1, 1):
            raise ValueError("vote must be 1 (👍) or -1 (👎)")
        with self._lock, self._connect() as db:
            db.execute(
                "INSERT INTO feedback (at, platform, user_id, question, quotes, vote)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), platform, user_id, question, json.dumps(list(quotes)), vote),
            )

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
