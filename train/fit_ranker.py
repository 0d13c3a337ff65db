"""Fit the ranker (candidate scorer, refusal model, thresholds) on the training dossiers and
report it on the development suite, with ablations.

    .venv/bin/python -m train.fit_ranker             # fit, report, write index/models/ranker.json
    .venv/bin/python -m train.fit_ranker --ablate    # also refit without each feature group
    .venv/bin/python -m train.fit_ranker --no-write  # report only
    .venv/bin/python -m train.fit_ranker --packaged --no-write  # the untuned MiniLM's features

Training questions come from ``train/dossiers`` (articles read from ../shared/bbc, copied to a
cache folder outside the repository, indexed with the bot's own build). Everything fitted —
weights, the refusal model, the thresholds — is fitted on those thirty stories only; the six
development dossiers and the bundled set are used to report and to choose between model
variants (the ablation), never to fit.

The shipped embedder was itself fine-tuned on those stories (``train.finetune_embedder``), so
their features must come from embedders that never saw them: ``python -m
train.finetune_embedder features`` computes each story's with the fold model trained on the
other half, and the development suite's with the shipped one, into the file this reads by
default. ``--packaged`` fits on the untuned wheel model's features instead (computed here and
cached; ``train.finetune_embedder pairs`` takes its hard negatives from them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index.embed import untuned_embedder
from index.features import FEATURES
from index.scorer import QUESTION_FEATURES, Linear, RankerModel, question_features, sigmoid

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
TRAIN = REPO / "train" / "dossiers"
DEV = SHARED / "eval" / "dossiers"
BUNDLED = SHARED / "eval" / "dev_questions.jsonl"
BUNDLED_NAME = "bundled"  # the bundled set's name among the development dossiers
CACHE = REPO / ".dossier" / "train"
TUNED_FEATURES = REPO / ".dossier" / "embed-ft" / "features.pkl"  # train.finetune_embedder
TUNED_FOREIGN = TUNED_FEATURES.with_name("foreign.pkl")  # written beside it
TUNED_NEAR = TUNED_FEATURES.with_name("near.pkl")  # near_topic.jsonl rows, written beside it

# Feature groups, for the ablation (each is dropped in turn and the model refitted).
GROUPS = {
    "dense": ("sentence_dense", "window_dense", "sentence_dense_gap", "window_dense_gap"),
    "late interaction": ("sentence_late", "window_late", "sentence_late_gap", "window_late_gap"),
    "term coverage": ("sentence_cover", "window_cover", "context_cover", "context_cover_gap"),
    "best in window": ("best_in_window_dense", "best_in_window_late", "best_in_window_cover",
                       "best_in_window_dense_gap", "best_in_window_late_gap",
                       "best_in_window_cover_gap"),
}
ANSWERABLE_DECLINED_TARGET = 0.02  # on training questions (out of fold)
LOW_BAND_DECLINED = 0.005  # below this share of training answerables: declined outright
CACHE_VERSION = 4  # bumped whenever QuestionRows' fields change (the cache holds them)
FOREIGN_WEIGHT = 1.0  # each counts as one unanswerable question; chosen in docs/ranking.md
QUOTE_RATIO = 0.1  # training lenient: 1098 at 0, 1092 at 0.1, 1074 at 0.25 (of 1271)


def norm(text: str) -> str:
    return " ".join(text.split()).lower()


@dataclass
class QuestionRows:
    """One question's candidates, kept small enough to cache: features, labels and the
    windows the quotes would come from."""

    dossier: str
    q: str
    answerable: bool
    matrix: np.ndarray | None  # (candidates, FEATURES)
    labels: np.ndarray  # 1 where the candidate's window holds the phrase in the right article
    unknown: float = 0.0
    unknown_name: bool = False
    windows: list[tuple[str, int, int, int]] = field(default_factory=list)  # seg, row, lo, hi
    texts: list[str] = field(default_factory=list)  # each candidate's sentence
    articles: list[str] = field(default_factory=list)  # each candidate's article id
    positions: list[int] = field(default_factory=list)  # its sentence's index in the article
    foreign: bool = False  # another story's question, asked of this dossier (refusal only)
    near: bool = False  # from the dossier's near_topic.jsonl (refusal only; not shipped)


def _materialise(slug: str, folder: Path) -> Path:
    """A corpus folder holding copies of a training dossier's articles (never in git)."""
    corpus = CACHE / "corpora" / slug
    corpus.mkdir(parents=True, exist_ok=True)
    wanted = set()
    for line in (folder / "articles.txt").read_text().split():
        name = line.replace("/", "-")
        wanted.add(name)
        target = corpus / name
        if not target.exists():
            shutil.copyfile(SHARED / "bbc" / line, target)
    for stale in corpus.iterdir():
        if stale.name not in wanted:
            stale.unlink()
    return corpus


