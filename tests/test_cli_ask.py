"""The command line on the real index: ask (text, --json, stdin), chat, sources, eval."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import CORPUS, DEV_SET

import bot.runtime
from bot.cli import main
from bot.config import Settings
from bot.console import handle, run_console
from index.chunk import ChunkParams


@pytest.fixture
def cli(monkeypatch, embedder, built_index, tmp_path):
    """Run commands in-process on the session index, with the session's model."""
    monkeypatch.setattr(bot.runtime, "load_embedder", lambda *_a, **_k: embedder)
    monkeypatch.setenv("DOSSIER_INDEX_DIR", str(built_index))
    monkeypatch.setenv("DOSSIER_CORPUS_DIR", str(CORPUS))  # the corpus that index holds
    monkeypatch.chdir(tmp_path)  # no .env or corpus/ of the developer's leaks in
    runner = CliRunner()

    def invoke(*args: str, stdin: str | bytes | None = None):
        return runner.invoke(main, list(args), input=stdin, catch_exceptions=False)

    return invoke


def test_ask_prints_quotes_with_their_source(cli):
    result = cli("ask", "Where does Alexander Korolev teach?")
    assert result.exit_code == 0
    assert "University of New South Wales" in result.output
    assert result.output.startswith("[1] ")


def test_ask_json_is_one_object(cli):
    result = cli("ask", "--json", "Which state-sponsored outlet circulated Hu Xijin's video?")
    data = json.loads(result.output)
    assert data["answered"] and "Global Times" in data["quotes"][0]["text"]


def test_ask_json_stdin_answers_every_line_in_order(cli):
    questions = ["Where does Alexander Korolev teach?", "", "Tell me a joke about cats.",
                 "How much are Russian natural gas exports to China expected to grow?"]
    result = cli("ask", "--json", "-", stdin="\n".join(questions) + "\n")
    lines = result.output.splitlines()
    assert len(lines) == len(questions)
    objects = [json.loads(line) for line in lines]
    assert [o["question"] for o in objects] == questions
    assert [o["answered"] for o in objects] == [True, False, False, True]


def test_sources_lists_the_five_articles(cli):
    result = cli("sources", "--json")
    items = json.loads(result.output)
    assert [i["id"][:3] for i in items] == ["000", "001", "002", "003", "004"]
    assert all(i["passages"] > 0 for i in items)


def test_eval_prints_the_three_figures(cli):
    result = cli("eval", str(DEV_SET))
    assert result.exit_code == 0
    for word in ("strict:", "lenient:", "refusal:", "length:"):
        assert word in result.output
    data = json.loads(cli("eval", "--json", str(DEV_SET)).output)
    assert data["answerable"] == 34 and data["off_topic"] == 6
    assert data["off_topic_declined"] == 6
    # A reply holds its first quote; on average it stays within three windows at their cap.
    assert 0 < data["first_quote_words"] <= data["reply_words"] <= 3 * ChunkParams().max_words


