"""Plainly off-topic questions at scale: each development dossier is asked the *other* dossiers'
answerable questions (another story's questions: none can be answered), and the ranker's
three outcomes are counted. The development sets hold only eight off-topic questions per
dossier; this gives about 1,300.

    python -m bench.foreign                       # the shipped model and ranker
    python -m bench.foreign --packaged --ranker FILE  # the untuned wheel model, another ranker

It uses (and builds when missing or stale) the indexes of `python -m train.fit_ranker` under
.dossier/train/index; the shipped model's are named ft-all-*.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from train import fit_ranker as fr


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packaged", action="store_true", help="the untuned wheel model")
    ap.add_argument("--ranker", type=Path, default=None, help="a ranker JSON (default: shipped)")
    args = ap.parse_args(argv)
    from index.build import build_index
    from index.embed import load_embedder, untuned_embedder
    from index.live import LiveIndex
    from index.policy import HIGH, LOW, confidence
    from index.scorer import RankerModel, default_model

    model = RankerModel.load(args.ranker) if args.ranker else default_model()
    if args.packaged:
        embedder, prefix = untuned_embedder(), ""
    else:
        embedder, prefix = load_embedder(), "ft-all-"
    # Each development set with its answerable questions: another set's are foreign to it.
    sets = [(name, corpus, [q["q"] for q in questions if q.get("doc")])
            for name, corpus, questions in fr.dev_sets()]
    total = {"answer": 0, "unsure": 0, "decline": 0}
    for name, corpus, _ in sets:
        index_dir = fr.CACHE / "index" / f"{prefix}{name}"
        build_index(corpus, index_dir, embedder)  # a no-op when it is current
        retriever = LiveIndex(index_dir, embedder).current().retriever
        counts = {"answer": 0, "unsure": 0, "decline": 0}
        for other, _, questions in sets:
            if other == name:
                continue
            for q in questions:
                fm = retriever.features(retriever.correct(q) or q)
                if fm is None:
                    counts["decline"] += 1
                    continue
                logits = model.logits_of(fm.matrix)
                p = model.probability_from(fm.matrix, fm.question.unknown,
                                           fm.question.unknown_name, logits)
                level = confidence(p, model.answer_at, model.low_at)
                counts[{HIGH: "answer", LOW: "unsure", None: "decline"}[level]] += 1
        n = sum(counts.values())
        print(f"{name:24s} {n:4d} foreign questions: declined {counts['decline']:4d}, unsure "
              f"{counts['unsure']:3d}, answered {counts['answer']:3d} "
              f"({100 * counts['answer'] / n:.1f}%)", flush=True)
        for k in total:
            total[k] += counts[k]
    n = sum(total.values())
    print(f"{'total':24s} {n:4d} foreign questions: declined {total['decline']:4d}, unsure "
          f"{total['unsure']:3d}, answered {total['answer']:3d} ({100 * total['answer'] / n:.1f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
