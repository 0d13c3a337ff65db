"""Who is speaking in a sentence of news copy, and where the article introduced them.

News copy introduces a person once ("said Michael Raska, assistant professor at ...") and
then quotes them as "Dr Raska adds" or "he says", often paragraphs later. A question asks
about "the Singapore professor": the words that match it are in the introduction, not in
the sentence that answers. Rules here are about English news syntax, not about any story.
"""

from __future__ import annotations

import re

REACH = 8  # sentences back that "he says" looks for the speaker's name
_SPEECH = (r"(?:says|said|adds|added|told|tells|explained|explains|noted|notes|argued|argues"
           r"|warned|warns|wrote|writes|concludes|concluded)")
_PRONOUN = re.compile(rf"\b(?:he|she) {_SPEECH}\b|\b{_SPEECH} (?:he|she)\b")
_CAP = r"[A-Z][a-z]+"
# "said Michael Raska", "Dr Raska adds", "Sun says", "according to Brian Hart".
_NAMED = re.compile(
    rf"\b{_SPEECH},? (?:(?:Dr|Mr|Ms|Mrs|Prof)\.? )?(?:{_CAP} )*(?P<a>{_CAP})\b"
    rf"|\b(?P<b>{_CAP}),? {_SPEECH}\b"
    rf"|\baccording to (?:{_CAP} )*(?P<c>{_CAP})\b")
_NOT_NAMES = frozenset({"The", "This", "That", "It", "He", "She", "They", "We", "I", "But",
                        "And", "In", "On", "China", "Russia", "Beijing", "Moscow", "Washington",
                        "Ukraine", "Kyiv", "Reuters", "Monday", "Tuesday", "Wednesday",
                        "Thursday", "Friday", "Saturday", "Sunday"})


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


def _surname(text: str) -> str | None:
    for m in _NAMED.finditer(text):
        name = m.group("a") or m.group("b") or m.group("c")
        if name and name not in _NOT_NAMES:
            return name
    return None


def speaker_sentences(body: str, spans: list[tuple[int, int]], i: int) -> tuple[int, ...]:
    """Sentences before ``i``'s paragraph that say who speaks in it: the sentence that
    introduced the speaker and, for "he says", the one that last named them."""
    first, last = paragraph(body, spans, i)
    text = body[spans[first][0]:spans[last][1]]
    found: list[int] = []
    name = _surname(text)
    if name is None and _PRONOUN.search(text):
        for j in range(first - 1, max(-1, first - 1 - REACH), -1):
            name = _surname(body[spans[j][0]:spans[j][1]])
            if name is not None:
                found.append(j)
                break
    if name is None:
        return ()
    full = re.compile(rf"(?:\b{_CAP} )+{re.escape(name)}\b|\b{re.escape(name)}(?: {_CAP})+")
    for j in range(first):
        if full.search(body[spans[j][0]:spans[j][1]]):
            found.append(j)
            break
    return tuple(sorted(set(found)))
