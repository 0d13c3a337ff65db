"""Time from a signed Slack request to the bot's answer, over loopback.

The real slack-bolt App (HTTP mode) and the real Answerer (real index, real model) run
against the fake Slack of the tests. For an ``app_mention`` the clock starts when the signed
request is sent and stops when the bot's ``chat.postMessage`` reaches the fake: signature
check, ack, dispatch to a listener thread, retrieval, Block Kit rendering and the Web API
round trip. ``/ask`` is timed the same way up to its ``response_url`` post; ``ack`` is the
HTTP response to the request itself (Slack wants it within 3 s).

    .venv/bin/python bench/slack_latency.py [--runs 20] [--corpus corpus] [--index DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

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
    command_form,
    event_body,
    post_to_app,
)

QUESTIONS = (
    "Did Russia ask China for military aid?",
    "What did the United States warn China about?",
    "How did China respond to the reports?",
    "What is a good recipe for sourdough bread?",
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(values) * 1000, 1),
            "p90_ms": round(percentile(values, 0.9) * 1000, 1),
            "min_ms": round(min(values) * 1000, 1), "max_ms": round(max(values) * 1000, 1)}


def measure(settings: Settings, runs: int, workdir: Path) -> dict[str, object]:
    answerer = make_answerer(settings, say=lambda m: print(m, file=sys.stderr))
    with FakeSlack() as fake:
        settings = settings.with_overrides(slack_bot_token=BOT_TOKEN,
                                           slack_signing_secret=SIGNING_SECRET,
                                           slack_api_url=fake.api_url)
        service = slack_app.start(settings, answerer, http=True, port=0, host="127.0.0.1",
                                  feedback=FeedbackStore(workdir / "feedback.sqlite3"),
                                  limiter=RateLimiter(0))
        url = f"http://127.0.0.1:{service.port}{slack_app.EVENTS_PATH}"
        mention_total: list[float] = []
        mention_ack: list[float] = []
        ask_total: list[float] = []
        try:
            for n in range(runs + 1):  # the first run warms the model up: not counted
                question = QUESTIONS[n % len(QUESTIONS)]
                event = {"type": "app_mention", "user": "U0BENCH", "channel": "C0BENCH",
                         "text": f"<@{BOT_USER_ID}> {question}", "ts": f"1700100000.{n:06d}"}
                body = json.dumps(event_body(event))
                started = time.perf_counter()
                status, _ = post_to_app(url, body, content_type="application/json")
                acked = time.perf_counter()
                post = fake.wait_for("chat.postMessage", n + 1, timeout=120)[n]
                assert status == 200 and post.params["thread_ts"] == event["ts"]

                form = command_form("/ask", question, user_id="U0BENCH",
                                    response_url=fake.response_url())
                ask_started = time.perf_counter()
                post_to_app(url, form, content_type="application/x-www-form-urlencoded")
                reply = fake.wait_for("response_url", n + 1, timeout=120)[n]
                if n:
                    mention_total.append(post.at - started)
                    mention_ack.append(acked - started)
                    ask_total.append(reply.at - ask_started)
        finally:
            service.stop()
    return {"runs": runs, "mention_to_postMessage": summary(mention_total),
            "mention_ack": summary(mention_ack), "ask_to_response_url": summary(ask_total)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--corpus", type=Path, default=Path("corpus"))
    parser.add_argument("--index", type=Path, default=None,
                        help="an existing index (default: build one in a temporary folder)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        settings = Settings(corpus_dir=args.corpus, index_dir=args.index or workdir / "index")
        result = measure(settings, args.runs, workdir)
    if args.json:
        print(json.dumps(result))
        return
    print(f"Slack over loopback, {result['runs']} runs (real model, real index):")
    for key in ("mention_to_postMessage", "mention_ack", "ask_to_response_url"):
        s = result[key]
        print(f"  {key:24s} p50 {s['p50_ms']:7.1f} ms   p90 {s['p90_ms']:7.1f} ms   "
              f"min {s['min_ms']:6.1f}   max {s['max_ms']:7.1f}")


if __name__ == "__main__":
    main()
