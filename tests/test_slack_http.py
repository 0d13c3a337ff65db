"""The real slack-bolt App over HTTP on loopback, its Web API calls caught by a fake Slack."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.fake_slack import (
    BOT_USER_ID,
    SIGNING_SECRET,
    FakeSlack,
    block_actions_form,
    command_form,
    event_body,
    post_to_app,
    sign,
)
from fakes.slack_helpers import (
    ADMIN,
    QUESTION,
    USER,
    assert_cannot_ping,
    assert_quotes_posted,
    quoted,
    slack_settings,
)

from bot.config import ConfigError
from bot.feedback import FeedbackStore
from bot.ratelimit import RateLimiter
from bot.slack import app as slack_app
from bot.slack.render import ACTION_DOWN, ACTION_SHARE, ACTION_UP

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


class Bot:
    """A started Slack adapter plus the fake it talks to."""

    def __init__(self, fake: FakeSlack, service: slack_app.SlackService,
                 feedback: FeedbackStore) -> None:
        self.fake = fake
        self.service = service
        self.feedback = feedback
        self.url = f"http://127.0.0.1:{service.port}{slack_app.EVENTS_PATH}"

    def event(self, event: dict, *, event_id: str | None = None,
              headers: dict[str, str] | None = None, secret: str = SIGNING_SECRET
              ) -> tuple[int, str]:
        body = json.dumps(event_body(event, event_id=event_id))
        return post_to_app(self.url, body, content_type=JSON, headers=headers, secret=secret)

    def command(self, command: str, text: str, *, user: str = USER) -> tuple[int, str, str]:
        response_url = self.fake.response_url()
        status, body = post_to_app(self.url, command_form(
            command, text, user_id=user, response_url=response_url), content_type=FORM)
        return status, body, response_url

    def click(self, button: dict, *, user: str = USER) -> tuple[int, str, str]:
        response_url = self.fake.response_url()
        action = {"type": "button", "action_id": button["action_id"], "value": button["value"],
                  "text": button["text"]}
        status, body = post_to_app(self.url, block_actions_form(
            action, user_id=user, response_url=response_url), content_type=FORM)
        return status, body, response_url

    def responses(self, response_url: str) -> list:
        path = response_url.split("127.0.0.1", 1)[1].split("/", 1)[1]
        return [c for c in self.fake.calls("response_url") if c.path == "/" + path]


def start_bot(fake: FakeSlack, tmp_path: Path, answerer, *, rate_limit: int = 100,
              **settings_kw) -> Bot:
    settings = slack_settings(fake.api_url, tmp_path, rate_limit=rate_limit, **settings_kw)
    feedback = FeedbackStore(settings.feedback_path)
    service = slack_app.start(settings, answerer, http=True, port=0, host="127.0.0.1",
                              feedback=feedback, limiter=RateLimiter(rate_limit))
    return Bot(fake, service, feedback)


@pytest.fixture
def bot(fake: FakeSlack, tmp_path: Path, answerer) -> Iterator[Bot]:
    bot = start_bot(fake, tmp_path, answerer)
    yield bot
    bot.service.stop()


def mention(text: str, *, ts: str = "1700000100.000200", channel: str = "C0GENERAL",
            thread_ts: str | None = None, user: str = USER) -> dict:
    event = {"type": "app_mention", "user": user, "text": f"<@{BOT_USER_ID}> {text}", "ts": ts,
             "channel": channel, "event_ts": ts}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def dm(text: str, *, ts: str = "1700000200.000300", channel: str = "D0ASKER",
       user: str = USER, **extra) -> dict:
    return {"type": "message", "channel_type": "im", "user": user, "text": text, "ts": ts,
            "channel": channel, "event_ts": ts, **extra}


# -- asking ---------------------------------------------------------------------------------


def test_mention_is_answered_in_a_thread_under_it(bot: Bot, answerer) -> None:
    status, _ = bot.event(mention(QUESTION, ts="1700000100.000200"))
    assert status == 200
    [post] = bot.fake.wait_for("chat.postMessage")
    assert post.token == bot.fake.bot_token
    assert post.params["channel"] == "C0GENERAL"
    assert post.params["thread_ts"] == "1700000100.000200"
    assert post.params["unfurl_links"] is False
    assert_quotes_posted(post, answerer.ask(QUESTION))
    # The source under each quote, the title linked to the article's URL.
    first = answerer.ask(QUESTION).quotes[0].article
    sources = [t for t in post.block_texts() if t.startswith("[1] ")]
    assert sources and (first.title or first.path).split()[0] in sources[0]
    if first.url:
        assert f"<{first.url}|" in sources[0]
    actions = [b["action_id"] for b in post.buttons()]
    # No Share button: the answer is public. More quotes: the dossier has further ones.
    assert actions == [ACTION_UP, ACTION_DOWN, slack_app.ACTION_MORE]
    assert len(post.blocks) <= 50
    assert all(len(t) <= 3000 for t in post.block_texts())


def test_mention_inside_a_thread_is_answered_in_that_thread(bot: Bot) -> None:
    bot.event(mention(QUESTION, ts="1700000300.000500", thread_ts="1700000000.000001"))
    [post] = bot.fake.wait_for("chat.postMessage")
    assert post.params["thread_ts"] == "1700000000.000001"


def test_direct_message_is_answered_in_the_dm(bot: Bot, answerer) -> None:
    # Other bots' messages and edits are not questions; the real DM that follows is.
    bot.event(dm("I am another bot", bot_id="B0OTHER", ts="1700000200.000100"))
    bot.event(dm("edited", subtype="message_changed", ts="1700000200.000150"))
    bot.event(dm(QUESTION, ts="1700000200.000300"))
    [post] = bot.fake.wait_for("chat.postMessage")
    assert post.params["channel"] == "D0ASKER"
    assert "thread_ts" not in post.params or post.params["thread_ts"] is None
    assert_quotes_posted(post, answerer.ask(QUESTION))
    time.sleep(0.2)  # let any stray answer to the first two events arrive
    assert len(bot.fake.calls("chat.postMessage")) == 1


def test_mention_escapes_the_question_so_nothing_pings(bot: Bot) -> None:
    text = "&lt;b&gt; <!channel> <!here> <@U0OTHER> did Moscow deny asking Beijing for help?"
    bot.event(mention(text))
    [post] = bot.fake.wait_for("chat.postMessage")
    echoed = post.block_texts()[0]
    assert "&lt;b&gt;" in echoed  # the user's literal "<b>" shows as typed
    assert "@channel" in echoed and "@here" in echoed and "@U0OTHER" in echoed
    assert_cannot_ping([post])


def test_empty_mention_gets_a_hint_not_silence(bot: Bot) -> None:
    bot.event(mention(""))
    [note] = bot.fake.wait_for("chat.postEphemeral")
    assert note.params["user"] == USER and "ask a question" in note.text.lower()


# -- /ask, Share, feedback ----------------------------------------------------------------------


def test_ask_is_acknowledged_then_answered_privately_and_can_be_shared(bot: Bot, answerer) -> None:
    status, body, url = bot.command("/ask", QUESTION)
    assert status == 200 and body == ""  # the ack: empty, at once
    [reply] = bot.fake.wait_for("response_url")
    assert reply.path == "/" + url.split("/", 3)[3]
    assert reply.params["response_type"] == "ephemeral"
    expected = answerer.ask(QUESTION)
    assert_quotes_posted(reply, expected)
    share = next(b for b in reply.buttons() if b["action_id"] == ACTION_SHARE)
    assert len(share["value"]) <= 2000

    status, _, share_url = bot.click(share)
    assert status == 200
    calls = bot.fake.wait_for("response_url", 3)
    shared, deleted = [c for c in calls if c.path in share_url][:2]
    assert shared.params["response_type"] == "in_channel"
    assert shared.params["replace_original"] is False
    assert_quotes_posted(shared, expected)
    assert ACTION_SHARE not in [b["action_id"] for b in shared.buttons()]
    assert deleted.params == {"delete_original": True}


def test_blocks_a_response_url_rejects_are_sent_again_as_plain_text(bot: Bot) -> None:
    bot.fake.fail_next("response_url", status=400,
                       body={"ok": False, "error": "invalid_blocks"})
    bot.command("/ask", QUESTION)
    refused, plain = bot.fake.wait_for("response_url", 2)
    assert refused.params.get("blocks") and "blocks" not in plain.params
    assert plain.params["text"] == refused.params["text"] and plain.params["text"]


def test_a_share_slack_refuses_keeps_the_private_answer_and_says_so(bot: Bot) -> None:
    bot.command("/ask", QUESTION)
    [reply] = bot.fake.wait_for("response_url")
    share = next(b for b in reply.buttons() if b["action_id"] == ACTION_SHARE)
    bot.fake.fail_next("response_url", status=404,
                       body={"ok": False, "error": "expired_url"})
    _, _, share_url = bot.click(share)
    bot.fake.wait_for("response_url", 3)
    time.sleep(0.3)  # anything more would have come by now
    calls = [c for c in bot.fake.calls("response_url") if c.path in share_url]
    assert [c.params.get("response_type") for c in calls] == ["in_channel", "ephemeral"]
    assert "could not share" in calls[1].text
    assert not any(c.params.get("delete_original") for c in calls), "the answer stays"


def test_vote_is_recorded_with_question_quotes_and_user(bot: Bot, answerer) -> None:
    bot.command("/ask", QUESTION)
    [reply] = bot.fake.wait_for("response_url")
    down = next(b for b in reply.buttons() if b["action_id"] == ACTION_DOWN)
    status, _, _ = bot.click(down, user="U0VOTER")
    assert status == 200
    thanks = bot.fake.wait_for("response_url", 2)[1]
    assert "👎" in thanks.text and thanks.params["response_type"] == "ephemeral"
    [vote] = bot.feedback.votes()
    assert (vote.platform, vote.user_id, vote.vote, vote.question) == ("slack", "U0VOTER", -1,
                                                                        QUESTION)
    expected = answerer.ask(QUESTION)
    assert [q["text"] for q in vote.quotes] == [q.text for q in expected.quotes]
    assert bot.feedback.summary().down == 1


def test_twenty_identical_votes_count_once_and_the_latest_counts(bot: Bot, tmp_path) -> None:
    bot.command("/ask", QUESTION)
    [reply] = bot.fake.wait_for("response_url")
    down = next(b for b in reply.buttons() if b["action_id"] == ACTION_DOWN)
    up = next(b for b in reply.buttons() if b["action_id"] == ACTION_UP)
    for _ in range(20):
        assert bot.click(down, user="U0VOTER")[0] == 200
    bot.click(down, user="U0OTHER")  # another user's vote is their own
    texts = [r.text for r in bot.fake.wait_for("response_url", 22)[1:]]
    assert sum("was recorded" in t for t in texts) == 2  # once each user
    assert sum("already recorded" in t for t in texts) == 19
    summary = FeedbackStore(bot.feedback.path).summary()  # as persisted, not in memory
    assert (summary.total, summary.down) == (2, 2)
    bot.click(up, user="U0VOTER")
    assert "now 👍" in bot.fake.wait_for("response_url", 23)[-1].text
    summary = FeedbackStore(bot.feedback.path).summary()
    assert (summary.total, summary.up, summary.down) == (2, 1, 1)


def test_vote_after_a_restart_is_still_recorded_from_the_button(
        fake: FakeSlack, tmp_path: Path, answerer) -> None:
    first = start_bot(fake, tmp_path, answerer)
    first.command("/ask", QUESTION)
    [reply] = fake.wait_for("response_url")
    up = next(b for b in reply.buttons() if b["action_id"] == ACTION_UP)
    first.service.stop()

    second = start_bot(fake, tmp_path, answerer)  # fresh process memory, same database
    try:
        second.click(up)
        fake.wait_for("response_url", 2)
        [vote] = second.feedback.votes()
        assert vote.vote == 1 and vote.question == QUESTION
        expected = answerer.ask(QUESTION)
        assert [q["text"] for q in vote.quotes] == [q.text for q in expected.quotes]
    finally:
        second.service.stop()


# -- /sources and /reindex ---------------------------------------------------------------------


def test_sources_lists_every_article(bot: Bot, answerer) -> None:
    status, body, _ = bot.command("/sources", "")
    assert status == 200 and body == ""
    [reply] = bot.fake.wait_for("response_url")
    assert reply.params["response_type"] == "ephemeral"
    listing = "\n".join(reply.block_texts())
    sources = answerer.sources()
    assert sources
    for source in sources:
        article = source.article
        label = (article.title or article.path).replace("&", "&amp;").replace("<", "&lt;")
        assert " ".join(label.split()) in listing
        assert f"({source.passages} passages)" in listing
        if article.url:
            assert f"<{article.url}|" in listing


def test_reindex_is_refused_politely_to_non_admins(bot: Bot) -> None:
    status, body, url = bot.command("/reindex", "", user=USER)
    assert status == 200
    ack = json.loads(body)
    assert ack["response_type"] == "ephemeral"
    assert "only the dossier's admins" in ack["text"]
    # Nothing follows on the response_url: a later /sources reply is the only one.
    bot.command("/sources", "")
    [only] = bot.fake.wait_for("response_url")
    assert url.rsplit("/", 1)[1] not in only.path


def test_reindex_by_an_admin_rebuilds_and_reports(fake: FakeSlack, tmp_path: Path,
                                                  fresh_answerer, corpus_copy: Path) -> None:
    answerer, corpus = fresh_answerer, corpus_copy
    before = len(answerer.sources())
    extra = corpus / "900_added_by_test.txt"
    extra.write_text("Added for the reindex test\n\nThe tide gauge at Port Lincoln read "
                     "four metres on Tuesday, said the harbour master.\n", encoding="utf-8")
    bot = start_bot(fake, tmp_path, answerer, corpus_dir=corpus)
    try:
        status, body, url = bot.command("/reindex", "", user=ADMIN)
        assert status == 200 and "Rebuilding" in json.loads(body)["text"]
        [report] = fake.wait_for("response_url", timeout=120)
        assert report.path in url
        assert f"Index rebuilt: {before + 1} article(s)" in report.text
        bot.command("/sources", "")
        listing = "\n".join(fake.wait_for("response_url", 2)[1].block_texts())
        assert "Added for the reindex test" in listing
    finally:
        bot.service.stop()


def test_an_index_rebuilt_elsewhere_is_picked_up_without_restart(
        fake: FakeSlack, tmp_path: Path, fresh_answerer, corpus_copy: Path, embedder) -> None:
    from index.build import build_index

    bot = start_bot(fake, tmp_path, fresh_answerer, corpus_dir=corpus_copy)
    try:
        bot.event(mention(QUESTION, ts="1700000700.000100"))  # the old index is in service
        fake.wait_for("chat.postMessage")
        (corpus_copy / "901_harbour.txt").write_text(
            "Harbour report\n\nThe tide gauge at Port Lincoln read four metres on Tuesday, "
            "said the harbour master.\n", encoding="utf-8")
        # What `dossier-bot index build` does from another process, while the bot runs.
        build_index(corpus_copy, fresh_answerer.live.index_dir, embedder)
        bot.event(mention("What did the tide gauge at Port Lincoln read on Tuesday?"))
        post = fake.wait_for("chat.postMessage", 2)[1]
        assert "four metres" in quoted(post)
    finally:
        bot.service.stop()


# -- robustness --------------------------------------------------------------------------------


def test_bad_signature_gets_401_and_posts_nothing(bot: Bot) -> None:
    status, _ = bot.event(mention(QUESTION, ts="1700000400.000100"), secret="not-the-secret")
    assert status == 401
    status, _ = post_to_app(bot.url, "payload=%7B%7D", content_type=FORM, secret="wrong")
    assert status == 401
    # A correctly signed request afterwards is the only one answered.
    bot.event(mention(QUESTION, ts="1700000400.000200"))
    [post] = bot.fake.wait_for("chat.postMessage")
    assert post.params["thread_ts"] == "1700000400.000200"
    time.sleep(0.2)
    assert len(bot.fake.posts()) == 1


def test_stale_timestamp_is_refused(bot: Bot) -> None:
    body = json.dumps(event_body(mention(QUESTION)))
    headers = {"Content-Type": JSON, **sign(body, timestamp=int(time.time()) - 3600)}
    request = urllib.request.Request(bot.url, data=body.encode(), method="POST", headers=headers)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 401


def test_retried_event_posts_once(bot: Bot) -> None:
    event = mention(QUESTION, ts="1700000500.000100")
    assert bot.event(event, event_id="Ev0RETRY01")[0] == 200
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert bot.event(event, event_id="Ev0RETRY01", headers=retry)[0] == 200
    # The same message delivered again under a new event id is answered once too.
    assert bot.event(event, event_id="Ev0RETRY02")[0] == 200
    bot.event(mention(QUESTION, ts="1700000500.000900"))  # a distinct question, answered
    posts = bot.fake.wait_for("chat.postMessage", 2)
    time.sleep(0.3)
    threads = [c.params["thread_ts"] for c in bot.fake.calls("chat.postMessage")]
    assert sorted(threads) == ["1700000500.000100", "1700000500.000900"], posts


def test_rate_limited_post_is_retried_after_retry_after(bot: Bot, answerer) -> None:
    bot.fake.fail_next("chat.postMessage", status=429, headers={"Retry-After": "1"})
    bot.event(mention(QUESTION))
    attempts = bot.fake.wait_for("chat.postMessage", 2)
    assert attempts[0].params == attempts[1].params
    assert_quotes_posted(attempts[1], answerer.ask(QUESTION))


def test_rate_limited_response_url_is_retried(bot: Bot) -> None:
    bot.fake.fail_next("response_url", status=429, headers={"Retry-After": "1"})
    bot.command("/sources", "")
    first, second = bot.fake.wait_for("response_url", 2)
    assert first.params == second.params


def test_per_user_limit_answers_politely(fake: FakeSlack, tmp_path: Path, answerer) -> None:
    bot = start_bot(fake, tmp_path, answerer, rate_limit=1)
    try:
        bot.event(mention(QUESTION, ts="1700000600.000100"))
        fake.wait_for("chat.postMessage")
        bot.event(mention(QUESTION, ts="1700000600.000200"))
        [note] = fake.wait_for("chat.postEphemeral")
        assert note.params["user"] == USER
        assert "questions in the last minute" in note.text
        bot.event(mention(QUESTION, ts="1700000600.000300", user="U0SOMEONE"))
        assert len(fake.wait_for("chat.postMessage", 2)) == 2  # others are not limited
    finally:
        bot.service.stop()


def test_rejected_blocks_fall_back_to_plain_text(bot: Bot, answerer) -> None:
    bot.fake.fail_next("chat.postMessage", status=200,
                       body={"ok": False, "error": "invalid_blocks"})
    bot.event(mention(QUESTION))
    first, second = bot.fake.wait_for("chat.postMessage", 2)
    assert first.blocks and not second.blocks
    assert " ".join(answerer.ask(QUESTION).quotes[0].text.split())[:100] in second.text


def test_a_post_slack_refuses_becomes_a_short_message(bot: Bot) -> None:
    bot.fake.fail_next("chat.postMessage", status=200,
                       body={"ok": False, "error": "not_in_channel"})
    bot.event(mention(QUESTION))
    [note] = bot.fake.wait_for("chat.postEphemeral")
    assert "Slack would not take it" in note.text


def test_an_error_while_answering_reaches_the_user(bot: Bot, answerer, monkeypatch) -> None:
    def broken(question: str):
        raise RuntimeError("index file vanished")

    monkeypatch.setattr(answerer, "ask", broken)
    bot.command("/ask", QUESTION)
    [reply] = bot.fake.wait_for("response_url")
    assert "something went wrong" in reply.text
    assert "index file vanished" not in reply.text  # details stay in the log


def test_url_verification_challenge(bot: Bot) -> None:
    body = json.dumps({"token": "x", "challenge": "c-123", "type": "url_verification"})
    status, text = post_to_app(bot.url, body, content_type=JSON)
    assert status == 200 and "c-123" in text


# -- starting and stopping -----------------------------------------------------------------------


def test_missing_or_refused_tokens_are_named_in_one_line(fake: FakeSlack, tmp_path: Path,
                                                         answerer) -> None:
    base = slack_settings(fake.api_url, tmp_path)
    cases = {
        "SLACK_BOT_TOKEN": base.with_overrides(slack_bot_token=""),
        "SLACK_SIGNING_SECRET": base.with_overrides(slack_signing_secret=""),
    }
    for name, settings in cases.items():
        with pytest.raises(ConfigError) as err:
            slack_app.start(settings, answerer, http=True, port=0, host="127.0.0.1")
        assert name in str(err.value) and "\n" not in str(err.value)
    refused = base.with_overrides(slack_bot_token="xoxb-revoked-token")
    with pytest.raises(ConfigError) as err:
        slack_app.start(refused, answerer, http=True, port=0, host="127.0.0.1")
    assert "SLACK_BOT_TOKEN" in str(err.value) and "invalid_auth" in str(err.value)
    assert "xoxb-revoked-token" not in str(err.value)


def test_run_serves_until_stopped(fake: FakeSlack, tmp_path: Path, answerer) -> None:
    settings = slack_settings(fake.api_url, tmp_path)
    stop = threading.Event()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    thread = threading.Thread(target=slack_app.run, args=(settings, answerer),
                              kwargs={"http": True, "port": port, "stop": stop,
                                      "host": "127.0.0.1"})
    thread.start()
    url = f"http://127.0.0.1:{port}{slack_app.EVENTS_PATH}"
    deadline = time.monotonic() + 10
    while True:
        try:
            status, text = post_to_app(url, json.dumps(
                {"token": "x", "challenge": "up", "type": "url_verification"}), content_type=JSON)
            break
        except OSError:
            assert time.monotonic() < deadline, "the HTTP server never came up"
            time.sleep(0.05)
    assert status == 200 and "up" in text
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    with pytest.raises(OSError):
        post_to_app(url, "{}", content_type=JSON, timeout=2)


@pytest.mark.parametrize("message_first", [True, False], ids=["message first", "mention first"])
def test_a_channel_mention_is_answered_once_whichever_of_its_two_events_comes_first(
        bot: Bot, message_first: bool) -> None:
    # With message.channels subscribed, Slack sends a channel mention as app_mention and as
    # message, in no set order: the message copy must not swallow the mention.
    ts = "1700000600.000100"
    as_mention = mention(QUESTION, ts=ts)
    as_message = {**as_mention, "type": "message", "channel_type": "channel"}
    first, second = (as_message, as_mention) if message_first else (as_mention, as_message)
    assert bot.event(first, event_id="Ev0TWO0001")[0] == 200
    assert bot.event(second, event_id="Ev0TWO0002")[0] == 200
    [post] = bot.fake.wait_for("chat.postMessage", 1)
    time.sleep(0.5)
    assert len(bot.fake.calls("chat.postMessage")) == 1 and post.params["thread_ts"] == ts


@pytest.mark.parametrize("mention_first", [True, False], ids=["mention first", "message first"])
def test_a_dm_mention_is_answered_once_even_outside_dossier_channels(
        fake: FakeSlack, tmp_path, answerer, mention_first: bool) -> None:
    # DMs are always answered; DOSSIER_CHANNELS limits channels only. The app_mention copy
    # of a DM is left to message.im, so a limited channel list cannot lose it.
    ts = "1700000700.000100"
    as_dm = dm(f"<@{BOT_USER_ID}> {QUESTION}", ts=ts)
    as_mention = mention(QUESTION, ts=ts, channel="D0ASKER")
    limited = start_bot(fake, tmp_path, answerer, channels=frozenset({"C0OTHER"}))
    try:
        first, second = (as_mention, as_dm) if mention_first else (as_dm, as_mention)
        limited.event(first, event_id="Ev0DM00001")
        limited.event(second, event_id="Ev0DM00002")
        limited.fake.wait_for("chat.postMessage", 1)
        time.sleep(0.5)
        assert len(limited.fake.calls("chat.postMessage")) == 1
    finally:
        limited.service.stop()
