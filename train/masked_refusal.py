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
import json

import numpy as np

from index.features import FEATURES
from index.scorer import QUESTION_FEATURES, RankerModel, sigmoid
from train import fit_ranker as fr

GAPS = ("sentence_dense", "window_dense", "sentence_late", "window_late", "context_cover")


def phrases() -> dict[tuple[str, str], str]:
    out = {}
    for f in sorted(fr.TRAIN.glob("*/questions.jsonl")):
        for line in f.read_text().splitlines():
            if line.strip():
                d = json.loads(line)
                if d.get("phrase"):
                    out[(f.parent.name, d["q"])] = d["phrase"]
    return out


def masked(r: fr.QuestionRows, phrase: str) -> np.ndarray | None:
    """The question's candidate matrix with its answer taken out (None if too little is left)."""
    want = fr.norm(phrase)
    keep = np.array([not r.labels[j] and want not in fr.norm(t) for j, t in enumerate(r.texts)])
    if keep.sum() < 2:
        return None
    m = r.matrix[keep].copy()
    for name in GAPS:
        col = m[:, FEATURES.index(name)]
        m[:, FEATURES.index(f"{name}_gap")] = col - col.max()
    return m


def synthetic(train: list[fr.QuestionRows], names, c: float, loss: str) -> list[np.ndarray]:
    """Question features of every masked answerable question, from fold scorers that never
    saw its story."""
    ph = phrases()
    rows = []
    for fold in fr.folds(train):
        held = set(fold)
        model = fr.fit_candidates([r for i, r in enumerate(train) if i not in held], names, c,
                                  loss)
        for i in fold:
            r = train[i]
            if not r.answerable or r.foreign or r.matrix is None or (r.dossier, r.q) not in ph:
                continue
            m = masked(r, ph[(r.dossier, r.q)])
            if m is None:
                continue
            logits = fr.candidate_logits(model, fr.QuestionRows(r.dossier, r.q, False, m,
                                                                np.zeros(len(m))))
            rows.append(fr.question_features(m, r.unknown, r.unknown_name, logits))
    return rows


def fit_with(train, names, c, loss, oof, extra: list[np.ndarray], weight: float) -> RankerModel:
    from sklearn.linear_model import LogisticRegression

    base = fr.fit_model(train, names, c, loss=loss, oof=oof)
    qx = np.array([fr.qfeatures(train[i], oof[i]) for i in sorted(oof)])
    qy = np.array([train[i].answerable for i in sorted(oof)], dtype=np.float32)
    # foreign rows count as one unanswerable question each, as in fit_ranker
    if weight > 0 and extra:
        x = np.vstack([qx, np.array(extra)])
        y = np.concatenate([qy, np.zeros(len(extra), np.float32)])
        w = np.concatenate([np.ones(len(qx)), np.full(len(extra), weight)])
    else:
        x, y, w = qx, qy, np.ones(len(qx))
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    lr = LogisticRegression(C=1.0, max_iter=2000)
    lr.fit((x - mean) / scale, y, sample_weight=w)
    question = fr.Linear(QUESTION_FEATURES, mean.astype(np.float32), scale.astype(np.float32),
                         lr.coef_[0].astype(np.float32), float(lr.intercept_[0]))
    p = sigmoid(question.logits(qx))
    answerable_p = np.sort(p[qy == 1])
    answer_at = float(answerable_p[int(len(answerable_p) * fr.ANSWERABLE_DECLINED_TARGET)])
    low_at = float(answerable_p[int(len(answerable_p) * fr.LOW_BAND_DECLINED)])
    return RankerModel(base.candidate, question, answer_at, min(low_at, answer_at),
                       base.quote_ratio, {})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", type=float, nargs="+", default=[0, 0.1, 0.25, 0.5, 1.0])
    ap.add_argument("--features", default=str(fr.TUNED_FEATURES))
    args = ap.parse_args(argv)
    from pathlib import Path

    train, dev = fr.load_cached(path=Path(args.features))
    train += fr.load_foreign(fr.TUNED_FOREIGN)  # as shipped: weight 0 is the shipped model
    names = tuple(FEATURES)
    oof = fr.out_of_fold_logits(train, names)
    extra = synthetic(train, names, 1.0, "listwise")
    real = sum(not r.answerable and not r.foreign for r in train)
    print(f"{len(extra)} masked questions beside {real} real unanswerable and "
          f"{sum(r.foreign for r in train)} foreign ones")
    for w in args.weights:
        model = fit_with(train, names, 1.0, "listwise", oof, extra, w)
        m = fr.measure(model, dev)
        tr = fr.total(fr.measure(model, [r for r in train if not r.foreign]), ())
        print(f"weight {w:4}: {fr.fmt(fr.total(m))} | bundled {m['bundled']['strict']}/"
              f"{m['bundled']['answerable']}, off-topic {m['bundled']['off_declined']}/"
              f"{m['bundled']['off_topic']} | training off-topic declined "
              f"{tr['off_declined']}/{tr['off_topic']} (in sample)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
