"""The ONNX Runtime embedder and cross-encoder against sentence-transformers, on the real model.

The ONNX path is what questions, servers and builds run; sentence-transformers is the
reference it was exported from. Same word pieces, same vectors (to fp32 rounding), and the
same quoted spans from `ask --json -`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import CORPUS, DEV_SET, SHARED, poll

import bot.runtime
import index.embed
from bot.cli import main
from index.build import build_index
from index.embed import (
    BACKEND_ENV,
    PACKAGED_MODEL_SHA256,
    TUNED_LAYERS,
    ModelError,
    SentenceTransformerEmbedder,
    load_embedder,
    packaged_model_dir,
    sha256_file,
    tuned_model_dir,
    tuned_record,
    untuned_embedder,
)
from index.onnx_embed import (
    DATA_FILE,
    MANIFEST_FILE,
    ONNX_FILE,
    TOKENIZER_FILE,
    ExportInfo,
    OnnxCrossEncoder,
    OnnxEmbedder,
    compare_embedders,
    export_cross_encoder,
)

REPO = Path(__file__).resolve().parent.parent
DOSSIER = SHARED / "eval" / "dossiers" / "kilroy-silk-veritas"
TORCH_MODULES = ("torch", "sentence_transformers", "transformers", "sklearn", "sympy")


@pytest.fixture(scope="module")
def st_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@pytest.fixture(scope="module")
def onnx_embedder() -> OnnxEmbedder:
    return OnnxEmbedder.packaged()


def corpus_texts() -> list[str]:
    """Sentences and paragraphs of the bundled articles, short and long."""
    body = (CORPUS / "001-russia-asks-for-help-from-china.md").read_text()
    paragraphs = [p.strip() for p in body.split("\n\n") if len(p.strip()) > 20]
    return [*paragraphs[:12], ". ".join(paragraphs[:8])]


def test_default_embedder_is_onnx_and_shares_the_fingerprint(monkeypatch, st_embedder) -> None:
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    embedder = load_embedder()
    assert isinstance(embedder, OnnxEmbedder)
    assert embedder.fingerprint == st_embedder.fingerprint == tuned_record()["model_sha256"]
    assert embedder.name == st_embedder.name
    assert embedder.dimension == st_embedder.dimension == 384
    # The model's real limit, not the 128 that the packaged tokenizer.json declares.
    assert embedder.max_tokens == st_embedder.max_tokens == 256
    monkeypatch.setenv(BACKEND_ENV, "torch")
    assert isinstance(load_embedder(), SentenceTransformerEmbedder)
    monkeypatch.setenv(BACKEND_ENV, "tpu")
    with pytest.raises(ModelError, match="'onnx'"):
        load_embedder()


def test_tuned_model_is_assembled_from_checked_parts(tmp_path, monkeypatch) -> None:
    record = tuned_record()
    assert sha256_file(TUNED_LAYERS) == record["layers_sha256"]
    assert record["base_sha256"] == PACKAGED_MODEL_SHA256
    folder = tuned_model_dir(tmp_path / "root")
    assert sha256_file(folder / "model.safetensors") == record["model_sha256"]
    assert (folder / "tokenizer.json").is_file() and (folder / "modules.json").is_file()
    assert not list((tmp_path / "root").glob(".assemble-*"))  # nothing half-written left
    # A damaged assembled copy is assembled again, not used.
    (folder / "model.safetensors").write_bytes(b"damaged")
    assert sha256_file(tuned_model_dir(tmp_path / "root") / "model.safetensors") \
        == record["model_sha256"]
    # A folder left without its weights (an interrupted removal) is replaced too.
    (folder / "model.safetensors").unlink()
    assert tuned_model_dir(tmp_path / "root") == folder
    assert sha256_file(folder / "model.safetensors") == record["model_sha256"]
    assert [p.name for p in (tmp_path / "root").iterdir()] == [folder.name]
    # A root that cannot be written is named, with the setting that moves it.
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(ModelError, match="DOSSIER_ONNX_DIR"):
        tuned_model_dir(blocked)
    # Layers that are not the recorded ones are refused before anything is assembled.
    tampered = tmp_path / "layers.safetensors"
    data = bytearray(TUNED_LAYERS.read_bytes())
    data[-10] ^= 1
    tampered.write_bytes(bytes(data))
    monkeypatch.setattr(index.embed, "TUNED_LAYERS", tampered)
    with pytest.raises(ModelError, match="does not match the SHA-256"):
        tuned_model_dir(tmp_path / "other")
    assert not (tmp_path / "other" / folder.name).exists()


def test_processes_repairing_one_damaged_copy_at_once_all_get_it(tmp_path) -> None:
    root = tmp_path / "root"
    folder = tuned_model_dir(root)
    (folder / "model.safetensors").write_bytes(b"damaged")
    code = ("import sys; from pathlib import Path; from index.embed import tuned_model_dir; "
            "print(tuned_model_dir(Path(sys.argv[1])))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(root)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    assert {out.strip() for out, _ in results} == {str(folder)}
    assert sha256_file(folder / "model.safetensors") == tuned_record()["model_sha256"]
    assert [p.name for p in root.iterdir()] == [folder.name]  # nothing set aside is left


def test_tuned_model_changes_the_vectors_not_the_word_pieces(st_embedder) -> None:
    # The stored layers are in use: the wheel's model gives other vectors for the same text
    # (what they buy is measured by `dossier-bot eval`, docs/ranking.md), cut into the same
    # word pieces.
    plain = untuned_embedder()
    question = "Who is Hu Wei?"
    answer = ("Hu Wei, the vice-chairman of the Public Policy Research Center of the "
              "Counselors' Office of China's State Council, wrote an essay in March.")
    vt, vp = st_embedder.embed_batch([question, answer]), plain.embed_batch([question, answer])
    assert float(vt[0] @ vp[0]) < 0.99 and float(vt[1] @ vp[1]) < 0.99
    _, tt = st_embedder.embed_with_tokens([answer])
    _, tp = plain.embed_with_tokens([answer])
    assert np.array_equal(tt[0].ids, tp[0].ids)


def test_export_files_are_checked_against_their_sha256(tmp_path, onnx_embedder) -> None:
    folder = tmp_path / "export"
    shutil.copytree(onnx_embedder.info.folder, folder)
    info = ExportInfo.read(folder)
    assert info.source_sha256 == tuned_record()["model_sha256"] and info.kind == "embedder"
    record = json.loads((folder / MANIFEST_FILE).read_text())
    assert record["check"]["min_sentence_cosine"] >= 0.99999 and record["check"]["same_ids"]

    tok = folder / TOKENIZER_FILE
    tok.write_text(tok.read_text().replace('"[UNK]"', '"[UNK ]"', 1))
    with pytest.raises(ModelError, match=r"tokenizer\.json does not match the SHA-256"):
        OnnxEmbedder(folder)
    shutil.copyfile(onnx_embedder.info.folder / TOKENIZER_FILE, tok)
    with (folder / DATA_FILE).open("r+b") as fh:  # one weight changed, the size kept
        fh.seek(4096)
        byte = fh.read(1)
        fh.seek(4096)
        fh.write(bytes([byte[0] ^ 1]))
    with pytest.raises(ModelError, match=r"model\.onnx\.data does not match the SHA-256"):
        OnnxEmbedder(folder)
    shutil.copyfile(onnx_embedder.info.folder / DATA_FILE, folder / DATA_FILE)
    (folder / ONNX_FILE).unlink()
    with pytest.raises(ModelError, match=r"model\.onnx .*export --force"):
        OnnxEmbedder(folder)
    (folder / MANIFEST_FILE).write_text("{")
    with pytest.raises(ModelError, match="unreadable"):
        OnnxEmbedder(folder)


def test_vectors_and_word_pieces_match_sentence_transformers(st_embedder, onnx_embedder) -> None:
    texts = corpus_texts()
    check = compare_embedders(st_embedder, onnx_embedder, texts)
    assert check["same_ids"], "the two paths cut or split the texts differently"
    assert check["min_sentence_cosine"] >= 0.99999
    assert check["min_token_cosine"] >= 0.999
    assert check["max_tokens_seen"] == 256  # the long text is cut where the model stops
    assert np.allclose(st_embedder.embed_batch(texts), onnx_embedder.embed_batch(texts),
                       atol=1e-4)


def test_batches_and_single_texts_give_the_same_vectors(onnx_embedder) -> None:
    texts = corpus_texts()  # more than SMALL_BATCH: the all-cores session
    batch = onnx_embedder.embed_batch(texts)
    one_by_one = np.vstack([onnx_embedder.embed_batch([t]) for t in texts])
    assert batch.dtype == np.float32 and batch.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    assert np.allclose(batch, one_by_one, atol=1e-5)  # padding changes nothing
    assert len(onnx_embedder._runner._sessions) == 2  # one per thread count, never resized
    empty, toks = onnx_embedder.embed_with_tokens([])
    assert empty.shape == (0, 384) and toks == []


def test_batching_changes_neither_the_vectors_nor_their_order(onnx_embedder,
                                                             monkeypatch) -> None:
    # Texts are grouped by word pieces into batches; every text must come back in its
    # place, with the vectors it has on its own (as in one batch of 64, the old way).
    texts = [*corpus_texts(), "", "ok", "Did Moscow deny asking Beijing for help?"]
    vectors, tokens = onnx_embedder.embed_with_tokens(texts)
    assert onnx_embedder.batch_size < len(texts)
    monkeypatch.setattr(onnx_embedder, "batch_size", 64)
    whole, whole_tokens = onnx_embedder.embed_with_tokens(texts)
    reverse, reverse_tokens = onnx_embedder.embed_with_tokens(texts[::-1])
    assert np.allclose(vectors, whole, atol=1e-6)
    assert np.allclose(vectors, reverse[::-1], atol=1e-6)
    for t, w, r in zip(tokens, whole_tokens, reverse_tokens[::-1], strict=True):
        assert np.array_equal(t.ids, w.ids) and np.array_equal(t.ids, r.ids)
        assert np.allclose(t.vectors, w.vectors, atol=2e-3)  # float16
    assert len(tokens[-3].ids) == 0 and tokens[-3].vectors.shape == (0, 384)  # "" has none
    singles = np.vstack([onnx_embedder.embed_batch([t]) for t in texts[-3:]])
    assert np.allclose(vectors[-3:], singles, atol=1e-5)


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="needs Linux /proc")
def test_the_weights_are_mapped_from_the_export_not_copied(onnx_embedder) -> None:
    # onnxruntime maps external weights from their file; a serving process then holds only
    # the pages it reads. A one-file graph (or a copying load) would show no such mapping.
    onnx_embedder.embed_batch(["Did Moscow deny asking Beijing for help?"])
    data = str(onnx_embedder.info.folder / DATA_FILE)
    maps = Path("/proc/self/maps").read_text().splitlines()
    assert any(line.rstrip().endswith(data) for line in maps)
    assert (onnx_embedder.info.folder / ONNX_FILE).stat().st_size < 1 << 20  # the graph alone


def _spans(index: Path, embedder, questions: list[str], monkeypatch) -> list[dict]:
    monkeypatch.setattr(bot.runtime, "load_embedder", lambda *_a, **_k: embedder)
    result = CliRunner().invoke(main, ["ask", "--json", "-", "--index", str(index)],
                                input="\n".join(questions) + "\n", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert len(answers) == len(questions)
    return [{"answered": a["answered"], "reason": a["reason"],
             "quotes": [(q["article"]["id"], q["start"], q["end"]) for q in a["quotes"]]}
            for a in answers]


def _sample(kind: str, tmp_path: Path) -> tuple[Path, list[str]]:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    if kind == "bundled":
        keep = ("001", "003")  # the two shortest articles
        for f in sorted(CORPUS.iterdir()):
            if f.name[:3] in keep:
                shutil.copy(f, corpus)
        lines = [json.loads(x) for x in DEV_SET.read_text().splitlines() if x.strip()]
        questions = [q["q"] for q in lines if q["doc"] in keep or q["doc"] is None]
    else:
        for f in sorted((DOSSIER / "corpus").iterdir()):
            shutil.copy(f, corpus)
        lines = (DOSSIER / "questions.jsonl").read_text().splitlines()
        questions = [json.loads(x)["q"] for x in lines if x.strip()]
    return corpus, questions


@pytest.mark.parametrize("kind", ["bundled", "dossier"])
def test_ask_quotes_the_same_spans_as_sentence_transformers(
        kind, tmp_path, monkeypatch, st_embedder, onnx_embedder) -> None:
    if kind == "dossier" and not DOSSIER.is_dir():
        pytest.skip(f"{DOSSIER} is not on this machine")
    monkeypatch.chdir(tmp_path)
    corpus, questions = _sample(kind, tmp_path)
    got = {}
    for name, embedder in (("st", st_embedder), ("onnx", onnx_embedder)):
        index = tmp_path / f"index-{name}"
        build_index(corpus, index, embedder)
        got[name] = _spans(index, embedder, questions, monkeypatch)
    assert sum(a["answered"] for a in got["st"]) >= len(questions) // 3
    for q, a, b in zip(questions, got["st"], got["onnx"], strict=True):
        assert a == b, q
    # An index built by one path serves the other: same fingerprint, same vectors.
    assert _spans(tmp_path / "index-st", onnx_embedder, questions[:5], monkeypatch) == \
        got["st"][:5]


# Records every import of a torch-side module to $IMPORT_LOG before running the CLI.
_WATCHED_CLI = """
import os, sys
log = os.environ["IMPORT_LOG"]
watched = set(sys.argv.pop(1).split(","))
def hook(event, args):
    if event == "import" and args[0].split(".")[0] in watched:
        with open(log, "a") as fh:
            fh.write(args[0] + "\\n")
