"""Split indexable spans into sentences (pysbd) and group them into passages for embedding."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from index.clean import CLEANING_VERSION, Span, indexable_spans
from index.load import search_title
from index.model import Article, Passage, Sentence
from index.text import TERMS_VERSION

# pysbd keeps a quotation together however many sentences it holds; news quotes run long, so
# quote marks are hidden from it (replaced by spaces of the same length, keeping offsets).
_QUOTE_MARKS = re.compile(r"[“”„«»\"]")
_OPENING = "“„«\"‘"
_CLOSING = "”»\"’"
# A piece that starts with a comma or closing bracket continues the sentence before it.
_CONTINUATION = re.compile(r"^[,;:)\]]")
SPLITTER_VERSION = 3  # bump when sentence boundaries would change
EMBEDDING_TEXT_VERSION = 2  # bump when embedding_text() changes


@dataclass(frozen=True)
class ChunkParams:
    """How passages are cut; stored in the manifest so a change forces a rebuild.

    A window is centred on its sentence, so ``max_sentences`` is odd. Five sentences (two
    either side) found the answer in the first quote for 69 more of 2,286 training questions
    than three, out of fold, and 4 more of 180 on the development dossiers, for quotes a
    little over half as long again (docs/ranking.md, "How long a quote is"); 160 words, about
    the usual recipe's 1,000-character chunk, caps a window of long sentences.
    """

    max_sentences: int = 5
    max_words: int = 160

    def __post_init__(self) -> None:
        if self.max_sentences < 1 or self.max_sentences % 2 == 0:
            raise ValueError(f"max_sentences must be odd (a window is centred on its "
                             f"sentence), not {self.max_sentences}")

    def as_dict(self) -> dict[str, int]:
        return {"max_sentences": self.max_sentences, "max_words": self.max_words,
                "splitter": SPLITTER_VERSION, "terms": TERMS_VERSION,
                "embedding_text": EMBEDDING_TEXT_VERSION}


def cut_is_current(chunking: dict[str, int], cleaning: int,
                   params: ChunkParams | None = None) -> bool:
    """Whether passages an index records as cut with ``chunking`` and ``cleaning`` are cut as
    this release cuts them (``params``: default, the release's own). The build and the start
    check both ask this: an index cut another way is re-cut and re-embedded whole."""
    return chunking == (params or ChunkParams()).as_dict() and cleaning == CLEANING_VERSION


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False, char_span=True)


def split_sentences(article: Article, spans: list[Span] | None = None) -> list[Sentence]:
    body = article.body
    out: list[Sentence] = []
    if spans is None:
        spans = indexable_spans(body, article.title, article.author)
    for span in spans:
        pieces = _split_span(body, span.start, span.end)
        for start, end in pieces:
            if out and out[-1].block == span.block and _CONTINUATION.match(body[start:end]):
                prev = out.pop()
                start = prev.start
            out.append(Sentence(article.id, start, end, span.block))
    return out


def _split_span(body: str, start: int, end: int) -> list[tuple[int, int]]:
    text = body[start:end]
    # Line breaks inside a span are hard wraps (PDF text): spaces to pysbd, same offsets.
    masked = _QUOTE_MARKS.sub(" ", text).replace("\r", " ").replace("\n", " ")
    pieces: list[tuple[int, int]] = []
    cursor = 0
    for seg in _segmenter().segment(masked):
        # pysbd's char spans drift on some inputs; re-anchor each sentence by searching for it.
        sent = seg.sent.strip()
        if not sent:
            continue
        pos = masked.find(sent, cursor)
        if pos < 0:
            continue
        pieces.append((pos, pos + len(sent)))
        cursor = pos + len(sent)
    if not pieces:
        return [(start, end)]
    merged: list[list[int]] = []
    for s, e in pieces:
        if merged and not any(ch.isalnum() for ch in text[s:e]):
            merged[-1][1] = e  # a stray closing mark or bullet belongs to the sentence before
        else:
            merged.append([s, e])
    out: list[tuple[int, int]] = []
    for i, (s, e) in enumerate(merged):
        lower = merged[i - 1][1] if i else 0
        upper = merged[i + 1][0] if i + 1 < len(merged) else len(text)
        # Give back the quote marks that were hidden from pysbd.
        while s > lower and text[s - 1] in _OPENING:
            s -= 1
        while e < upper and text[e] in _CLOSING:
            e += 1
        # Anything pysbd skipped (rare) stays with the sentence before it: no text is lost.
        rest = text[e:upper]
        if rest.strip() and i + 1 < len(merged):
            nxt = merged[i + 1][0]
            while nxt > e and text[nxt - 1] in _OPENING:
                nxt -= 1
            e = len(text[:nxt].rstrip())
        if i == 0 and not text[:s].strip():
            s = len(text[:s]) - len(text[:s].lstrip()) if text[:s].strip() else s
        out.append((start + s, start + e))
    return out


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


def embedding_text(article: Article, sentences: list[Sentence], i: int, *, reach: int = 2) -> str:
    """What is embedded for the passage around sentence ``i``: the article's title, then the
    sentence with up to ``reach`` sentences before it in its block.

    The passage *quoted* stays the window centred on the sentence; the vector instead reads
    what a reader would have just read (who "he" is, what "the measures" are) and which
    article it is in, so questions that name a source or a topic find the right sentence.
    """
    lo = i
    while lo > 0 and i - lo < reach and sentences[lo - 1].block == sentences[i].block:
        lo -= 1
    text = article.body[sentences[lo].start:sentences[i].end]
    title = search_title(article)
    return f"{title}. {text}" if title else text
