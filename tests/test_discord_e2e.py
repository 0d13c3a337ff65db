"""The real discord.py client and the real Answerer against a fake Discord on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from fakes.fake_discord import PRIVILEGED, FakeDiscord, fake_discord

from bot.answer import Answerer
from bot.config import ConfigError, Settings
from bot.discord.app import DossierBot, create_discord_bot, serve_discord
from bot.discord.render import render_answer
from bot.feedback import FeedbackStore

ON_TOPIC = "Did Russia ask China for military aid?"
OFF_TOPIC = "What is a good recipe for sourdough bread?"
NO_PINGS = {"parse": []}


@contextlib.asynccontextmanager
async def discord_world(answerer: Answerer, tmp_path: Path, *,
                        admins: Callable[[FakeDiscord], set[str]] | None = None,
                        late: Callable[[FakeDiscord], dict[str, Any]] | None = None,
                        message_content: bool = False,
                        **overrides: Any) -> AsyncIterator[tuple[FakeDiscord, DossierBot]]:
    """A fake Discord and the bot connected to it through ``serve_discord``; ``late`` gives
    settings that name the fake's users or channels."""
    async with fake_discord(message_content=message_content) as fake:
        if admins is not None:
            overrides["admins"] = frozenset(admins(fake))
        if late is not None:
            overrides.update(late(fake))
        overrides.setdefault("discord_guild_id", int(fake.guild_id))
        settings = Settings(
            discord_token=fake.token, discord_api_url=fake.api_url,
            index_dir=tmp_path / "index",
            feedback_db=tmp_path / "feedback.sqlite3", **overrides)
        bot = create_discord_bot(settings=settings, answerer=answerer)
        stop = asyncio.Event()
        server = asyncio.create_task(serve_discord(settings, answerer, stop, bot=bot))
        try:
            await fake.wait_for(lambda: fake.intents is not None or server.done())
            if server.done():
                server.result()
            # discord.py announces "ready" 2 s after the last GUILD_CREATE; events flow from
            # the moment the guild is known, so wait for that instead.
            await until(lambda: bot.get_guild(int(fake.guild_id)) is not None)
            yield fake, bot
        finally:
            stop.set()
            await asyncio.wait_for(server, 15)


async def until(probe: Any, timeout: float = 15.0) -> None:
    async def poll() -> None:
        while not probe():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def followups(fake: FakeDiscord, payload: dict[str, Any]) -> list[Any]:
    return [s for s in fake.sent_for(payload) if s.kind == "followup"]


def plain(text: str) -> str:
    """Embed text as a reader sees it: markdown escapes and whitespace runs undone."""
    return " ".join(re.sub(r"\\(.)", r"\1", text).split())


def assert_quotes_verbatim(embeds: list[dict[str, Any]], answerer: Answerer) -> None:
    bodies = {s.article.path: s.article for s in answerer.sources()}
    for e in embeds:
        path = e["footer"]["text"].split(" · ")[0]
        article = bodies[path]
        shown = plain(e["description"]).strip("“”").rstrip("…")
        assert shown and shown in " ".join(article.body.split())
        assert e["title"] == " ".join(article.label.split())[:256]
        assert e.get("url") == article.url


def test_ask_is_deferred_then_answered_with_quotes_in_embeds(answerer: Answerer,
                                                             tmp_path: Path) -> None:
    async def scenario() -> None:
        async with discord_world(answerer, tmp_path) as (fake, _bot):
            # Started as Discord expects: commands synced to the one guild, no privileged
            # intent, zlib-compressed gateway stream.
            names = {c["name"] for c in fake.synced[fake.guild_id]}
            assert names == {"dossier", "dossier-admin"}
            assert "global" not in fake.synced
            assert fake.intents is not None and not fake.intents & PRIVILEGED
            assert fake.gateway_query.get("compress") == "zlib-stream"
            assert ("GET", "/api/v10/gateway/bot") in fake.requests

            ask = fake.slash("dossier ask", {"question": ON_TOPIC})
            await fake.dispatch("INTERACTION_CREATE", ask)
            answer_sent = (await fake.wait_for(lambda: followups(fake, ask)))[0]
            first = fake.sent_for(ask)[0]
            assert first.kind == "callback" and first.body["type"] == 5  # deferred at once
            assert answer_sent.message["id"] == first.message["id"]  # replaced "thinking…"
            assert answer_sent.message["flags"] == 0  # visible to the channel

            body = answer_sent.body
            assert body["allowed_mentions"] == NO_PINGS
            expected = render_answer(answerer.ask(ON_TOPIC))
            assert expected.embeds, "the dossier answers this question"
            assert body["embeds"] == [e.to_dict() for e in expected.embeds]
            assert body["content"] == expected.content and ON_TOPIC in body["content"]
            assert_quotes_verbatim(body["embeds"], answerer)
            buttons = [c["custom_id"] for row in body["components"] for c in row["components"]]
            assert buttons[-2:] == ["dossier:vote:up", "dossier:vote:down"]
            assert fake.rejected == []  # Discord would have accepted every call

    run(scenario())


