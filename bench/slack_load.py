"""Slack HTTP intake under load, over loopback (issue 17's figures, before and after).

The real slack-bolt app in HTTP mode with the real Answerer (real index, real model) against
the fake Slack Web API of the tests. Three probes:

- load: N signed ``app_mention`` events, C at a time. Acks (HTTP response to the signed
  request) p50/p95, requests lost (connection reset or refused), answers delivered
  (``chat.postMessage`` calls, each event's thread once), event-to-answer p50/p95.
- slow: S answers whose ``chat.postMessage`` takes D seconds, then one other user's
  question: how long that one waits for its answer.
- 5xx: ``chat.postMessage`` answers 500 once, then 200: is the answer delivered? And when
  Slack answers 500 *after* posting: is it still posted once?

    .venv/bin/python bench/slack_load.py [--events 100] [--concurrency 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import Settings
from bot.feedback import FeedbackStore
from bot.ratelimit import RateLimiter
from bot.runtime import make_answerer
from bot.slack import app as slack_app
from tests.fakes.fake_slack import (
    BOT_TOKEN,
    BOT_USER_ID,
    SIGNING_SECRET,
    FakeSlack,
    SlowSlack,
    event_body,
    post_to_app,
)

QUESTION = "Did Russia ask China for military aid?"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def mention(n: int, channel: str, user: str) -> str:
    ts = f"1700002000.{n:06d}"
    return json.dumps(event_body({"type": "app_mention", "user": user, "ts": ts, "event_ts": ts,
                                  "text": f"<@{BOT_USER_ID}> {QUESTION}", "channel": channel}))


def posted_at(fake: FakeSlack, channel: str) -> dict[str, float]:
    return {c.params.get("thread_ts"): c.at for c in fake.calls("chat.postMessage")
            if c.params.get("channel") == channel and c.params.get("thread_ts")}


def wait_posts(fake: FakeSlack, channel: str, count: int, timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = posted_at(fake, channel)
        if len(found) >= count:
            return found
        time.sleep(0.05)
    return posted_at(fake, channel)


def probe_load(url: str, fake: SlowSlack, events: int, concurrency: int) -> dict[str, Any]:
    sent: dict[str, float] = {}
    acks: list[float] = []
    lost = 0
    lock = threading.Lock()

    def one(n: int) -> None:
        nonlocal lost
        body = mention(n, "C0LOAD", f"U{n:05d}")
        began = time.perf_counter()
        try:
            status, _ = post_to_app(url, body, content_type="application/json", timeout=10)
        except OSError:
            status = 0
        with lock:
            if status == 200:
                acks.append(time.perf_counter() - began)
                sent[f"1700002000.{n:06d}"] = began
            else:
                lost += 1

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(events)))
    posts = wait_posts(fake, "C0LOAD", len(sent), 120)
    time.sleep(1.0)
    calls = [c for c in fake.calls("chat.postMessage") if c.params.get("channel") == "C0LOAD"]
    latency = [posts[ts] - sent[ts] for ts in sent if ts in posts]
    return {"events": events, "concurrency": concurrency, "acked": len(acks), "lost": lost,
            "ack_p50": round(pct(acks, 50), 3), "ack_p95": round(pct(acks, 95), 3),
            "answered": len(posts), "post_calls": len(calls),
            "answer_p50": round(pct(latency, 50), 3), "answer_p95": round(pct(latency, 95), 3)}


def probe_slow(url: str, fake: SlowSlack, slow: int, delay: float) -> dict[str, Any]:
    fake.delay = delay
    for n in range(slow):
        post_to_app(url, mention(5000 + n, "C0SLOW", f"U0SLOW{n}"), content_type="application/json")
    time.sleep(0.5)
    began = time.perf_counter()
    post_to_app(url, mention(6000, "C0FAST", "U0FAST"), content_type="application/json")
    posts = wait_posts(fake, "C0FAST", 1, 60)
    waited = (next(iter(posts.values())) - began) if posts else float("nan")
    wait_posts(fake, "C0SLOW", slow, 60)
    return {"slow_posts": slow, "slow_delay_s": delay, "other_answer_s": round(waited, 3)}


def probe_5xx(url: str, fake: SlowSlack) -> dict[str, Any]:
    fake.fail_next("chat.postMessage", status=500, body={"ok": False, "error": "internal_error"})
    post_to_app(url, mention(7000, "C0RETRY", "U0RETRY"), content_type="application/json")
    wait_posts(fake, "C0RETRY", 1, 20)
    time.sleep(2.0)
    calls = [c for c in fake.calls("chat.postMessage") if c.params.get("channel") == "C0RETRY"]
    # Delivered: the answer the 500 refused was sent again (not an error notice instead).
    out = {"delivered_after_500": len(calls) >= 2 and calls[-1].params == calls[0].params,
           "posts_after_500": len(calls),
           "messages_after_500": sum(m["channel"] == "C0RETRY" for m in fake.posted)}
    # Slack posts, then answers 500: the bot finds its post and does not send it again.
    fake.fail_next("chat.postMessage", status=500, after_handling=True,
                   body={"ok": False, "error": "internal_error"})
    post_to_app(url, mention(7001, "C0LANDED", "U0LANDED"), content_type="application/json")
    wait_posts(fake, "C0LANDED", 1, 20)
    time.sleep(2.0)
    out["messages_after_500_once_posted"] = sum(m["channel"] == "C0LANDED" for m in fake.posted)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--slow", type=int, default=4)
    parser.add_argument("--delay", type=float, default=3.0)
    parser.add_argument("--corpus", type=Path, default=Path(__file__).parents[1] / "corpus")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SlowSlack() as fake:
        settings = Settings(corpus_dir=args.corpus, index_dir=Path(tmp) / "index",
                            feedback_db=Path(tmp) / "f.sqlite3", rate_limit_per_minute=0,
                            slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
                            slack_api_url=fake.api_url)
        answerer = make_answerer(settings)
        answerer.ask(QUESTION)  # model and index warm
        service = slack_app.start(settings, answerer, http=True, port=0, host="127.0.0.1",
                                  feedback=FeedbackStore(settings.feedback_path),
                                  limiter=RateLimiter(0))
        url = f"http://127.0.0.1:{service.port}{slack_app.EVENTS_PATH}"
        try:
            result = {**probe_load(url, fake, args.events, args.concurrency),
                      **probe_slow(url, fake, args.slow, args.delay), **probe_5xx(url, fake)}
        finally:
            service.stop(wait=True)  # drain before the fake goes away
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>16}: {value}")


if __name__ == "__main__":
    main()
