"""Answers on the real dossier: verbatim quotes, attribution, declining, and bad questions."""

from __future__ import annotations

import json

import pytest
from conftest import CORPUS, DEV_SET

from bot.answer import MAX_QUESTION_CHARS, Answer
from bot.render import answer_to_json, attribution, render_text
from index.load import load_article

DEV = [json.loads(line) for line in DEV_SET.read_text().splitlines() if line.strip()]
ANSWERABLE = [c for c in DEV if c["doc"] is not None]
OFF_TOPIC = [c for c in DEV if c["doc"] is None]


@pytest.fixture(scope="module")
def dev_answers(answerer) -> list[tuple[dict, Answer]]:
    return [(case, answerer.ask(case["q"])) for case in DEV]


@pytest.fixture(scope="module")
def corpus_bodies() -> dict[str, str]:
    """Bodies read straight from the corpus files, independently of the index."""
    return {p.stem: load_article(p).body for p in CORPUS.iterdir() if p.suffix == ".md"}


def test_every_quote_on_the_dev_set_is_the_exact_span_of_its_article(dev_answers,
                                                                      corpus_bodies):
    quotes = [q for _, a in dev_answers for q in a.quotes]
    assert len(quotes) >= len(ANSWERABLE)
    for q in quotes:
        body = corpus_bodies[q.article.id]
        assert body[q.start:q.end] == q.text
        assert q.text == q.text.strip() and q.text


def test_quotes_never_come_from_page_furniture(dev_answers):
    furniture = ("Sydney\n", "Privacy Policy", "Related Posts", "Recent News", "Klimado",
                 "Comments are closed", "Content is protected", "pic.twitter.com", "click here")
    for _, answer in dev_answers:
        for q in answer.quotes:
            assert not any(f in q.text for f in furniture), q.text


def test_off_topic_questions_are_declined_and_name_the_closest_articles(dev_answers):
    declined = [(c, a) for c, a in dev_answers if c["doc"] is None]
    assert len(declined) == len(OFF_TOPIC) > 0
    for _, answer in declined:
        assert not answer.answered and not answer.quotes
        assert "does not cover" in answer.reason
        assert answer.closest  # shown to the reader as the nearest articles
    text = render_text(declined[0][1])
    assert "does not cover" in text and "Closest articles" in text


def test_answerable_questions_are_answered_with_the_expected_article_mostly_first(dev_answers):
    """A regression floor on the bundled development set, which the ranker is not fitted on
    (measured 26/34 strict, 30/34 lenient; see `dossier-bot eval` and docs/ranking.md)."""
    answered = [(c, a) for c, a in dev_answers if c["doc"] is not None]
    assert sum(a.answered for _, a in answered) >= len(answered) - 1
    strict = sum(a.answered and a.quotes[0].article.id.startswith(c["doc"])
                 and c["phrase"] in a.quotes[0].text for c, a in answered)
    assert strict >= 22
    lenient = sum(a.answered and any(c["phrase"] in q.text for q in a.quotes)
                  for c, a in answered)
    assert lenient >= 26


def test_further_quotes_do_not_repeat_text(dev_answers):
    for _, answer in dev_answers:
        spans = [(q.article.id, q.start, q.end) for q in answer.quotes]
        for i, (a, s, e) in enumerate(spans):
            for b, s2, e2 in spans[i + 1:]:
                assert a != b or e <= s2 or e2 <= s


@pytest.mark.parametrize("question", [
    "Who won the 2022 FIFA World Cup?",  # shares only a year and "who" with the dossier
    # "president" is everywhere in it, "France" nowhere. Declined by the untuned model; the
    # tuned one (docs/ranking.md, "A tuned embedder") quotes "the President of Russia" with
    # high confidence. Kept as a known miss, not re-fitted for: one question is no yardstick.
    pytest.param("Who is the president of France?", marks=pytest.mark.xfail(
        strict=True, reason="near-topic: the tuned embedder's known miss")),
    "What did Elon Musk tweet in March 2022?",  # "March 2022" is on every page
    "How many goals did Messi score in 2022?",
    "When does the next iPhone come out?",  # a product name, mixed case, at any position
])
def test_questions_about_what_the_dossier_never_mentions_are_declined(answerer, question):
    # Declined as `eval` counts it: no answer, and at most the closest passages marked as
    # unsure (how often each happens over 1,284 such questions: `python -m bench.foreign`).
    answer = answerer.ask(question)
    assert not answer.answered
    if answer.quotes:
        assert answer.unsure and answer.confidence == "low"
    else:
        assert "does not cover" in answer.reason


@pytest.mark.parametrize("question", [
    "", "   \t\n ", "?" * 20, "🙂🙂🙂🔥", "\x00\x07\x1b[31m", "x" * 10_000,
])
def test_unusable_questions_get_a_clear_reason(answerer, question):
    answer = answerer.ask(question)
    assert not answer.answered
    assert answer.reason and len(answer.reason) < 200
    if len(question) > MAX_QUESTION_CHARS:
        assert "characters" in answer.reason


@pytest.mark.parametrize("question", [
    "¿Pidió Rusia ayuda militar a China?",
    "Россия просила Китай о военной помощи?",
    "Did \x1b[1mMoscow\x1b[0m deny asking Beijing for help?\x07",
])
def test_foreign_or_noisy_questions_are_answered_or_declined_without_error(answerer, question):
    answer = answerer.ask(question)
    assert answer.answered or answer.reason
    for q in answer.quotes:
        assert q.article.body[q.start:q.end] == q.text


def test_control_characters_do_not_change_the_answer(answerer):
    clean = answerer.ask("Did Moscow deny asking Beijing for help?")
    noisy = answerer.ask("Did \x1b[1mMoscow\x1b[0m deny asking\x07 Beijing for help?")
    assert [q.start for q in noisy.quotes] == [q.start for q in clean.quotes]


def test_json_rendering_follows_the_contract(answerer):
    data = answer_to_json(answerer.ask("Where does Alexander Korolev teach?"))
    # DESIGN.md's fields, and the one added since (issue 14: null when spelt right).
    assert set(data) == {"question", "answered", "reason", "quotes", "answer", "confidence",
                         "closest", "corrected_question"}
    assert data["corrected_question"] is None
    assert data["answered"] is True and data["reason"] is None
    assert data["confidence"] == "high" and data["closest"] == []
    quote = data["quotes"][0]
    assert set(quote) == {"text", "start", "end", "score", "article"}
    assert set(quote["article"]) == {"id", "title", "outlet", "author", "published", "url",
                                     "path"}
    assert "University of New South Wales" in data["answer"]
    declined = answer_to_json(answerer.ask("Who is the CEO of Tesla?"))
    assert declined["answered"] is False and declined["quotes"] == []
    assert declined["reason"] and declined["confidence"] is None
    assert declined["closest"] and set(declined["closest"][0]) == set(quote["article"])


def test_attribution_names_what_is_known_and_falls_back_to_the_file_name(answerer):
    by_id = {s.article.id[:3]: s.article for s in answerer.sources()}
    assert attribution(by_id["000"]) == ("“Ukraine War: Why Is Russia Asking China for Military "
                                         "Aid?”, Impakter, by Claude Forthomme, 2022-03-15")
    # An empty front-matter title: a readable form of the file name, not the file name.
    assert attribution(by_id["004"]) == "“Will china give russia military aid”"