def _questions(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def collect(name: str, corpus: Path, questions: list[dict], embedder, doc_id,
            index_name: str | None = None) -> list[QuestionRows]:
    """Each question's candidates over an index of ``corpus`` (built, or brought up to date,
    under ``CACHE/index/<index_name or name>``), labelled by its phrase and article."""
    from index.build import build_index
    from index.live import LiveIndex

    index_dir = CACHE / "index" / (index_name or name)
    build_index(corpus, index_dir, embedder)
    retriever = LiveIndex(index_dir, embedder).current().retriever
    out = []
    for item in questions:
        r = question_rows(name, retriever, item, doc_id)
        out.append(r or QuestionRows(name, item["q"], item.get("doc") is not None, None,
                                     np.zeros(0)))
    return out


def question_rows(name: str, retriever, item: dict, doc_id=None, *,
                  foreign: bool = False, near: bool = False) -> QuestionRows | None:
    """One question's candidates as the bot sees them (None without any), each labelled 1
    where its window holds ``item``'s phrase in the article ``doc_id`` accepts for its doc."""
    # The features of the question as searched: with misspelt words corrected.
    fm = retriever.features(retriever.correct(item["q"]) or item["q"])
    if fm is None:
        return None
    doc = item.get("doc")
    labels = np.zeros(len(fm.rows), np.float32)
    windows, texts, articles, positions = [], [], [], []
    for i, (seg, row) in enumerate(fm.rows):
        art = seg.article_of(row)
        lo, hi = int(seg.passage_first[row]), int(seg.passage_last[row])
        windows.append((seg.id, row, lo, hi))
        texts.append(seg.sentence_text(row))
        articles.append(art.id)
        a = int(seg.sentence_article[row])
        positions.append(row - int(seg.article_first_sentence[a]))
        if doc is not None and doc_id(art.id, doc):
            text = art.body[int(seg.sentence_start[lo]):int(seg.sentence_end[hi])]
            labels[i] = norm(item["phrase"]) in norm(text)
    return QuestionRows(name, item["q"], doc is not None, fm.matrix, labels,
                        fm.question.unknown, fm.question.unknown_name, windows, texts,
                        articles, positions, foreign=foreign, near=near)


def cache_path() -> Path:
    """Where the features of the current FEATURES and question sets are cached."""
    import hashlib

    from index.spelling import enabled

    # Questions are featurised as the speller corrects them: its switch is part of the key.
    key = hashlib.sha256(json.dumps([CACHE_VERSION, FEATURES,
                                     "spelling" if enabled() else ""]).encode())
    for f in sorted(TRAIN.glob("*/questions.jsonl")) + sorted(DEV.glob("*/questions.jsonl")):
        key.update(f.read_bytes())
    return CACHE / f"features-{key.hexdigest()[:16]}.pkl"


def load_cached(refresh: bool = False, path: Path | None = None,
                ) -> tuple[list[QuestionRows], list[QuestionRows]]:
    """Training and development rows of the untuned wheel model, from the cache unless the
    features or questions changed (or ``refresh``); ``path``: features computed elsewhere
    (``train.finetune_embedder features``), read as they are."""
    import pickle

    cache = cache_path()
    if path is None and (refresh or not cache.exists()):
        train, dev = load_all(untuned_embedder())
        save_rows(cache, train, dev)
        return train, dev
    train, dev = pickle.loads((path or cache).read_bytes())
    return _rows(train, path or cache), _rows(dev, path or cache)


class StaleFeatures(RuntimeError):
    """Cached rows computed with other feature columns than ``FEATURES``."""


def _rows(dicts: list[dict], source: Path) -> list[QuestionRows]:
    rows = [QuestionRows(**d) for d in dicts]
    widths = {r.matrix.shape[1] for r in rows if r.matrix is not None}
    if widths - {len(FEATURES)}:
        raise StaleFeatures(
            f"{source} holds {sorted(widths)} feature columns, index.features has "
            f"{len(FEATURES)}: recompute it (`python -m train.finetune_embedder features` and "
            "`foreign` for the tuned embedder's, `--refresh` for --packaged).")
    return rows


FOREIGN_PER_STORY = 40  # other stories' questions asked of each training dossier
FOREIGN_SEED = 20261127
NEAR_TOPIC = "near_topic.jsonl"  # per training dossier: unanswerable questions on its story


def foreign_questions(slug: str) -> list[str]:
    """Answerable questions of the *other* training stories, a fixed sample per dossier:
    plainly off-topic for it, the kind of question a channel asks of the wrong dossier."""
    import random

    pool = [d["q"] for f in sorted(TRAIN.glob("*/questions.jsonl")) if f.parent.name != slug
            for d in _questions(f) if d.get("doc")]
    return random.Random(f"{FOREIGN_SEED}:{slug}").sample(pool, FOREIGN_PER_STORY)


def collect_foreign(slug: str, index_dir: Path, embedder) -> list[QuestionRows]:
    """The features of ``foreign_questions(slug)`` over the dossier's built index."""
    from index.live import LiveIndex

    retriever = LiveIndex(index_dir, embedder).current().retriever
    rows = (question_rows(slug, retriever, {"q": q}, foreign=True)
            for q in foreign_questions(slug))
    return [r for r in rows if r is not None]


# Which embedder featurises a training story, and the name of the index it builds for it.
PerStory = Callable[[str], tuple[object, str]]


def all_foreign(per_story: PerStory) -> list[QuestionRows]:
    """``collect_foreign`` over every training dossier, each index brought up to date first."""
    return _every_story(per_story, collect_foreign)


def collect_near(slug: str, index_dir: Path, embedder) -> list[QuestionRows]:
    """The features of the dossier's ``near_topic.jsonl``: more unanswerable questions about
    its own people and events, kept apart from ``questions.jsonl`` because the shipped fit
    does not use them (docs/ranking.md, "Five times the near-topic questions")."""
    from index.live import LiveIndex

    path = TRAIN / slug / NEAR_TOPIC
    if not path.is_file():
        return []
    retriever = LiveIndex(index_dir, embedder).current().retriever
    rows = (question_rows(slug, retriever, item, near=True) for item in _questions(path))
    return [r for r in rows if r is not None]


def all_near(per_story: PerStory) -> list[QuestionRows]:
    """``collect_near`` over every training dossier."""
    return _every_story(per_story, collect_near)


def _every_story(per_story: PerStory, collect_one) -> list[QuestionRows]:
    from index.build import build_index

    rows = []
    for slug in training_stories():
        embedder, index_name = per_story(slug)
        index_dir = CACHE / "index" / index_name
        build_index(_materialise(slug, TRAIN / slug), index_dir, embedder)
        rows += collect_one(slug, index_dir, embedder)
    return rows


def load_near(path: Path = TUNED_NEAR) -> list[QuestionRows]:
    """The near-topic rows ``train.finetune_embedder near`` wrote."""
    import pickle

    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python -m train.finetune_embedder "
                                "near` first")
    return _rows(pickle.loads(path.read_bytes()), path)


