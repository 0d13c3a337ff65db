"""The packaged MiniLM, tuned (and a ranker's cross-encoder) through ONNX Runtime: no torch at
run time.

The model is assembled from the wheel and the stored layers (``index.embed.tuned_model_dir``)
in a temporary folder; sentence-transformers / torch export its graph once (`scripts/setup.sh`,
the Docker build stage, or the first build that finds no export); questions, chats, servers
and builds then run it with onnxruntime and the `tokenizers` word-piece tokenizer. An export
is a folder::

    model.onnx      the transformer's graph: word-piece ids -> contextual token vectors (fp32)
    model.onnx.data its weights, beside the graph (ONNX external data), which onnxruntime
                    maps from the file instead of copying onto the heap: a serving process
                    keeps only the pages it reads (the word-piece table is half the weights
                    and a question reads a few rows of it)
    tokenizer.json  the model's tokenizer, copied so the folder is self-contained
    export.json     SHA-256 of the three files, the source weights' SHA-256, the
                    fingerprint, the truncation length and the check made against
                    sentence-transformers

The three files are checked against export.json before a session is opened. The embedder's
fingerprint is the source weights' SHA-256 (the one the sentence-transformers path uses), and
an export is written only after its vectors matched sentence-transformers' on probe texts, so
an index built by either path loads in the other exactly when the vectors are the same.

    python -m index.onnx_embed export [--dest DIR] [--force]
    python -m index.onnx_embed export-cross-encoder MODEL_DIR DEST
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.embed import (
    SMALL_BATCH,
    TUNED_MODEL_NAME,
    ModelError,
    TokenVectors,
    sha256_file,
    tuned_record,
)

EXPORT_FORMAT = 2  # 2: the weights in DATA_FILE beside the graph (1: one file)
ONNX_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"  # the name is recorded inside model.onnx: never rename it
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "export.json"
OPSET = 17
ENV_DIR = "DOSSIER_ONNX_DIR"  # where exports live; default: the environment's share/ folder
# The export must reproduce sentence-transformers: fp32 gives cosine 1.00000 on sentences and
# >= 0.9998 on word pieces; int8 quantisation fell to 0.86 and changed answers.
MIN_SENTENCE_COSINE = 0.99999
MIN_TOKEN_COSINE = 0.999
PROBE_TEXTS = (
    "ok",
    "Did Moscow deny asking Beijing for help?",
    "The Chinese Embassy in the United States said on Sunday that it was not aware of any "
    "Russian request or positive Chinese response in Moscow.",
    # Longer than the tokenizer.json's 128 and than the model's 256 word pieces: the cut
    # must fall where sentence-transformers makes it.
    " ".join(["Officials in Washington, Brussels and Beijing traded statements on sanctions, "
              "arms and grain shipments through the week."] * 14),
)


@dataclass(frozen=True)
class ExportInfo:
    """What export.json records about one exported model."""

    folder: Path
    kind: str  # "embedder" or "cross-encoder"
    name: str
    fingerprint: str
    source_sha256: str
    onnx_sha256: str
    data_sha256: str
    tokenizer_sha256: str
    max_tokens: int
    dimension: int  # embedder: vector size; cross-encoder: number of labels
    activation: str  # cross-encoder: "sigmoid" or "identity"; embedder: "mean-pooling"

    @classmethod
    def read(cls, folder: Path) -> ExportInfo:
        """The export at ``folder``, with both files checked against their recorded hashes."""
        manifest = folder / MANIFEST_FILE
        try:
            data = json.loads(manifest.read_text())
            if data.get("format") != EXPORT_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {EXPORT_FORMAT}")
            info = cls(folder=folder, **{k: data[k] for k in (
                "kind", "name", "fingerprint", "source_sha256", "onnx_sha256", "data_sha256",
                "tokenizer_sha256", "max_tokens", "dimension", "activation")})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"The ONNX export at {folder} is unreadable ({exc}); export it "
                             "again with `python -m index.onnx_embed export --force`.") from None
        for file, want in ((ONNX_FILE, info.onnx_sha256), (DATA_FILE, info.data_sha256),
                           (TOKENIZER_FILE, info.tokenizer_sha256)):
            path = folder / file
            got = sha256_file(path) if path.is_file() else "missing"
            if got != want:
                raise ModelError(
                    f"{path} does not match the SHA-256 recorded in {manifest} (got {got[:12]}…, "
                    f"expected {want[:12]}…); the file is corrupt or was replaced. Export it "
                    "again with `python -m index.onnx_embed export --force`.")
        return info


def export_root() -> Path:
    """Where exports are kept: $DOSSIER_ONNX_DIR, else beside the installed packages."""
    if env := os.environ.get(ENV_DIR):
        return Path(env).expanduser()
    return Path(sys.prefix) / "share" / "dossier-bot" / "onnx"


def packaged_export_dir(root: Path | None = None) -> Path:
    # One folder per source weights and export format: a new model version never reuses an
    # old graph, and a checkout that reads another format (sharing this environment, or
    # before an upgrade) keeps its own folder instead of finding one it cannot read.
    digest = tuned_record()["model_sha256"]
    return (root or export_root()) / f"minilm-dossier-{digest[:16]}-f{EXPORT_FORMAT}"


# ---------------------------------------------------------------- run time (no torch)


def _ort():
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelError(f"onnxruntime is not installed ({exc}); reinstall dossier-bot "
                         "(`make setup`).") from None
    return onnxruntime


def _session(path: Path, threads: int):
    ort = _ort()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Spinning workers burn a core between calls; on a shared machine (a build beside a
    # serving bot) that core is someone else's.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # The arena stays on for both sessions: without it every intermediate of a build's
    # batches was a fresh mmap the kernel had to zero, which cost a build as much system time
    # as the model's own arithmetic. What a batch session's arena grew to is handed back
    # after each call (_Runner.run), so a serving process that rebuilds does not keep it.
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _tokenizer(info: ExportInfo):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(info.folder / TOKENIZER_FILE))
    # tokenizer.json ships with truncation at 128, the model reads 256 word pieces and
    # sentence-transformers cuts there: the export records the model's real limit.
    tok.enable_truncation(max_length=info.max_tokens)
    # Each text keeps its own length; _Runner.feeds pads a batch to its longest text, once
    # the texts are grouped by length.
    tok.no_padding()
    return tok


class _Runner:
    """One ONNX session per thread count, opened on first use and never resized.

    A question runs on one intra-op thread (a second one gains little for a short text, and
    waits on a busy core); a batch (a build) on all cores. ONNX Runtime fixes the pool size
    when a session opens, so the two are two sessions; a serving process opens only the first.
    """

    def __init__(self, info: ExportInfo, pad_id: int) -> None:
        self.info = info
        self._sessions: dict[int, object] = {}
        self._batch_threads = max(1, os.cpu_count() or 1)
        self._input_names: set[str] | None = None
        self._lock = threading.Lock()
        self._pad_id = pad_id
        self._shrink = None  # RunOptions that hand the arena back, made with the batch session

    def threads(self, n_texts: int) -> int:
        return 1 if n_texts <= SMALL_BATCH else self._batch_threads

    def run(self, n_texts: int, output: str, feeds: dict[str, np.ndarray], *,
            last: bool) -> np.ndarray:
        """``output`` for one batch of a call of ``n_texts`` texts (``last``: its last batch)."""
        threads = self.threads(n_texts)
        sess = self.session(threads)
        # A batch session's arena grows to the largest batch of the call (tens of MB); it is
        # handed back once per call, not per batch, so a build pays for that once per 64 texts.
        options = self._shrink if last and threads > 1 else None
        (out,) = sess.run([output], feeds, options)
        return out

    def session(self, threads: int):
        sess = self._sessions.get(threads)
        if sess is None:
            # Sessions run concurrently (Slack and Discord threads); opening one is not
            # cheap (~0.3 s, a copy of the weights), so it happens once.
            with self._lock:
                sess = self._sessions.get(threads)
                if sess is None:
                    sess = _session(self.info.folder / ONNX_FILE, threads)
                    self._input_names = {i.name for i in sess.get_inputs()}
                    if threads > 1 and self._shrink is None:
                        shrink = _ort().RunOptions()
                        shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage",
                                                    "cpu:0")
                        self._shrink = shrink
                    self._sessions[threads] = sess
        return sess

    def feeds(self, encodings) -> dict[str, np.ndarray]:
        """The model's inputs for a batch, padded to its longest text (padding is masked)."""
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, e in enumerate(encodings):
            n = len(e.ids)
            ids[row, :n] = e.ids
            mask[row, :n] = e.attention_mask
            types[row, :n] = e.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask}
        if self._input_names is None or "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = types
        return feeds


