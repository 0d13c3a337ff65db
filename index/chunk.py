"""Split indexable spans into sentences (pysbd) and group them into passages for embedding."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from index.clean import Span, indexable_spans
from index.model import Article, Passage, Sentence

_SPACE = re.compile(r"\s")
# pysbd splits after an abbreviation at the end of a clause ("Washington, D.C., demurred");
# a piece that starts in lower case or with a comma continues the sentence before it.
_CONTINUATION = re.compile(r"^[,;:)\]”’a-z]")


@dataclass(frozen=True)
class ChunkParams:
    """How passages are cut; stored in the manifest so a change forces a rebuild."""

    max_sentences: int = 3
    max_words: int = 120

    def as_dict(self) -> dict[str, int]:
        return {"max_sentences": self.max_sentences, "max_words": self.max_words}


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False, char_span=True)


def split_sentences(article: Article, spans: list[Span] | None = None) -> list[Sentence]:
    body = article.body
    out: list[Sentence] = []
    for span in indexable_spans(body) if spans is None else spans:
        pieces = _split_span(body, span.start, span.end)
        for start, end in pieces:
            if out and out[-1].block == span.block and _CONTINUATION.match(body[start:end]):
                prev = out.pop()
                start = prev.start
            out.append(Sentence(article.id, start, end, span.block))
    return out


def _split_span(body: str, start: int, end: int) -> list[tuple[int, int]]:
    text = body[start:end]
    pieces: list[tuple[int, int]] = []
    cursor = 0
    for seg in _segmenter().segment(text):
        # pysbd's char spans drift on some inputs; re-anchor each sentence by searching for it.
        sent = seg.sent.strip()
        if not sent:
            continue
        pos = text.find(sent, cursor)
        if pos < 0:
            continue
        pieces.append((start + pos, start + pos + len(sent)))
        cursor = pos + len(sent)
    if not pieces:
        return [(start, end)]
    # Anything pysbd skipped (rare) is attached to the sentence before it, so no text is lost.
    fixed: list[tuple[int, int]] = []
    for i, (s, e) in enumerate(pieces):
        nxt = pieces[i + 1][0] if i + 1 < len(pieces) else end
        gap = body[e:nxt]
        if gap.strip():
            e = nxt
            while e > s and body[e - 1].isspace():
                e -= 1
        fixed.append((s if i else start, e))
    return fixed


def make_passages(article: Article, sentences: list[Sentence],
                  params: ChunkParams | None = None) -> list[Passage]:
    """One window per sentence: the sentence with its neighbours in the same block.

    Centring a window on every sentence means the passage that best matches a question is
    built around its evidence rather than wherever a fixed grid happened to cut.
    """
    params = params or ChunkParams()
    body = article.body
    passages: list[Passage] = []
    reach = max(0, (params.max_sentences - 1) // 2)
    for i, centre in enumerate(sentences):
        lo = hi = i
        words = _words(body, centre)
        for _ in range(reach):
            for j in (lo - 1, hi + 1):
                if not 0 <= j < len(sentences) or sentences[j].block != centre.block:
                    continue
                more = _words(body, sentences[j])
                if words + more > params.max_words:
                    continue
                words += more
                lo, hi = min(lo, j), max(hi, j)
        first, last = sentences[lo], sentences[hi]
        passages.append(Passage(article.id, first.start, last.end, body[first.start:last.end],
                                lo, hi - lo + 1, i))
    return passages


def _words(body: str, sentence: Sentence) -> int:
    return len(body[sentence.start:sentence.end].split())