def test_eval_rejects_a_malformed_file_in_one_line(cli, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": "fine", "doc": null, "phrase": null}\nnot json\n')
    result = CliRunner().invoke(main, ["eval", str(bad)])
    assert result.exit_code == 2  # bad input, as the README's exit table says
    assert "bad.jsonl:2" in result.output


@pytest.mark.parametrize(("content", "reason"), [
    (b'{"q": "Who?", "doc": 10, "phrase": "x"}\n', '"doc" must name an article'),
    (b'{"q": "Who?", "doc": "", "phrase": "x"}\n', '"doc" must name an article'),
    (b'{"q": "Who?", "doc": "001", "phrase": 5}\n', '"phrase" must be the words'),
    (b'{"q": ["Who?"], "doc": null}\n', '"q" must be a string'),
    (b'{"turns": [{"q": "Who?", "doc": "001", "phrase": ["x"]}]}\n', '"phrase" must be'),
    (b"[1, 2]\n", "not an object"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8 text"),
    (b"\n\n", "no questions in it"),
], ids=["doc-int", "doc-empty", "phrase-int", "q-list", "turn-phrase", "array", "binary",
        "empty"])
def test_eval_refuses_badly_typed_lines_before_the_model_loads(tmp_path, monkeypatch,
                                                               content, reason):
    import bot.runtime

    monkeypatch.setattr(bot.runtime, "make_answerer", lambda *_a: pytest.fail("model loaded"))
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    result = CliRunner().invoke(main, ["eval", str(bad)])
    assert result.exit_code == 2, result.output
    assert reason in result.output and "Traceback" not in result.output


def test_eval_reads_what_json_allows_and_names_a_doc_no_article_has(cli, tmp_path):
    sample = tmp_path / "sample.jsonl"
    good = {"q": "Which program does Michael Raska coordinate?", "doc": "000",
            "phrase": "Military Transformation Program"}
    # A BOM, and U+2028 inside a string (legal JSON, written by ensure_ascii=False).
    sample.write_bytes(b"\xef\xbb\xbf" + json.dumps({**good, "note": "a\u2028b"},
                                                     ensure_ascii=False).encode() + b"\n")
    assert json.loads(cli("eval", "--json", str(sample)).output)["answerable"] == 1
    # "00" is the start of no file name as a whole number ("000-…" starts "000").
    sample.write_text(json.dumps({**good, "doc": "00"}) + "\n" + json.dumps(
        {**good, "doc": "999-nope"}) + "\n")
    result = cli("eval", str(sample))
    assert result.exit_code == 2
    assert '"doc" names no article of the corpus: 00, 999-nope' in result.output


def test_console_commands(answerer, built_index):
    settings = Settings(index_dir=built_index)
    assert handle("/quit", answerer, settings) is None
    assert "/sources" in handle("/help", answerer, settings)
    assert "Impakter" in handle("/sources", answerer, settings)
    assert "Unknown command" in handle("/frobnicate", answerer, settings)
    reply = handle("Which program does Michael Raska coordinate?", answerer, settings)
    assert "Military Transformation Program" in " ".join(reply.replace("│", " ").split())


def test_console_session_reads_lines_until_quit(answerer, built_index):
    out: list[str] = []
    run_console(answerer, Settings(index_dir=built_index),
                lines=iter(["", "Who wrote the Impakter piece?", "/quit", "never asked"]),
                write=out.append)
    text = " ".join("\n".join(out).replace("│", " ").split())
    assert "5 article(s) loaded" in text
    assert "Claude Forthomme" in text
    assert "never asked" not in text


def test_console_chat_reads_follow_ups_in_context(answerer, built_index):
    out: list[str] = []
    run_console(answerer, Settings(index_dir=built_index),
                lines=iter(["/more", "What did Jake Sullivan say?", "what did he say next?",
                            "/more", "/new", "what did he say next?", "/more", "/quit"]),
                write=out.append)
    replies = [r for r in out if r and "article(s) loaded" not in r]
    early, first, follow, more, new, lost, nothing = replies
    assert "nothing to continue" in early.lower() and "nothing to continue" in nothing.lower()
    assert "Sullivan" in first
    assert follow.startswith("(read as: What did Jake Sullivan say?)")
    assert more.startswith("(read as: What did Jake Sullivan say?)") or "No more quotes" in more
    assert new.startswith("New conversation")
    assert "nothing to continue" in lost.lower()


def test_ask_json_stdin_refuses_a_json_line_without_a_question(cli):
    lines = ['{"q": "Did Russia ask China for military aid?"}',
             '["Did Russia ask China for military aid?", "Who wrote it?"]',
             '{"question": "Did Russia ask China for military aid?", "conversation": "c1"}',
             '{"question": "more", "conversation": "c1"}',
             "[Urgent] Did Russia ask China for military aid?"]
    result = cli("ask", "--json", "-", stdin="\n".join(lines) + "\n")
    bad, array, good, more, plain = (json.loads(x) for x in result.stdout.splitlines())
    for refused in (bad, array):
        assert refused["answered"] is False and '"question" string' in refused["reason"]
        assert refused["quotes"] == []
    assert plain["answered"] is True  # brackets that are not JSON: a plain question
    assert good["answered"] is True and good["confidence"] == "high"
    # Further quotes on an answered question carry its confidence, not null.
    assert more["quotes"] and more["confidence"] == "high"


def test_undecodable_bytes_in_a_question_are_searched_around_not_a_crash(cli):
    # Bytes that are not UTF-8 (a Latin-1 terminal), and a JSON line naming a lone surrogate,
    # which is what Python makes of such bytes.
    lines = [b"Did Russia ask China for military aid? caf\xe9",
             b'{"question": "Did Russia ask \\udcff China for military aid?"}',
             b"Who wrote the Impakter piece?"]
    result = cli("ask", "--json", "-", stdin=b"\n".join(lines) + b"\n")
    answers = [json.loads(x) for x in result.stdout.splitlines()]
    assert [a["answered"] for a in answers] == [True, True, True]


def test_json_answers_stay_one_line_whatever_the_article_holds(tmp_path):
    from bot.cli import json_line

    text = "a line\u2028separator, a \x9b[2J CSI, an \u202e override"
    line = json_line({"text": text})
    assert len(line.splitlines()) == 1
    assert "\u2028" not in line and "\x9b" not in line and "\u202e" not in line
    assert json.loads(line) == {"text": text}  # the exact text, read back


def test_eval_scores_a_question_on_an_article_the_build_skipped_as_a_miss(cli, tmp_path):
    dossier = tmp_path / "story"
    (dossier / "corpus").mkdir(parents=True)
    (dossier / "corpus" / "001-keepers.txt").write_text(
        "Keepers vote to unionise\n\nThe lighthouse keepers of Skerryvore voted on Tuesday to "
        "form a union, the first in the history of the Northern Lighthouse Board.\n")
    (dossier / "corpus" / "002-menu.html").write_text(  # in the folder, never indexed
        "<html><body><nav><a href='/'>Home</a></nav></body></html>")
    (dossier / "questions.jsonl").write_text("\n".join(json.dumps(q) for q in (
        {"q": "What did the Skerryvore keepers vote for?", "doc": "001", "phrase": "union"},
        {"q": "What is on the menu page?", "doc": "002", "phrase": "Home"})) + "\n")
    result = cli("eval", "--json", str(dossier))
    assert result.exit_code == 0, result.output
    total = json.loads(result.stdout)["total"]
    assert (total["answerable"], total["strict"]) == (2, 1)
    assert "skipped 002-menu.html" in result.stderr
    # Every reply quotes the body's one sentence, 22 words (the headline is not a quote).
    assert total["first_quote_words"] == total["reply_words"] == 22
    table = cli("eval", str(dossier)).stdout
    assert "words/reply" in table and table.splitlines()[2].rstrip().endswith(" 22")


def test_eval_tells_the_unsure_replies_among_those_declined():
    # The low band counts as declined (no answer is claimed) but shows the closest passages:
    # the figures say how many of the declined were shown them.
    from bot.answer import Answer, Quote
    from bot.evaluate import Case, EvalReport, Outcome, SuiteReport, render_report, render_suite
    from index.model import Article

    body = "The keepers voted to form a union on Tuesday."
    article = Article(id="001-keepers", path="001-keepers.txt", body=body, sha256="0" * 64)
    quote = (Quote(text=body, start=0, end=len(body), score=0.2, article=article),)
    on, off = Case("What did they vote for?", "001", "union"), Case("Capital of Peru?", None, None)
    report = EvalReport([
        Outcome(on, Answer(question=on.q, quotes=quote, confidence="high")),
        Outcome(on, Answer(question=on.q, quotes=quote, confidence="low")),
        Outcome(off, Answer(question=off.q, quotes=quote, confidence="low")),
        Outcome(off, Answer(question=off.q, reason="not covered")),
        Outcome(off, Answer(question=off.q, reason="not covered"))])
    d = report.as_dict()
    assert (d["strict"], d["answerable_declined"], d["answerable_unsure"]) == (1, 1, 1)
    assert (d["off_topic_declined"], d["off_topic_unsure"]) == (3, 1)
    assert "off-topic 1, answerable 1" in render_report(report, 0.1)
    table = render_suite(SuiteReport({"keepers": report}), 0.1)
    assert "shown the closest passages as unsure: off-topic 1/3, answerable 1/1" in table
