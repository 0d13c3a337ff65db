"""ONNX Runtime against sentence-transformers, measured in the same run: cold `ask`, warm
latency, serving memory, full build, the embedding of a build alone (wall and CPU seconds),
the installed size, and the quoted spans.

    python -m bench.onnx --out bench/results/onnx.json        # everything (~15 min on 2 cores)
    python -m bench.onnx --phases cold,warm --repeats 5
    python -m bench.onnx --phases prepare --builds 3 --corpus ../shared/eval/dossiers/X/corpus

Every measurement runs the CLI (or a worker) as a fresh process of this environment with
DOSSIER_EMBED_BACKEND=torch or =onnx, the two alternating so that load on a shared machine
falls on both. Ratios are onnx / torch.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import DEV_SET, REPO, dev_questions, markdown_table, percentile

BACKENDS = ("torch", "onnx")
DOSSIERS = REPO.parent / "shared" / "eval" / "dossiers"
COLD_QUESTION = "Did Moscow deny asking Beijing for help?"


def _env(backend: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DOSSIER_", "SLACK_", "DISCORD_"))}
    env.update(DOSSIER_EMBED_BACKEND=backend, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    return env


def cli(backend: str, *args: str, stdin: str | None = None) -> tuple[float, str]:
    """Wall seconds and stdout of `dossier-bot ARGS` from this checkout, as a fresh process."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "from bot.cli import main; main()", *args],
                          input=stdin, env=_env(backend), capture_output=True, text=True,
                          check=False, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{backend}: dossier-bot {' '.join(args)} failed: {proc.stderr}")
    return wall, proc.stdout


def _orders(repeats: int):
    for r in range(repeats):
        yield BACKENDS if r % 2 == 0 else BACKENDS[::-1]


def _summary(values: dict[str, list[float]], key: str = "median") -> dict:
    med = {b: statistics.median(v) for b, v in values.items()}
    return {"runs": values, key: med, "ratio": round(med["onnx"] / med["torch"], 3)}


def phase_cold(index: Path, repeats: int) -> dict:
    times: dict[str, list[float]] = {b: [] for b in BACKENDS}
    for order in _orders(repeats):
        for b in order:
            wall, _ = cli(b, "ask", "--json", COLD_QUESTION, "--index", str(index))
            times[b].append(round(wall, 3))
    return _summary(times)


