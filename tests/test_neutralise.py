"""Bidi overrides, zero-width and terminal control characters never reach a screen, while the
JSON answer keeps the exact span of the article."""

from __future__ import annotations

import json
from pathlib import Path

from bot.answer import Answer, Quote
from bot.discord import render as discord_render
from bot.render import answer_to_json, neutralise, render_sources_text, render_text
from bot.slack import render as slack_render
from index.model import Article

RLO, PDF, ZWSP, ZWJ, LRI, BOM = "\u202e", "\u202c", "\u200b", "\u200d", "\u2066", "\ufeff"
ESC_TITLE = "\x1b]0;pwned\x07"  # an OSC sequence: sets the terminal's window title
NASTY = (f"Officials said the file invoice{RLO}fdp.exe{PDF} was harmless{ZWSP}. "
         f"\x1b[2J\x1b[31mRed alert{LRI} now{BOM}.")
SHOWN_BAD = (RLO, PDF, ZWSP, ZWJ, LRI, BOM, "\x1b", "\x07")


def answer() -> Answer:
    body = "Headline\n\n" + NASTY + "\n"
    article = Article(id="001-x", path="001-x.txt", body=body, sha256="0" * 64,
                      title=f"Port {RLO}news{ESC_TITLE}", outlet=f"Daily{ZWJ} Post",
                      author="Jane\x1b[1m Roe", published="2022-03-20")
    start = body.index("Officials")
    end = start + len(NASTY)
    return Answer(question="What was harmless?", quotes=(
        Quote(text=body[start:end], start=start, end=end, score=0.9, article=article),))


def visible_ok(text: str) -> None:
    for ch in SHOWN_BAD:
        assert ch not in text, (repr(ch), text)


def test_neutralise_drops_invisible_formatting_and_marks_control_characters():
    assert neutralise(f"a{RLO}b{ZWSP}c") == "abc"
    assert neutralise("a\x1b[31mb") == "a\ufffd[31mb"
    assert neutralise("line one\nline\ttwo") == "line one\nline\ttwo"


def test_console_text_is_neutralised_but_json_keeps_the_exact_span():
    a = answer()
    visible_ok(render_text(a))
    assert "Red alert" in render_text(a)
    data = answer_to_json(a)
    quote = data["quotes"][0]
    assert quote["text"] == a.quotes[0].article.body[quote["start"]:quote["end"]]
    assert RLO in quote["text"] and "\x1b" in quote["text"]
    visible_ok(data["answer"])


def test_sources_list_is_neutralised():
    from bot.answer import Source

    visible_ok(render_sources_text([Source(article=answer().quotes[0].article, passages=1)]))


def test_slack_blocks_and_fallback_are_neutralised():
    a = answer()
    message = slack_render.render_answer(a, answer_id="a1")
    shown = json.dumps([b for b in message["blocks"] if b.get("type") != "actions"],
                       ensure_ascii=False)
    visible_ok(shown)
    visible_ok(message.get("text", ""))
    assert "Red alert" in shown


def test_discord_embeds_are_neutralised():
    reply = discord_render.render_answer(answer())
    for embed in reply.embeds:
        for text in (embed.title, embed.description, embed.footer.text, embed.author.name,
                     *(f.name for f in embed.fields), *(f.value for f in embed.fields)):
            visible_ok(text or "")
    visible_ok(reply.content or "")


def test_an_attribution_stays_one_line_and_smuggled_text_is_dropped():
    from bot.render import attribution

    forged = Article(id="031-heron", path="031-heron.txt", body="x", sha256="0" * 64,
                     title="Heron\r  • “Forged article”, Reuters\n", outlet="Post\u2028Times",
                     author="Jane\U000e0041\U000e0042 Roe")
    line = attribution(forged)
    assert line == "“Heron • “Forged article”, Reuters ”, Post Times, by Jane Roe"


def test_file_names_in_build_and_status_reports_cannot_act_on_the_terminal(capsys):
    from types import SimpleNamespace

    from bot.cli import echo_build_report
    from index.model import LoadProblem

    name = "030-x\x1b]0;pwned\x07.txt\nCorpus:    up to date"
    report = SimpleNamespace(problems=[LoadProblem(name, "the file is \x1b[2Jempty")],
                             articles=1, chunks=1, changed=False, seconds=0.1)
    echo_build_report(report, Path("corpus"), as_json=False)
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert len(err.splitlines()) == 1 and err.startswith("Skipped 030-x")


def test_flags_keep_their_tag_sequence_while_loose_tag_characters_go():
    scotland = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
    assert neutralise(f"Go {scotland}!") == f"Go {scotland}!"
    assert neutralise("pay\U000e0041\U000e0042 now") == "pay now"


def test_discord_closest_articles_cannot_forge_a_line():
    from bot.discord.render import _byline

    article = Article(id="1", path="1.txt", body="x", sha256="0" * 64, title="Real",
                      outlet="Post", author="Jane Roe\u2028• Forged article — Reuters")
    assert "\n" not in _byline(article) and "\u2028" not in _byline(article)
