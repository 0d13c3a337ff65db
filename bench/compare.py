"""Side by side on the development set: dossier-bot against the usual recipe and plain BM25.

- **dossier-bot**: the real ``Answerer`` over an index of ``corpus/`` built by
  ``build_index`` (``bot.evaluate.run_eval``).
- **usual recipe**: LangChain-style ``RecursiveCharacterTextSplitter`` chunks (1000
  characters, 200 overlap, separators paragraph/line/space/character) of the article
  bodies as stored, MiniLM vectors in a flat FAISS inner-product index, the top chunk
  quoted. It never declines.
- **plain BM25**: bm25s (English stopwords, Snowball stemmer) over the same chunks, the top
  chunk quoted.

All three are scored by ``bot.evaluate`` (strict, lenient, refusal as in DESIGN.md), and
each question is timed end to end (question embedding included).

    .venv/bin/python -m bench.compare [--questions FILE] [--json]
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

from bench.common import DEV_SET, REPO, machine, markdown_table, percentile

CORPUS = REPO / "corpus"


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

    def answer(self, question: str, row: int, score: float):
        from bot.answer import Answer, Quote

        article, chunk = self.items[row]
        quote = Quote(chunk.text, chunk.start, chunk.start + len(chunk.text), score, article)
        return Answer(question, (quote,))


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
        scores, ids = self.index.search(q, 1)
        return self.answer(question, int(ids[0, 0]), float(scores[0, 0]))


class BM25Baseline(ChunkBaseline):
    def __init__(self, articles, splitter) -> None:
        import bm25s
        import Stemmer

        super().__init__(articles, splitter)
        self.stemmer = Stemmer.Stemmer("english")
        tokens = bm25s.tokenize([c.text for _, c in self.items], stopwords="en",
                                stemmer=self.stemmer, show_progress=False)
        self.bm25 = bm25s.BM25()
        self.bm25.index(tokens, show_progress=False)

    def ask(self, question: str):
        import bm25s

        tokens = bm25s.tokenize([question], stopwords="en", stemmer=self.stemmer,
                                show_progress=False)
        ids, scores = self.bm25.retrieve(tokens, k=1, show_progress=False, n_threads=1)
        return self.answer(question, int(ids[0, 0]), float(scores[0, 0]))


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


def run(questions: Path, embedder=None) -> dict:
    from bot.answer import Answerer
    from bot.evaluate import load_cases
    from index.build import build_index
    from index.embed import SentenceTransformerEmbedder
    from index.live import LiveIndex
    from index.load import load_corpus

    cases = load_cases(questions)
    embedder = embedder or SentenceTransformerEmbedder()
    articles = list(load_corpus(CORPUS).articles)
    splitter = RecursiveCharacterSplitter(1000, 200)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        build_index(CORPUS, Path(tmp) / "index", embedder)
        answerer = Answerer(LiveIndex(Path(tmp) / "index", embedder))
        answerer.ask("warm up")
        rows.append(evaluate("dossier-bot", answerer.ask, cases, time.perf_counter() - t))
    t = time.perf_counter()
    dense = DenseRecipe(articles, splitter, embedder)
    rows.append(evaluate("usual recipe: 1000/200 chunks + MiniLM + flat FAISS, top 1",
                         dense.ask, cases, time.perf_counter() - t))
    t = time.perf_counter()
    lexical = BM25Baseline(articles, splitter)
    rows.append(evaluate("plain BM25 (bm25s) over the same chunks, top 1", lexical.ask, cases,
                         time.perf_counter() - t))
    import torch

    return {"machine": machine(), "questions": str(questions), "chunks": len(dense.items),
            "torch_threads": torch.get_num_threads(), "rows": rows}


def table(result: dict) -> str:
    head = ["system", "strict", "lenient", "off-topic declined", "answerable declined",
            "latency p50 / p95", "build"]
    rows = []
    for r in result["rows"]:
        n = r["answerable"]
        rows.append([r["system"], f"{r['strict']}/{n} ({100 * r['strict'] / n:.0f}%)",
                     f"{r['lenient']}/{n} ({100 * r['lenient'] / n:.0f}%)",
                     f"{r['off_topic_declined']}/{r['off_topic']}",
                     f"{r['answerable_declined']}/{n}",
                     f"{r['p50_ms']:.1f} / {r['p95_ms']:.1f} ms", f"{r['build_s']:.1f} s"])
    return markdown_table(head, rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=Path, default=DEV_SET)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--torch-threads", type=int, default=0,
                    help="torch intra-op threads (0: torch's default)")
    args = ap.parse_args(argv)
    if not args.questions.is_file():
        ap.error(f"{args.questions} does not exist")
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    result = run(args.questions)
    print(json.dumps(result, indent=1) if args.json else table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