def _pad_id(tok) -> int:
    pad_id = tok.token_to_id("[PAD]")
    return 0 if pad_id is None else pad_id


def _normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)  # torch.nn.functional.normalize's eps


class OnnxEmbedder:
    """The packaged all-MiniLM-L6-v2 through onnxruntime: the Embedder protocol, plus word
    piece vectors (``embed_with_tokens``) as SentenceTransformerEmbedder gives them."""

    # Texts per forward pass. A build hands over 64 at a time; eight of similar length (the
    # call's texts are ordered by word pieces) keep a layer's activations in cache and waste
    # little on padding: a third less CPU than batches of 64 here (docs/benchmarks.md).
    def __init__(self, export_dir: Path | None = None, *, batch_size: int = 8) -> None:
        self.info = ExportInfo.read(export_dir or packaged_export_dir())
        if self.info.kind != "embedder":
            raise ModelError(f"{self.info.folder} holds a {self.info.kind}, not an embedder.")
        self.name = self.info.name
        self.fingerprint = self.info.fingerprint
        self.dimension = self.info.dimension
        self.max_tokens = self.info.max_tokens
        self.batch_size = batch_size
        self._tok = _tokenizer(self.info)
        self._runner = _Runner(self.info, _pad_id(self._tok))

    def vocabulary(self) -> dict[str, int]:
        """Word piece -> id (the ranker leaves punctuation and stop-word pieces out)."""
        return self._tok.get_vocab()

    @classmethod
    def packaged(cls) -> OnnxEmbedder:
        """The packaged model's export, made now (with sentence-transformers) when missing."""
        folder = packaged_export_dir()
        if not (folder / MANIFEST_FILE).is_file():
            print(f"Exporting the embedding model to ONNX in {folder} (once)…", file=sys.stderr)
            export_packaged(folder)
        return cls(folder)

    def _forward(self, texts: list[str]) -> list[tuple[np.ndarray, list[int]]]:
        """Each text's contextual word-piece vectors (padding dropped) and word-piece ids,
        in the order of ``texts``."""
        encodings = self._tok.encode_batch(texts)
        # Longest first by word pieces (what a batch pads to, where sentence-transformers
        # orders by characters), so each batch holds texts of nearly the same length.
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        results: list = [None] * len(texts)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            feeds = self._runner.feeds([encodings[i] for i in idx])
            tokens = self._runner.run(len(texts), "token_embeddings", feeds,
                                      last=start + self.batch_size >= len(order))
            for row, i in enumerate(idx):
                ids = encodings[i].ids
                results[i] = (tokens[row, :len(ids)], ids)
        return results

    def _sentences(self, rows: list[tuple[np.ndarray, list[int]]]) -> np.ndarray:
        # Mean pooling over the text's word pieces, [CLS] and [SEP] included, as
        # sentence-transformers pools them; then unit length.
        sentence = np.stack([tokens.mean(axis=0) for tokens, _ in rows])
        return np.ascontiguousarray(_normalise(sentence), dtype=np.float32)

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._sentences(self._forward(texts))

    def embed_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[TokenVectors]]:
        """Sentence vectors and per-token vectors from one forward pass."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32), []
        rows = self._forward(texts)
        out = [TokenVectors(np.asarray(ids[1:-1], dtype=np.int32),  # drop [CLS] and [SEP]
                            _normalise(tokens[1:-1]).astype(np.float16))
               for tokens, ids in rows]
        return self._sentences(rows), out


class OnnxCrossEncoder:
    """Scores (question, passage) pairs with a cross-encoder exported by
    :func:`export_cross_encoder`: batch-padded, truncated as the CrossEncoder truncates, on one
    intra-op thread. ``predict`` returns what ``CrossEncoder.predict`` returns (the activation
    applied), shape (n,) for one label and (n, labels) otherwise."""

    def __init__(self, export_dir: Path, *, batch_size: int = 32) -> None:
        self.info = ExportInfo.read(Path(export_dir))
        if self.info.kind != "cross-encoder":
            raise ModelError(f"{self.info.folder} holds a {self.info.kind}, not a cross-encoder.")
        self.name = self.info.name
        self.fingerprint = self.info.fingerprint
        self.batch_size = batch_size
        self._tok = _tokenizer(self.info)
        self._runner = _Runner(self.info, _pad_id(self._tok))
        self._session = self._runner.session(1)  # pairs of one question: one thread, always

    def predict(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        labels = self.info.dimension
        if not pairs:
            return np.zeros((0,) if labels == 1 else (0, labels), dtype=np.float32)
        order = sorted(range(len(pairs)), key=lambda i: -len(pairs[i][0]) - len(pairs[i][1]))
        logits = np.zeros((len(pairs), labels), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            enc = self._tok.encode_batch([(pairs[i][0], pairs[i][1]) for i in idx])
            (out,) = self._session.run(["logits"], self._runner.feeds(enc))
            logits[idx] = out
        if self.info.activation == "sigmoid":
            logits = 1.0 / (1.0 + np.exp(-logits))
        return logits[:, 0] if labels == 1 else logits


# ---------------------------------------------------------------- export (torch)


def _write_export(folder: Path, graph: Path, tokenizer: Path, record: dict) -> ExportInfo:
    """Move a checked graph (with its weights, DATA_FILE beside it) and its tokenizer into
    ``folder``; export.json goes last, so a folder without one is an export that did not
    finish."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_FILE).unlink(missing_ok=True)
    os.replace(graph, folder / ONNX_FILE)
    os.replace(graph.parent / DATA_FILE, folder / DATA_FILE)
    shutil.copyfile(tokenizer, folder / TOKENIZER_FILE)
    record = {"format": EXPORT_FORMAT, **record,
              "onnx_sha256": sha256_file(folder / ONNX_FILE),
              "data_sha256": sha256_file(folder / DATA_FILE),
              "tokenizer_sha256": sha256_file(folder / TOKENIZER_FILE)}
    tmp = folder / (MANIFEST_FILE + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, folder / MANIFEST_FILE)
    return ExportInfo.read(folder)


