"""How the scorer and refusal model improve with more training stories: refit on random
subsets of the training stories and report the development suite (six dossiers).

It reads the untuned wheel model's features, without foreign questions: the setting of the
release it was measured on (docs/ranking.md, session 7), before the tuned embedder.

Answers "would more training questions help?" before anyone writes them:

    python -m train.learning_curve [--draws 4]
"""

from __future__ import annotations

import argparse
import random

import numpy as np

from index.features import FEATURES
from train.fit_ranker import (
    BUNDLED_NAME,
    QuestionRows,
    fit_model,
    load_cached,
    measure,
    total,
)


def argmax_strict(model, rows: list[QuestionRows]) -> int:
    """Development questions whose best-scored candidate holds the answer (refusal off)."""
    return sum(bool(r.labels[int(np.argmax(model.logits_of(r.matrix)))]) for r in rows
               if r.dossier != BUNDLED_NAME and r.answerable and r.matrix is not None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--draws", type=int, default=4, help="random subsets per size")
    ap.add_argument("--sizes", default="6,12,18,24", help="stories per subset, comma-separated")
    args = ap.parse_args(argv)
    train, dev = load_cached()
    stories = sorted({r.dossier for r in train})
    sizes = [int(s) for s in args.sizes.split(",")] + [len(stories)]
    print(f"{'stories':>7} {'questions':>9} {'strict':>7} {'no refusal':>10} "
          f"{'declined':>8} {'off-topic declined':>18}   (six dossiers; means over draws)")
    for size in sizes:
        runs = []
        for draw in range(args.draws if size < len(stories) else 1):
            pick = set(random.Random(draw).sample(stories, size))
            subset = [r for r in train if r.dossier in pick]
            model = fit_model(subset, tuple(FEATURES))
            t = total(measure(model, dev))
            runs.append((sum(r.answerable for r in subset), t["strict"],
                         argmax_strict(model, dev), t["declined"], t["off_declined"]))
        m = np.mean(runs, axis=0)
        print(f"{size:7d} {m[0]:9.0f} {m[1]:7.1f} {m[2]:10.1f} {m[3]:8.1f} {m[4]:18.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
