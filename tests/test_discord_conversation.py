"""Conversations on Discord over loopback: follow-ups in threads, reply chains and DMs, "More
quotes", channel settings and the /dossier command group, with the real discord.py client
and the real Answerer against the fake Discord."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fakes.fake_discord import API, FakeDiscord
from test_discord_e2e import discord_world, followups, plain, run

from bot.answer import Answerer

SULLIVAN = "What did Jake Sullivan say?"
NEXT = "what did he say next?"


def quotes_of(body: dict[str, Any]) -> list[str]:
    return [plain(e["description"]) for e in body.get("embeds") or [] if e.get("footer")]


def buttons(body: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in body.get("components") or [] for c in row["components"]]


def mention(fake: FakeDiscord, text: str) -> str:
    return f"<@{fake.bot['id']}> {text}"


def test_commands_are_one_group_and_an_admin_group_hidden_from_members(
        answerer: Answerer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with discord_world(answerer, tmp_path) as (fake, _bot):
            synced = {c["name"]: c for c in fake.synced[fake.guild_id]}
            assert set(synced) == {"dossier", "dossier-admin"}
            subs = {c["name"]: [o["name"] for o in c["options"]] for c in synced.values()}
            assert subs == {"dossier": ["ask", "sources", "help"],
                            "dossier-admin": ["add", "reindex"]}
            assert synced["dossier"]["default_member_permissions"] is None
            assert int(synced["dossier-admin"]["default_member_permissions"]) == 1 << 5

            help_ = fake.slash("dossier help")
            await fake.dispatch("INTERACTION_CREATE", help_)
            [sent] = await fake.wait_for(lambda: fake.sent_for(help_))
            assert "/dossier ask" in sent.body["data"]["content"]
            assert sent.body["data"]["flags"] & 64

    run(scenario())


def test_follow_up_in_a_thread_is_answered_in_context(answerer: Answerer,
                                                      tmp_path: Path) -> None:
    async def scenario() -> None:
        async with discord_world(answerer, tmp_path) as (fake, _bot):
            first = fake.message_create(mention(fake, SULLIVAN), channel_id=fake.thread_id)
            await fake.dispatch("MESSAGE_CREATE", first)
            [answer] = await fake.wait_for(lambda: fake.sent_in(fake.thread_id))
            assert any("Sullivan" in q for q in quotes_of(answer.body))
            again = fake.message_create(mention(fake, NEXT), channel_id=fake.thread_id)
            await fake.dispatch("MESSAGE_CREATE", again)
            sent = await fake.wait_for(lambda: fake.sent_in(fake.thread_id)[1:])
            follow = sent[0].body
            assert "Read as: What did Jake Sullivan say?" in plain(follow["content"])
            assert quotes_of(follow) and not set(quotes_of(follow)) & set(quotes_of(answer.body))

    run(scenario())


def test_a_reply_to_an_answer_continues_its_conversation(answerer: Answerer,
                                                         tmp_path: Path) -> None:
    async def scenario() -> None:
        async with discord_world(answerer, tmp_path) as (fake, _bot):
            first = fake.message_create(mention(fake, SULLIVAN))
            await fake.dispatch("MESSAGE_CREATE", first)
            [answer] = await fake.wait_for(lambda: fake.sent_in(fake.channel_id))
            # A reply to the bot's answer pings it, so Discord sends its text.
            reply = fake.message_create(NEXT, reply_to=answer.message)
            await fake.dispatch("MESSAGE_CREATE", reply)
            sent = await fake.wait_for(lambda: fake.sent_in(fake.channel_id)[1:])
            assert "Read as: What did Jake Sullivan say?" in plain(sent[0].body["content"])
            assert sent[0].body["message_reference"]["message_id"] == int(reply["id"])
            # Another mention in the channel starts afresh: nothing to continue.
            other = fake.message_create(mention(fake, NEXT))
            await fake.dispatch("MESSAGE_CREATE", other)
            sent = await fake.wait_for(lambda: fake.sent_in(fake.channel_id)[2:])
            assert "nothing to continue" in sent[0].body["embeds"][0]["description"]

    run(scenario())


def test_follow_ups_in_a_dm(answerer: Answerer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with discord_world(answerer, tmp_path) as (fake, _bot):
            # One at a time, as a person asks: the follow-up goes after the answer it follows
            # (sent together, the two replies could be posted in either order).
            for n, text in enumerate((SULLIVAN, NEXT), 1):
                await fake.dispatch("MESSAGE_CREATE",
                                    fake.message_create(text, channel_id=fake.dm_channel_id))
                await fake.wait_for(lambda n=n: fake.sent_in(fake.dm_channel_id)[n - 1:])
            sent = await fake.wait_for(lambda: fake.sent_in(fake.dm_channel_id)[1:])
            assert "Read as" in plain(sent[0].body["content"])
            assert quotes_of(sent[0].body)

    run(scenario())


def test_more_quotes_posts_further_quotes_until_none_remain(answerer: Answerer,
                                                            tmp_path: Path) -> None:
    async def scenario() -> None:
        async with discord_world(answerer, tmp_path) as (fake, _bot):
            ask = fake.slash("dossier ask", {"question": SULLIVAN})
            await fake.dispatch("INTERACTION_CREATE", ask)
            message = (await fake.wait_for(lambda: followups(fake, ask)))[0].message
            seen = quotes_of(message)
            more = [b for b in buttons(message) if b.startswith("dossier:more:")]
            assert more, "the dossier has more than one answer's worth on Sullivan"
            for _ in range(10):
                click = fake.click(message, more[0])
                await fake.dispatch("INTERACTION_CREATE", click)
                sent = await fake.wait_for(lambda c=click: followups(fake, c))
                # The pressed button is gone from the answer it was under.
                edit = fake.sent_for(click)[0]
                assert edit.body["type"] == 7
                assert not any(b.startswith("dossier:more:") for b in buttons(edit.body["data"]))
                message = sent[0].message
                fresh = quotes_of(message)
                assert fresh and not set(fresh) & set(seen)
                seen += fresh
                more = [b for b in buttons(message) if b.startswith("dossier:more:")]
                if not more:
                    break
            assert not more, "More quotes disappears once every quote has been shown"
            assert fake.rejected == []

    run(scenario())


def test_in_a_thread_people_talking_to_each_other_and_system_messages_get_no_answer(
        answerer: Answerer, tmp_path: Path) -> None:
    async def scenario() -> None:
        # The bot reads every message (an auto-reply channel elsewhere asks for the intent).
        async with discord_world(answerer, tmp_path, message_content=True,
                                 late=lambda f: {"auto_channels": frozenset({"999"})}
                                 ) as (fake, _bot):
            await fake.dispatch("MESSAGE_CREATE", fake.message_create(
                mention(fake, SULLIVAN), channel_id=fake.thread_id))
            await fake.wait_for(lambda: fake.sent_in(fake.thread_id))
            # To someone else, and the thread renamed (a system message, type 4).
            await fake.dispatch("MESSAGE_CREATE", fake.message_create(
                f"<@{fake.admin['id']}> can you check quote 2?", channel_id=fake.thread_id))
            renamed = fake.message_create("Jake Sullivan and Beijing", channel_id=fake.thread_id)
            await fake.dispatch("MESSAGE_CREATE", {**renamed, "type": 4})
            # A follow-up meant for the bot still is one.
            await fake.dispatch("MESSAGE_CREATE", fake.message_create(
                NEXT, channel_id=fake.thread_id))
            sent = await fake.wait_for(lambda: fake.sent_in(fake.thread_id)[1:])
            await asyncio.sleep(0.5)
            assert len(fake.sent_in(fake.thread_id)) == 2
            assert "Read as: What did Jake Sullivan say?" in plain(sent[0].body["content"])

    run(scenario())


def test_a_mention_of_the_bots_role_is_a_mention(answerer: Answerer, tmp_path: Path) -> None:
    # With Message Content (asked for by an auto-reply channel elsewhere): whether Discord
    # sends the text of a role mention without it is not documented, and the fake blanks it.
    async def scenario() -> None:
        async with discord_world(answerer, tmp_path, message_content=True,
                                 late=lambda f: {"auto_channels": frozenset({"999"})}
                                 ) as (fake, _bot):
            await fake.dispatch("MESSAGE_CREATE", fake.message_create(
                f"<@&{fake.bot_role_id}> {SULLIVAN}", channel_id=fake.channel_id))
            [reply] = await fake.wait_for(lambda: fake.sent_in(fake.channel_id))
            assert any("Sullivan" in q for q in quotes_of(reply.body))
            assert "&" not in plain(reply.body["content"]).split("Q:")[-1].split("\n")[0]

    run(scenario())


def test_auto_reply_channel_answers_without_a_mention(answerer: Answerer,
                                                      tmp_path: Path) -> None:
    async def scenario() -> None:
        async with discord_world(answerer, tmp_path, message_content=True,
                                 late=lambda f: {"auto_channels": frozenset({f.channel_id})}
                                 ) as (fake, _bot):
            assert fake.intents is not None and fake.intents & (1 << 15)
            await fake.dispatch("MESSAGE_CREATE", fake.message_create(SULLIVAN))
            [reply] = await fake.wait_for(lambda: fake.sent_in(fake.channel_id))
            assert quotes_of(reply.body)

    run(scenario())


def test_files_in_an_auto_reply_channel_are_not_taken_as_articles_to_add(
        answerer: Answerer, tmp_path: Path) -> None:
    # Only a file handed to the bot (a mention, or a DM) is an article to add; a screenshot
    # posted beside a question gets the question answered, a bare one nothing.
    async def scenario() -> None:
        async with discord_world(answerer, tmp_path, message_content=True,
                                 late=lambda f: {"auto_channels": frozenset({f.channel_id})}
                                 ) as (fake, _bot):
            shot = fake.attachment("screen.png", b"\x89PNG" + bytes(100), "image/png")
            await fake.dispatch("MESSAGE_CREATE", fake.message_create(
                SULLIVAN, attachments=[shot], user=fake.member))
            [reply] = await fake.wait_for(lambda: fake.sent_in(fake.channel_id))
            assert quotes_of(reply.body) and "Sorry, only dossier admins" not in \
                reply.body.get("content", "")
            other = fake.attachment("other.png", b"\x89PNG" + bytes(100), "image/png")
            await fake.dispatch("MESSAGE_CREATE", fake.message_create(
                "", attachments=[other], user=fake.member))
            await asyncio.sleep(0.5)
            assert len(fake.sent_in(fake.channel_id)) == 1

    run(scenario())


def test_a_channel_not_allowed_stays_silent(answerer: Answerer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with discord_world(answerer, tmp_path,
                                 late=lambda f: {"channels": frozenset({f.thread_id})}
                                 ) as (fake, _bot):
            await fake.dispatch("MESSAGE_CREATE", fake.message_create(mention(fake, SULLIVAN)))
            # Allowed: the thread. Its answer comes; the channel's mention got nothing.
            await fake.dispatch("MESSAGE_CREATE", fake.message_create(
                mention(fake, SULLIVAN), channel_id=fake.thread_id))
            await fake.wait_for(lambda: fake.sent_in(fake.thread_id))
            await asyncio.sleep(0.2)
            assert fake.sent_in(fake.channel_id) == []

    run(scenario())


def test_dossier_admin_add_a_link_then_it_is_answerable(fresh_answerer: Answerer,
                                                        corpus_copy: Path,
                                                        tmp_path: Path) -> None:
    from fakes.articles import KEEPERS_QUESTION, article_server

    async def scenario(base: str) -> None:
        # Served on 127.0.0.1: the intranet switch lets the bot fetch it.
        async with discord_world(fresh_answerer, tmp_path, corpus_dir=corpus_copy,
                                 intake_allow_private=True) as (fake, _bot):
            refused = fake.slash("dossier-admin add", {"url": f"{base}/article.html"},
                                 user=fake.member)
            await fake.dispatch("INTERACTION_CREATE", refused)
            [no] = await fake.wait_for(lambda: fake.sent_for(refused))
            assert "only dossier admins" in no.body["data"]["content"]
            assert no.body["data"]["flags"] & 64

            add = fake.slash("dossier-admin add", {"url": f"{base}/article.html"},
                             user=fake.admin)
            await fake.dispatch("INTERACTION_CREATE", add)
            done = (await fake.wait_for(lambda: followups(fake, add), 120))[0]
            text = done.body["content"]
            assert "Added “Skerryvore keepers vote to unionise” (The Island Courier · " \
                   "2024-03-05)" in text and "passages" in text

            missing = fake.slash("dossier-admin add", {"url": f"{base}/gone.html"},
                                 user=fake.admin)
            await fake.dispatch("INTERACTION_CREATE", missing)
            gone = (await fake.wait_for(lambda: followups(fake, missing), 60))[0]
            assert "Not added: The page was not found (404)" in gone.body["content"]

            ask = fake.slash("dossier ask", {"question": KEEPERS_QUESTION})
            await fake.dispatch("INTERACTION_CREATE", ask)
            answer = (await fake.wait_for(lambda: followups(fake, ask)))[0]
            assert any("Skerryvore" in q for q in quotes_of(answer.body))

    with article_server() as base:
        run(scenario(base))


def test_dossier_admin_add_of_a_loopback_link_is_refused(answerer: Answerer,
                                                         tmp_path: Path) -> None:
    from fakes.articles import article_server

    async def scenario(base: str) -> None:
        async with discord_world(answerer, tmp_path) as (fake, _bot):
            add = fake.slash("dossier-admin add", {"url": f"{base}/article.html"},
                             user=fake.admin)
            await fake.dispatch("INTERACTION_CREATE", add)
            done = (await fake.wait_for(lambda: followups(fake, add), 60))[0]
            assert ("Not added: That link leads to 127.0.0.1, a loopback address"
                    in done.body["content"])

    requests: list[str] = []
    with article_server(requests) as base:
        run(scenario(base))
    assert requests == []


def test_an_add_that_outlasts_its_interaction_is_reported_in_the_channel(
        fresh_answerer: Answerer, corpus_copy: Path, tmp_path: Path) -> None:
    from fakes.articles import article_server

    async def scenario(base: str) -> None:
        async with discord_world(fresh_answerer, tmp_path, corpus_dir=corpus_copy,
                                 intake_allow_private=True) as (fake, _bot):
            fake.tokens_expired = True  # as 15 minutes after the command
            add = fake.slash("dossier-admin add", {"url": f"{base}/article.html"},
                             user=fake.admin)
            await fake.dispatch("INTERACTION_CREATE", add)
            [posted] = await fake.wait_for(lambda: fake.sent_in(fake.channel_id), 120)
            assert "Added “Skerryvore keepers vote to unionise”" in posted.body["content"]
            assert posted.body["allowed_mentions"] == {"parse": []}
            assert not followups(fake, add)

    with article_server() as base:
        run(scenario(base))


def test_an_uploaded_pdf_with_a_mention_is_added(fresh_answerer: Answerer, corpus_copy: Path,
                                                 tmp_path: Path) -> None:
    from fakes.articles import FERRY, FERRY_QUESTION, tiny_pdf

    async def scenario() -> None:
        # bob has no Manage Server; DOSSIER_ADDERS lets him add.
        async with discord_world(fresh_answerer, tmp_path, corpus_dir=corpus_copy,
                                 late=lambda f: {"adders": frozenset({f.member["id"]})}
                                 ) as (fake, _bot):
            pdf = fake.attachment("ferry.pdf", tiny_pdf(FERRY), "application/pdf")
            await fake.dispatch("MESSAGE_CREATE", fake.message_create(
                mention(fake, "for the dossier"), channel_id=fake.thread_id,
                attachments=[pdf]))
            [reply] = await fake.wait_for(lambda: fake.sent_in(fake.thread_id), 120)
            assert "Added “Tiree ferry timetable changes”" in reply.body["content"]

            exe = fake.attachment("setup.exe", b"MZ" + bytes(100), "application/octet-stream")
            await fake.dispatch("MESSAGE_CREATE", fake.message_create(
                mention(fake, ""), channel_id=fake.thread_id, attachments=[exe]))
            sent = await fake.wait_for(lambda: fake.sent_in(fake.thread_id)[1:])
            assert "Not added (setup.exe): Unsupported type (.exe)" in sent[0].body["content"]

            # A file it cannot read beside a question (a screenshot): the question is answered.
            shot = fake.attachment("shot.png", b"\x89PNG" + bytes(100), "image/png")
            await fake.dispatch("MESSAGE_CREATE", fake.message_create(
                mention(fake, FERRY_QUESTION), channel_id=fake.thread_id, attachments=[shot]))
            sent = await fake.wait_for(lambda: fake.sent_in(fake.thread_id)[2:])
            assert any("Tiree ferry" in q for q in quotes_of(sent[0].body))

    run(scenario())


def test_an_answer_that_discord_posted_before_a_5xx_is_not_posted_twice(
        answerer: Answerer, tmp_path: Path) -> None:
    # Discord creates the message and answers 500: discord.py sends the same request again
    # (after a second). The nonce it sends with enforce_nonce makes Discord hand back the
    # first message; this holds discord.py (and our replies) to that.
    async def scenario() -> None:
        async with discord_world(answerer, tmp_path) as (fake, _bot):
            fake.fail_after_posting.append(500)
            first = fake.message_create(mention(fake, SULLIVAN), channel_id=fake.thread_id)
            await fake.dispatch("MESSAGE_CREATE", first)
            [answer] = await fake.wait_for(lambda: fake.sent_in(fake.thread_id))
            assert answer.body["enforce_nonce"] is True and answer.body["nonce"]
            post = ("POST", f"{API}/channels/{fake.thread_id}/messages")
            await fake.wait_for(lambda: fake.requests.count(post) >= 2 or None)
            await asyncio.sleep(0.3)
            assert fake.requests.count(post) == 2, "sent again once, after the 500"
            assert len(fake.sent_in(fake.thread_id)) == 1, "and posted once"
            assert quotes_of(answer.body)

    run(scenario())