def _torch_export(module, inputs: dict, outputs: list[str], path: Path) -> None:
    """Export ``module`` to ``path``, its weights to DATA_FILE beside it."""
    import warnings

    import torch

    try:
        import onnx
    except ImportError as exc:
        raise ModelError(f"The ONNX export needs the onnx package ({exc}): "
                         "`pip install 'dossier-bot[torch]'`.") from None

    names = list(inputs)
    axes = {n: {0: "batch", 1: "tokens"} for n in names}
    axes.update({o: {0: "batch", 1: "tokens"} if o == "token_embeddings" else {0: "batch"}
                 for o in outputs})
    with warnings.catch_warnings(), torch.no_grad():
        # The tracer warns about shape checks inside transformers; the check below compares
        # outputs at several lengths, which is what those warnings are about.
        warnings.simplefilter("ignore")
        whole = path.with_name(path.name + ".whole")
        torch.onnx.export(module.eval(), tuple(inputs.values()), str(whole), dynamo=False,
                          input_names=names, output_names=outputs, dynamic_axes=axes,
                          opset_version=OPSET, do_constant_folding=True)
    # Weights as external data: onnxruntime maps DATA_FILE rather than parsing 87 MB of
    # protobuf onto the heap (a serving process held both the parsed copy and the session's).
    model = onnx.load(str(whole))
    (path.parent / DATA_FILE).unlink(missing_ok=True)  # onnx appends to an existing file
    onnx.save_model(model, str(path), save_as_external_data=True,
                    all_tensors_to_one_file=True, location=DATA_FILE, size_threshold=1024)
    # onnx creates the file owner-only; the image runs as another user than the one exporting.
    (path.parent / DATA_FILE).chmod(path.stat().st_mode & 0o777)
    whole.unlink()