def load_foreign(path: Path | None = None) -> list[QuestionRows]:
    """Foreign rows of the untuned model (computed over the training indexes and cached), or
    those ``train.finetune_embedder foreign`` wrote."""
    import pickle

    if path is not None:
        return _rows(pickle.loads(path.read_bytes()), path)
    features = cache_path()
    cache = features.with_name(features.stem.replace("features", "foreign")
                               + f"-{FOREIGN_PER_STORY}-{FOREIGN_SEED}.pkl")
    if cache.exists():
        return _rows(pickle.loads(cache.read_bytes()), cache)
    embedder = untuned_embedder()
    rows = all_foreign(lambda slug: (embedder, slug))
    cache.write_bytes(pickle.dumps([vars(r) for r in rows]))
    return rows


def training_stories() -> list[str]:
    return sorted(p.name for p in TRAIN.iterdir() if p.is_dir())


def training_phrases() -> dict[tuple[str, str], str]:
    """(story, question) -> phrase, for every answerable training question."""
    return {(f.parent.name, d["q"]): d["phrase"] for f in sorted(TRAIN.glob("*/questions.jsonl"))
            for d in _questions(f) if d.get("phrase")}


def dev_sets() -> list[tuple[str, Path, list[dict]]]:
    """(name, corpus folder, questions) of the six development dossiers and the bundled set."""
    out = [(f.name, f / "corpus", _questions(f / "questions.jsonl"))
           for f in sorted(p for p in DEV.iterdir() if (p / "corpus").is_dir())]
    out.append((BUNDLED_NAME, REPO / "corpus", [
        {"q": d["q"], "doc": d.get("doc"), "phrase": d.get("phrase")}
        for d in _questions(BUNDLED)]))
    return out


