"""Experiment: a cross-encoder that reads the scorer's best windows and says whether they answer.

Session 6 measured a cross-encoder as a *reranker*, trained on 206 questions; sessions 7-10
wrote 2,286 answerable training questions, 400 unanswerable ones and 600 near-topic ones (a
detail the dossier lacks about people it knows). This asks whether that much data lets a
cross-encoder fine-tuned on this CPU from the packaged (untuned) MiniLM separate answerable
from off-topic questions better than the shipped refusal features, and whether it reorders
the scorer's top windows for the better.

    python -m train.cross_refusal extract   # ~10 s: each question's top K windows as text
    python -m train.cross_refusal fit [--epochs 1] [--no-near]  # ~9 min an epoch per fold, 2 cores
    python -m train.cross_refusal report    # AUCs and decisions, out of fold and on dev

Everything on training questions is out of fold by story (two folds; the scorer's logits are
``fit_ranker``'s five-fold ones); the development dossiers are scored by the mean of the two
fold models. Needs the caches of ``python -m train.finetune_embedder features``, ``foreign``
and ``near``. Measured and not kept: docs/ranking.md, "A cross-encoder that reads for
refusal".
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

import numpy as np

from train import fit_ranker as fr

K = 3  # windows read per question
OUT = fr.REPO / ".dossier" / "cross-refusal"
SEED = 20261127
MAX_LENGTH = 192


def _segment_paths() -> dict[str, Path]:
    return {p.name: p for p in (fr.CACHE / "index").glob("*/segments/*") if p.is_dir()}


def scored_questions():
    """The shipped scorer and every question with candidates, as ``(set, row, logits)``:
    training rows (with the foreign and near-topic ones) scored out of fold by story, the
    development rows by the shipped scorer."""
    from index.scorer import default_model

    train, dev = fr.load_cached(path=fr.TUNED_FEATURES)
    train = train + fr.load_foreign(fr.TUNED_FOREIGN) + fr.load_near()
    shipped = default_model()
    oof = fr.out_of_fold_logits(train, shipped.candidate.names)
    out = [("train", r, oof[i]) for i, r in enumerate(train) if i in oof]
    out += [("dev", r, shipped.logits_of(r.matrix)) for r in dev if r.matrix is not None]
    return shipped, out


def cmd_extract() -> None:
    """Top ``K`` windows per question by the scorer (out of fold on training) as text."""
    from index.segment import load_segment

    shipped, scored = scored_questions()
    paths, segments = _segment_paths(), {}

    def window_text(window) -> str:
        # The article's text over the window, as the bot quotes it and as the labels read it.
        seg_id, _, lo, hi = window
        if seg_id not in segments:
            if seg_id not in paths:
                raise SystemExit(stale_indexes(seg_id))
            segments[seg_id] = load_segment(paths[seg_id])
        seg = segments[seg_id]
        return seg.article_of(lo).body[int(seg.sentence_start[lo]):int(seg.sentence_end[hi])]

    rows = []
    for kind, r, logits in scored:
        top = fr.quotes_of(r, fr.sigmoid(logits), 0.0, n=K)  # distinct windows, as quoted
        p = shipped.probability_from(r.matrix, r.unknown, r.unknown_name, logits)
        rows.append({"set": kind, "story": r.dossier, "q": r.q, "answerable": r.answerable,
                     "foreign": r.foreign, "near": r.near,
                     "texts": [window_text(r.windows[j]) for j in top],
                     "labels": r.labels[top] > 0, "logits": logits[top],
                     "refusal_p": float(p),
                     "qfeatures": fr.qfeatures(r, logits)})
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "rows.pkl").write_bytes(pickle.dumps(rows))
    print(f"{len(rows)} questions -> {OUT / 'rows.pkl'}")


def stale_indexes(seg_id: str) -> str:
    """Why ``extract`` cannot go on: the cached features name a segment that a later build of
    the training indexes (another embedder's run) replaced."""
    return (f"cross_refusal: segment {seg_id} of the cached features is not in "
            f"{fr.CACHE / 'index'}: the training indexes were rebuilt since the features were "
            "cached. Run `python -m train.finetune_embedder features`, `foreign` and `near` "
            "again (about 10 minutes each), then `extract`.")


def split_bundled(rows: list[dict], scores: list) -> tuple[tuple[list, list], tuple[list, list]]:
    """(six dossiers, bundled set): each as (rows, scores), the development rows split."""
    parts: dict[bool, tuple[list, list]] = {False: ([], []), True: ([], [])}
    for r, s in zip(rows, scores, strict=True):
        part = parts[r["story"] == fr.BUNDLED_NAME]
        part[0].append(r)
        part[1].append(s)
    return parts[False], parts[True]


def _pairs(rows: list[dict]) -> list[tuple[str, str, float]]:
    # Another story's question is an easy negative: its best window is enough to train on.
    return [(r["q"], t, float(y)) for r in rows
            for t, y in list(zip(r["texts"], r["labels"], strict=True))[:1 if r["foreign"] else K]]


def _train(rows: list[dict], epochs: int, threads: int):
    import torch
    from sentence_transformers import CrossEncoder

    from index.embed import packaged_model_dir

    torch.manual_seed(SEED)
    torch.set_num_threads(threads)
    ce = CrossEncoder(str(packaged_model_dir()), num_labels=1, max_length=MAX_LENGTH)
    model, tok = ce.model, ce.tokenizer
    pairs = _pairs(rows)
    pos = sum(y for *_, y in pairs)
    # Positives are one pair in five: weight them up so the logit is not pushed all negative.
    pos_weight = torch.tensor((len(pairs) - pos) / max(pos, 1.0))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-5, weight_decay=0.01)
    steps = epochs * ((len(pairs) + 15) // 16)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / (0.1 * steps)) * max(0.0, 1 - s / steps))
    rng = np.random.default_rng(SEED)
    model.train()
    started, step = time.perf_counter(), 0
    for _ in range(epochs):
        order = rng.permutation(len(pairs))
        for b in range(0, len(order), 16):
            batch = [pairs[j] for j in order[b:b + 16]]
            enc = tok([q for q, _, _ in batch], [t for _, t, _ in batch], padding=True,
                      truncation="only_second", max_length=MAX_LENGTH, return_tensors="pt")
            out = model(**enc).logits.squeeze(-1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                out, torch.tensor([y for *_, y in batch]), pos_weight=pos_weight)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step % 50 == 0:
                print(f"    step {step}/{steps} loss {loss.item():.3f} "
                      f"{time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    model.eval()
    return ce


def _score(ce, rows: list[dict]) -> list[np.ndarray]:
    import torch

    pairs = [(r["q"], t) for r in rows for t in r["texts"]]
    flat = np.asarray(ce.predict(pairs, batch_size=64, activation_fn=torch.nn.Identity(),
                                 show_progress_bar=False), np.float32).reshape(-1)
    out, at = [], 0
    for r in rows:
        out.append(flat[at:at + len(r["texts"])])
        at += len(r["texts"])
    return out


def cmd_fit(epochs: int, near: bool, threads: int) -> None:
    if not (OUT / "rows.pkl").is_file():
        raise SystemExit(f"{OUT / 'rows.pkl'} is missing: run `extract` first.")
    rows = pickle.loads((OUT / "rows.pkl").read_bytes())
    train = [r for r in rows if r["set"] == "train"]
    dev = [r for r in rows if r["set"] == "dev"]
    stories = sorted({r["story"] for r in train})
    scores: dict[str, list] = {"train": [None] * len(train), "dev": []}
    dev_sum = None
    for f in range(2):
        held = {s for i, s in enumerate(stories) if i % 2 == f}
        fit_on = [r for r in train if r["story"] not in held and (near or not r["near"])]
        print(f"fold {f}: {len(_pairs(fit_on))} pairs from {len(fit_on)} questions",
              file=sys.stderr, flush=True)
        ce = _train(fit_on, epochs, threads)
        idx = [i for i, r in enumerate(train) if r["story"] in held]
        for i, s in zip(idx, _score(ce, [train[i] for i in idx]), strict=True):
            scores["train"][i] = s
        d = _score(ce, dev)
        dev_sum = d if dev_sum is None else [a + b for a, b in zip(dev_sum, d, strict=True)]
    scores["dev"] = [s / 2 for s in dev_sum]
    tag = f"e{epochs}{'' if near else '-nonear'}"
    (OUT / f"scores-{tag}.pkl").write_bytes(pickle.dumps(scores))
    print(f"-> {OUT / f'scores-{tag}.pkl'}")


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg]))


