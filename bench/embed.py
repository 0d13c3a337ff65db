"""Embedding throughput of the real model: batch size x torch threads, and the GPU if any.

Texts are the real corpus's sentences and its 3-sentence passages (what a build embeds),
in the proportion a build embeds them (one of each per passage). Sentences go through
``embed_with_tokens`` (the build also keeps their token vectors), passages through
``embed_batch``. A CUDA device is measured too when torch sees one.

    .venv/bin/python -m bench.embed [--batches 16,32,64,128] [--threads 1,2] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.common import REPO, machine, markdown_table


def corpus_texts(corpus: Path = REPO / "corpus") -> tuple[list[str], list[str]]:
    from index.chunk import make_passages, split_sentences
    from index.load import load_corpus

    sentences, passages = [], []
    for a in load_corpus(corpus).articles:
        sents = split_sentences(a)
        sentences += [a.body[s.start:s.end] for s in sents]
        passages += [p.text for p in make_passages(a, sents)]
    return sentences, passages


def measure(embedder, sentences: list[str], passages: list[str], batch: int,
            repeat: int = 1) -> dict:
    embedder.batch_size = batch
    embedder.embed_batch(passages[:batch])  # warm this batch shape
    t = time.perf_counter()
    for _ in range(repeat):
        embedder.embed_with_tokens(sentences)
    sent_s = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(repeat):
        embedder.embed_batch(passages)
    pass_s = time.perf_counter() - t
    n = repeat * (len(sentences) + len(passages))
    return {"batch": batch, "sentences_per_s": round(repeat * len(sentences) / sent_s, 1),
            "passages_per_s": round(repeat * len(passages) / pass_s, 1),
            "texts_per_s": round(n / (sent_s + pass_s), 1),
            # a build embeds one sentence and one window per passage
            "build_passages_per_s": round(n / 2 / (sent_s + pass_s), 1)}


def question_latency(embedder, questions: list[str]) -> float:
    embedder.embed_with_tokens(questions[:1])
    t = time.perf_counter()
    for q in questions:
        embedder.embed_with_tokens([q])
    return round(1000 * (time.perf_counter() - t) / len(questions), 1)


def run(batches: list[int], threads: list[int], repeat: int = 1) -> dict:
    import torch

    from bench.common import dev_questions
    from index.embed import SentenceTransformerEmbedder

    sentences, passages = corpus_texts()
    questions = dev_questions()
    rows = []
    cpu = SentenceTransformerEmbedder(device="cpu")
    default_threads = torch.get_num_threads()
    for n in threads:
        torch.set_num_threads(n)
        q_ms = question_latency(cpu, questions)
        for b in batches:
            rows.append({"device": "cpu", "threads": n, "question_ms": q_ms,
                         **measure(cpu, sentences, passages, b, repeat)})
    torch.set_num_threads(default_threads)
    if torch.cuda.is_available():
        gpu = SentenceTransformerEmbedder(device="cuda")
        q_ms = question_latency(gpu, questions)
        for b in sorted({*batches, 256}):
            rows.append({"device": torch.cuda.get_device_name(0), "threads": None,
                         "question_ms": q_ms, **measure(gpu, sentences, passages, b, 5)})
    best = max((r for r in rows if r["device"] == "cpu"), key=lambda r: r["texts_per_s"])
    return {"machine": machine(), "sentences": len(sentences), "passages": len(passages),
            "rows": rows, "best_cpu": best}


def table(result: dict) -> str:
    head = ["device", "torch threads", "batch", "sentences/s (with token vectors)", "passages/s",
            "build passages/s", "one question (ms)"]
    return markdown_table(head, ([r["device"], f"{r['threads'] or '-'}", f"{r['batch']}",
                                  f"{r['sentences_per_s']:.0f}", f"{r['passages_per_s']:.0f}",
                                  f"{r['build_passages_per_s']:.0f}", f"{r['question_ms']:.0f}"]
                                 for r in result["rows"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", default="16,32,64,128")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = run([int(b) for b in args.batches.split(",")],
                 [int(t) for t in args.threads.split(",")], args.repeat)
    print(json.dumps(result, indent=1) if args.json else table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
