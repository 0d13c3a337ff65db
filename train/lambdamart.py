"""Experiment: gradient-boosted trees fitted with LambdaMART (LightGBM's ``lambdarank``) over the
scorer's features, against the shipped listwise linear scorer. Measured and not kept
(docs/ranking.md, "LambdaMART over the same features").

    pip install lightgbm   # not a project dependency: only this experiment needs it
    python -m train.lambdamart      # ~1 min on two cores, after finetune_embedder features

Training stories are scored out of fold (whole stories held out, as ``fit_ranker``); the
development suite by trees fitted on every training story. Refusal is off throughout: the
figures are how often the first quote holds the answer.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from index.features import FEATURES
from train import fit_ranker as fr

# Three shapes of forest: small and shallow, wider with bagging, and stumps-like trees tuned
# for the top of the list (NDCG truncated at 5).
RECIPES = {
    "7 leaves, 200 trees": dict(n_estimators=200, num_leaves=7, learning_rate=0.05,
                                min_child_samples=50),
    "15 leaves, 400 trees, bagged": dict(n_estimators=400, num_leaves=15, learning_rate=0.03,
                                         min_child_samples=100, subsample=0.8, subsample_freq=1,
                                         colsample_bytree=0.8),
    "4 leaves, 300 trees, NDCG@5": dict(n_estimators=300, num_leaves=4, learning_rate=0.05,
                                        min_child_samples=50, lambdarank_truncation_level=5),
}


def fit_forest(rows: list[fr.QuestionRows], params: dict):
    import lightgbm

    rows = [r for r in rows if r.answerable and r.labels.any()]
    model = lightgbm.LGBMRanker(objective="lambdarank", verbose=-1, random_state=0, **params)
    model.fit(np.vstack([r.matrix for r in rows]),
              np.concatenate([(r.labels > 0).astype(int) for r in rows]),
              group=[len(r.labels) for r in rows])
    return model


def first_right(rows: list[fr.QuestionRows], scores) -> dict[str, int]:
    """Answerable questions whose first quote holds the answer, six dossiers and bundled apart."""
    def part(bundled: bool) -> int:
        mine = [r for r in rows if (r.dossier == fr.BUNDLED_NAME) == bundled]
        return fr.oof_strict(mine, {i: scores(r) for i, r in enumerate(mine)})

    return {"six dossiers": part(False), "bundled": part(True)}


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        print("lambdamart: needs LightGBM, which the bot does not: pip install lightgbm",
              file=sys.stderr)
        return 2
    train, dev = fr.load_cached(path=fr.TUNED_FEATURES)
    train = [r for r in train if r.matrix is not None]
    dev = [r for r in dev if r.matrix is not None]
    linear_oof = fr.out_of_fold_logits(train, FEATURES)
    linear = fr.fit_candidates(train, FEATURES)
    print(f"{'scorer':42s} {'training, out of fold':>22s} {'six dossiers':>13s} {'bundled':>8s}")

    def report(label: str, oof: dict[int, np.ndarray], dev_scores) -> None:
        d = first_right(dev, dev_scores)
        print(f"{label:42s} {fr.oof_strict(train, oof):>22d} {d['six dossiers']:>13d} "
              f"{d['bundled']:>8d}")

    report("listwise linear (shipped)", linear_oof, lambda r: fr.candidate_logits(linear, r))
    for label, params in RECIPES.items():
        oof: dict[int, np.ndarray] = {}
        for fold in fr.folds(train):
            held = set(fold)
            forest = fit_forest([r for i, r in enumerate(train) if i not in held], params)
            oof.update({i: forest.predict(train[i].matrix) for i in fold})
        forest = fit_forest(train, params)
        report(f"LambdaMART, {label}", oof, lambda r, f=forest: f.predict(r.matrix))
        # Beside the linear logit, as one more signal: the sum of the two scores.
        report("  + linear logit", {i: linear_oof[i] + oof[i] for i in oof},
               lambda r, f=forest: fr.candidate_logits(linear, r) + f.predict(r.matrix))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