sys.addaudithook(hook)
from bot.cli import main
main()
"""


def _cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DOSSIER_", "SLACK_", "DISCORD_"))}
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", IMPORT_LOG=str(tmp_path / "imports"),
               **extra)
    return env


def test_ask_imports_neither_torch_nor_sentence_transformers(tmp_path, built_index) -> None:
    env = _cli_env(tmp_path, DOSSIER_INDEX_DIR=str(built_index))
    result = subprocess.run(
        [sys.executable, "-c", _WATCHED_CLI, ",".join(TORCH_MODULES), "ask", "--json", "-"],
        input="Did Moscow deny asking Beijing for help?\nWhat is a sourdough starter?\n",
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["answered"] for a in answers] == [True, False]
    log = tmp_path / "imports"
    assert not log.exists(), f"ask imported {log.read_text().split()}"


def test_serve_imports_neither_torch_nor_sentence_transformers(tmp_path, built_index) -> None:
    from fakes.fake_slack import BOT_USER_ID, SIGNING_SECRET, FakeSlack, event_body, post_to_app
    from test_ops_serve import free_port, http_get

    with FakeSlack() as slack:
        port, health = free_port(), free_port()
        env = _cli_env(tmp_path, DOSSIER_INDEX_DIR=str(built_index),
                       DOSSIER_CORPUS_DIR=str(CORPUS), DOSSIER_HEALTH_HOST="127.0.0.1",
                       DOSSIER_HEALTH_PORT=str(health), DOSSIER_SLACK_PORT=str(port),
                       DOSSIER_FEEDBACK_DB=str(tmp_path / "feedback.sqlite3"),
                       DOSSIER_RATE_LIMIT="0", SLACK_BOT_TOKEN=slack.bot_token,
                       SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_API_URL=slack.api_url)
        with (tmp_path / "bot.log").open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-c", _WATCHED_CLI, ",".join(TORCH_MODULES),
                 "serve", "slack", "--http"], env=env, cwd=tmp_path, stdout=out,
                stderr=subprocess.STDOUT)
            try:
                def ready() -> bool:
                    assert proc.poll() is None, (tmp_path / "bot.log").read_text()
                    try:
                        return http_get(f"http://127.0.0.1:{health}/readyz")[0] == 200
                    except OSError:  # not listening yet
                        return False

                poll(ready, 120, "the server becoming ready")
                ts = "1700000100.000200"
                event = {"type": "app_mention", "user": "U0ASKER", "ts": ts, "event_ts": ts,
                         "text": f"<@{BOT_USER_ID}> Did Russia ask China for military aid?",
                         "channel": "C0GENERAL", "channel_type": "channel"}
                status, _ = post_to_app(f"http://127.0.0.1:{port}/slack/events",
                                        json.dumps(event_body(event)),
                                        content_type="application/json")
                assert status == 200
                (answer,) = slack.wait_for("chat.postMessage", timeout=60)
                assert answer.quotes()
            finally:
                proc.terminate()
                proc.wait(30)
    log = tmp_path / "imports"
    assert not log.exists(), f"serve imported {log.read_text().split()}"


def test_cross_encoder_export_scores_like_the_cross_encoder(tmp_path) -> None:
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)  # the new classification head is random; no training is needed
    ce = CrossEncoder(str(packaged_model_dir()), num_labels=1, device="cpu",
                      local_files_only=True)
    ce.save(str(tmp_path / "ce"))
    info = export_cross_encoder(tmp_path / "ce", tmp_path / "ce-onnx")
    assert info.kind == "cross-encoder" and info.dimension == 1
    # The weights file is as readable as the graph (onnx writes it owner-only).
    modes = {(tmp_path / "ce-onnx" / f).stat().st_mode & 0o777 for f in (ONNX_FILE, DATA_FILE)}
    assert len(modes) == 1
    scorer = OnnxCrossEncoder(tmp_path / "ce-onnx", batch_size=3)
    texts = corpus_texts()
    pairs = [(q, p) for q in ("Did Moscow deny asking Beijing for help?", "Who is Hu Wei?")
             for p in texts[:5]] + [("long " * 300, texts[-1])]  # cut at the model's limit
    want = ce.predict(pairs, show_progress_bar=False)
    got = scorer.predict(pairs)
    assert got.shape == (len(pairs),) and got.dtype == np.float32
    assert np.allclose(got, want, atol=1e-4)
    assert np.allclose(scorer.predict(pairs[:1]), got[:1], atol=1e-5)  # padding changes nothing
    assert scorer.predict([]).shape == (0,)
    with pytest.raises(ModelError, match="not an embedder"):
        OnnxEmbedder(tmp_path / "ce-onnx")


# Makes every module of an installed distribution outside the runtime dependencies
# (pyproject's `dependencies`, without extras, and what they pull in) unimportable, as in the
# Docker image, then runs the CLI.
_RUNTIME_ONLY_CLI = """
import importlib.abc, json, os, sys
blocked = set(json.loads(os.environ["BLOCKED_MODULES"]))
class Outside(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (not a runtime dependency)")
        return None
sys.meta_path.insert(0, Outside())
from bot.cli import main
main()
"""


def _modules_outside_runtime() -> set[str]:
    import tomllib
    from importlib import metadata

    from bench.onnx import _closure

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = _closure(project["dependencies"])

    def tops(dist) -> set[str]:
        names = set()
        for f in dist.files or []:
            first = f.parts[0]
            if first.endswith((".dist-info", ".egg-info", ".pth")) or first in ("..",
                                                                               "__pycache__"):
                continue
            names.add(first.removesuffix(".py").split(".")[0])
        return names

    inside, outside = set(), set()
    for dist in metadata.distributions():
        key = (dist.metadata["Name"] or "").lower().replace("_", "-").replace(".", "-")
        (inside if key in runtime or key == "dossier-bot" else outside).update(tops(dist))
    return outside - inside - {"index", "bot", "bench", "tests"}


def test_the_runtime_dependencies_alone_build_and_answer(tmp_path) -> None:
    blocked = _modules_outside_runtime()
    assert {"torch", "sentence_transformers", "transformers"} <= blocked
    corpus, questions = _sample("bundled", tmp_path)
    env = _cli_env(tmp_path, BLOCKED_MODULES=json.dumps(sorted(blocked)))

    def run(*args: str, stdin: str | None = None) -> str:
        result = subprocess.run([sys.executable, "-c", _RUNTIME_ONLY_CLI, *args], input=stdin,
                                env=env, cwd=tmp_path, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, result.stderr
        return result.stdout

    index = str(tmp_path / "index")
    report = json.loads(run("index", "build", "--corpus", str(corpus), "--index", index,
                            "--json"))
    assert report["embedded"] > 0 and not report["problems"]
    answers = run("ask", "--json", "-", "--index", index, stdin="\n".join(questions[:3]) + "\n")
    assert any(json.loads(line)["answered"] for line in answers.splitlines())


def test_export_command_keeps_a_verified_export_and_refuses_a_bad_one(
        tmp_path, capsys, onnx_embedder) -> None:
    from index.onnx_embed import main as onnx_main

    folder = tmp_path / "export"
    shutil.copytree(onnx_embedder.info.folder, folder)
    assert onnx_main(["export", "--dest", str(folder)]) == 0
    assert "ONNX export verified" in capsys.readouterr().out
    with pytest.raises(ModelError, match="not a saved CrossEncoder"):
        export_cross_encoder(tmp_path / "nothing", tmp_path / "out")
    assert onnx_main(["export-cross-encoder", str(tmp_path / "nothing"),
                      str(tmp_path / "out")]) == 1
    assert "not a saved CrossEncoder" in capsys.readouterr().err
