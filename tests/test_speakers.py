"""Finding who speaks in a sentence of news copy, and where the article introduced them."""

from __future__ import annotations

import re

from index.speakers import paragraph, speaker_sentences

BODY = (
    "Beijing will move slowly, said Michael Raska, assistant professor in Singapore.\n"
    "Officials in Washington disagree. The White House declined to comment.\n"
    "Instead of a snap decision, China will expand cooperation, Dr Raska adds.\n"
    "“We will see a gradual increase,” he says. “Russia needs high technologies.”\n"
    "Prices rose. Nobody is quoted here.\n"
)


def _spans(body: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"[^.”\n]+[.”]+”?", body)]


def _index(spans, body, text):
    return next(i for i, (a, b) in enumerate(spans) if text in body[a:b])


def test_a_paragraph_ends_at_a_line_break():
    spans = _spans(BODY)
    i = _index(spans, BODY, "White House")
    first, last = paragraph(BODY, spans, i)
    assert BODY[spans[first][0]:spans[last][1]] == (
        "Officials in Washington disagree. The White House declined to comment.")


def test_he_says_leads_back_to_the_last_naming_and_the_introduction():
    spans = _spans(BODY)
    i = _index(spans, BODY, "Russia needs high technologies")
    found = [BODY[spans[j][0]:spans[j][1]] for j in speaker_sentences(BODY, spans, i)]
    assert found[0].startswith("Beijing will move slowly, said Michael Raska")
    assert found[1].endswith("Dr Raska adds.")


def test_a_named_speaker_is_traced_to_the_introduction():
    spans = _spans(BODY)
    i = _index(spans, BODY, "Dr Raska adds")
    found = speaker_sentences(BODY, spans, i)
    assert [BODY[spans[j][0]:spans[j][1]][:24] for j in found] == ["Beijing will move slowly"]


def test_a_paragraph_without_attribution_has_no_speaker():
    spans = _spans(BODY)
    assert speaker_sentences(BODY, spans, _index(spans, BODY, "Prices rose")) == ()
    assert speaker_sentences(BODY, spans, _index(spans, BODY, "White House")) == ()