def cmd_report(tag: str) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if not (OUT / f"scores-{tag}.pkl").is_file():
        raise SystemExit(f"{OUT / f'scores-{tag}.pkl'} is missing: run `fit` first (its tag is "
                         "e<epochs>, with -nonear for --no-near).")
    rows = pickle.loads((OUT / "rows.pkl").read_bytes())
    scores = pickle.loads((OUT / f"scores-{tag}.pkl").read_bytes())
    train = [r for r in rows if r["set"] == "train"]
    (dev, dev_scores), (bundled, b_scores) = split_bundled(
        [r for r in rows if r["set"] == "dev"], scores["dev"])

    def signals(rs, ss):
        p = np.clip(np.array([r["refusal_p"] for r in rs]), 1e-6, 1 - 1e-6)
        base = np.log(p / (1 - p))
        cmax = np.array([float(s.max()) for s in ss])
        ctop = np.array([float(s[0]) for s in ss])
        return base, cmax, ctop

    print(f"questions: training {len(train)} (answerable {sum(r['answerable'] for r in train)},"
          f" near {sum(r['near'] for r in train)}, foreign {sum(r['foreign'] for r in train)}),"
          f" six dossiers {len(dev)}")
    for label, rs, ss in (("training (out of fold)", train, scores["train"]),
                          ("six dossiers", dev, dev_scores)):
        base, cmax, ctop = signals(rs, ss)
        y = np.array([r["answerable"] for r in rs])
        print(f"\n{label}: AUC answerable vs not")
        for name, x in (("shipped refusal", base), ("cross max", cmax), ("cross top", ctop)):
            print(f"  {name:18s} {_auc(x[y], x[~y]):.3f}")
        for sub, mask in (("real unanswerable", np.array([not (r['near'] or r['foreign'])
                                                          for r in rs])),
                          ("near-topic", np.array([r["near"] for r in rs])),
                          ("foreign", np.array([r["foreign"] for r in rs]))):
            neg = ~y & mask
            if neg.any():
                print(f"    vs {sub:16s} shipped {_auc(base[y], base[neg]):.3f}  "
                      f"cross max {_auc(cmax[y], cmax[neg]):.3f}")

    # The combinations: logistic regression (standardised columns) fitted on the training
    # questions out of fold; each threshold declines that share of training answerables, as
    # fit_ranker chooses its own at 2%.
    def columns(rs, ss):
        base, cmax, _ = signals(rs, ss)
        return np.c_[base, cmax, np.array([r["qfeatures"] for r in rs])]

    tx, ty = columns(train, scores["train"]), np.array([r["answerable"] for r in train])
    dx, dy = columns(dev, dev_scores), np.array([r["answerable"] for r in dev])
    bx, by = columns(bundled, b_scores), np.array([r["answerable"] for r in bundled])
    qcols = list(range(2, tx.shape[1]))
    print("\nrefusal models (six dossiers: answerable declined, off-topic declined of "
          f"{(~dy).sum()}; bundled at 2%):")
    for name, cols in (("shipped refusal", [0]), ("cross max", [1]), ("both", [0, 1]),
                       ("question features", qcols), ("question features + cross", [1, *qcols])):
        scale = StandardScaler().fit(tx[:, cols])
        lr = LogisticRegression(C=1.0, max_iter=1000).fit(scale.transform(tx[:, cols]), ty)
        tp, dp, bp = (lr.decision_function(scale.transform(x[:, cols])) for x in (tx, dx, bx))
        line = (f"  {name:26s} AUC training {_auc(tp[ty], tp[~ty]):.3f}, "
                f"six {_auc(dp[dy], dp[~dy]):.3f}")
        for rate in (0.02, 0.03, 0.05):
            at = np.sort(tp[ty])[int(ty.sum() * rate)]
            line += f" | at {rate:.0%}: {int((dp[dy] < at).sum())}, {int((dp[~dy] < at).sum())}"
            if rate == 0.02:
                bundled_line = (f"{int((bp[by] < at).sum())}/{by.sum()}, "
                                f"{int((bp[~by] < at).sum())}/{(~by).sum()}")
        print(line + f" | bundled {bundled_line}")

    # Reordering: the first of the K windows by logit + w * cross score.
    print("\nfirst quote right (refusal off), scorer logit + w x cross score:")
    for w in (0.0, 0.5, 1.0, 2.0, 4.0, 8.0):
        line = f"  w={w:<5}"
        for label, rs, ss in (("training oof", train, scores["train"]), ("six", dev, dev_scores),
                              ("bundled", bundled, b_scores)):
            right = sum(bool(r["labels"][int(np.argmax(r["logits"] + w * s))])
                        for r, s in zip(rs, ss, strict=True) if r["answerable"])
            line += f" | {label} {right}/{sum(r['answerable'] for r in rs)}"
        print(line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("extract")
    f = sub.add_parser("fit")
    f.add_argument("--epochs", type=int, default=1)
    f.add_argument("--no-near", action="store_true")
    f.add_argument("--threads", type=int, default=2)
    r = sub.add_parser("report")
    r.add_argument("--tag", default="e1")
    args = ap.parse_args(argv)
    if args.cmd == "extract":
        try:
            cmd_extract()
        except (fr.StaleFeatures, FileNotFoundError) as e:
            print(f"cross_refusal: {e} (run `python -m train.finetune_embedder features`, "
                  "`foreign` and `near` first)", file=sys.stderr)
            return 2
    elif args.cmd == "fit":
        cmd_fit(args.epochs, not args.no_near, args.threads)
    else:
        cmd_report(args.tag)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
