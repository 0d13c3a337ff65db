"""Finding who speaks in a sentence of news copy, and where the article introduced them."""

from __future__ import annotations

import re

from index.speakers import paragraph, speaker

BODY = (
    "Beijing will move slowly, said Michael Raska, assistant professor in Singapore.\n"
    "Officials in Washington disagree. The White House declined to comment.\n"
    "Instead of a snap decision, China will expand cooperation, Dr Raska adds.\n"
    "“We will see a gradual increase,” he says. “Russia needs high technologies.”\n"
    "Prices rose. Nobody is quoted here.\n"
)


def _spans(body: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"[^.”\n]+[.”]+”?", body)]


def speaker_sentences(body, spans, i):
    """The sentences before ``i``'s paragraph that say who speaks in it (none: no speaker)."""
    found = speaker(body, spans, i)
    return found.rows if found else ()


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


APPOSITIVE = (
    "“To provide arms now is unthinkable,” Sun Yun, director of the China Program, "
    "tells U.S. News.\n"
    "Officials disagree.\n"
    "“China is in an uncomfortable position,” Sun says.\n"
)


def test_one_person_named_two_ways_is_one_speaker():
    """"Sun Yun, director ..., tells" and later "Sun says": the full name identifies both."""
    # One sentence per line ("U.S." and closing quotation marks would split ``_spans``).
    spans = [(m.start(), m.end()) for m in re.finditer(r"[^\n]+", APPOSITIVE)]
    first = speaker(APPOSITIVE, spans, _index(spans, APPOSITIVE, "unthinkable"))
    later = speaker(APPOSITIVE, spans, _index(spans, APPOSITIVE, "uncomfortable"))
    assert first is not None and later is not None
    assert first.introduced == later.introduced == 0
    assert later.rows == (0,) and first.rows == ()
    assert speaker(APPOSITIVE, spans, _index(spans, APPOSITIVE, "Officials")) is None


def test_the_speaker_of_he_says_is_the_one_last_named():
    spans = _spans(BODY)
    he = speaker(BODY, spans, _index(spans, BODY, "Russia needs high technologies"))
    named = speaker(BODY, spans, _index(spans, BODY, "Dr Raska adds"))
    assert he is not None and named is not None
    assert he.name == named.name == "Raska" and he.introduced == named.introduced == 0


def test_places_and_institutions_are_not_taken_for_speakers():
    body = ("Talks were held in Beijing on Monday.\n"
            "“Aid may come,” even at a cost from the West, says Brian Hart, a fellow.\n"
            "Beijing says it wants peace.\n"
            "The Washington Post said the news came from officials.\n")
    spans = [(m.start(), m.end()) for m in re.finditer(r"[^\n]+", body)]
    hart = speaker(body, spans, 1)
    assert hart is not None and hart.name == "Hart"
    assert speaker(body, spans, 2) is None  # "in Beijing": a place
    assert speaker(body, spans, 3) is None  # "The ... Post": an institution, not a person
