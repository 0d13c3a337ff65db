"""Experiment: teach the refusal model near-topic questions by hiding answers.

Every answerable training question becomes, once its answer is taken out of the dossier (each
candidate whose window holds the phrase in the right article, and any sentence holding it
elsewhere), a question the dossier talks around but does not answer: the near-topic case the
refusal model misses. Those rows join the real unanswerable questions, weighted, when the
refusal model is fitted (out-of-fold candidate logits as always; the masked candidates'
"relative to the best" columns are recomputed). The threshold is still set on real answerable
training questions. Reports the development suite per weight.

    python -m train.masked_refusal [--weights 0 0.1 0.25 0.5 1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from index.features import FEATURES, fill_best_in_window, fill_gaps
from index.scorer import RankerModel
from train import fit_ranker as fr


def masked(r: fr.QuestionRows, phrase: str) -> np.ndarray | None:
    """The question's candidate matrix with its answer taken out (None if too little is left)."""
    want = fr.norm(phrase)
    keep = np.array([not r.labels[j] and want not in fr.norm(t) for j, t in enumerate(r.texts)])
    if keep.sum() < 2:
        return None
    m = r.matrix[keep].copy()
    # A window's best sentence among the candidates left: the hidden ones are gone.
    windows = [w for w, k in zip(r.windows, keep, strict=True) if k]
    for seg in {w[0] for w in windows}:
        at = np.array([i for i, w in enumerate(windows) if w[0] == seg])
        rows, lo, hi = (np.array([windows[i][j] for i in at]) for j in (1, 2, 3))
        order = np.argsort(rows)
        block = m[at[order]]
        fill_best_in_window(block, rows[order], lo[order], hi[order])
        m[at[order]] = block
    fill_gaps(m)
    return m


def masked_rows(train: list[fr.QuestionRows]) -> list[fr.QuestionRows]:
    """Every answerable training question with its answer taken out, as an unanswerable row
    the refusal model reads and the candidate scorer never does (``foreign``)."""
    phrases = fr.training_phrases()
    out = []
    for r in train:
        if not r.answerable or r.foreign or r.matrix is None or (r.dossier, r.q) not in phrases:
            continue
        m = masked(r, phrases[(r.dossier, r.q)])
        if m is not None:
            out.append(fr.QuestionRows(r.dossier, r.q, False, m, np.zeros(len(m), np.float32),
                                       r.unknown, r.unknown_name, foreign=True))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", type=float, nargs="+", default=[0, 0.1, 0.25, 0.5, 1.0])
    ap.add_argument("--features", type=Path, default=fr.TUNED_FEATURES)
    args = ap.parse_args(argv)

    train, dev = fr.load_cached(path=args.features)
    train += fr.load_foreign(fr.TUNED_FOREIGN)  # as shipped: weight 0 is the shipped model
    extra = masked_rows(train)
    names = tuple(FEATURES)
    # Fold scorers never see foreign or masked rows: these are the shipped out-of-fold logits,
    # and the masked rows' own from the scorer that never saw their story.
    oof = fr.out_of_fold_logits(train + extra, names)
    candidate = fr.fit_candidates(train, names)
    rows = train + extra
    idx = sorted(oof)
    qx = np.array([fr.qfeatures(rows[i], oof[i]) for i in idx])
    qy = np.array([rows[i].answerable for i in idx], dtype=np.float32)
    is_masked = np.array([i >= len(train) for i in idx])
    real = sum(not r.answerable and not r.foreign for r in train)
    print(f"{len(extra)} masked questions beside {real} real unanswerable and "
          f"{sum(r.foreign for r in train)} foreign ones")
    for w in args.weights:
        weight = np.where(is_masked, w, 1.0)
        keep = weight > 0
        question, answer_at, low_at = fr.fit_refusal(qx[keep], qy[keep], weight[keep])
        model = RankerModel(candidate, question, answer_at, low_at, fr.QUOTE_RATIO, {})
        m = fr.measure(model, dev)
        tr = fr.total(fr.measure(model, [r for r in train if not r.foreign]), ())
        print(f"weight {w:4}: {fr.fmt(fr.total(m))} | bundled {m['bundled']['strict']}/"
              f"{m['bundled']['answerable']}, off-topic {m['bundled']['off_declined']}/"
              f"{m['bundled']['off_topic']} | training off-topic declined "
              f"{tr['off_declined']}/{tr['off_topic']} (in sample)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