def test_without_a_guild_id_commands_sync_globally(answerer: Answerer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with discord_world(answerer, tmp_path, discord_guild_id=None) as (fake, _bot):
            assert list(fake.synced) == ["global"]
            assert {c["name"] for c in fake.synced["global"]} == {"dossier", "dossier-admin"}
            ask = fake.slash("dossier ask", {"question": ON_TOPIC})
            assert "guild_id" not in ask["data"]  # a global command, used in a server
            await fake.dispatch("INTERACTION_CREATE", ask)
            sent = (await fake.wait_for(lambda: followups(fake, ask)))[0]
            assert sent.body["embeds"] and sent.body["allowed_mentions"] == NO_PINGS

    run(scenario())


def test_off_topic_question_is_declined_with_closest_articles(answerer: Answerer,
                                                              tmp_path: Path) -> None:
    declined = answerer.ask(OFF_TOPIC)
    assert not declined.answered, "the dossier does not cover baking"

    async def scenario() -> None:
        async with discord_world(answerer, tmp_path) as (fake, _bot):
            ask = fake.slash("dossier ask", {"question": OFF_TOPIC})
            await fake.dispatch("INTERACTION_CREATE", ask)
            body = (await fake.wait_for(lambda: followups(fake, ask)))[0].body
            assert body["allowed_mentions"] == NO_PINGS
            [embed] = body["embeds"]
            assert embed["description"] == declined.reason
            if declined.closest:
                assert embed["title"] == "Not in the dossier"
            for article in declined.closest:
                assert plain(article.label)[:30] in plain(embed["fields"][0]["value"])

    run(scenario())


def test_reindex_is_refused_to_a_member_without_manage_server(answerer: Answerer,
                                                              tmp_path: Path) -> None:
    async def scenario() -> None:
        async with discord_world(answerer, tmp_path) as (fake, _bot):
            reindex = fake.slash("dossier-admin reindex", user=fake.member)
            await fake.dispatch("INTERACTION_CREATE", reindex)
            [refusal] = await fake.wait_for(lambda: fake.sent_for(reindex))
            assert refusal.body["type"] == 4  # answered at once, nothing deferred
            assert refusal.body["data"]["flags"] & 64  # ephemeral
            assert "Manage Server" in refusal.body["data"]["content"]
            assert refusal.body["data"]["allowed_mentions"] == NO_PINGS

    run(scenario())


def test_reindex_by_an_admin_rebuilds_and_reports(fresh_answerer: Answerer, corpus_copy: Path,
                                                  tmp_path: Path) -> None:
    gone = sorted(corpus_copy.iterdir())[-1]
    gone.unlink()

    async def scenario() -> None:
        async with discord_world(fresh_answerer, tmp_path, corpus_dir=corpus_copy) as (fake, _bot):
            # ada has Manage Server; nobody is listed in DOSSIER_ADMINS.
            reindex = fake.slash("dossier-admin reindex", user=fake.admin)
            await fake.dispatch("INTERACTION_CREATE", reindex)
            done = (await fake.wait_for(lambda: followups(fake, reindex), 120))[0]
            assert fake.sent_for(reindex)[0].body == {"type": 5, "data": {"flags": 64}}
            assert done.message["flags"] & 64  # only the admin sees the report
            text = done.body["content"]
            assert re.search(r"Index rebuilt: 4 articles, \d+ passages \(0 embedded, "
                             r"1 removed\)", text), text
        assert gone.stem not in {s.article.id for s in fresh_answerer.sources()}

    run(scenario())


def test_a_rebuild_that_outlasts_the_interaction_is_reported_by_dm(
        fresh_answerer: Answerer, corpus_copy: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with discord_world(fresh_answerer, tmp_path, corpus_dir=corpus_copy) as (fake, _bot):
            # Discord refuses follow-ups 15 minutes after the command; a big rebuild takes longer.
            fake.tokens_expired = True
            reindex = fake.slash("dossier-admin reindex", user=fake.admin)
            await fake.dispatch("INTERACTION_CREATE", reindex)
            dm = (await fake.wait_for(lambda: fake.sent_in(fake.dm_channel_id), 120))[0]
            assert dm.body["content"].startswith("Index rebuilt: 5 articles")
            assert dm.body["allowed_mentions"] == NO_PINGS
            assert ("POST", "/api/v10/users/@me/channels") in fake.requests
            # Nothing of the private report reached the channel.
            assert not fake.sent_in(fake.channel_id)

    run(scenario())


def test_reindex_by_a_listed_admin_reports_a_failed_rebuild(fresh_answerer: Answerer,
                                                           tmp_path: Path) -> None:
    before = [s.article.id for s in fresh_answerer.sources()]

    async def scenario() -> None:
        # bob lacks Manage Server but is listed in DOSSIER_ADMINS.
        async with discord_world(fresh_answerer, tmp_path, corpus_dir=tmp_path / "missing",
                                 admins=lambda fake: {fake.member["id"]}) as (fake, _bot):
            reindex = fake.slash("dossier-admin reindex", user=fake.member)
            await fake.dispatch("INTERACTION_CREATE", reindex)
            done = (await fake.wait_for(lambda: followups(fake, reindex), 60))[0]
            assert "The rebuild failed" in done.body["content"]
            assert "previous index is still in use" in done.body["content"]
        assert [s.article.id for s in fresh_answerer.sources()] == before

    run(scenario())


def test_an_index_rebuilt_elsewhere_is_picked_up_without_restart(
        fresh_answerer: Answerer, corpus_copy: Path, embedder: Any, tmp_path: Path) -> None:
    from index.live import LiveIndex

    async def scenario() -> None:
        async with discord_world(fresh_answerer, tmp_path) as (fake, _bot):
            first = fake.slash("dossier sources")
            await fake.dispatch("INTERACTION_CREATE", first)
            before = (await fake.wait_for(lambda: followups(fake, first)))[0]
            assert before.body["embeds"][0]["title"] == "The dossier: 5 article(s)"
            # Another process (`dossier-bot index build`) rebuilds the same index directory.
            sorted(corpus_copy.iterdir())[0].unlink()
            other = LiveIndex(fresh_answerer.live.index_dir, embedder)
            await asyncio.to_thread(other.rebuild, corpus_copy)
            again = fake.slash("dossier sources")
            await fake.dispatch("INTERACTION_CREATE", again)
            after = (await fake.wait_for(lambda: followups(fake, again)))[0]
            assert after.body["embeds"][0]["title"] == "The dossier: 4 article(s)"

    run(scenario())


def test_mention_in_a_thread_gets_a_reply_in_that_thread(answerer: Answerer,
                                                         tmp_path: Path) -> None:
    async def scenario() -> None:
        async with discord_world(answerer, tmp_path) as (fake, _bot):
            # Not for the bot: Discord blanks its text (no message-content intent).
            chatter = fake.message_create("did anyone see the news?", channel_id=fake.thread_id)
            assert await fake.dispatch("MESSAGE_CREATE", chatter)
            asked = fake.message_create(f"<@{fake.bot['id']}> {ON_TOPIC}",
                                        channel_id=fake.thread_id)
            assert await fake.dispatch("MESSAGE_CREATE", asked)
            [reply] = await fake.wait_for(lambda: fake.sent_in(fake.thread_id))
            assert reply.body["message_reference"]["message_id"] == int(asked["id"])
            assert reply.body["allowed_mentions"] == {"parse": [], "replied_user": False}
            expected = render_answer(answerer.ask(ON_TOPIC))
            assert reply.body["embeds"] == [e.to_dict() for e in expected.embeds]
            assert fake.sent_in(fake.channel_id) == []  # not in the parent channel
            assert len(fake.sent) == 1  # and nothing for the chatter

    run(scenario())


def test_nothing_the_bot_echoes_can_ping(answerer: Answerer, tmp_path: Path) -> None:
    question = f"@everyone @here {ON_TOPIC}"

    async def scenario() -> None:
        async with discord_world(answerer, tmp_path) as (fake, _bot):
            asked = fake.message_create(f"<@{fake.bot['id']}> <@{fake.admin['id']}> {question}")
            await fake.dispatch("MESSAGE_CREATE", asked)
            [reply] = await fake.wait_for(lambda: fake.sent_in(fake.channel_id))
            assert "@everyone" in reply.body["content"]  # shown as text...
            # the user mention as its characters, not a mention
            assert f"\\<@{fake.admin['id']}\\>" in reply.body["content"]
            # ...but Discord is told to notify no one: no roles, users, @everyone/@here,
            # nor the author of the message replied to.
            assert reply.body["allowed_mentions"] == {"parse": [], "replied_user": False}

    run(scenario())


def test_a_question_that_is_too_long_gets_a_clear_message(answerer: Answerer,
                                                          tmp_path: Path) -> None:
    question = " ".join([ON_TOPIC] * 60)  # mentions have no length limit of their own

    async def scenario() -> None:
        async with discord_world(answerer, tmp_path) as (fake, _bot):
            asked = fake.message_create(question, channel_id=fake.dm_channel_id)
            await fake.dispatch("MESSAGE_CREATE", asked)
            [reply] = await fake.wait_for(lambda: fake.sent_in(fake.dm_channel_id))
            [embed] = reply.body["embeds"]
            assert embed["description"] == answerer.ask(question).reason
            assert f"{len(question):,} characters" in embed["description"]
            assert fake.rejected == []

    run(scenario())


def test_direct_message_is_answered_in_the_dm(answerer: Answerer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with discord_world(answerer, tmp_path) as (fake, _bot):
            dm = fake.message_create(OFF_TOPIC, channel_id=fake.dm_channel_id)
            assert await fake.dispatch("MESSAGE_CREATE", dm)
            [reply] = await fake.wait_for(lambda: fake.sent_in(fake.dm_channel_id))
            assert reply.body["allowed_mentions"]["parse"] == []
            expected = render_answer(answerer.ask(OFF_TOPIC))
            assert reply.body["embeds"] == [e.to_dict() for e in expected.embeds]

    run(scenario())


def test_feedback_buttons_record_one_vote_per_person(answerer: Answerer,
                                                    tmp_path: Path) -> None:
    async def scenario() -> None:
        async with discord_world(answerer, tmp_path) as (fake, bot):
            ask = fake.slash("dossier ask", {"question": ON_TOPIC})
            await fake.dispatch("INTERACTION_CREATE", ask)
            answer_message = (await fake.wait_for(lambda: followups(fake, ask)))[0].message

            for _ in range(20):
                click = fake.click(answer_message, "dossier:vote:down", user=fake.admin)
                await fake.dispatch("INTERACTION_CREATE", click)
                # Acknowledged at once (privately), then the result, so a slow store cannot
                # outlast Discord's 3 s.
                deferred, said = await fake.wait_for(
                    lambda c=click: len(fake.sent_for(c)) >= 2 and fake.sent_for(c))
                assert deferred.body["type"] == 5 and deferred.body["data"]["flags"] & 64
                assert said.kind == "followup" and said.body["flags"] & 64
            assert "already" in said.body["content"]

            # Twenty identical votes count once, in the store (it survives a restart).
            votes = FeedbackStore(bot.settings.feedback_path).votes()
            assert [(v.platform, v.user_id, v.vote) for v in votes] == [
                ("discord", fake.admin["id"], -1)]

            # A change of mind replaces the vote: the latest counts.
            click = fake.click(answer_message, "dossier:vote:up", user=fake.admin)
            await fake.dispatch("INTERACTION_CREATE", click)
            [said] = await fake.wait_for(lambda c=click: followups(fake, c))
            assert "now 👍" in said.body["content"]
            summary = FeedbackStore(bot.settings.feedback_path).summary()
            assert (summary.total, summary.up, summary.down) == (1, 1, 0)
            votes = FeedbackStore(bot.settings.feedback_path).votes()
            assert votes[0].question == ON_TOPIC
            expected = answerer.ask(ON_TOPIC)
            assert [(q["text"], q["start"], q["article"]["path"]) for q in votes[0].quotes] == [
                (q.text, q.start, q.article.path) for q in expected.quotes[:10]]

    run(scenario())


def test_questions_over_the_limit_are_told_to_wait(answerer: Answerer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with discord_world(answerer, tmp_path, rate_limit_per_minute=1) as (fake, _bot):
            first = fake.slash("dossier ask", {"question": ON_TOPIC})
            await fake.dispatch("INTERACTION_CREATE", first)
            await fake.wait_for(lambda: followups(fake, first))
            second = fake.slash("dossier ask", {"question": OFF_TOPIC})
            await fake.dispatch("INTERACTION_CREATE", second)
            [told] = await fake.wait_for(lambda: fake.sent_for(second))
            assert told.body["type"] == 4 and told.body["data"]["flags"] & 64
            assert "wait" in told.body["data"]["content"]

    run(scenario())


def test_sources_lists_every_article(answerer: Answerer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with discord_world(answerer, tmp_path) as (fake, _bot):
            sources = fake.slash("dossier sources")
            await fake.dispatch("INTERACTION_CREATE", sources)
            sent = (await fake.wait_for(lambda: followups(fake, sources)))[0]
            assert fake.sent_for(sources)[0].body == {"type": 5, "data": {"flags": 64}}
            text = "\n".join(e["description"] for e in sent.body["embeds"])
            for s in answerer.sources():
                assert plain(s.article.label)[:40] in plain(text)
                assert f"({s.passages} passages)" in text

    run(scenario())


def test_a_vote_that_cannot_be_stored_is_reported(answerer: Answerer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with discord_world(answerer, tmp_path) as (fake, bot):
            ask = fake.slash("dossier ask", {"question": ON_TOPIC})
            await fake.dispatch("INTERACTION_CREATE", ask)
            message = (await fake.wait_for(lambda: followups(fake, ask)))[0].message
            # The database file becomes a directory: SQLite cannot open it.
            path = bot.settings.feedback_path
            path.unlink()
            path.mkdir()
            click = fake.click(message, "dossier:vote:up")
            await fake.dispatch("INTERACTION_CREATE", click)
            [said] = await fake.wait_for(lambda: followups(fake, click))
            assert "could not be recorded" in said.body["content"]
            assert said.body["flags"] & 64

    run(scenario())


def test_stop_event_closes_the_connection(answerer: Answerer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with discord_world(answerer, tmp_path) as (_fake, bot):
            assert not bot.is_closed()
        assert bot.is_closed()

    run(scenario())


def test_missing_or_rejected_token_is_a_config_error(answerer: Answerer,
                                                     tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DISCORD_TOKEN is not set"):
        create_discord_bot(settings=Settings(), answerer=answerer)

    async def scenario() -> None:
        async with fake_discord() as fake:
            settings = Settings(discord_token="not-the-token", discord_api_url=fake.api_url,
                                feedback_db=tmp_path / "feedback.sqlite3")
            with pytest.raises(ConfigError, match="rejected"):
                await serve_discord(settings, answerer)

    run(scenario())



@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({"HTTPS_PROXY": "http://proxy.corp.example:3128"}, "http://proxy.corp.example:3128"),
    ({"HTTPS_PROXY": "http://proxy.corp.example:3128", "NO_PROXY": ".discord.com"}, None),
    ({"HTTP_PROXY": "http://proxy.corp.example:3128"}, None),  # Discord is https
])
def test_the_environments_https_proxy_reaches_discord_py(
        answerer: Answerer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        env: dict[str, str], expected: str | None) -> None:
    # discord.py reads no proxy from the environment; the bot hands it the one a user set
    # (its REST calls and gateway then go through it). Nothing connects here.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(discord_token="fake-token", index_dir=tmp_path / "index",
                        feedback_db=tmp_path / "feedback.sqlite3")
    bot = create_discord_bot(settings=settings, answerer=answerer)
    assert bot.http.proxy == expected


@pytest.mark.parametrize("home", [None, 42], ids=["no DISCORD_GUILD_ID", "another server"])
def test_manage_server_outside_the_dossiers_server_makes_no_admin(
        fresh_answerer: Answerer, tmp_path: Path, home: int | None) -> None:
    # Anyone can invite a public bot to a server they own and have Manage Server there.
    from fakes.articles import FERRY, tiny_pdf

    before = [s.article.id for s in fresh_answerer.sources()]

    async def scenario() -> None:
        async with discord_world(fresh_answerer, tmp_path, discord_guild_id=home) as (fake, _):
            reindex = fake.slash("dossier-admin reindex", user=fake.admin)
            await fake.dispatch("INTERACTION_CREATE", reindex)
            [refusal] = await fake.wait_for(lambda: fake.sent_for(reindex))
            assert refusal.body["type"] == 4 and "DISCORD_GUILD_ID" in \
                refusal.body["data"]["content"]
            pdf = fake.attachment("ferry.pdf", tiny_pdf(FERRY), "application/pdf")
            await fake.dispatch("MESSAGE_CREATE", fake.message_create(
                f"<@{fake.bot['id']}> for the dossier", user=fake.admin,
                channel_id=fake.thread_id, attachments=[pdf]))
            [reply] = await fake.wait_for(lambda: fake.sent_in(fake.thread_id))
            assert reply.body["content"].startswith("Sorry, only dossier admins")

    run(scenario())
    assert [s.article.id for s in fresh_answerer.sources()] == before
