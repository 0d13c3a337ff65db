"""Frozen domain types shared by the whole retrieval core."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Article:
    """One article of the dossier. ``body`` is the text exactly as stored in the corpus file."""

    id: str
    path: str
    body: str
    sha256: str
    title: str | None = None
    outlet: str | None = None
    author: str | None = None
    published: str | None = None  # YYYY-MM-DD
    url: str | None = None

    @property
    def prefix(self) -> str:
        """The leading number of the file name (``000``), which evaluation files use."""
        head = self.id.split("-", 1)[0].split("_", 1)[0]
        return head if head.isdigit() else self.id

    @property
    def label(self) -> str:
        return self.title or self.path

    def meta(self) -> dict[str, str | None]:
        return {
            "id": self.id,
            "title": self.title,
            "outlet": self.outlet,
            "author": self.author,
            "published": self.published,
            "url": self.url,
            "path": self.path,
        }


@dataclass(frozen=True)
class Sentence:
    """A sentence of an article's indexable text, as offsets into the body."""

    article_id: str
    start: int
    end: int
    block: int  # sentences in different blocks (paragraph runs) are never quoted together


@dataclass(frozen=True)
class Passage:
    """The unit that is embedded and searched: consecutive sentences of one article."""

    article_id: str
    start: int
    end: int
    text: str
    first_sentence: int  # index into the article's sentence list
    n_sentences: int
    centre_sentence: int  # the sentence this window was built around


@dataclass(frozen=True)
class Hit:
    """A passage found for a question, with the evidence behind its rank."""

    passage: Passage
    score: float
    dense: float = 0.0
    lexical: float = 0.0


@dataclass(frozen=True)
class LoadProblem:
    """A corpus file that could not be read; it is reported and skipped."""

    path: str
    reason: str
    # The reading limits it failed on (index.documents.limits_key), when it failed on them
    # rather than on its bytes: it is tried again once they change.
    limits: str | None = None


@dataclass(frozen=True)
class Corpus:
    articles: tuple[Article, ...]
    problems: tuple[LoadProblem, ...] = field(default_factory=tuple)
