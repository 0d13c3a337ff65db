"""Per-question latency of `ask`: warm p50/p95 (model loaded) and the cold start of the CLI.

    .venv/bin/python -m bench.ask_latency [--index DIR] [--rounds 5] [--cold 3] [--json]
    make bench  # the same, building a temporary index of corpus/

Warm latency is measured in-process over the development questions (after a warm-up),
split into the question's embedding and the rest of the search. Cold start runs
`dossier-bot ask --json QUESTION` as a fresh process against an existing index.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import DEV_SET, REPO, dev_questions, percentile, run_cli


def questions() -> list[str]:
    if DEV_SET.is_file():
        return dev_questions()
    return ["Did China agree to send weapons to Russia?", "Who wrote the Impakter piece?"]


def warm(index_dir: Path, rounds: int, embedder) -> dict[str, float]:
    from bot.answer import Answerer
    from index.live import LiveIndex

    live = LiveIndex(index_dir, embedder)
    answerer = Answerer(live)
    qs = questions()
    for q in qs[:5]:
        answerer.ask(q)
    total, embed = [], []
    for _ in range(rounds):
        for q in qs:
            t0 = time.perf_counter()
            embedder.embed_with_tokens([q])
            t1 = time.perf_counter()
            answerer.ask(q)
            t2 = time.perf_counter()
            embed.append((t1 - t0) * 1000)
            total.append((t2 - t1) * 1000)
    return {
        "questions": len(total),
        "p50_ms": round(percentile(total, 50), 1),
        "p95_ms": round(percentile(total, 95), 1),
        "mean_ms": round(statistics.fmean(total), 1),
        "embed_p50_ms": round(percentile(embed, 50), 1),
    }


def cold(index_dir: Path, runs: int) -> dict[str, float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run_cli("ask", "--json", "--index", str(index_dir),
                "Did Moscow deny asking Beijing for help?")
        times.append(time.perf_counter() - t0)
    return {"runs": runs, "median_s": round(statistics.median(times), 2),
            "min_s": round(min(times), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="passes over the questions")
    parser.add_argument("--cold", type=int, default=3, help="cold-start runs of the CLI")
    parser.add_argument("--index", type=Path, help="existing index (default: build one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from index.embed import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()  # one model load serves the build and the questions
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = args.index
        if index_dir is None:
            from index.build import build_index

            index_dir = Path(tmp) / "index"
            build_index(REPO / "corpus", index_dir, embedder)
        result = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                       f"load {os.getloadavg()[0]:.1f}",
            "warm": warm(index_dir, args.rounds, embedder),
            "cold_start": cold(index_dir, args.cold) if args.cold > 0 else None,
        }
    if args.json:
        print(json.dumps(result))
        return
    w, c = result["warm"], result["cold_start"]
    print(f"machine:     {result['machine']}")
    print(f"warm ask:    p50 {w['p50_ms']} ms, p95 {w['p95_ms']} ms, mean {w['mean_ms']} ms "
          f"over {w['questions']} questions (question embedding alone: p50 {w['embed_p50_ms']} ms)")
    if c:
        print(f"cold start:  `dossier-bot ask` median {c['median_s']} s (min {c['min_s']} s) "
              f"over {c['runs']} runs")


if __name__ == "__main__":
    main()
