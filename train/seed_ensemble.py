"""Would several embedders together rank better than one? Each set of cached features (one
per embedder, from ``python -m train.finetune_embedder features``) gets its own candidate
scorer; an ensemble averages their logits per candidate sentence (an embedder that did not
retrieve a sentence gives it its lowest logit for that question). Refusal off: the count is of
answerable questions whose best candidate's window holds the answer, out of fold on training
(whole stories held out) and on the development suite.

    python -m train.seed_ensemble FEATURES.pkl FEATURES.pkl [...]

Session 12 ran it on three seeds of the shipped recipe (docs/ranking.md, "The embedder tuned
again"): the ensemble ranks first what the best seed alone does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from index.features import FEATURES
from train import fit_ranker as fr

Scored = dict[tuple[str, str], tuple[fr.QuestionRows, np.ndarray | None]]


def scored(path: Path) -> tuple[Scored, Scored]:
    """(training, development) answerable questions with their candidate logits: out of fold
    for training, from a scorer fitted on all training questions for development."""
    train, dev = fr.load_cached(path=path)
    oof = fr.out_of_fold_logits(train, FEATURES)
    model = fr.fit_candidates(train, FEATURES)
    tr = {(r.dossier, r.q): (r, oof.get(i)) for i, r in enumerate(train) if r.answerable}
    dv = {(r.dossier, r.q): (r, fr.candidate_logits(model, r) if r.matrix is not None else None)
          for r in dev if r.answerable}
    return tr, dv


def first_is_right(items: list[tuple[fr.QuestionRows, np.ndarray | None]]) -> bool:
    """Whether the sentence with the best mean logit over ``items`` (one question as each
    embedder saw it) lies in a window that holds the answer."""
    items = [(r, lg) for r, lg in items if lg is not None and r.matrix is not None]
    if not items:
        return False
    label: dict[tuple[str, int], bool] = {}
    logits = []
    for r, lg in items:
        keys = list(zip(r.articles, r.positions, strict=True))
        label.update((k, bool(r.labels[i])) for i, k in enumerate(keys))
        logits.append((dict(zip(keys, lg.tolist(), strict=True)), float(lg.min())))
    mean = {k: sum(d.get(k, floor) for d, floor in logits) / len(logits) for k in label}
    return label[max(mean, key=mean.__getitem__)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("features", type=Path, nargs="+", help="cached features, one per embedder")
    args = ap.parse_args(argv)
    missing = [p for p in args.features if not p.is_file()]
    if missing:
        print(f"not found: {', '.join(map(str, missing))} (python -m train.finetune_embedder "
              "features --out PATH writes them)", file=sys.stderr)
        return 2
    runs = [scored(p) for p in args.features]
    parts = (("training, out of fold", 0, lambda story: True),
             ("six development dossiers", 1, lambda story: story != fr.BUNDLED_NAME),
             ("bundled", 1, lambda story: story == fr.BUNDLED_NAME))
    for part, idx, keep in parts:
        keys = [k for k in runs[0][idx] if keep(k[0])]
        alone = ", ".join(f"{p}: {sum(first_is_right([run[idx][k]]) for k in keys)}"
                          for p, run in zip(args.features, runs, strict=True))
        together = sum(first_is_right([run[idx][k] for run in runs if k in run[idx]])
                       for k in keys)
        print(f"{part} ({len(keys)} answerable): {alone}; ensemble: {together}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
