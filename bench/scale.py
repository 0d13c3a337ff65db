"""Scale benchmark: synthetic dossiers of 10k to 1M passages (see bench.synth).

For each size it measures build throughput, the time to add one article (through the real
incremental ``build_index`` and the running process's reload), warm question latency
(``Answerer.ask``, question embedding included) with the share of the dense, lexical and
embedding steps (lexical: ``index.lexical.top_k`` as the retriever calls it, and bm25s's own
``retrieve`` for comparison), peak memory, the index size on disk, and recall@10 of the approximate
vector index against exact search.

    .venv/bin/python -m bench.scale --sizes 10000,100000,1000000

How each size is built (``--real-max``, ``--segment-min``):
- ``real``: the synthetic corpus is written as files and built by ``build_index`` with the
  real model: throughput includes cleaning, sentence splitting and embedding.
- ``pool``: the same path, with ``PoolEmbedder`` in place of the model (pool sentences'
  real vectors reused): throughput of everything but embedding.
- ``segment``: the arrays are assembled directly (no sentence splitting, no embedding) and
  written by ``write_segment``; token vectors are streamed to disk because at 1M passages
  they are larger than this machine's memory.
In every mode the added article is embedded by the real model.

Each phase (build, serve, add) runs in its own process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bench.common import (
    REPO,
    dev_questions,
    dir_bytes,
    fmt_bytes,
    machine,
    markdown_table,
    peak_rss_mb,
    percentile,
    rss_mb,
)

CORPUS = REPO / "corpus"
WARM_UP = ("What did China say about Russia?", "Who met in Beijing?",
           "Is the war in Ukraine discussed?", "What happened to the pipeline?",
           "Did the United States warn its allies?")  # not dev questions
DEFAULT_WORKDIR = Path("/tmp/dossier-bench")


# -- phases (each in a child process) -------------------------------------------------------

def phase_build(size: int, work: Path, mode: str, real=None) -> dict:
    from bench.synth import Pool, PoolEmbedder, PoolVectors, synth_articles, write_corpus
    from index.build import build_index
    from index.embed import SentenceTransformerEmbedder

    corpus, index = work / "corpus", work / "index"
    real = real or SentenceTransformerEmbedder()
    pool = Pool.from_corpus(CORPUS)
    articles = list(synth_articles(pool, size, seed=size))
    write_corpus(corpus, articles)
    stages: dict[str, float] = {}
    out: dict = {"mode": mode, "articles": len(articles)}
    pv = PoolVectors.load_or_embed(pool, real, work.parent / "cache") if mode != "real" else None
    if mode == "segment":
        cpu0 = time.process_time()
        started = time.perf_counter()
        passages = _build_segment(pool, pv, articles, index, real, stages)
        elapsed = time.perf_counter() - started
    else:
        embedder = real
        if mode == "pool":
            embedder = PoolEmbedder(real, pool, pv)
        cpu0 = time.process_time()
        started = time.perf_counter()
        with _timed_stages(stages):
            report = build_index(corpus, index, embedder)
        elapsed = time.perf_counter() - started
        passages = report.chunks
        if mode == "pool":
            out["pool_hits"], out["pool_misses"] = embedder.hits, embedder.misses
    cpu = time.process_time() - cpu0
    out.update(passages=passages, build_s=round(elapsed, 2),
               passages_per_s=round(passages / elapsed, 1), build_cpu_s=round(cpu, 1),
               passages_per_cpu_s=round(passages / cpu, 1),
               stages_s={k: round(v, 2) for k, v in stages.items()},
               peak_rss_mb=round(peak_rss_mb()), index_bytes=dir_bytes(index))
    return out


def _build_segment(pool, pv, articles, index: Path, real, stages: dict[str, float]) -> int:
    from bench.synth import segment_data, stream_token_vectors
    from index.chunk import ChunkParams
    from index.clean import CLEANING_VERSION
    from index.segment import write_segment
    from index.store import FORMAT_VERSION, IndexDir, Manifest, new_generation_name

    t = time.perf_counter()
    data = segment_data(pool, pv, articles, token_vectors=False)
    corpus = index.parent / "corpus"
    for a in data.articles:  # as a build records them, so that an add does not rehash all
        st = (corpus / a.path).stat()
        data.stats[a.id] = (st.st_size, st.st_mtime_ns)
    stages["assemble"] = time.perf_counter() - t
    store = IndexDir(index)
    seg = store.new_segment_path()
    t = time.perf_counter()
    with _timed_stages(stages):
        write_segment(seg, data)
    stages["write_segment"] = time.perf_counter() - t
    t = time.perf_counter()
    pool_idx = np.concatenate([np.asarray(a.sentences, np.int64) for a in articles])
    stream_token_vectors(seg, pool_idx, pv)
    stages["token_vectors"] = time.perf_counter() - t
    entries = dict(store.catalog(seg.name))
    params = ChunkParams()
    store.publish(Manifest(
        generation=new_generation_name(), format=FORMAT_VERSION, model=real.name,
        model_fingerprint=real.fingerprint, dimension=real.dimension,
        chunking=params.as_dict(), cleaning=CLEANING_VERSION, built_at=time.time(),
        segments=(seg.name,), articles=entries))
    return int(data.passages.shape[0])


@contextlib.contextmanager
def _timed_stages(stages: dict[str, float]) -> Iterator[None]:
    """Time the vector-index and BM25 builds inside a build (instrumentation only)."""
    import bm25s

    from index import vectors

    originals = (vectors.build_vector_index, bm25s.BM25.index)

    def vector_index(*a, **k):
        t = time.perf_counter()
        try:
            return originals[0](*a, **k)
        finally:
            stages["vector_index"] = stages.get("vector_index", 0) + time.perf_counter() - t

    def bm25_index(self, *a, **k):
        t = time.perf_counter()
        try:
            return originals[1](self, *a, **k)
        finally:
            stages["bm25_index"] = stages.get("bm25_index", 0) + time.perf_counter() - t

    vectors.build_vector_index = vector_index
    bm25s.BM25.index = bm25_index
    try:
        yield
    finally:
        vectors.build_vector_index, bm25s.BM25.index = originals


def phase_serve(size: int, work: Path, rounds: int, real=None,
                questions: list[str] | None = None) -> dict:
    from bot.answer import Answerer
    from index.embed import SentenceTransformerEmbedder
    from index.lexical import top_k
    from index.live import LiveIndex
    from index.rows import wait_warm
    from index.text import query_terms
    from index.vectors import describe

    real = real or SentenceTransformerEmbedder()
    live = LiveIndex(work / "index", real)
    t = time.perf_counter()
    snap = live.current()
    load_s = time.perf_counter() - t
    # A serving bot reads its large index files once in the background at load
    # (index.rows.warm_page_cache); latency is measured once that is done, as in service.
    t = time.perf_counter()
    wait_warm()
    warm_s = time.perf_counter() - t
    answerer = Answerer(live)
    questions = questions or dev_questions()
    # Warm up: torch is slow on the first calls of a process (hundreds of ms per question
    # for the first ~20-40 questions), which is start-up cost, not the steady state.
    for _ in range(2):
        for q in questions:
            real.embed_with_tokens([q])
    for q in WARM_UP:
        answerer.ask(q)
    # The first round asks each question for the first time (the retriever caches per-sentence
    # work, and the OS caches the index pages a question reads); later rounds repeat them.
    total: list[float] = []
    cpu: list[float] = []
    repeat: list[float] = []
    answered = 0
    for round_ in range(rounds):
        for q in questions:
            c = time.process_time()
            t = time.perf_counter()
            a = answerer.ask(q)
            (total if round_ == 0 else repeat).append(time.perf_counter() - t)
            if round_ == 0:
                cpu.append(time.process_time() - c)
                answered += a.answered
    prof = cProfile.Profile()
    prof.enable()
    for q in questions[:10]:
        answerer.ask(q)
    prof.disable()
    segments = snap.retriever.segments
    k = getattr(snap.retriever, "k", 40)
    embed, dense, lexical, bm25s_times = [], [], [], []
    for q in questions:
        t = time.perf_counter()
        vecs, _ = real.embed_with_tokens([q])
        embed.append(time.perf_counter() - t)
        qvec = vecs[:1].astype(np.float32)
        t = time.perf_counter()
        for seg in segments:
            seg.vector_index.search(qvec, min(k, max(1, seg.n_passages)))
        dense.append(time.perf_counter() - t)
        qterms = query_terms(q)
        t = time.perf_counter()
        for seg in segments:
            if seg.bm25 is not None:
                top_k(seg.bm25, qterms, k)
        lexical.append(time.perf_counter() - t)
        t = time.perf_counter()
        for seg in segments:
            known = [w for w in qterms if seg.bm25 is not None and w in seg.bm25.vocab_dict]
            if known:
                seg.bm25.retrieve([known], k=min(k, seg.n_passages), show_progress=False,
                                  n_threads=1)
        bm25s_times.append(time.perf_counter() - t)
    big = max(segments, key=lambda s: s.n_passages)
    recall = _recall(big, real, questions)
    p50 = percentile(total, 50)
    return {
        "segments": len(segments), "load_s": round(load_s, 2),
        "page_cache_warm_s": round(warm_s, 1),
        "torch_threads": __import__("torch").get_num_threads(),
        "ask_p50_ms": round(1000 * p50, 1), "ask_p95_ms": round(1000 * percentile(total, 95), 1),
        "ask_cpu_p50_ms": round(1000 * percentile(cpu, 50), 1),
        "repeat_p50_ms": round(1000 * percentile(repeat, 50), 1),
        "repeat_p95_ms": round(1000 * percentile(repeat, 95), 1),
        "asks": len(total) + len(repeat), "answered": answered,
        "embed_p50_ms": round(1000 * percentile(embed, 50), 1),
        "faiss_p50_ms": round(1000 * percentile(dense, 50), 2),
        "bm25_p50_ms": round(1000 * percentile(lexical, 50), 1),
        "bm25_p95_ms": round(1000 * percentile(lexical, 95), 1),
        "bm25s_retrieve_p50_ms": round(1000 * percentile(bm25s_times, 50), 1),
        "bm25s_retrieve_p95_ms": round(1000 * percentile(bm25s_times, 95), 1),
        "ann": describe(big.vector_index), **recall,
        "ask_profile_10": _top(prof, 16),
        "rss_mb": round(rss_mb()), "peak_rss_mb": round(peak_rss_mb()),
        "index_bytes": _index_bytes(live), "index_breakdown": _breakdown(live),
    }


def _recall(seg, embedder, questions: list[str], extra: int = 160, k: int = 10) -> dict:
    """Recall@k of the segment's index against exact search, counting ties as hits.

    Queries: the dev questions, and ``extra`` stored passage vectors with noise (cosine ~0.7
    to the original), i.e. paraphrase-like queries near real content.
    """
    import faiss

    if faiss.try_extract_index_ivf(seg.vector_index) is None:
        return {"recall_at_10": 1.0, "recall_queries": 0}
    rng = np.random.default_rng(7)
    pv = seg.passage_vectors
    base = np.asarray(pv[np.sort(rng.choice(pv.shape[0], extra, replace=False))], np.float32)
    noisy = base + rng.normal(0, 0.05, base.shape).astype(np.float32)
    queries = np.vstack([embedder.embed_batch(questions), noisy]).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    best = np.full((len(queries), k), -np.inf, np.float32)
    for start in range(0, pv.shape[0], 200_000):
        sims = queries @ np.asarray(pv[start:start + 200_000], np.float32).T
        both = np.hstack([best, sims])
        best = -np.sort(-both, axis=1)[:, :k]
    t = time.perf_counter()
    got, _ = seg.vector_index.search(queries, k)
    search_ms = 1000 * (time.perf_counter() - t) / len(queries)
    hits = (got >= best[:, k - 1:k] - 1e-5).sum(axis=1) / k
    return {"recall_at_10": round(float(hits.mean()), 4),
            "recall_at_10_questions": round(float(hits[: len(questions)].mean()), 4),
            "recall_queries": len(queries), "ann_ms_per_query": round(search_ms, 2)}


def _index_bytes(live) -> int:
    manifest = live.current().manifest
    return sum(dir_bytes(live.dir.segments_dir / s) for s in manifest.segments)


def _breakdown(live) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in live.current().manifest.segments:
        for p in (live.dir.segments_dir / s).rglob("*"):
            if p.is_file():
                key = "bm25" if "bm25" in p.parts else p.name
                out[key] = out.get(key, 0) + p.stat().st_size
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def phase_add(size: int, work: Path, profile: bool, real=None,
              lengths: tuple[int, ...] = (20, 80)) -> dict:
    from bench.synth import Pool, make_article
    from index.build import build_index
    from index.embed import SentenceTransformerEmbedder
    from index.live import LiveIndex

    real = real or SentenceTransformerEmbedder()
    corpus, index = work / "corpus", work / "index"
    live = LiveIndex(index, real)
    live.current()
    pool = Pool.from_corpus(CORPUS)
    rng = np.random.default_rng(size + 1)
    out: dict = {}
    added: list[Path] = []
    before = len(live.current().articles)
    for n_sent in lengths:
        art = make_article(pool, rng, f"zz-added-{n_sent}", n_sent)
        path = corpus / art.name
        path.write_text(art.text, encoding="utf-8")
        added.append(path)
        t = time.perf_counter()
        report = build_index(corpus, index, real)
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        live.reload_if_changed()
        reload_s = time.perf_counter() - t
        ids = {a.id for a in live.current().articles}
        if path.stem not in ids or report.embedded <= 0:
            raise RuntimeError(f"the added article {path.stem} is not in the new index")
        out[f"add{n_sent}"] = {"build_s": round(build_s, 2), "reload_s": round(reload_s, 2),
                               "embedded": report.embedded}
    if profile:
        art = make_article(pool, rng, "zz-added-profiled", 20)
        path = corpus / art.name
        path.write_text(art.text, encoding="utf-8")
        added.append(path)
        prof = cProfile.Profile()
        prof.enable()
        build_index(corpus, index, real)
        live.reload_if_changed()
        prof.disable()
        out["add_profile"] = _top(prof)
    for path in added:
        path.unlink()
    t = time.perf_counter()
    build_index(corpus, index, real)
    live.reload_if_changed()
    out["remove_s"] = round(time.perf_counter() - t, 2)
    if len(live.current().articles) != before:
        raise RuntimeError("removing the added articles did not restore the index")
    out["peak_rss_mb"] = round(peak_rss_mb())
    return out


def _top(prof: cProfile.Profile, n: int = 12) -> list[tuple[str, float]]:
    stats = pstats.Stats(prof)
    rows = []
    for (file, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
        if ("/index/" in file or "/bench/" in file or "/bot/" in file
                or func in ("sha256", "loads", "retrieve", "search", "encode")):
            rows.append((f"{Path(file).name}:{func}", round(ct, 3)))
    rows.sort(key=lambda r: -r[1])
    return rows[:n]


# -- driver ---------------------------------------------------------------------------------

def mode_for(size: int, real_max: int, segment_min: int) -> str:
    if size <= real_max:
        return "real"
    return "segment" if size >= segment_min else "pool"


def run_phase(phase: str, size: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "bench.scale", "--phase", phase, "--size", str(size),
           "--workdir", str(args.workdir), "--real-max", str(args.real_max),
           "--segment-min", str(args.segment_min), "--rounds", str(args.rounds),
           "--torch-threads", str(args.torch_threads)]
    if args.profile_add:
        cmd.append("--profile-add")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{phase} {size} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    head = ["passages", "articles", "build mode", "build passages/s", "add 20-sentence article",
            "add 80-sentence article", "ask p50 / p95, new question", "same, repeated",
            "BM25 p50 (share)", "FAISS p50", "question embedding p50", "peak RSS build / serve",
            "index on disk", "vector index", "recall@10 vs exact"]
    cells = []
    for r in rows:
        b, s, a = r["build"], r["serve"], r["add"]
        share = 100 * s["bm25_p50_ms"] / s["ask_p50_ms"] if s["ask_p50_ms"] else 0
        cells.append([
            f"{b['passages']:,}", f"{b['articles']:,}", b["mode"], f"{b['passages_per_s']:,.0f}",
            _add(a["add20"]), _add(a["add80"]), f"{s['ask_p50_ms']:.0f} / {s['ask_p95_ms']:.0f} ms",
            _pair(s, "repeat"), f"{s['bm25_p50_ms']:.1f} ms ({share:.0f}%)",
            f"{s['faiss_p50_ms']:.1f} ms", f"{s['embed_p50_ms']:.0f} ms",
            f"{fmt_bytes(b['peak_rss_mb'] * 2**20)} / {fmt_bytes(s['peak_rss_mb'] * 2**20)}",
            fmt_bytes(s["index_bytes"]), s["ann"], f"{s['recall_at_10']:.3f}"])
    return markdown_table(head, cells)


def _pair(s: dict, key: str) -> str:
    if f"{key}_p50_ms" not in s:
        return "-"
    return f"{s[f'{key}_p50_ms']:.0f} / {s[f'{key}_p95_ms']:.0f} ms"


def _add(a: dict) -> str:
    return f"{a['build_s'] + a['reload_s']:.1f} s ({a['build_s']:.1f} + {a['reload_s']:.1f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000",
                    help="comma-separated passage counts")
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                    help="where synthetic corpora and indexes go (reused if present)")
    ap.add_argument("--real-max", type=int, default=0,
                    help="sizes up to this are embedded by the real model")
    ap.add_argument("--segment-min", type=int, default=1_000_000,
                    help="sizes from this are assembled as a segment directly")
    ap.add_argument("--rounds", type=int, default=2, help="passes over the dev questions")
    ap.add_argument("--profile-add", action="store_true",
                    help="profile one extra article addition per size")
    ap.add_argument("--phases", default="build,serve,add",
                    help="phases to run; without build, the indexes in --workdir are reused")
    ap.add_argument("--torch-threads", type=int, default=0,
                    help="torch intra-op threads in every phase (0: torch's default)")
    ap.add_argument("--out", type=Path, help="write all results as JSON here")
    ap.add_argument("--phase", choices=("build", "serve", "add"), help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.phase:
        if args.torch_threads:
            import torch

            torch.set_num_threads(args.torch_threads)
        work = args.workdir / f"n{args.size}"
        mode = mode_for(args.size, args.real_max, args.segment_min)
        if args.phase == "build":
            result = phase_build(args.size, work, mode)
        elif args.phase == "serve":
            result = phase_serve(args.size, work, args.rounds)
        else:
            result = phase_add(args.size, work, args.profile_add)
        result["loadavg_1m"] = round(os.getloadavg()[0], 2)
        print(json.dumps(result))
        return 0

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    phases = [p for p in ("build", "serve", "add") if p in args.phases.split(",")]
    results = {"machine": machine(), "settings": {
        "torch_threads": args.torch_threads or "default", "phases": phases}, "sizes": []}
    previous = {}
    if "build" not in phases and args.out and args.out.is_file():
        previous = {r["size"]: r for r in json.loads(args.out.read_text())["sizes"]}
    for size in sizes:
        work = args.workdir / f"n{size}"
        if "build" in phases:
            if work.exists():
                import shutil

                shutil.rmtree(work)
            work.mkdir(parents=True)
        row: dict = dict(previous.get(size, {"size": size}))
        for phase in phases:
            t = time.perf_counter()
            row[phase] = run_phase(phase, size, args)
            print(f"[{time.strftime('%H:%M:%S')}] {size:,} {phase} done in "
                  f"{time.perf_counter() - t:.0f} s: {json.dumps(row[phase])}",
                  file=sys.stderr, flush=True)
        results["sizes"].append(row)
        if args.out:
            args.out.write_text(json.dumps(results, indent=1))
    results["machine"]["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    if all({"build", "serve", "add"} <= r.keys() for r in results["sizes"]):
        print(table(results["sizes"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