def save_rows(path: Path, train: list[QuestionRows], dev: list[QuestionRows]) -> None:
    import pickle

    # Plain dicts: the file must not depend on the module this runs as (__main__ or not).
    path.write_bytes(pickle.dumps(([vars(r) for r in train], [vars(r) for r in dev])))


def load_all(embedder, per_story: PerStory | None = None,
             dev_prefix: str = "") -> tuple[list[QuestionRows], list[QuestionRows]]:
    """Training rows (each story featurised by ``per_story``'s embedder, default
    ``embedder``) and development rows (``embedder``; indexes named ``dev_prefix + name``)."""
    per_story = per_story or (lambda slug: (embedder, slug))
    train: list[QuestionRows] = []
    for slug in training_stories():
        story_embedder, index_name = per_story(slug)
        train += collect(slug, _materialise(slug, TRAIN / slug),
                         _questions(TRAIN / slug / "questions.jsonl"), story_embedder,
                         lambda aid, doc: aid == doc.replace("/", "-").removesuffix(".txt"),
                         index_name)
        print(f"  {slug}: {sum(1 for r in train if r.dossier == slug)} questions",
              file=sys.stderr, flush=True)
    dev: list[QuestionRows] = []
    prefix = lambda aid, doc: aid == doc or aid.startswith(doc)  # noqa: E731
    for name, corpus, questions in dev_sets():
        dev += collect(name, corpus, questions, embedder, prefix, dev_prefix + name)
    return train, dev


# -- fitting -------------------------------------------------------------------------------------

def _stack(rows: list[QuestionRows], cols: list[int]) -> tuple[np.ndarray, np.ndarray]:
    xs = [r.matrix[:, cols] for r in rows if r.matrix is not None]
    ys = [r.labels for r in rows if r.matrix is not None]
    return np.vstack(xs), np.concatenate(ys)


def fit_linear(x: np.ndarray, y: np.ndarray, names: tuple[str, ...], c: float,
               weight: np.ndarray | None = None) -> Linear:
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    lr = LogisticRegression(C=c, max_iter=2000)
    lr.fit((x - mean) / scale, y, sample_weight=weight)
    return Linear(names, mean.astype(np.float32), scale.astype(np.float32),
                  lr.coef_[0].astype(np.float32), float(lr.intercept_[0]))


def fit_candidates(rows: list[QuestionRows], names: tuple[str, ...], c: float = 1.0,
                   loss: str = "listwise") -> Linear:
    """The candidate scorer. ``listwise`` (shipped): weights that put a window holding the
    answer first among the question's candidates (softmax over each question's candidates),
    then one scale and bias fitted pointwise so its sigmoid reads as a probability again
    (the refusal model and the quote floor read it). ``pointwise``: plain logistic regression
    over all candidates, each judged alone."""
    cols = [FEATURES.index(n) for n in names]
    rows = [r for r in rows if not r.foreign and not r.near]  # they inform refusal only
    x, y = _stack(rows, cols)
    if loss == "pointwise":
        return fit_linear(x, y, names, c)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    w = _listwise_weights([((r.matrix[:, cols] - mean) / scale, r.labels > 0)
                           for r in rows if r.matrix is not None and r.labels.any()], c)
    calibrated = fit_linear((((x - mean) / scale) @ w)[:, None], y, ("score",), 100.0)
    a = float(calibrated.weights[0] / calibrated.scale[0])
    b = calibrated.bias - a * float(calibrated.mean[0])
    return Linear(names, mean.astype(np.float32), scale.astype(np.float32),
                  (w * a).astype(np.float32), float(b))


