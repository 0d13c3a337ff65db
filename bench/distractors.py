"""The bundled development set answered with every BBC article added to the corpus as a
distractor: how much does strict fall when the dossier is 2,000 articles of other news?

    .venv/bin/python -m bench.distractors [--bbc ../shared/bbc] [--dossiers DIR] [--json]

With ``--dossiers`` (e.g. ../shared/eval/dossiers), each of those dossiers' questions is
also asked of its own articles alone and of the same mixed corpus, which holds those articles
among all the others (the dossiers are BBC articles, found in the mixed corpus by their
bytes): a harder test than the bundled set's, whose web articles look unlike BBC copy.
There, "off-topic" questions may be answered by another BBC article on the same story, so
only the answerable figures are comparable.

The BBC articles are copied into a work folder beside the five bundled ones (by default
``.dossier/distractors``, ignored by git: never into the tracked repository), indexed with the
bot's own build, and the bundled questions scored by ``bot.evaluate`` against that index and
against the bundled corpus alone, in one run. The build is incremental, so a run that was
stopped resumes where it was, and a later run with another ranker reuses the index.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

from bench.common import DEV_SET, REPO, machine

BBC = REPO.parent / "shared" / "bbc"


def run(bbc: Path, questions: Path, work: Path, dossiers: Path | None = None) -> dict:
    from bot.answer import Answerer
    from bot.config import Settings
    from bot.evaluate import contains, find_dossiers, load_cases, run_eval
    from bot.runtime import make_embedder
    from index.build import build_index
    from index.live import LiveIndex

    embedder = make_embedder(Settings.from_env())
    cases = load_cases(questions)
    out = {"machine": machine(), "questions": str(questions), "rows": []}
    alone, mixed = work / "alone", work / "mixed"
    for folder in (alone, mixed):
        folder.mkdir(parents=True, exist_ok=True)
    for f in (REPO / "corpus").iterdir():
        if f.is_file():
            shutil.copyfile(f, alone / f.name)
            shutil.copyfile(f, mixed / f.name)
    # One category at a time, each built as it arrives: a stopped run keeps what it built.
    n = 0
    for category in sorted(p for p in bbc.iterdir() if p.is_dir()):
        for f in sorted(category.glob("*.txt")):
            target = mixed / f"bbc-{category.name}-{f.name}"
            if not target.exists():
                shutil.copyfile(f, target)
            n += 1
        t = time.perf_counter()
        build_index(mixed, work / "index-mixed", embedder)
        print(f"built through {category.name} ({n} BBC articles) in "
              f"{time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    for name, corpus in (("bundled corpus alone", alone),
                         (f"bundled + {n} BBC articles", mixed)):
        index_dir = work / f"index-{corpus.name}"
        t = time.perf_counter()
        report = build_index(corpus, index_dir, embedder)
        build_s = time.perf_counter() - t
        answerer = Answerer(LiveIndex(index_dir, embedder))
        d = run_eval(answerer, cases).as_dict()
        d.pop("misses")
        out["rows"].append({"corpus": name, "articles": report.articles,
                            "passages": report.chunks, "build_s": round(build_s, 1), **d})
        print(json.dumps(out["rows"][-1]), file=sys.stderr, flush=True)
    if dossiers is not None:
        mixed_answerer = Answerer(LiveIndex(work / "index-mixed", embedder))
        by_bytes = {hashlib.sha256(f.read_bytes()).digest(): f.stem
                    for f in mixed.iterdir() if f.name.startswith("bbc-")}
        for dossier in find_dossiers(dossiers):
            own = load_cases(dossier.questions)
            # Each expected article, as the mixed corpus names its byte-identical copy.
            ids = {f.name.split("-", 1)[0]: by_bytes.get(hashlib.sha256(f.read_bytes()).digest())
                   for f in dossier.corpus.iterdir() if f.is_file()}
            remapped = [dataclasses.replace(c, doc=ids.get(c.doc) if c.doc else None)
                        for c in own]
            if any(c.doc and not r.doc for c, r in zip(own, remapped, strict=True)):
                raise SystemExit(f"{dossier.name}: an expected article is not in {mixed}")
            index_dir = work / "dossiers" / dossier.name
            build_index(dossier.corpus, index_dir, embedder)
            for corpus, answerer, cases_of in (("alone", Answerer(LiveIndex(index_dir, embedder)),
                                                own),
                                               ("mixed", mixed_answerer, remapped)):
                report = run_eval(answerer, cases_of)
                d = report.as_dict()
                d.pop("misses")
                # Another article on the same story may quote the same words: the first quote
                # holding the phrase, from whichever article.
                d["strict_any_article"] = sum(
                    o.answer.answered and contains(o.answer.quotes[0].text, o.case.phrase)
                    for o in report.answerable)
                out["rows"].append({"corpus": f"{dossier.name} {corpus}", **d})
                print(json.dumps(out["rows"][-1]), file=sys.stderr, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bbc", type=Path, default=BBC)
    ap.add_argument("--questions", type=Path, default=DEV_SET)
    ap.add_argument("--work", type=Path, default=REPO / ".dossier" / "distractors",
                    help="corpora and indexes, kept between runs (default: %(default)s)")
    ap.add_argument("--dossiers", type=Path, default=None,
                    help="a folder of BBC dossiers to ask of the mixed corpus too")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = run(args.bbc, args.questions, args.work, args.dossiers)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for r in result["rows"]:
            n = r["answerable"]
            print(f"{r['corpus']:38s} strict {r['strict']}/{n} ({100 * r['strict'] / n:.1f}%)  "
                  f"lenient {r['lenient']}/{n}  off-topic declined "
                  f"{r['off_topic_declined']}/{r['off_topic']}  "
                  f"answerable declined {r['answerable_declined']}/{n}"
                  + (f"  strict, any article {r['strict_any_article']}/{n}"
                     if "strict_any_article" in r else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
