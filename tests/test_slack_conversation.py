"""Conversations in Slack over loopback: follow-ups in a thread, "More quotes", channel
settings and the /dossier command, with the real Bolt app and the fake Slack Web API."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.fake_slack import FakeSlack, block_actions_form, post_to_app
from fakes.slack_helpers import ADMIN, USER, norm
from test_slack_http import Bot, dm, mention, start_bot

from bot.slack import app as slack_app

THREAD = "1700000500.000100"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def bot(fake: FakeSlack, tmp_path: Path, answerer) -> Iterator[Bot]:
    bot = start_bot(fake, tmp_path, answerer, channels=frozenset({"C0GENERAL", "C0ASK"}),
                    auto_channels=frozenset({"C0ASK"}))
    yield bot
    bot.service.stop()


def channel_message(text: str, *, channel: str, ts: str, thread_ts: str | None = None) -> dict:
    event = {"type": "message", "channel_type": "channel", "user": USER, "text": text,
             "ts": ts, "channel": channel, "event_ts": ts}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def test_follow_up_in_a_thread_is_answered_in_context(bot: Bot, answerer) -> None:
    bot.event(mention("What did Jake Sullivan say?", ts=THREAD))
    first = bot.fake.wait_for("chat.postMessage", 1)[0]
    assert first.params.get("thread_ts") == THREAD
    # A reply in the thread, without a mention: the bot is in this conversation.
    bot.event(channel_message("what did he say next?", channel="C0GENERAL",
                              ts="1700000501.000100", thread_ts=THREAD))
    second = bot.fake.wait_for("chat.postMessage", 2)[1]
    assert second.params.get("thread_ts") == THREAD
    assert "Read as: What did Jake Sullivan say?" in norm(json.dumps(second.params["blocks"]))
    # The follow-up continues Sullivan's question: its quotes are the next ones for it.
    wide = answerer.ask_wide("What did Jake Sullivan say?", 12)
    pool = [norm(q.text) for q in wide.quotes]
    assert second.quotes()
    assert all(any(norm(part) in q for q in pool) for part in second.quotes())
    # It continues: none of the first answer's quotes is repeated.
    assert not set(first.quotes()) & set(second.quotes())


def test_follow_up_in_a_group_dm_thread_is_answered(fake: FakeSlack, tmp_path: Path,
                                                     answerer) -> None:
    group = start_bot(fake, tmp_path, answerer)  # no DOSSIER_CHANNELS: any conversation
    try:
        group.event(mention("What did Jake Sullivan say?", channel="G0FRIENDS", ts=THREAD))
        first = group.fake.wait_for("chat.postMessage", 1)[0]
        group.event({**channel_message("what did he say next?", channel="G0FRIENDS",
                                       ts="1700000501.000100", thread_ts=THREAD),
                     "channel_type": "mpim"})
        second = group.fake.wait_for("chat.postMessage", 2)[1]
    finally:
        group.service.stop()
    assert (first.params["channel"], second.params["channel"]) == ("G0FRIENDS", "G0FRIENDS")
    assert second.params.get("thread_ts") == THREAD
    assert "Read as: What did Jake Sullivan say?" in norm(json.dumps(second.params["blocks"]))


def test_a_reply_in_the_bots_thread_addressed_to_someone_else_gets_no_answer(bot: Bot) -> None:
    bot.event(mention("What did Jake Sullivan say?", ts=THREAD))
    bot.fake.wait_for("chat.postMessage", 1)
    for n, text in enumerate(("<@U0ALICE> can you double-check quote 2 with the desk?",
                              "<!here> the quotes above are from March")):
        bot.event(channel_message(text, channel="C0GENERAL", ts=f"1700000502.00010{n}",
                                  thread_ts=THREAD))
    # A follow-up to the bot, also sent to the channel, is still answered.
    bot.event({**channel_message("what did he say next?", channel="C0GENERAL",
                                 ts="1700000503.000100", thread_ts=THREAD),
               "subtype": "thread_broadcast"})
    second = bot.fake.wait_for("chat.postMessage", 2)[1]
    time.sleep(1.0)  # the two addressed replies had their chance to be answered
    assert len(bot.fake.calls("chat.postMessage")) == 2
    assert "Read as: What did Jake Sullivan say?" in norm(json.dumps(second.params["blocks"]))


def test_a_screenshot_beside_a_question_leaves_the_question_answered(bot: Bot) -> None:
    png = bot.fake.add_file("shot.png", b"\x89PNG" + bytes(300), "image/png")
    bot.event({**mention("What did Jake Sullivan say?", ts=THREAD),
               "files": [{"id": png, "name": "shot.png", "mimetype": "image/png"}]})
    post = bot.fake.wait_for("chat.postMessage", 1)[0]
    assert post.quotes() and "Sullivan" in norm(" ".join(post.quotes()))
    assert bot.fake.calls("files.info") == []


def test_a_dm_is_one_conversation_in_a_thread_or_not(bot: Bot) -> None:
    bot.event(dm("What did Jake Sullivan say?", ts="1700000600.000100"))
    first = bot.fake.wait_for("chat.postMessage", 1)[0]
    assert "thread_ts" not in first.params  # DM answers are not threaded
    # A reply in a thread under the answer continues the same conversation.
    bot.event(dm("more", ts="1700000601.000100", thread_ts="1700000600.000200"))
    second = bot.fake.wait_for("chat.postMessage", 2)[1]
    assert second.quotes() and not set(first.quotes()) & set(second.quotes())


def test_a_dossier_verb_on_its_own_line_is_read(bot: Bot) -> None:
    status, body, _ = bot.command("/dossier", "ask\nWhat did Jake Sullivan say?")
    assert status == 200 and "I do not know" not in body


def test_unresolvable_follow_up_says_so(bot: Bot) -> None:
    bot.event(dm("what did he say next?"))
    post = bot.fake.wait_for("chat.postMessage", 1)[0]
    assert "nothing to continue" in norm(" ".join(post.block_texts()))
    assert not post.quotes()


def test_more_quotes_button_posts_further_quotes(bot: Bot) -> None:
    bot.event(mention("What did Jake Sullivan say?", ts=THREAD))
    first = bot.fake.wait_for("chat.postMessage", 1)[0]
    more = [b for b in first.buttons() if b["action_id"] == slack_app.ACTION_MORE]
    assert more, "an answer with further quotes offers them"
    response_url = bot.fake.response_url()
    action = {"type": "button", "action_id": more[0]["action_id"], "value": more[0]["value"],
              "text": more[0]["text"]}
    post_to_app(bot.url, block_actions_form(
        action, user_id=USER, response_url=response_url,
        message={"ts": "1700000500.000900", "thread_ts": THREAD}), content_type=FORM)
    second = bot.fake.wait_for("chat.postMessage", 2)[1]
    assert second.params.get("thread_ts") == THREAD
    assert second.quotes() and not set(first.quotes()) & set(second.quotes())


def test_auto_channel_answers_without_a_mention(bot: Bot) -> None:
    bot.event(channel_message("Did Moscow deny asking Beijing for help?", channel="C0ASK",
                              ts="1700000600.000100"))
    post = bot.fake.wait_for("chat.postMessage", 1)[0]
    assert post.params.get("thread_ts") == "1700000600.000100" and post.quotes()


def test_other_channels_need_a_mention_and_unlisted_ones_stay_silent(bot: Bot) -> None:
    bot.event(channel_message("Did Moscow deny asking Beijing for help?", channel="C0GENERAL",
                              ts="1700000700.000100"))
    bot.event(mention("Did Moscow deny asking Beijing for help?", channel="C0ELSEWHERE",
                      ts="1700000701.000100"))
    bot.event(mention("Did Moscow deny asking Beijing for help?", ts="1700000702.000100"))
    post = bot.fake.wait_for("chat.postMessage", 1)[0]
    assert post.params.get("channel") == "C0GENERAL"
    assert post.params.get("thread_ts") == "1700000702.000100"
    assert len(bot.fake.calls("chat.postMessage")) == 1


def test_dossier_command_help_and_add_refused_for_non_admins(bot: Bot) -> None:
    status, body, _ = bot.command("/dossier", "help")
    assert status == 200 and "/dossier ask" in body
    status, body, _ = bot.command("/dossier", "add https://example.org/a.html", user=USER)
    assert status == 200 and "only the dossier's admins" in body
    status, body, _ = bot.command("/dossier", "reindex", user=USER)
    assert "only the dossier's admins" in body
    assert ADMIN != USER


@pytest.fixture
def adding_bot(fake: FakeSlack, tmp_path: Path, fresh_answerer, corpus_copy) -> Iterator[Bot]:
    # The article pages are served on 127.0.0.1: the intranet switch lets the bot fetch them.
    bot = start_bot(fake, tmp_path, fresh_answerer, corpus_dir=corpus_copy,
                    intake_allow_private=True)
    yield bot
    bot.service.stop()


def test_dossier_add_a_link_makes_it_answerable(adding_bot: Bot, fresh_answerer) -> None:
    from fakes.articles import KEEPERS_QUESTION, article_server

    with article_server() as base:
        status, body, _ = adding_bot.command("/dossier", f"add {base}/article.html", user=USER)
        assert status == 200 and "only the dossier's admins" in body
        status, body, _ = adding_bot.command("/dossier", f"add <{base}/article.html>",
                                             user=ADMIN)
        assert status == 200 and "Adding" in body
        done = adding_bot.fake.wait_for("response_url", 1, timeout=120)[0]
        assert done.params["response_type"] == "in_channel"
        assert "Added “Skerryvore keepers vote to unionise” (The Island Courier · 2024-03-05)" \
            in norm(done.text)
        adding_bot.command("/dossier", f"add {base}/login.html", user=ADMIN)
        refused = adding_bot.fake.wait_for("response_url", 2, timeout=60)[1]
        assert "No article text" in refused.text and refused.params["response_type"] == "ephemeral"
    answer = fresh_answerer.ask(KEEPERS_QUESTION)
    assert answer.answered and "Skerryvore" in answer.quotes[0].text


def test_dossier_add_of_a_loopback_link_is_refused_in_chat(fake: FakeSlack, tmp_path: Path,
                                                           answerer) -> None:
    from fakes.articles import article_server

    bot = start_bot(fake, tmp_path, answerer)  # DOSSIER_INTAKE_ALLOW_PRIVATE unset
    requests: list[str] = []
    try:
        with article_server(requests) as base:
            status, body, _ = bot.command("/dossier", f"add {base}/article.html", user=ADMIN)
            assert status == 200 and "Adding" in body
            refused = bot.fake.wait_for("response_url", 1, timeout=60)[0]
    finally:
        bot.service.stop()
    assert "Not added: That link leads to 127.0.0.1, a loopback address" in norm(refused.text)
    assert refused.params["response_type"] == "ephemeral"
    assert requests == []


def test_a_pdf_shared_with_a_mention_is_added(adding_bot: Bot, fresh_answerer) -> None:
    from fakes.articles import FERRY, FERRY_QUESTION, tiny_pdf

    pdf = adding_bot.fake.add_file("ferry.pdf", tiny_pdf(FERRY), "application/pdf")
    png = adding_bot.fake.add_file("photo.png", b"\x89PNG" + bytes(300), "image/png")
    event = mention("for the dossier", user=ADMIN, ts=THREAD)
    adding_bot.event({**event, "files": [{"id": pdf}, {"id": png}]})
    post = adding_bot.fake.wait_for("chat.postMessage", 1, timeout=120)[0]
    text = norm(post.text)
    assert "Added “Tiree ferry timetable changes”" in text
    assert "Not added (photo.png): Unsupported type (.png)" in text
    # Downloaded with the bot token; the image was refused before downloading.
    [download] = adding_bot.fake.calls("file_download")
    assert download.token == adding_bot.fake.bot_token
    assert fresh_answerer.ask(FERRY_QUESTION).answered

    adding_bot.event({**mention("and this", ts="1700000800.000100"), "files": [{"id": pdf}]})
    refused = adding_bot.fake.wait_for("chat.postMessage", 2)[1]
    assert "only the dossier's admins" in norm(refused.text)


def test_a_file_added_stays_added_when_slack_refuses_the_report(adding_bot: Bot, fresh_answerer,
                                                                caplog) -> None:
    from fakes.articles import FERRY, FERRY_QUESTION, tiny_pdf

    pdf = adding_bot.fake.add_file("ferry.pdf", tiny_pdf(FERRY), "application/pdf")
    adding_bot.fake.fail_next("chat.postMessage", status=200,
                              body={"ok": False, "error": "is_archived"})
    with caplog.at_level(logging.ERROR, logger="bot.slack.app"):
        adding_bot.event({**mention("for the dossier", user=ADMIN, ts=THREAD),
                          "files": [{"id": pdf}]})
        adding_bot.fake.wait_for("chat.postMessage", 1, timeout=120)
        deadline = time.monotonic() + 10
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.05)
    assert fresh_answerer.ask(FERRY_QUESTION).answered
    [record] = caplog.records
    assert "posting the result of adding files failed" in record.getMessage()
    assert "Added “Tiree ferry timetable changes”" in record.getMessage()


@pytest.mark.parametrize(("url", "external"), [
    ("https://drive.example/file/d/1/ferry.pdf", True),  # shared from Google Drive & co.
    ("https://files.slack.com.evil.example/files-pri/T1-F1/ferry.pdf", False),
    ("http://files.slack.com/files-pri/T1-F1/ferry.pdf", False),  # not https
])
def test_the_bot_token_goes_to_slack_hosted_files_only(adding_bot: Bot, url: str,
                                                        external: bool) -> None:
    from fakes.articles import FERRY, tiny_pdf

    pdf = adding_bot.fake.add_file("ferry.pdf", tiny_pdf(FERRY), "application/pdf",
                                   url_private=url, external=external)
    adding_bot.event({**mention("for the dossier", user=ADMIN, ts=THREAD), "files": [{"id": pdf}]})
    post = adding_bot.fake.wait_for("chat.postMessage", 1, timeout=60)[0]
    assert "Not added (ferry.pdf): the file is not stored in Slack" in norm(post.text)
    assert adding_bot.fake.calls("file_download") == []
