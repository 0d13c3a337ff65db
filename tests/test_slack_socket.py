"""Socket Mode: the real Bolt SocketModeHandler against a local Socket Mode WebSocket server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.fake_slack import BOT_USER_ID, FakeSlack, FakeSocketMode, event_body
from fakes.slack_helpers import (
    QUESTION,
    USER,
    assert_cannot_ping,
    assert_quotes_posted,
    slack_settings,
)

from bot.config import ConfigError
from bot.feedback import FeedbackStore
from bot.ratelimit import RateLimiter
from bot.slack import app as slack_app
from bot.slack.render import ACTION_UP


@pytest.fixture
def fakes() -> Iterator[tuple[FakeSlack, FakeSocketMode]]:
    with FakeSlack() as api, FakeSocketMode() as socket_mode:
        api.socket_url = socket_mode.url
        yield api, socket_mode
        assert_cannot_ping(api.posts())


@pytest.fixture
def service(fakes, tmp_path: Path, answerer) -> Iterator[slack_app.SlackService]:
    api, _ = fakes
    settings = slack_settings(api.api_url, tmp_path, app_token=True)
    service = slack_app.start(settings, answerer, http=False, port=0,
                              feedback=FeedbackStore(settings.feedback_path),
                              limiter=RateLimiter(100))
    yield service
    service.stop()


def mention_payload(ts: str, *, event_id: str) -> dict:
    return event_body({"type": "app_mention", "user": USER, "text": f"<@{BOT_USER_ID}> {QUESTION}",
                       "ts": ts, "channel": "C0GENERAL", "event_ts": ts}, event_id=event_id)


def test_connects_with_the_app_token(fakes, service) -> None:
    api, socket_mode = fakes
    assert service.mode == "socket" and service.port is None
    socket_mode.wait_connected()
    [opened] = api.calls("apps.connections.open")
    assert opened.token == api.app_token  # the app-level token, not the bot token


def test_mention_over_socket_mode_is_acked_and_answered_once(fakes, service, answerer) -> None:
    api, socket_mode = fakes
    first = socket_mode.send("events_api", mention_payload("1700001000.000100", event_id="EvSM1"))
    assert socket_mode.wait_ack(first)["envelope_id"] == first
    # Slack re-sends the same event as a retry: acknowledged, but not answered again.
    again = socket_mode.send("events_api", mention_payload("1700001000.000100", event_id="EvSM1"),
                             retry_attempt=1, retry_reason="timeout")
    socket_mode.wait_ack(again)
    other = socket_mode.send("events_api", mention_payload("1700001000.000900", event_id="EvSM2"))
    socket_mode.wait_ack(other)
    posts = api.wait_for("chat.postMessage", 2)
    time.sleep(0.3)
    posts = api.calls("chat.postMessage")
    assert sorted(p.params["thread_ts"] for p in posts) == ["1700001000.000100",
                                                            "1700001000.000900"]
    assert_quotes_posted(posts[0], answerer.ask(QUESTION))


def test_slash_command_and_button_over_socket_mode(fakes, service, answerer) -> None:
    api, socket_mode = fakes
    response_url = api.response_url()
    command = {"token": "t", "team_id": "T0DOSSIER", "channel_id": "C0GENERAL", "user_id": USER,
               "command": "/ask", "text": QUESTION, "response_url": response_url,
               "trigger_id": "1.2.3", "api_app_id": "ADOSSIER"}
    envelope = socket_mode.send("slash_commands", command)
    ack = socket_mode.wait_ack(envelope)
    assert ack["envelope_id"] == envelope and not ack.get("payload")
    [reply] = api.wait_for("response_url")
    assert reply.params["response_type"] == "ephemeral"
    assert_quotes_posted(reply, answerer.ask(QUESTION))

    up = next(b for b in reply.buttons() if b["action_id"] == ACTION_UP)
    click = {"type": "block_actions", "user": {"id": "U0VOTER"}, "team": {"id": "T0DOSSIER"},
             "api_app_id": "ADOSSIER", "response_url": api.response_url(),
             "container": {"type": "message", "is_ephemeral": True},
             "actions": [{"type": "button", "action_id": up["action_id"], "value": up["value"],
                          "block_id": "dossier_answer_actions", "action_ts": "1.2"}]}
    socket_mode.wait_ack(socket_mode.send("interactive", click))
    thanks = api.wait_for("response_url", 2)[1]
    assert "👍" in thanks.text


def test_reindex_refusal_comes_back_in_the_ack(fakes, service) -> None:
    _, socket_mode = fakes
    command = {"user_id": USER, "command": "/reindex", "text": "", "team_id": "T0DOSSIER",
               "response_url": "http://127.0.0.1:9/never", "api_app_id": "ADOSSIER"}
    ack = socket_mode.wait_ack(socket_mode.send("slash_commands", command))
    assert "only the dossier's admins" in ack["payload"]["text"]
    assert ack["payload"]["response_type"] == "ephemeral"


def test_refused_app_token_is_named(fakes, tmp_path: Path, answerer) -> None:
    api, _ = fakes
    api.app_token = "xapp-1-some-other-token"
    settings = slack_settings(api.api_url, tmp_path, app_token=True)
    with pytest.raises(ConfigError) as err:
        slack_app.start(settings, answerer, http=False, port=0)
    message = str(err.value)
    assert "SLACK_APP_TOKEN" in message and "invalid_auth" in message and "\n" not in message
    assert settings.slack_app_token not in message


def test_stop_closes_the_connection(fakes, service) -> None:
    _, socket_mode = fakes
    connection = socket_mode.wait_connected()
    service.stop()
    deadline = time.monotonic() + 10
    while connection.state.name != "CLOSED":
        assert time.monotonic() < deadline, "the WebSocket stayed open after stop()"
        time.sleep(0.05)
    assert service.stopped

