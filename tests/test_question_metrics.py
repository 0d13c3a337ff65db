"""Every question asked in chat is counted once in the metrics, with its outcome and latency:
the real Slack app (signed requests) and the real Discord client (gateway payloads) over
loopback, the answerer wrapped as ``serve`` wraps it, the exposition read back with
prometheus_client's parser."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes.fake_slack import FakeSlack
from fakes.slack_helpers import USER
from test_discord_e2e import discord_world, followups, run
from test_ops_health import parse_metrics
from test_slack_http import dm, mention, start_bot

from bot import health
from bot.answer import MAX_QUESTION_CHARS, Answerer
from bot.health import Metrics
from bot.serve import ObservedAnswerer

ON_TOPIC = "Did Russia ask China for military aid?"
OFF_TOPIC = "What is a good recipe for sourdough bread?"
TOO_LONG = "Why " + "really " * (MAX_QUESTION_CHARS // 6) + "?"  # over the limit
UNRESOLVED = "what did he say next?"  # a follow-up with nothing to follow


def counts(metrics: Metrics, platform: str) -> dict[str, float]:
    scrape = parse_metrics(metrics.render())
    out = {outcome: scrape("dossier_questions_total", platform=platform, outcome=outcome) or 0
           for outcome in health.OUTCOMES}
    out["seconds_count"] = scrape("dossier_question_seconds_count", platform=platform) or 0
    return out


def test_slack_counts_each_question_once(tmp_path: Path, answerer: Answerer) -> None:
    metrics = Metrics()
    observed = ObservedAnswerer(answerer, "slack", metrics)
    with FakeSlack() as fake:
        bot = start_bot(fake, tmp_path, observed, rate_limit=2)
        try:
            bot.event(mention(ON_TOPIC, ts="1700000100.000100"))  # answered
            fake.wait_for("chat.postMessage", 1)
            bot.event(dm(OFF_TOPIC, ts="1700000100.000200"))  # declined
            fake.wait_for("chat.postMessage", 2)
            bot.event(mention(ON_TOPIC, ts="1700000100.000300"))  # over the limit of 2
            fake.wait_for("chat.postEphemeral", 1)
            bot.command("/ask", TOO_LONG, user="U0OTHER")  # unusable
            fake.wait_for("response_url", 1)
            bot.event(dm(UNRESOLVED, ts="1700000100.000400", user="U0THIRD",
                         channel="D0THIRD"))  # declined: nothing to continue
            fake.wait_for("chat.postMessage", 3)
        finally:
            bot.service.stop()
    assert counts(metrics, "slack") == {"answered": 1, "declined": 2, "rejected": 2,
                                        "error": 0, "seconds_count": 5}
    scrape = parse_metrics(metrics.render())
    assert scrape("dossier_declines_total", platform="slack") == 2
    assert scrape("dossier_question_seconds_sum", platform="slack") > 0
    assert scrape("dossier_questions_in_flight") == 0
    assert USER != "U0OTHER"


def test_an_error_is_counted_as_an_error(tmp_path: Path, answerer: Answerer,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(question: str) -> None:
        raise RuntimeError("index file vanished")

    metrics = Metrics()
    observed = ObservedAnswerer(answerer, "slack", metrics)
    monkeypatch.setattr(answerer, "ask", broken)
    with FakeSlack() as fake:
        bot = start_bot(fake, tmp_path, observed)
        try:
            bot.command("/ask", ON_TOPIC)
            [reply] = fake.wait_for("response_url", 1)
        finally:
            bot.service.stop()
    assert "something went wrong" in reply.text
    assert counts(metrics, "slack") == {"answered": 0, "declined": 0, "rejected": 0,
                                        "error": 1, "seconds_count": 1}


def test_a_plain_answerer_counts_in_the_process_registry(tmp_path: Path,
                                                         answerer: Answerer) -> None:
    """Adapters run without ``serve``'s wrapper still count, in what /metrics shows."""
    before = counts(health.metrics, "slack")
    with FakeSlack() as fake:
        bot = start_bot(fake, tmp_path, answerer)
        try:
            bot.event(mention(ON_TOPIC, ts="1700000200.000100"))
            fake.wait_for("chat.postMessage", 1)
        finally:
            bot.service.stop()
    after = counts(health.metrics, "slack")
    assert {k: after[k] - before[k] for k in after} == {
        "answered": 1, "declined": 0, "rejected": 0, "error": 0, "seconds_count": 1}


def test_discord_counts_each_question_once(tmp_path: Path, answerer: Answerer) -> None:
    metrics = Metrics()
    observed = ObservedAnswerer(answerer, "discord", metrics)

    async def scenario() -> None:
        async with discord_world(observed, tmp_path, rate_limit_per_minute=2) as (fake, _bot):
            async def slash(question: str, user: dict | None = None, *,
                            turned_away: bool = False) -> dict:
                payload = fake.slash("dossier ask", {"question": question}, user=user)
                await fake.dispatch("INTERACTION_CREATE", payload)
                if turned_away:  # answered at once, only to the asker
                    sent = (await fake.wait_for(lambda: fake.sent_for(payload), 60))[0]
                    assert sent.body["data"]["flags"] & 64
                    return sent.body["data"]
                return (await fake.wait_for(lambda: followups(fake, payload), 60))[0].body

            assert "embeds" in await slash(ON_TOPIC)  # answered
            assert "embeds" in await slash(OFF_TOPIC)  # declined
            limited = await slash(ON_TOPIC, turned_away=True)  # bob's third: over the limit
            assert "questions in the last minute" in limited["content"]
            await slash(TOO_LONG, user=fake.admin, turned_away=True)
            # Mentions in a channel go through the message path.
            for n, text in enumerate((ON_TOPIC, UNRESOLVED), 1):
                await fake.dispatch("MESSAGE_CREATE", fake.message_create(
                    f"<@{fake.bot['id']}> {text}", user=fake.admin))
                await fake.wait_for(lambda n=n: fake.sent_in(fake.channel_id)[n - 1:], 60)

    run(scenario())
    assert counts(metrics, "discord") == {"answered": 2, "declined": 2, "rejected": 2,
                                          "error": 0, "seconds_count": 6}
