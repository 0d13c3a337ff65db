"""Warm question latency of the real Answerer over the real dossier (``make bench``).

Builds an index of ``corpus/`` in a temporary folder (or uses ``--index``), then times
``Answerer.ask`` on the development questions: end to end, and the question embedding
alone, which is the floor of any answer.

    .venv/bin/python -m bench.latency [--index DIR] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.common import REPO, dev_questions, machine, percentile

CORPUS = REPO / "corpus"


def measure(index_dir: Path, rounds: int, embedder=None,
            questions: list[str] | None = None) -> dict:
    from bot.answer import Answerer
    from index.embed import SentenceTransformerEmbedder
    from index.live import LiveIndex

    embedder = embedder or SentenceTransformerEmbedder()
    answerer = Answerer(LiveIndex(index_dir, embedder))
    questions = questions or dev_questions()
    answerer.ask(questions[0])
    asks, embeds = [], []
    for _ in range(rounds):
        for q in questions:
            t = time.perf_counter()
            answerer.ask(q)
            asks.append(time.perf_counter() - t)
            t = time.perf_counter()
            embedder.embed_with_tokens([q])
            embeds.append(time.perf_counter() - t)
    ms = lambda xs, p: round(1000 * percentile(xs, p), 1)  # noqa: E731
    return {"questions": len(questions), "asks": len(asks),
            "ask_p50_ms": ms(asks, 50), "ask_p95_ms": ms(asks, 95),
            "embed_p50_ms": ms(embeds, 50), "embed_p95_ms": ms(embeds, 95),
            "machine": machine()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", type=Path, help="an index built from corpus/ (default: build one)")
    ap.add_argument("--rounds", type=int, default=3, help="passes over the dev questions")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.index is not None:
        result = measure(args.index, args.rounds)
    else:
        from index.build import build_index
        from index.embed import SentenceTransformerEmbedder

        embedder = SentenceTransformerEmbedder()
        with tempfile.TemporaryDirectory() as tmp:
            build_index(CORPUS, Path(tmp) / "index", embedder)
            result = measure(Path(tmp) / "index", args.rounds, embedder)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        r = result
        print(f"{r['asks']} asks over {r['questions']} dev questions "
              f"(load average {r['machine']['loadavg_1m']}):\n"
              f"  ask            p50 {r['ask_p50_ms']:.1f} ms   p95 {r['ask_p95_ms']:.1f} ms\n"
              f"  question embed p50 {r['embed_p50_ms']:.1f} ms   p95 {r['embed_p95_ms']:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