def _export_transformer(module, attribute: str, output: str, graph: Path) -> None:
    """Export a Hugging Face encoder (called with input_ids, attention_mask, token_type_ids)
    to ONNX, its result's ``attribute`` as the graph's ``output``."""
    import torch

    class Output(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, input_ids, attention_mask, token_type_ids):
            return getattr(self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                      token_type_ids=token_type_ids), attribute)

    ids = torch.ones((2, 8), dtype=torch.long)
    _torch_export(Output(), {"input_ids": ids, "attention_mask": ids,
                             "token_type_ids": torch.zeros_like(ids)}, [output], graph)


def _versions() -> dict[str, str]:
    import sentence_transformers
    import torch

    return {"torch": torch.__version__, "sentence_transformers": sentence_transformers.__version__}


def _min_cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = _normalise(np.asarray(a, np.float32)), _normalise(np.asarray(b, np.float32))
    return float((a * b).sum(axis=-1).min())


def export_packaged(dest: Path | None = None) -> ExportInfo:
    """Export the packaged model, tuned (hash-checked wheel + hash-checked layers), and check
    it against sentence-transformers. The fp32 folder it is assembled into is temporary: an
    image keeps only the export."""
    from index.embed import SentenceTransformerEmbedder

    dest = dest or packaged_export_dir()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".export-") as tmp:
        reference = SentenceTransformerEmbedder(tuned_root=Path(tmp) / "assembled")
        source = Path(reference._source)
        model = reference._model
        graph = Path(tmp) / ONNX_FILE
        _export_transformer(model[0].auto_model, "last_hidden_state", "token_embeddings", graph)
        record = {"kind": "embedder", "name": TUNED_MODEL_NAME,
                  "fingerprint": reference.fingerprint, "source_sha256": reference.fingerprint,
                  "max_tokens": int(model.max_seq_length),
                  "dimension": reference.dimension, "activation": "mean-pooling",
                  "opset": OPSET, **_versions()}
        staged = _write_export(Path(tmp) / "staged", graph, source / TOKENIZER_FILE, record)
        check = compare_embedders(reference, OnnxEmbedder(staged.folder), PROBE_TEXTS)
        if (check["min_sentence_cosine"] < MIN_SENTENCE_COSINE
                or check["min_token_cosine"] < MIN_TOKEN_COSINE or not check["same_ids"]):
            raise ModelError(f"The ONNX export does not reproduce sentence-transformers: {check}")
        record["check"] = check
        return _write_export(dest, staged.folder / ONNX_FILE, source / TOKENIZER_FILE, record)


