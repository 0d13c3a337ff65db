"""Scorers: from a candidate's features to the probability that it answers the question.

The scorer is *learned* (``train/fit_ranker.py``) on questions about thirty stories that are
neither the development nor the held-out ones, and stored as JSON next to this module: the
feature names it reads, their standardisation, the weights, and how it was fitted. A model
names its features, so adding a column to ``index.features`` never silently shifts weights.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.features import FEATURES, FeatureMatrix

MODEL_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = MODEL_DIR / "ranker.json"
MODEL_ENV = "DOSSIER_RANKER_MODEL"  # another fitted model, for ablations and experiments


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


@dataclass(frozen=True)
class Linear:
    """A standardised logistic model over named columns."""

    names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.weights + self.bias

    def as_dict(self) -> dict:
        return {"names": list(self.names), "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "weights": self.weights.tolist(),
                "bias": self.bias}

    @classmethod
    def from_dict(cls, d: dict) -> Linear:
        return cls(tuple(d["names"]), np.asarray(d["mean"], np.float32),
                   np.asarray(d["scale"], np.float32), np.asarray(d["weights"], np.float32),
                   float(d["bias"]))


# Question-level evidence the refusal model reads (see ``question_features``).
QUESTION_FEATURES = ("top_logit", "second_logit", "unknown", "unknown_name", "top_cover",
                     "top_dense", "top_late")


@dataclass(frozen=True)
class RankerModel:
    """The candidate scorer, the refusal model and the thresholds fitted with them."""

    candidate: Linear
    question: Linear
    answer_at: float  # P(the dossier answers) at or above which the bot answers
    low_at: float  # ... at or above which it shows the closest passages, marked unsure
    quote_ratio: float  # a further quote needs at least this share of the best's probability
    info: dict

    def __post_init__(self) -> None:
        missing = [n for n in self.candidate.names if n not in FEATURES]
        if missing:
            raise ValueError(f"ranker model reads unknown features: {', '.join(missing)}")

    def candidate_logits(self, features: FeatureMatrix) -> np.ndarray:
        """One logit per candidate row (its sigmoid: the probability its window answers)."""
        return self.logits_of(features.matrix)

    def logits_of(self, matrix: np.ndarray) -> np.ndarray:
        cols = [FEATURES.index(n) for n in self.candidate.names]
        return self.candidate.logits(matrix[:, cols])

    def answer_probability(self, features: FeatureMatrix, logits: np.ndarray) -> float:
        return self.probability_from(features.matrix, features.question.unknown,
                                     features.question.unknown_name, logits)

    def probability_from(self, matrix: np.ndarray, unknown: float, unknown_name: bool,
                         logits: np.ndarray) -> float:
        """P(the dossier answers the question), from its candidates' features and logits."""
        x = question_features(matrix, unknown, unknown_name, logits)
        cols = [QUESTION_FEATURES.index(n) for n in self.question.names]
        return float(sigmoid(self.question.logits(x[cols][None, :]))[0])

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({
            "candidate": self.candidate.as_dict(), "question": self.question.as_dict(),
            "answer_at": self.answer_at, "low_at": self.low_at,
            "quote_ratio": self.quote_ratio, "info": self.info}, indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> RankerModel:
        d = json.loads(path.read_text())
        return cls(Linear.from_dict(d["candidate"]), Linear.from_dict(d["question"]),
                   float(d["answer_at"]), float(d["low_at"]), float(d["quote_ratio"]),
                   d.get("info", {}))


def question_features(m: np.ndarray, unknown: float, unknown_name: bool,
                      logits: np.ndarray) -> np.ndarray:
    """Evidence about the question as a whole: the best two candidates' logits, how much of
    the question the dossier never mentions, and the best candidate's coverage/similarity
    (``m``: the candidates' feature matrix)."""
    order = np.argsort(-logits, kind="stable")
    top = int(order[0])
    second = float(logits[order[1]]) if len(order) > 1 else float(logits[top]) - 5.0
    return np.array([
        float(logits[top]), second, unknown,
        float(unknown_name), float(m[top, FEATURES.index("window_cover")]),
        float(m[top, FEATURES.index("window_dense")]),
        float(m[top, FEATURES.index("window_late")])], dtype=np.float32)


def default_model() -> RankerModel:
    path = Path(os.environ.get(MODEL_ENV) or DEFAULT_MODEL)
    return RankerModel.load(path)
