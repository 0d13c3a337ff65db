"""A per-user limit on questions per minute, shared by the chat adapters."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable


class RateLimiter:
    """Sliding one-minute window per user; ``per_minute=0`` turns the limit off."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def check(self, user: str) -> float:
        """Record a question; return 0 if allowed, else seconds until the user may ask again."""
        if self.per_minute <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            hits = self._hits[user]
            while hits and now - hits[0] >= 60.0:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return max(0.1, 60.0 - (now - hits[0]))
            hits.append(now)
            return 0.0

    def message(self, wait: float) -> str:
        return (f"You have asked {self.per_minute} questions in the last minute; "
                f"please wait {int(wait) + 1} s and ask again.")
