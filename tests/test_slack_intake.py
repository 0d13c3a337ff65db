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


def test_server_error_from_post_message_is_retried(
        fake: SlowSlack, service: slack_app.SlackService) -> None:
    fake.fail_next("chat.postMessage", status=500,
                   body={"ok": False, "error": "internal_error"})
    assert post_to_app(url(service), mention_body(1), content_type="application/json")[0] == 200
    calls = fake.wait_for("chat.postMessage", 2, timeout=30)
    assert len(calls) == 2 and calls[0].params == calls[1].params
    time.sleep(0.5)
    assert len(fake.calls("chat.postMessage")) == 2, "delivered once, after one retry"


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
