"""Slack HTTP intake under load and abuse, over loopback: the real slack-bolt app behind the
bot's server, signed requests, and the fake Slack Web API (tests/fakes)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fakes.fake_slack import (
    BOT_USER_ID,
    SIGNING_SECRET,
    FakeSlack,
    SlowSlack,
    event_body,
    post_to_app,
    sign,
)
from fakes.slack_helpers import slack_settings
from slack_bolt.request import BoltRequest

from bot.feedback import FeedbackStore
from bot.ratelimit import RateLimiter
from bot.slack import app as slack_app

QUESTION = "Did Russia ask China for military aid?"
CANARY = "CANARY-7f3a Jake Sullivan secret question\nFORGED level=ERROR line"


@pytest.fixture
def fake() -> Iterator[SlowSlack]:
    with SlowSlack(delay=4.0) as fake:
        yield fake


@pytest.fixture
def service(fake: SlowSlack, tmp_path: Path, answerer) -> Iterator[slack_app.SlackService]:
    settings = slack_settings(fake.api_url, tmp_path, rate_limit=0)
    svc = slack_app.start(settings, answerer, http=True, port=0, host="127.0.0.1",
                          feedback=FeedbackStore(settings.feedback_path),
                          limiter=RateLimiter(0))
    yield svc
    svc.stop()


def url(svc: slack_app.SlackService) -> str:
    return f"http://127.0.0.1:{svc.port}{slack_app.EVENTS_PATH}"


def mention_body(n: int, *, channel: str = "C0GENERAL", user: str | None = None) -> str:
    ts = f"1700001000.{n:06d}"
    event = {"type": "app_mention", "user": user or f"U0USER{n:03d}",
             "text": f"<@{BOT_USER_ID}> {QUESTION}", "ts": ts, "event_ts": ts,
             "channel": channel}
    return json.dumps(event_body(event))


def answers(fake: FakeSlack, channel: str = "C0GENERAL") -> list:
    return [c for c in fake.calls("chat.postMessage") if c.params.get("channel") == channel]


def test_twenty_concurrent_events_acknowledged_within_a_second_and_answered_once(
        fake: SlowSlack, service: slack_app.SlackService) -> None:
    start = threading.Barrier(20)

    def send(n: int) -> tuple[int, float]:
        body = mention_body(n)
        start.wait()
        began = time.perf_counter()
        status, _ = post_to_app(url(service), body, content_type="application/json")
        return status, time.perf_counter() - began

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(send, range(20)))
    assert [s for s, _ in results] == [200] * 20
    acks = sorted(t for _, t in results)
    assert acks[-1] < 1.0, f"acks p50 {acks[10]:.3f} s, max {acks[-1]:.3f} s"
    posted = fake.wait_for("chat.postMessage", 20, timeout=60)
    time.sleep(0.5)  # nothing more may follow: each event is answered exactly once
    threads = sorted(c.params["thread_ts"] for c in answers(fake))
    assert threads == sorted(f"1700001000.{n:06d}" for n in range(20)) and len(posted) == 20


def test_slow_web_api_does_not_delay_another_users_answer(
        fake: SlowSlack, service: slack_app.SlackService) -> None:
    for n in range(6):  # more slow posts than the old pool had threads (4)
        assert post_to_app(url(service), mention_body(n, channel="C0SLOW"),
                           content_type="application/json")[0] == 200
    time.sleep(0.3)
    sent = time.perf_counter()
    assert post_to_app(url(service), mention_body(99, user="U0OTHER"),
                       content_type="application/json")[0] == 200
    [post] = fake.wait_for("chat.postMessage", 1, timeout=30) and [
        c for c in _wait_channel(fake, "C0GENERAL")]
    assert post.at - sent < 2.0, f"answered after {post.at - sent:.1f} s"


def _wait_channel(fake: FakeSlack, channel: str, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = answers(fake, channel)
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"no answer in {channel}")


def delivered(fake: FakeSlack, *, settle: float = 0.5) -> list[dict]:
    """The answers the fake Slack holds once the bot has stopped calling it."""
    time.sleep(settle)
    return [m for m in fake.posted if m["channel"] == "C0GENERAL"]


@pytest.mark.parametrize("status", [500, 0], ids=["HTTP 500", "connection dropped"])
def test_a_post_that_failed_before_landing_is_checked_then_posted_again(
        fake: SlowSlack, service: slack_app.SlackService, status: int) -> None:
    fake.fail_next("chat.postMessage", status=status,
                   body={"ok": False, "error": "internal_error"})
    assert post_to_app(url(service), mention_body(1), content_type="application/json")[0] == 200
    calls = fake.wait_for("chat.postMessage", 2, timeout=30)
    assert calls[0].params == calls[1].params, "the same post, with the same tag"
    (check,) = fake.calls("conversations.replies")
    assert check.params["ts"] == "1700001000.000001"
    assert str(check.params["include_all_metadata"]).lower() in ("1", "true")
    (answer,) = delivered(fake)
    assert answer["metadata"]["event_type"] == slack_app.POST_EVENT
    assert len(fake.calls("chat.postMessage")) == 2


@pytest.mark.parametrize("status", [500, 503, 502, 0])
def test_a_post_that_landed_before_failing_is_not_posted_twice(
        fake: SlowSlack, service: slack_app.SlackService, status: int) -> None:
    # Slack posts, then answers 5xx (or the connection drops): a blind retry would post the
    # answer twice. The bot finds its tagged post in the thread and stops.
    fake.fail_next("chat.postMessage", status=status, after_handling=True,
                   body={"ok": False, "error": "internal_error"})
    assert post_to_app(url(service), mention_body(1), content_type="application/json")[0] == 200
    fake.wait_for("conversations.replies", 1, timeout=30)
    (answer,) = delivered(fake)
    assert answer["thread_ts"] == "1700001000.000001" and answer["text"]
    assert len(fake.calls("chat.postMessage")) == 1


def test_when_the_check_fails_the_answer_is_posted_again_rather_than_lost(
        fake: SlowSlack, service: slack_app.SlackService,
        caplog: pytest.LogCaptureFixture) -> None:
    fake.fail_next("chat.postMessage", status=500, after_handling=True,
                   body={"ok": False, "error": "internal_error"})
    fake.fail_next("conversations.replies", status=200,
                   body={"ok": False, "error": "missing_scope"})
    with caplog.at_level(logging.WARNING, logger="bot.slack"):
        assert post_to_app(url(service), mention_body(1),
                           content_type="application/json")[0] == 200
        fake.wait_for("chat.postMessage", 2, timeout=30)
        assert len(delivered(fake)) == 2, "a duplicate is the lesser harm"
    assert any("could not check whether a failed post landed (missing_scope)" in r.getMessage()
               for r in caplog.records)


def test_a_post_failing_every_time_gives_up_after_its_attempts(
        fake: SlowSlack, service: slack_app.SlackService) -> None:
    for _ in range(slack_app.POST_ATTEMPTS):
        fake.fail_next("chat.postMessage", status=500,
                       body={"ok": False, "error": "internal_error"})
    assert post_to_app(url(service), mention_body(1), content_type="application/json")[0] == 200
    fake.wait_for("chat.postMessage", slack_app.POST_ATTEMPTS, timeout=30)
    assert delivered(fake, settle=1.0) == []
    assert len(fake.calls("chat.postMessage")) == slack_app.POST_ATTEMPTS
    assert len(fake.calls("conversations.replies")) == slack_app.POST_ATTEMPTS - 1


def sign_bytes(body: bytes, *, secret: str = SIGNING_SECRET,
               timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body,
                      hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def _raw_post(target: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(target, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize("content_type,body", [
    ("application/json", CANARY),
    ("application/json", json.dumps([CANARY])),
    ("application/x-www-form-urlencoded", "payload=" + CANARY),
    ("application/x-www-form-urlencoded", "payload=%5B%22" + CANARY + "%22%5D"),
    ("application/json", "\xff" + CANARY),
    ("text/plain", CANARY),
])
def test_malformed_bodies_400_unsigned_401_and_no_body_logged(
        fake: SlowSlack, service: slack_app.SlackService, caplog, capfd,
        content_type: str, body: str) -> None:
    caplog.set_level(logging.DEBUG)
    raw = body.encode("latin-1") if body.startswith("\xff") else body.encode()
    status, answer = _raw_post(url(service), raw,
                               {"Content-Type": content_type, **sign_bytes(raw)})
    assert status == 400, answer
    for headers in ({"Content-Type": content_type},  # unsigned
                    {"Content-Type": content_type, **sign_bytes(raw, secret="wrong")},
                    {"Content-Type": content_type, **sign_bytes(raw, timestamp=1)}):  # stale
        assert _raw_post(url(service), raw, headers)[0] == 401
    time.sleep(0.2)
    logged = "\n".join(r.getMessage() + str(r.exc_text or "") for r in caplog.records)
    out, err = capfd.readouterr()
    assert "CANARY" not in logged + out + err
    assert "Traceback" not in err
    assert not fake.calls("chat.postMessage")


def test_a_signed_event_failing_bolts_own_check_is_not_logged(service, caplog) -> None:
    """Clock skew or a rotated secret: Bolt logs the body at INFO; the filter drops it."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="slack_bolt.RequestVerification")
    body = mention_body(5).replace(QUESTION, CANARY.replace("\n", " "))
    response = service.app.dispatch(BoltRequest(
        body=body, headers={"content-type": "application/json",
                            **{k.lower(): v for k, v in sign(body, secret="rotated").items()}}))
    assert response.status == 401
    messages = [r.getMessage() for r in caplog.records]
    assert any("Invalid request signature" in m for m in messages)
    assert not any("CANARY" in m for m in messages)


def test_a_genuine_signed_event_still_answered(fake, service) -> None:
    body = mention_body(7)
    assert post_to_app(url(service), body, content_type="application/json",
                       secret=SIGNING_SECRET)[0] == 200
    assert fake.wait_for("chat.postMessage", 1, timeout=30)
