"""Who is speaking in a sentence of news copy, and where the article introduced them.

News copy introduces a person once ("said Michael Raska, assistant professor at ...") and
then quotes them as "Dr Raska adds" or "he says", often paragraphs later. A question asks
about "the Singapore professor": the words that match it are in the introduction, not in
the sentence that answers. Rules here are about English news syntax, not about any story.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

REACH = 8  # sentences back that "he says" looks for the speaker's name
_SPEECH = (r"(?:says|said|adds|added|told|tells|explained|explains|noted|notes|argued|argues"
           r"|warned|warns|wrote|writes|concludes|concluded)")
_PRONOUN = re.compile(rf"\b(?:he|she) {_SPEECH}\b|\b{_SPEECH} (?:he|she)\b")
_CAP = r"[A-Z][a-z]+"
# "said Michael Raska", "Dr Raska adds", "Sun says", "according to Brian Hart",
# "“...,” Sun Yun, director of the China Program, tells U.S. News".
_NAMED = re.compile(
    rf"\b{_SPEECH},? (?:(?:Dr|Mr|Ms|Mrs|Prof)\.? )?(?:{_CAP} )*(?P<a>{_CAP})\b"
    rf"|\b(?P<b>{_CAP}),? {_SPEECH}\b"
    rf"|\baccording to (?:{_CAP} )*(?P<c>{_CAP})\b"
    rf"|[”\"],? (?:{_CAP} )+?(?P<d>{_CAP}), [^”“\"]*?\b{_SPEECH}\b")
# Capitalised words that start a sentence or a clause rather than name anyone.
_NOT_NAMES = frozenset({"The", "This", "That", "It", "He", "She", "They", "We", "I", "But",
                        "And", "In", "On", "Monday", "Tuesday", "Wednesday", "Thursday",
                        "Friday", "Saturday", "Sunday"})


def paragraph(body: str, spans: list[tuple[int, int]], i: int) -> tuple[int, int]:
    """First and last sentence of the paragraph (text between line breaks) holding ``i``."""
    def joined(j: int) -> bool:
        return "\n" not in body[spans[j][1]:spans[j + 1][0]]

    first = last = i
    while first > 0 and joined(first - 1):
        first -= 1
    while last + 1 < len(spans) and joined(last):
        last += 1
    return first, last


def _surname(text: str, body: str) -> str | None:
    """The first name in ``text`` that something is attributed to, if it names a person (or a
    body such as "Reuters"), not a place ("Beijing says") or an institution ("the West")."""
    pos = 0
    while (m := _NAMED.search(text, pos)) is not None:
        group = next(g for g in "abcd" if m.group(g))
        name = m.group(group)
        if name not in _NOT_NAMES and name not in _places(body) \
                and not _after_the(text, m.start(group)):
            return name
        pos = m.start(group) + 1  # "the West, says Brian Hart": look on for "says Brian Hart"
    return None


def _after_the(text: str, at: int) -> bool:
    """"The Washington Post said", "the West, says": a name after "the" is no person's."""
    before = text[:at].split()
    while before and before[-1] != "The" and before[-1][:1].isupper() and before[-1].isalpha():
        before.pop()  # the rest of the name: "Washington" of "Washington Post"
    return bool(before) and before[-1].lower() == "the"


@lru_cache(maxsize=64)
def _places(body: str) -> frozenset[str]:
    """Names the article uses as places: "in Beijing", "from Moscow", "across Ukraine"."""
    return frozenset(re.findall(rf"\b(?:in|from|into|across|inside|throughout|outside|near|"
                                rf"visit|visited|visits) ({_CAP})\b", body))


@dataclass(frozen=True)
class Speaker:
    name: str  # as the paragraph names them: a surname, usually
    introduced: int  # the sentence that first gives their full name (or, lacking one, names them)
    # Sentences before the paragraph that say who speaks in it: the introduction and, for
    # "he says", the sentence that last named them.
    rows: tuple[int, ...]
    # Every sentence that says who they are: ``rows``, the introduction, and the sentences of
    # the paragraph that name them.
    described: tuple[int, ...]


def speaker(body: str, spans: list[tuple[int, int]], i: int) -> Speaker | None:
    """Who speaks in sentence ``i``'s paragraph, if anyone is named as speaking there."""
    first, last = paragraph(body, spans, i)
    text = body[spans[first][0]:spans[last][1]]
    found: list[int] = []
    name = _surname(text, body)
    named_at = first
    if name is None and _PRONOUN.search(text):
        for j in range(first - 1, max(-1, first - 1 - REACH), -1):
            name = _surname(body[spans[j][0]:spans[j][1]], body)
            if name is not None:
                found.append(j)
                named_at = j
                break
    if name is None:
        return None
    full = re.compile(rf"(?:\b{_CAP} )+{re.escape(name)}\b|\b{re.escape(name)}(?: {_CAP})+")
    # The same person is quoted as "Sun Yun, director ..." and later as "Sun says": the
    # sentence that first gives the full name identifies them in either.
    introduced = next((j for j in range(last + 1)
                       if full.search(body[spans[j][0]:spans[j][1]])), named_at)
    if introduced < first:
        found.append(introduced)
    named = [j for j in range(first, last + 1) if name in body[spans[j][0]:spans[j][1]]]
    return Speaker(name, introduced, tuple(sorted(set(found))),
                   tuple(sorted({*found, introduced, *named})))