def worker(index: Path, passes: int) -> None:
    """In a fresh process: load the index and model as a server does, answer the dev set
    ``passes`` times, print per-question latencies and memory."""
    from bench.common import rss_mb
    from bot.answer import Answerer
    from bot.config import Settings
    from bot.runtime import make_live_index

    settings = Settings.from_env()  # DOSSIER_INDEX_DIR set by the caller
    assert settings.index_dir == index, (settings.index_dir, index)
    answerer = Answerer(make_live_index(settings))
    questions = dev_questions()
    for q in questions[:3]:  # warm-up: first calls allocate
        answerer.ask(q)
    lat = []
    for _ in range(passes):
        for q in questions:
            t0 = time.perf_counter()
            answerer.ask(q)
            lat.append((time.perf_counter() - t0) * 1000)
    hwm = next(int(line.split()[1]) / 1024 for line in
               Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM"))
    print(json.dumps({"ms": lat, "rss_mb": rss_mb(), "peak_rss_mb": hwm,
                      "modules": sorted(m for m in ("torch", "sentence_transformers")
                                        if m in sys.modules)}))


def phase_warm(index: Path, repeats: int, passes: int) -> dict:
    p50: dict[str, list[float]] = {b: [] for b in BACKENDS}
    p95: dict[str, list[float]] = {b: [] for b in BACKENDS}
    rss: dict[str, list[float]] = {b: [] for b in BACKENDS}
    hwm: dict[str, list[float]] = {b: [] for b in BACKENDS}
    modules: dict[str, list[str]] = {}
    for order in _orders(repeats):
        for b in order:
            env = {**_env(b), "DOSSIER_INDEX_DIR": str(index)}
            out = subprocess.run([sys.executable, "-m", "bench.onnx", "--worker", str(index),
                                  "--passes", str(passes)], env=env, capture_output=True,
                                 text=True, check=True, cwd=REPO).stdout
            data = json.loads(out.strip().splitlines()[-1])
            p50[b].append(round(percentile(data["ms"], 50), 2))
            p95[b].append(round(percentile(data["ms"], 95), 2))
            rss[b].append(round(data["rss_mb"], 1))
            hwm[b].append(round(data["peak_rss_mb"], 1))
            modules[b] = data["modules"]
    return {"p50_ms": _summary(p50), "p95_ms": _summary(p95), "rss_mb": _summary(rss),
            "peak_rss_mb": _summary(hwm), "torch_side_modules_loaded": modules,
            "questions_per_run": passes * len(dev_questions())}


def prepare_worker(corpus: Path) -> None:
    """In a fresh process: load the model, then time what a full build of ``corpus`` spends
    embedding (index.build._prepare: sentences with word pieces, then passage windows), in
    wall and CPU seconds. CPU seconds are what a shared machine distorts least: a busy
    neighbour stretches wall time, not the work done."""
    import resource

    from index.build import _prepare
    from index.chunk import ChunkParams, split_sentences
    from index.embed import load_embedder
    from index.load import load_corpus

    articles = list(load_corpus(corpus).articles)
    split = {a.id: split_sentences(a) for a in articles}
    embedder = load_embedder()
    embedder.embed_batch(["warm-up"] * 9)  # loads the model and opens the batch session
    t0, c0 = time.perf_counter(), os.times()
    data = _prepare(articles, embedder, ChunkParams(), None, split)
    wall, c1 = time.perf_counter() - t0, os.times()
    print(json.dumps({"wall_s": wall, "user_s": c1.user - c0.user,
                      "sys_s": c1.system - c0.system, "passages": int(data.passages.shape[0]),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def phase_prepare(repeats: int, corpus: Path) -> dict:
    keys = ("wall_s", "user_s", "sys_s", "peak_rss_mb")
    got: dict[str, dict[str, list[float]]] = {k: {b: [] for b in BACKENDS} for k in keys}
    passages = 0
    for order in _orders(repeats):
        for b in order:
            out = subprocess.run([sys.executable, "-m", "bench.onnx", "--prepare-worker",
                                  str(corpus)], env=_env(b), capture_output=True, text=True,
                                 check=True, cwd=REPO).stdout
            data = json.loads(out.strip().splitlines()[-1])
            passages = data["passages"]
            for k in keys:
                got[k][b].append(round(data[k], 2))
    cpu = {b: [round(u + s, 2) for u, s in zip(got["user_s"][b], got["sys_s"][b], strict=True)]
           for b in BACKENDS}
    return {"corpus": str(corpus), "passages": passages, "wall_s": _summary(got["wall_s"]),
            "cpu_s": _summary(cpu), "sys_s": _summary(got["sys_s"]),
            "peak_rss_mb": _summary(got["peak_rss_mb"])}


def phase_build(repeats: int, work: Path) -> dict:
    wall: dict[str, list[float]] = {b: [] for b in BACKENDS}
    inner: dict[str, list[float]] = {b: [] for b in BACKENDS}
    for order in _orders(repeats):
        for b in order:
            target = work / f"build-{b}"
            shutil.rmtree(target, ignore_errors=True)
            seconds, out = cli(b, "index", "build", "--corpus", str(REPO / "corpus"),
                               "--index", str(target), "--json")
            wall[b].append(round(seconds, 2))
            inner[b].append(json.loads(out)["seconds"])
    return {"wall_s": _summary(wall), "build_seconds": _summary(inner)}


def _spans(line: str) -> dict:
    a = json.loads(line)
    return {"answered": a["answered"], "reason": a["reason"],
            "quotes": [(q["article"]["id"], q["start"], q["end"]) for q in a["quotes"]],
            "scores": [q["score"] for q in a["quotes"]]}


def phase_spans(work: Path) -> dict:
    """`ask --json -` on each corpus, indexed by each backend: the same quoted spans?"""
    sets = [("bundled", REPO / "corpus", DEV_SET)]
    sets += [(d.name, d / "corpus", d / "questions.jsonl")
             for d in sorted(DOSSIERS.iterdir()) if (d / "questions.jsonl").is_file()]
    report = {}
    for name, corpus, qfile in sets:
        questions = dev_questions(qfile)
        got = {}
        for b in BACKENDS:
            index = work / f"spans-{name}-{b}"
            shutil.rmtree(index, ignore_errors=True)
            cli(b, "index", "build", "--corpus", str(corpus), "--index", str(index), "--json")
            _, out = cli(b, "ask", "--json", "-", "--index", str(index),
                         stdin="\n".join(questions) + "\n")
            got[b] = [_spans(x) for x in out.splitlines() if x.startswith("{")]
        same = [{k: v for k, v in a.items() if k != "scores"}
                == {k: v for k, v in o.items() if k != "scores"}
                for a, o in zip(got["torch"], got["onnx"], strict=True)]
        diff = max((abs(x - y) for a, o in zip(got["torch"], got["onnx"], strict=True)
                    for x, y in zip(a["scores"], o["scores"], strict=False)), default=0.0)
        report[name] = {"questions": len(questions), "same_spans": sum(same),
                        "answered": sum(a["answered"] for a in got["onnx"]),
                        "max_score_diff": round(diff, 5),
                        "different": [q for q, s in zip(questions, same, strict=True) if not s]}
    return report


def _closure(requirements: list[str]) -> set[str]:
    """Installed distributions a list of requirements pulls in (markers evaluated, no extras
    beyond those named)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    def wanted(req: Requirement, extras: set[str]) -> bool:
        return req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras)

    seen: set[str] = set()
    todo = [r for r in map(Requirement, requirements) if wanted(r, {""})]
    while todo:
        req = todo.pop()
        key = re.sub(r"[-_.]+", "-", req.name).lower()
        if key in seen:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(key)
        # (a distribution reached twice with different extras counts the first one's; the
        # requirements here name each extra once)
        todo.extend(r for r in map(Requirement, dist.requires or [])
                    if wanted(r, set(req.extras) | {""}))
    return seen


def _dist_bytes(name: str) -> int:
    from importlib import metadata

    dist = metadata.distribution(name)
    total = 0
    for f in dist.files or []:
        p = Path(dist.locate_file(f))
        if p.is_file():
            total += p.stat().st_size
    return total


def phase_sizes() -> dict:
    """The installed size of the runtime environment, from the packages' RECORD files (what
    `pip install` puts in the image's environment layer), with and without the torch extra."""
    import tomllib

    from index.onnx_embed import packaged_export_dir

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = _closure(project["dependencies"])
    with_torch = _closure(project["dependencies"] + project["optional-dependencies"]["torch"])
    sizes = {n: _dist_bytes(n) for n in with_torch}
    export = sum(p.stat().st_size for p in packaged_export_dir().iterdir() if p.is_file())
    mib = 2**20
    top = sorted(((n, round(s / mib, 1)) for n, s in sizes.items() if n not in runtime),
                 key=lambda x: -x[1])[:8]
    return {"runtime_mib": round((sum(sizes[n] for n in runtime) + export) / mib, 1),
            "onnx_export_mib": round(export / mib, 1),
            "with_torch_mib": round(sum(sizes.values()) / mib, 1),
            "ratio": round((sum(sizes[n] for n in runtime) + export) / sum(sizes.values()), 3),
            "left_out_largest_mib": dict(top), "runtime_packages": sorted(runtime)}


def report_markdown(res: dict) -> str:
    rows = []
    if "cold" in res:
        c = res["cold"]
        rows.append(["cold `ask` (s, median)", f"{c['median']['torch']:.2f}",
                     f"{c['median']['onnx']:.2f}", f"{c['ratio']:.2f}x"])
    # (phase, measurement, label): medians per backend and their ratio, one row each.
    paired = (("warm", "p50_ms", "warm question p50 (ms)"),
              ("warm", "p95_ms", "warm question p95 (ms)"),
              ("warm", "rss_mb", "serving RSS (MiB)"),
              ("warm", "peak_rss_mb", "serving peak RSS (MiB)"),
              ("build", "wall_s", "full build of corpus/ (s, wall)"),
              ("prepare", "wall_s", "embedding of that build (s, wall)"),
              ("prepare", "cpu_s", "embedding of that build (s, CPU)"),
              ("prepare", "peak_rss_mb", "embedding's peak RSS (MiB)"))
    for phase, key, label in paired:
        if phase in res:
            m = res[phase][key]
            rows.append([label, f"{m['median']['torch']:.1f}", f"{m['median']['onnx']:.1f}",
                         f"{m['ratio']:.2f}x"])
    if "sizes" in res:
        s = res["sizes"]
        rows.append(["installed environment (MiB)", f"{s['with_torch_mib']:.0f}",
                     f"{s['runtime_mib']:.0f}", f"{s['ratio']:.2f}x"])
    out = markdown_table(["", "sentence-transformers", "onnxruntime", "ratio"], rows)
    if "spans" in res:
        out += "\n\n" + markdown_table(
            ["questions", "count", "same spans", "answered", "max score diff"],
            [[n, str(r["questions"]), str(r["same_spans"]), str(r["answered"]),
              f"{r['max_score_diff']:.5f}"] for n, r in res["spans"].items()])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phases", default="sizes,cold,warm,build,prepare,spans")
    ap.add_argument("--repeats", type=int, default=4, help="runs per backend (cold, warm)")
    ap.add_argument("--builds", type=int, default=2,
                    help="full builds per backend (build, prepare)")
    ap.add_argument("--corpus", type=Path, default=REPO / "corpus",
                    help="what the prepare phase embeds (default: the bundled corpus/)")
    ap.add_argument("--passes", type=int, default=2, help="passes over the dev set (warm)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--prepare-worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.passes)
        return 0
    if args.prepare_worker:
        prepare_worker(args.prepare_worker)
        return 0
    if not args.corpus.is_dir():
        raise SystemExit(f"--corpus {args.corpus}: no such folder")
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    from bench.common import machine

    res: dict = {"machine": machine(), "phases": phases}
    with tempfile.TemporaryDirectory(prefix="dossier-onnx-bench-") as tmp:
        work = Path(tmp)
        index = work / "index"
        if {"cold", "warm"} & set(phases):
            cli("onnx", "index", "build", "--corpus", str(REPO / "corpus"), "--index",
                str(index), "--json")
        for phase in phases:
            t0 = time.perf_counter()
            if phase == "sizes":
                res["sizes"] = phase_sizes()
            elif phase == "cold":
                res["cold"] = phase_cold(index, args.repeats)
            elif phase == "warm":
                res["warm"] = phase_warm(index, args.repeats, args.passes)
            elif phase == "build":
                res["build"] = phase_build(args.builds, work)
            elif phase == "prepare":
                res["prepare"] = phase_prepare(args.builds, args.corpus.resolve())
            elif phase == "spans":
                res["spans"] = phase_spans(work)
            else:
                raise SystemExit(f"unknown phase {phase!r}")
            res[f"{phase}_loadavg_1m"] = round(os.getloadavg()[0], 2)
            print(f"{phase}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if args.out:
        args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(report_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