def compare_embedders(a, b, texts) -> dict:
    """Lowest sentence and word-piece cosine between two embedders, and whether the word
    pieces are the same (same truncation)."""
    va, ta = a.embed_with_tokens(list(texts))
    vb, tb = b.embed_with_tokens(list(texts))
    same_ids = all(np.array_equal(x.ids, y.ids) for x, y in zip(ta, tb, strict=True))
    token_cos = min(_min_cos(x.vectors, y.vectors) for x, y in zip(ta, tb, strict=True)
                    if len(x.ids) and same_ids) if same_ids else -1.0
    return {"texts": len(texts), "min_sentence_cosine": round(_min_cos(va, vb), 6),
            "min_token_cosine": round(token_cos, 6), "same_ids": same_ids,
            "max_tokens_seen": max(len(t.ids) for t in ta) + 2}


def export_cross_encoder(model_dir: Path, dest: Path) -> ExportInfo:
    """Export a sentence-transformers CrossEncoder saved as a folder (``model.save(dir)``)
    to ONNX in ``dest``, checked against ``CrossEncoder.predict`` on probe pairs.

    The folder's tokenizer.json is copied beside the graph; the fingerprint is the SHA-256
    of its model.safetensors. Score with :class:`OnnxCrossEncoder`.
    """
    from sentence_transformers import CrossEncoder

    model_dir, dest = Path(model_dir), Path(dest)
    weights = model_dir / "model.safetensors"
    tokenizer = model_dir / TOKENIZER_FILE
    if not weights.is_file() or not tokenizer.is_file():
        raise ModelError(f"{model_dir} is not a saved CrossEncoder folder (it needs "
                         "model.safetensors and tokenizer.json).")
    digest = sha256_file(weights)
    ce = CrossEncoder(str(model_dir), device="cpu", local_files_only=True)
    activation = type(ce.activation_fn).__name__.lower()
    if activation not in ("sigmoid", "identity"):
        raise ModelError(f"Cross-encoder activation {activation!r} is not supported "
                         "(sigmoid or identity).")
    max_tokens = int(ce.max_length or ce.tokenizer.model_max_length)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".export-") as tmp:
        graph = Path(tmp) / ONNX_FILE
        _export_transformer(ce.model, "logits", "logits", graph)
        record = {"kind": "cross-encoder", "name": str(model_dir), "fingerprint": digest,
                  "source_sha256": digest, "max_tokens": max_tokens,
                  "dimension": int(ce.num_labels), "activation": activation,
                  "opset": OPSET, **_versions()}
        staged = _write_export(Path(tmp) / "staged", graph, tokenizer, record)
        pairs = [(q, p) for q in PROBE_TEXTS[:2] for p in PROBE_TEXTS]
        want = np.asarray(ce.predict(pairs, show_progress_bar=False), dtype=np.float32)
        got = OnnxCrossEncoder(staged.folder).predict(pairs)
        diff = float(np.abs(want - got).max())
        if diff > 1e-4:
            raise ModelError(f"The ONNX cross-encoder differs from CrossEncoder.predict by {diff}")
        record["check"] = {"pairs": len(pairs), "max_abs_diff": diff}
        return _write_export(dest, staged.folder / ONNX_FILE, tokenizer, record)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m index.onnx_embed", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="export the packaged model (skipped when a verified "
                                        "export exists)")
    exp.add_argument("--dest", type=Path, help=f"export folder (default: under ${ENV_DIR} "
                                                "or the environment's share/dossier-bot/onnx)")
    exp.add_argument("--force", action="store_true", help="export again even if one exists")
    ce = sub.add_parser("export-cross-encoder", help="export a saved CrossEncoder folder")
    ce.add_argument("model_dir", type=Path)
    ce.add_argument("dest", type=Path)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        if args.command == "export":
            folder = args.dest or packaged_export_dir()
            if not args.force and (folder / MANIFEST_FILE).is_file():
                try:
                    info = ExportInfo.read(folder)
                    print(f"ONNX export verified: {folder} (sha256 {info.onnx_sha256[:12]}…)")
                    return 0
                except ModelError as exc:
                    print(f"{exc} Exporting again.", file=sys.stderr)
            info = export_packaged(folder)
        else:
            info = export_cross_encoder(args.model_dir, args.dest)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"ONNX export written: {info.folder} (sha256 {info.onnx_sha256[:12]}…)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