def _listwise_weights(questions: list[tuple[np.ndarray, np.ndarray]], c: float) -> np.ndarray:
    """Linear weights minimising, per question, -log(softmax mass on its answering
    candidates), with an L2 penalty of strength 1/c (as logistic regression's C)."""
    from scipy.optimize import minimize

    x = np.vstack([q for q, _ in questions]).astype(np.float64)
    positive = np.concatenate([p for _, p in questions])
    starts = np.cumsum([0] + [len(p) for _, p in questions])[:-1]
    owner = np.repeat(np.arange(len(questions)), [len(p) for _, p in questions])
    n = len(questions)

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w
        z = z - np.maximum.reduceat(z, starts)[owner]
        e = np.exp(z)
        total = np.add.reduceat(e, starts)
        mass = np.add.reduceat(np.where(positive, e, 0.0), starts)
        loss = float(np.sum(np.log(total) - np.log(mass)))
        grad_z = e / total[owner] - np.where(positive, e / mass[owner], 0.0)
        reg = 1.0 / c
        return (loss + reg * float(w @ w) / 2) / n, (x.T @ grad_z + reg * w) / n

    return minimize(objective, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x


def candidate_logits(model: Linear, r: QuestionRows) -> np.ndarray:
    cols = [FEATURES.index(n) for n in model.names]
    return model.logits(r.matrix[:, cols])


def folds(rows: list[QuestionRows], k: int = 5) -> list[list[int]]:
    """Question indices in ``k`` folds, whole dossiers per fold (no story in two folds)."""
    names = sorted({r.dossier for r in rows})
    out: list[list[int]] = [[] for _ in range(k)]
    for i, r in enumerate(rows):
        out[names.index(r.dossier) % k].append(i)
    return out


def out_of_fold_logits(train: list[QuestionRows], names: tuple[str, ...], c: float = 1.0,
                       loss: str = "listwise") -> dict[int, np.ndarray]:
    """Each training question's candidate logits from a scorer fitted without its story."""
    oof: dict[int, np.ndarray] = {}
    for fold in folds(train):
        held = set(fold)
        model = fit_candidates([r for i, r in enumerate(train) if i not in held], names, c,
                               loss)
        for i in fold:
            if train[i].matrix is not None:
                oof[i] = candidate_logits(model, train[i])
    return oof


def fit_model(train: list[QuestionRows], names: tuple[str, ...], c: float = 1.0,
              info: dict | None = None, loss: str = "listwise",
              oof: dict[int, np.ndarray] | None = None,
              foreign_weight: float = 1.0, near_weight: float = 1.0) -> RankerModel:
    """``train`` may hold foreign rows (``collect_foreign``) and near-topic ones
    (``collect_near``): they join the real unanswerable questions in the refusal model, each
    counting ``foreign_weight`` or ``near_weight`` of one."""
    # Out-of-fold candidate logits, so the refusal model learns from scores on unseen stories.
    if oof is None:
        oof = out_of_fold_logits(train, names, c, loss)
    weight = {i: foreign_weight if train[i].foreign else near_weight if train[i].near else 1.0
              for i in oof}
    idx = [i for i in sorted(oof) if weight[i] > 0]
    question, answer_at, low_at = fit_refusal(
        np.array([qfeatures(train[i], oof[i]) for i in idx]),
        np.array([train[i].answerable for i in idx], dtype=np.float32),
        np.array([weight[i] for i in idx]))
    candidate = fit_candidates(train, names, c, loss)
    return RankerModel(candidate, question, answer_at, low_at, QUOTE_RATIO, info or {})


def fit_refusal(qx: np.ndarray, qy: np.ndarray, weight: np.ndarray) -> tuple[Linear, float, float]:
    """The refusal model over question features (``qy``: answerable), weighted per row, and
    its thresholds ``answer_at`` and ``low_at``, read off the answerable rows alone."""
    question = fit_linear(qx, qy, QUESTION_FEATURES, 1.0, weight)
    answerable_p = np.sort(sigmoid(question.logits(qx))[qy == 1])
    answer_at = float(answerable_p[int(len(answerable_p) * ANSWERABLE_DECLINED_TARGET)])
    low_at = float(answerable_p[int(len(answerable_p) * LOW_BAND_DECLINED)])
    return question, answer_at, min(low_at, answer_at)


def oof_strict(train: list[QuestionRows], oof: dict[int, np.ndarray]) -> int:
    """Training questions whose first quote holds the answer, each scored by a candidate
    model fitted without its story (refusal off): how variants are compared on training."""
    right = 0
    for i, logits in oof.items():
        r = train[i]
        if r.answerable:
            right += bool(r.labels[quotes_of(r, sigmoid(logits), QUOTE_RATIO)[0]])
    return right


def qfeatures(r: QuestionRows, logits: np.ndarray) -> np.ndarray:
    return question_features(r.matrix, r.unknown, r.unknown_name, logits)


# -- measuring -----------------------------------------------------------------------------------

def quotes_of(r: QuestionRows, probs: np.ndarray, ratio: float, n: int = 3) -> list[int]:
    """Candidates quoted, as ``index.policy.select_quotes`` picks them (a candidate whose
    window overlaps a quoted one is passed over)."""
    return distinct_windows(r.windows, probs, ratio, n)


def distinct_windows(windows: list[tuple[str, int, int, int]], probs: np.ndarray, ratio: float,
                     n: int = 3) -> list[int]:
    """``quotes_of`` over ``(segment, row, first, last)`` windows alone: the best ``n`` by
    ``probs`` that overlap none chosen before, each with at least ``ratio`` of the best's."""
    chosen: list[int] = []
    floor = float(probs.max()) * ratio
    for i in np.argsort(-probs, kind="stable").tolist():
        if len(chosen) >= n or (chosen and probs[i] < floor):
            break
        seg, _, lo, hi = windows[i]
        if any(windows[j][0] == seg and windows[j][2] <= hi and lo <= windows[j][3]
               for j in chosen):
            continue
        chosen.append(i)
    return chosen


def measure(model: RankerModel, rows: list[QuestionRows]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        d = out.setdefault(r.dossier, dict(answerable=0, strict=0, lenient=0, declined=0,
                                           off_topic=0, off_declined=0))
        answered = strict = lenient = False
        if r.matrix is not None:
            logits = model.logits_of(r.matrix)
            p = model.probability_from(r.matrix, r.unknown, r.unknown_name, logits)
            answered = p >= model.answer_at
            quoted = quotes_of(r, sigmoid(logits), model.quote_ratio)
            strict = answered and bool(r.labels[quoted[0]])
            lenient = answered and bool(r.labels[quoted].any())
        if r.answerable:
            d["answerable"] += 1
            d["strict"] += strict
            d["lenient"] += lenient
            d["declined"] += not answered
        else:
            d["off_topic"] += 1
            d["off_declined"] += not answered
    return out


def total(m: dict[str, dict[str, int]], skip: tuple[str, ...] = (BUNDLED_NAME,),
          ) -> dict[str, int]:
    t: dict[str, int] = {}
    for name, d in m.items():
        if name in skip:
            continue
        for k, v in d.items():
            t[k] = t.get(k, 0) + v
    return t


def fmt(d: dict[str, int]) -> str:
    n, o = d["answerable"], d["off_topic"]
    return (f"strict {d['strict']:3d}/{n} ({100 * d['strict'] / n:5.1f}%)  "
            f"lenient {d['lenient']:3d}/{n} ({100 * d['lenient'] / n:5.1f}%)  "
            f"declined {d['declined']:2d}/{n} ({100 * d['declined'] / n:4.1f}%)  "
            f"off-topic declined {d['off_declined']:2d}/{o} "
            f"({100 * d['off_declined'] / max(o, 1):5.1f}%)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "index" / "models" / "ranker.json")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--ablate", action="store_true", help="refit without each feature group")
    ap.add_argument("--c", type=float, default=1.0, help="inverse L2 strength")
    ap.add_argument("--drop", action="append", default=[], help="a feature group to leave out")
    ap.add_argument("--features", type=Path, default=TUNED_FEATURES,
                    help="the shipped embedder's out-of-fold features, from `python -m "
                    "train.finetune_embedder features` (default: %(default)s)")
    ap.add_argument("--packaged", action="store_true",
                    help="fit on the untuned wheel model's features (cached here) instead")
    ap.add_argument("--refresh", action="store_true",
                    help="with --packaged: recompute the cached features")
    ap.add_argument("--foreign-weight", type=float, default=FOREIGN_WEIGHT,
                    help="weight of each foreign question (another training story's, asked of "
                    "a training dossier) in the refusal model; 0 leaves them out "
                    "(default: %(default)s)")
    ap.add_argument("--near-weight", type=float, default=0.0,
                    help="weight of each question of the dossiers' near_topic.jsonl in the "
                    "refusal model (from `python -m train.finetune_embedder near`); 0, the "
                    "shipped fit, leaves them out: they cost refusal (docs/ranking.md)")
    ap.add_argument("--loss", choices=("listwise", "pointwise"), default="listwise",
                    help="how the candidate scorer is fitted (default: %(default)s)")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    if not args.packaged and not args.features.is_file():
        print(f"fit_ranker: {args.features} is missing. The shipped embedder was tuned on the "
              "training stories, so their features come from fold models: run `python -m "
              "train.finetune_embedder features` first (docs/ranking.md), or pass --packaged.",
              file=sys.stderr)
        return 2
    try:
        train, dev = load_cached(args.refresh, None if args.packaged else args.features)
        if args.foreign_weight > 0:
            train += load_foreign(None if args.packaged else TUNED_FOREIGN)
        if args.near_weight > 0:
            if args.packaged:
                ap.error("--near-weight reads the tuned embedder's features: leave out --packaged")
            train += load_near()
    except (StaleFeatures, FileNotFoundError) as e:
        print(f"fit_ranker: {e}", file=sys.stderr)
        return 2
    print(f"features: {len(train)} training and {len(dev)} development questions in "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    dropped = {n for g in args.drop for n in GROUPS[g]}
    names = tuple(n for n in FEATURES if n not in dropped)
    n_ans = sum(r.answerable for r in train)
    n_foreign = sum(r.foreign for r in train)
    n_near = sum(r.near for r in train)
    info = {"fitted_on": "train/dossiers", "dossiers": len({r.dossier for r in train}),
            "answerable": n_ans, "unanswerable": len(train) - n_ans - n_foreign - n_near,
            "foreign": n_foreign, "foreign_weight": args.foreign_weight,
            **({"near_topic": n_near, "near_weight": args.near_weight} if n_near else {}),
            "C": args.c,
            "dropped": sorted(args.drop), "loss": args.loss,
            "answerable_declined_target": ANSWERABLE_DECLINED_TARGET,
            "embedder": "packaged (untuned)" if args.packaged else
            "tuned (index/models/minilm-dossier); training features out of fold"}
    oof = out_of_fold_logits(train, names, args.c, args.loss)
    model = fit_model(train, names, args.c, info, args.loss, oof, args.foreign_weight,
                      args.near_weight)
    dev_m = measure(model, dev)
    print("\nper dossier (development):")
    for name, d in dev_m.items():
        print(f"  {name:26s} {fmt(d)}")
    print(f"  {'total (six dossiers)':26s} {fmt(total(dev_m))}")
    own = [r for r in train if not r.foreign and not r.near]
    print(f"  {'training (in sample)':26s} {fmt(total(measure(model, own), ()))}")
    print(f"  {'training (out of fold)':26s} strict "
          f"{oof_strict(train, oof)}/{n_ans} (refusal off)")
    print(f"thresholds: answer at {model.answer_at:.3f}, low at {model.low_at:.3f}")
    if args.ablate:
        print("\nablation (development, six dossiers; bundled set apart):")
        print(f"  {'all features':26s} {fmt(total(dev_m))} | bundled strict "
              f"{dev_m['bundled']['strict']}/{dev_m['bundled']['answerable']}")
        variants = [(f"- {group}", tuple(n for n in names if n not in cols), args.loss)
                    for group, cols in GROUPS.items()]
        other = "pointwise" if args.loss == "listwise" else "listwise"
        variants.append((f"{other} loss", names, other))
        for label, sub, loss in variants:
            sub_oof = out_of_fold_logits(train, sub, args.c, loss)
            m = measure(fit_model(train, sub, args.c, loss=loss, oof=sub_oof,
                                  foreign_weight=args.foreign_weight,
                                  near_weight=args.near_weight), dev)
            print(f"  {label:26s} {fmt(total(m))} | bundled strict "
                  f"{m['bundled']['strict']}/{m['bundled']['answerable']} | training strict "
                  f"out of fold {oof_strict(train, sub_oof)}")
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        model.save(args.out)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
