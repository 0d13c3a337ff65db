"""Experiment: a small reader head over the stored word-piece vectors, trained on this CPU.

The near-topic questions the bot still answers ask for a detail its dossier lacks about people
it knows. Reading whether a window supports *every* part of the question is what separates
them, so this fits a decomposable-attention head (Parikh et al., 2016) on the frozen, tuned
MiniLM vectors the index already stores: each question piece attends over a window's pieces,
a small network compares the piece with what it found, and the idf-weighted sum is the
window's score. Listwise over the scorer's top ``K`` windows plus a "no answer" option at 0,
which unanswerable and foreign questions target. Out of fold by story, like every training
figure; then reports the head alone, and beside the scorer's logit and the refusal features.

    python -m train.reader_head extract            # ~2 min: top-K windows and vectors
                                                   # (after finetune_embedder features, foreign)
    python -m train.reader_head fit [--dim 64] [--epochs 8] [--no-foreign] [--near]  # ~2-4 min

Measured and not kept: docs/ranking.md, "A reader head on the stored vectors".
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
import time

import numpy as np

from train import fit_ranker as fr

K = 8  # the scorer's top windows per question
OUT = fr.REPO / ".dossier" / "reader-head"
MAX_PIECES = 160  # per window


def window_pieces(retriever, seg, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """The window's word-piece vectors and idf weights, function pieces left out (as late
    interaction does)."""
    from index.features import content_pieces

    rows = np.arange(lo, hi + 1)
    idx = np.concatenate([np.arange(a, b) for a, b in zip(seg.token_offsets[rows],
                                                          seg.token_offsets[rows + 1],
                                                          strict=True)])
    keep, weights = content_pieces(retriever.stats, np.asarray(seg.token_ids[idx]))
    vectors = seg.token_matrix(idx[keep]) if keep.any() else np.zeros((0, 384), np.float32)
    return vectors.astype(np.float16), weights


def cmd_extract() -> None:
    """The cached candidate rows of ``train.finetune_embedder features`` and ``foreign``
    (training stories through the fold model that never saw them, the development suite
    through the shipped one), each question's top ``K`` windows by the shipped scorer, with
    the word-piece vectors of the windows and of the question from those same indexes."""
    from index.live import LiveIndex
    from index.scorer import default_model
    from train.finetune_embedder import WORK, fold_embedders

    model = default_model()
    per_story, shipped = fold_embedders(WORK / "models")
    train, dev = fr.load_cached(path=fr.TUNED_FEATURES)
    foreign = fr.load_foreign(fr.TUNED_FOREIGN)
    near = fr.load_near() if fr.TUNED_NEAR.is_file() else []
    if any(r.matrix is not None and not r.windows for r in foreign):
        raise SystemExit(f"{fr.TUNED_FOREIGN} predates foreign rows with windows: run "
                         "`python -m train.finetune_embedder foreign` again.")
    # Each story's own questions, then the foreign ones asked of it; then the development sets.
    stories = [(slug, "train", per_story(slug),
                [r for r in train if r.dossier == slug] + [r for r in foreign if r.dossier == slug]
                + [r for r in near if r.dossier == slug])
               for slug in fr.training_stories()]
    stories += [(name, "dev", (shipped, f"ft-all-{name}"), [r for r in dev if r.dossier == name])
                for name in dict.fromkeys(r.dossier for r in dev)]
    rows: list[dict] = []
    started = time.perf_counter()
    for name, kind, (embedder, index_name), questions in stories:
        retriever = LiveIndex(fr.CACHE / "index" / index_name, embedder).current().retriever
        segments = {seg.id: seg for seg in retriever.segments}
        for r in questions:
            if r.matrix is None:
                continue
            logits = model.logits_of(r.matrix)
            top = np.argsort(-logits, kind="stable")[:K]
            qv = retriever.embed(retriever.correct(r.q) or r.q)
            windows = [window_pieces(retriever, segments[r.windows[i][0]], *r.windows[i][2:])
                       for i in top.tolist()]
            rows.append({"set": kind, "story": name, "q": r.q, "answerable": r.answerable,
                         "foreign": r.foreign, "near": r.near, "qtok": qv.tokens.astype(np.float16),
                         "qw": qv.token_weights, "windows": windows,
                         "labels": r.labels[top] > 0, "logits": logits[top]})
        print(f"  {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "rows.pkl").write_bytes(pickle.dumps(rows))
    print(f"{len(rows)} questions -> {OUT / 'rows.pkl'}")


def _pack(batch: list[dict]):
    import torch

    b, k = len(batch), max(len(r["windows"]) for r in batch)
    tq = max(1, max(len(r["qtok"]) for r in batch))
    tw = max(1, min(MAX_PIECES, max(len(w[0]) for r in batch for w in r["windows"])))
    q = np.zeros((b, tq, 384), np.float32)
    qw = np.zeros((b, tq), np.float32)
    w = np.zeros((b, k, tw, 384), np.float32)
    wmask = np.zeros((b, k, tw), bool)
    kmask = np.zeros((b, k), bool)
    target = np.zeros((b, k + 1), bool)  # the windows, then "no answer"
    use = np.ones(b, bool)
    for i, r in enumerate(batch):
        q[i, :len(r["qtok"])] = r["qtok"]
        qw[i, :len(r["qw"])] = r["qw"]
        for j, (vectors, _) in enumerate(r["windows"]):
            n = min(len(vectors), tw)
            w[i, j, :n] = vectors[:n]
            wmask[i, j, :n] = True
            kmask[i, j] = n > 0
        target[i, :len(r["labels"])] = r["labels"]
        target[i, k] = not r["answerable"]
        use[i] = target[i].any()  # an answerable question whose answer is not in the top K
    return tuple(torch.from_numpy(a) for a in (q, qw, w, wmask, kmask, target, use))


def _head(dim: int):
    import torch

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(384, dim, bias=False)
            self.compare = torch.nn.Sequential(torch.nn.Linear(3 * dim + 1, 64),
                                               torch.nn.ReLU(), torch.nn.Linear(64, 1))
            self.bias = torch.nn.Parameter(torch.zeros(()))

        def forward(self, q, qw, w, wmask, kmask):
            pq, pw = self.proj(q), self.proj(w)
            attend = torch.einsum("bqd,bktd->bkqt", pq, pw) / math.sqrt(dim)
            attend = attend.masked_fill(~wmask[:, :, None, :], -1e4).softmax(-1)
            found = torch.einsum("bkqt,bktd->bkqd", attend, pw)
            unit = torch.nn.functional.normalize
            cos = torch.einsum("bqd,bktd->bkqt", unit(q, dim=-1), unit(w, dim=-1))
            maxsim = cos.masked_fill(~wmask[:, :, None, :], -1.0).max(-1).values
            pq = pq[:, None].expand(-1, found.shape[1], -1, -1)
            per_piece = self.compare(torch.cat([pq, found, pq * found, maxsim[..., None]], -1))
            score = (per_piece.squeeze(-1) * qw[:, None, :]).sum(-1) + self.bias
            return score.masked_fill(~kmask, -1e4)

    return Head()


def _fit(rows: list[dict], dim: int, epochs: int):
    import torch

    torch.manual_seed(0)
    head = _head(dim)
    opt = torch.optim.Adam(head.parameters(), lr=2e-3, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    for _ in range(epochs):
        order = rng.permutation(len(rows))
        for i in range(0, len(order), 32):
            q, qw, w, wmask, kmask, target, use = _pack([rows[j] for j in order[i:i + 32]])
            scores = torch.cat([head(q, qw, w, wmask, kmask), torch.zeros(len(q), 1)], 1)
            loss = torch.logsumexp(scores, 1) - torch.logsumexp(
                scores.masked_fill(~target, -1e4), 1)
            loss = loss[use].mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head


def _scores(head, rows: list[dict]) -> list[np.ndarray]:
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(rows), 64):
            batch = rows[i:i + 64]
            q, qw, w, wmask, kmask, _, _ = _pack(batch)
            s = head(q, qw, w, wmask, kmask).numpy()
            out += [s[j, :len(r["windows"])] for j, r in enumerate(batch)]
    return out


def cmd_fit(dim: int, epochs: int, foreign: bool, near: bool) -> None:
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    torch.set_num_threads(2)
    rows = pickle.loads((OUT / "rows.pkl").read_bytes())
    train = [r for r in rows if r["set"] == "train"]
    dev = [r for r in rows if r["set"] == "dev"]
    # Near-topic questions left out of training are still scored, out of fold, below.
    usable = [r for r in train if (foreign or not r["foreign"]) and (near or not r["near"])]
    stories = sorted({r["story"] for r in train})
    oof: dict[tuple[str, str], np.ndarray] = {}
    for f in range(5):  # whole stories held out, as fit_ranker's folds
        held = {s for i, s in enumerate(stories) if i % 5 == f}
        head = _fit([r for r in usable if r["story"] not in held], dim, epochs)
        held_rows = [r for r in train if r["story"] in held]
        oof.update({(r["story"], r["q"]): s for r, s in zip(held_rows, _scores(head, held_rows),
                                                            strict=True)})
        print(f"  fold {f + 1}/5", file=sys.stderr, flush=True)
    dev_scores = dict(zip([(r["story"], r["q"]) for r in dev],
                          _scores(_fit(usable, dim, epochs), dev), strict=True))

    def first_right(items, score_of) -> int:
        return sum(bool(r["labels"][int(np.argmax(score_of(r)))]) for r in items
                   if r["answerable"])

    six = [r for r in dev if r["story"] != fr.BUNDLED_NAME]
    print("first window right (answerable): scorer / head alone")
    print(f"  training, out of fold: {first_right(train, lambda r: r['logits'])} / "
          f"{first_right(train, lambda r: oof[(r['story'], r['q'])])}")
    print(f"  six dossiers: {first_right(six, lambda r: r['logits'])} / "
          f"{first_right(six, lambda r: dev_scores[(r['story'], r['q'])])}")
    answerable = [r["answerable"] for r in six]
    top_logit = roc_auc_score(answerable, [r["logits"][0] for r in six])
    best_window = roc_auc_score(answerable, [dev_scores[(r["story"], r["q"])].max() for r in six])
    print(f"AUC answerable vs not, six dossiers: scorer's top logit {top_logit:.3f}, "
          f"head's best window {best_window:.3f}")
    near_or_answerable = [r for r in train if r["answerable"] or r["near"]]
    if any(r["near"] for r in near_or_answerable):
        y = [r["answerable"] for r in near_or_answerable]
        scorer_auc = roc_auc_score(y, [r["logits"][0] for r in near_or_answerable])
        head_auc = roc_auc_score(y, [oof[(r["story"], r["q"])].max() for r in near_or_answerable])
        print(f"AUC answerable vs near-topic, training: the shipped scorer's top logit (in "
              f"sample) {scorer_auc:.3f}, the head's best window (out of fold; "
              f"{'trained on' if near else 'not trained on'} near-topic) {head_auc:.3f}")

    # Beside the shipped refusal features (out-of-fold logits), fitted and thresholded on
    # training as fit_ranker does (2% of answerable training questions declined).
    rows_train, rows_dev = fr.load_cached(path=fr.TUNED_FEATURES)
    rows_train += fr.load_foreign(fr.TUNED_FOREIGN)
    if near:
        rows_train += fr.load_near()
    logits = fr.out_of_fold_logits(rows_train, fr.FEATURES)
    model = fr.fit_model(rows_train, fr.FEATURES, oof=logits)

    def refusal_x(r, lg, head_scores, with_head: bool) -> np.ndarray:
        base = fr.qfeatures(r, lg)
        if not with_head:
            return base
        s = head_scores.get((r.dossier, r.q))
        return np.concatenate([base, [float(s.max()), float(s[0])] if s is not None else [0, 0]])

    for with_head in (False, True):
        idx = [i for i in sorted(logits) if (rows_train[i].dossier, rows_train[i].q) in oof]
        x = np.array([refusal_x(rows_train[i], logits[i], oof, with_head) for i in idx])
        y = np.array([rows_train[i].answerable for i in idx], float)
        mean, scale = x.mean(0), x.std(0) + 1e-6
        lr = LogisticRegression(max_iter=3000).fit((x - mean) / scale, y)
        at = np.sort(lr.predict_proba((x - mean) / scale)[:, 1][y == 1])[int(y.sum() * 0.02)]
        declined = off = strict = 0
        for r in rows_dev:
            if r.matrix is None or r.dossier == fr.BUNDLED_NAME:
                continue
            lg = model.logits_of(r.matrix)
            p = lr.predict_proba(((refusal_x(r, lg, dev_scores, with_head) - mean)
                                  / scale)[None])[0, 1]
            if r.answerable:
                declined += p < at
                strict += p >= at and bool(r.labels[fr.quotes_of(r, fr.sigmoid(lg), 0.1)[0]])
            else:
                off += p < at
        print(f"refusal {'with the head' if with_head else 'as shipped   '}: six dossiers strict "
              f"{strict}/180, answerable declined {declined}/180, off-topic declined {off}/48")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("extract")
    f = sub.add_parser("fit")
    f.add_argument("--dim", type=int, default=64)
    f.add_argument("--epochs", type=int, default=8)
    f.add_argument("--near", action="store_true",
                   help="train on the dossiers' near_topic.jsonl too (`python -m "
                   "train.finetune_embedder near`, then `extract` again)")
    f.add_argument("--no-foreign", action="store_true",
                   help="leave the foreign questions out of the head's training")
    args = ap.parse_args(argv)
    if args.cmd == "extract":
        cmd_extract()
    else:
        cmd_fit(args.dim, args.epochs, not args.no_foreign, args.near)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
