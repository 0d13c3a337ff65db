"""Incremental, atomic builds: only what changed is embedded; a killed build harms nothing."""

from __future__ import annotations

import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import passages_of

import index.diff as diff_module
from bot.answer import Answerer
from index.build import build_index
from index.chunk import ChunkParams
from index.documents import PDF_SECONDS_ENV
from index.live import LiveIndex
from index.load import load_article
from index.segment import load_segment
from index.store import CURRENT, IndexDir

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"
SMALL = ("001-russia-asks-for-help-from-china.md",
         "003-us-news-china-signals-disinterest-in-providing-weapons-to-russia.md")

NEW_ARTICLE = """---
title: "Kazakh customs stop a convoy bound for Russia"
outlet: "Steppe Post"
author: "Aigerim Nurlanova"
published: 2023-04-04
url: https://steppe.example/khorgos
---
Kazakh customs officers stopped a convoy of forty freight wagons at Khorgos on Tuesday.

The wagons carried crates of artillery shells that the manifest described as farm machinery.

Officials in Astana said the shipment had been sent back to China the same day.
"""
NEW_QUESTION = "How many freight wagons did Kazakh customs officers stop at Khorgos?"
SUN_YUN_QUESTION = "What did Sun Yun of the Stimson Center say about providing arms now?"
STOCKPILE_QUESTION = "How big a stockpile of fuel does China plan to build?"


@pytest.fixture(scope="module")
def base(tmp_path_factory, embedder):
    """A two-article corpus and its index, built once; tests work on copies."""
    root = tmp_path_factory.mktemp("build-base")
    corpus = root / "corpus"
    corpus.mkdir()
    for name in SMALL:
        shutil.copy(CORPUS / name, corpus / name)
    report = build_index(corpus, root / "index", embedder)
    return root, report


@pytest.fixture
def small(tmp_path, base):
    """(corpus, index) copies of the base for one test to change."""
    root, _ = base
    shutil.copytree(root / "corpus", tmp_path / "corpus")
    shutil.copytree(root / "index", tmp_path / "index")
    return tmp_path / "corpus", tmp_path / "index"


def answer(index_dir: Path, embedder, question: str):
    return Answerer(LiveIndex(index_dir, embedder)).ask(question)


def quoted_prefixes(ans) -> set[str]:
    return {q.article.prefix for q in ans.quotes}


def test_first_build_embeds_every_passage(base):
    root, report = base
    expected = sum(passages_of(root / "corpus" / name) for name in SMALL)
    assert (report.articles, report.removed) == (2, 0)
    assert report.chunks == report.embedded == expected > 20
    assert report.changed and report.added == 2 and report.updated == 0
    assert set(report.as_dict()) >= {"articles", "chunks", "embedded", "removed", "seconds"}
    manifest = IndexDir(root / "index").read_manifest()
    assert manifest.generation == report.generation
    assert manifest.passages == report.chunks
    assert sorted(e.path for e in manifest.articles.values()) == sorted(SMALL)


def test_progress_is_counted_in_passages(tmp_path, base, embedder):
    root, first = base
    calls: list[tuple[int, int]] = []
    report = build_index(root / "corpus", tmp_path / "index", embedder,
                         progress=lambda done, total: calls.append((done, total)))
    assert report.embedded == first.chunks
    assert {total for _, total in calls} == {report.embedded}
    assert calls[-1] == (report.embedded, report.embedded)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_nothing_changed_embeds_nothing(small, embedder, monkeypatch):
    monkeypatch.setattr(diff_module, "RACY_NS", 200_000_000)  # 0.2 s, not 2, to wait out
    corpus, index_dir = small
    segments = sorted(p.name for p in (index_dir / "segments").iterdir())
    past = time.time_ns() - 10 * 10**9
    os.utime(corpus / SMALL[0], ns=(past, past))  # new times, the same bytes: no change
    time.sleep(0.3)  # out of the racy window (the change time is now), so a stamp to trust

    report = build_index(corpus, index_dir, embedder)

    assert (report.embedded, report.removed, report.articles) == (0, 0, 2)
    assert not report.changed
    assert sorted(p.name for p in (index_dir / "segments").iterdir()) == segments
    # The file's new stamp was recorded, in two numbers beside the segment's catalog (and
    # an entry written as the previous release wrote them is still read): the next build
    # does not read the file again.
    before = (index_dir / CURRENT).read_text()
    manifest_path = index_dir / "generations" / f"{before.strip()}.json"
    raw = json.loads(manifest_path.read_text())
    aid = SMALL[0].removesuffix(".md")
    assert raw["entries"] == {} and aid in raw["stamps"]
    _size, stamp = raw["stamps"].pop(aid)
    entry = {**vars(IndexDir(index_dir).read_manifest().articles[aid]), "mtime_ns": stamp}
    del entry["stamp_ns"]
    manifest_path.write_text(json.dumps({**raw, "entries": {aid: entry}}))
    read: list[str] = []
    hashing = diff_module.file_sha256
    monkeypatch.setattr(diff_module, "file_sha256", lambda p: read.append(p.name) or hashing(p))
    again = build_index(corpus, index_dir, embedder)
    assert not again.changed and read == []
    assert (index_dir / CURRENT).read_text() == before


def test_new_content_under_the_old_size_and_modification_time_is_seen(small, embedder,
                                                                     monkeypatch):
    monkeypatch.setattr(diff_module, "RACY_NS", 200_000_000)
    corpus, index_dir = small
    path = corpus / "010-kazakh-customs.md"
    path.write_text(NEW_ARTICLE, encoding="utf-8")
    past = time.time_ns() - 10 * 10**9
    os.utime(path, ns=(past, past))
    time.sleep(0.3)  # out of the racy window, so the stamp is trusted and recorded
    build_index(corpus, index_dir, embedder)
    # The same length, other words, and the modification time set back (`touch -d`, `cp -p`).
    path.write_text(NEW_ARTICLE.replace("Khorgos", "Dostyk "), encoding="utf-8")
    os.utime(path, ns=(past, past))

    report = build_index(corpus, index_dir, embedder)

    assert (report.updated, report.embedded > 0) == (1, True)
    got = answer(index_dir, embedder, NEW_QUESTION)
    assert "Dostyk" in got.quotes[0].text


def test_adding_an_article_embeds_only_its_passages(small, embedder, base):
    corpus, index_dir = small
    old_segments = IndexDir(index_dir).read_manifest().segments
    (corpus / "010-kazakh-customs.md").write_text(NEW_ARTICLE, encoding="utf-8")
    assert "010" not in quoted_prefixes(answer(index_dir, embedder, NEW_QUESTION))

    report = build_index(corpus, index_dir, embedder)

    new = passages_of(corpus / "010-kazakh-customs.md")
    assert (report.embedded, report.removed, report.articles) == (new, 0, 3)
    assert report.chunks == base[1].chunks + new
    assert (report.added, report.updated) == (1, 0)
    manifest = IndexDir(index_dir).read_manifest()
    assert old_segments[0] in manifest.segments  # the old vectors are reused, not re-embedded
    got = answer(index_dir, embedder, NEW_QUESTION)
    assert got.answered, got.reason
    assert got.quotes[0].article.prefix == "010"
    assert "forty freight wagons" in got.quotes[0].text
    assert got.quotes[0].article.outlet == "Steppe Post"


def test_a_file_name_that_is_not_utf8_is_skipped_and_the_rest_is_built(small, embedder):
    corpus, index_dir = small
    (corpus / "010-kazakh-customs.md").write_text(NEW_ARTICLE, encoding="utf-8")
    # A Latin-1 name, as an archive made on another system unpacks: bytes, not text.
    with open(os.fsencode(corpus) + b"/011-caf\xe9.md", "wb") as fh:
        fh.write(NEW_ARTICLE.replace("Khorgos", "Dostyk").encode())

    report = build_index(corpus, index_dir, embedder)

    assert (report.added, report.articles) == (1, 3)
    (problem,) = report.problems
    assert problem.path == "011-caf\ufffd.md"
    assert "not valid UTF-8" in problem.reason
    json.dumps(report.as_dict(), ensure_ascii=False).encode()  # strict UTF-8 JSON
    assert answer(index_dir, embedder, NEW_QUESTION).quotes[0].article.prefix == "010"


def test_a_file_dropped_in_twice_is_indexed_once(small, embedder, base):
    corpus, index_dir = small
    shutil.copy(corpus / SMALL[0], corpus / f"099-copy-of-{SMALL[0]}")

    report = build_index(corpus, index_dir, embedder)

    assert (report.added, report.articles, report.embedded) == (0, 2, 0)
    (problem,) = report.problems
    assert problem.path == f"099-copy-of-{SMALL[0]}"
    assert problem.reason == f"the same file as {SMALL[0]}; it is indexed once"


def test_a_sentence_two_outlets_ran_word_for_word_is_quoted_once(small, embedder):
    corpus, index_dir = small
    wire = ("Kazakh customs officers stopped a convoy of forty freight wagons at Khorgos on "
            "Tuesday.")
    for name, outlet, extra in (("010-steppe.md", "Steppe Post", "The wagons were sealed."),
                                ("011-courier.md", "Border Courier", "Drivers were held.")):
        (corpus / name).write_text(
            f"---\ntitle: Convoy stopped\noutlet: {outlet}\n---\n{wire}\n\n{extra}\n",
            encoding="utf-8")
    build_index(corpus, index_dir, embedder)

    got = Answerer(LiveIndex(index_dir, embedder)).ask_wide(NEW_QUESTION, 6)

    assert "forty freight wagons" in got.quotes[0].text
    assert sum("forty freight wagons" in q.text for q in got.quotes) == 1


def test_a_pdf_given_up_on_its_limits_is_tried_again_once_they_change(small, embedder,
                                                                    monkeypatch):
    from fakes.articles import heavy_pdf

    import index.load

    corpus, index_dir = small
    (corpus / "012-report.pdf").write_bytes(heavy_pdf(operations=200_000))  # about 2.5 s
    read: list[int] = []
    reading = index.load.read_pdf
    monkeypatch.setattr(index.load, "read_pdf", lambda data: read.append(1) or reading(data))
    monkeypatch.setenv(PDF_SECONDS_ENV, "1")

    first = build_index(corpus, index_dir, embedder)
    second = build_index(corpus, index_dir, embedder)  # the same limits: not read again
    assert [p.path for p in first.problems] == [p.path for p in second.problems] == [
        "012-report.pdf"]
    assert "took over 1 s" in second.problems[0].reason and len(read) == 1
    # An index from before limits were recorded: its skipped PDF is read once more.
    generation = index_dir / "generations" / f"{(index_dir / CURRENT).read_text().strip()}.json"
    raw = json.loads(generation.read_text())
    del raw["skipped"]["012-report.pdf"]["limits"]
    generation.write_text(json.dumps(raw))
    build_index(corpus, index_dir, embedder)
    build_index(corpus, index_dir, embedder)  # recorded again: not read again
    assert len(read) == 2
    monkeypatch.setenv(PDF_SECONDS_ENV, "60")
    third = build_index(corpus, index_dir, embedder)

    assert (len(read), third.problems, third.added, third.articles) == (3, (), 1, 3)


def test_changing_an_article_embeds_its_passages_and_answers_from_the_new_text(small, embedder):
    corpus, index_dir = small
    path = corpus / SMALL[0]
    before = answer(index_dir, embedder, STOCKPILE_QUESTION)
    assert before.answered and "620 million" in before.quotes[0].text
    path.write_text(path.read_text(encoding="utf-8").replace("620 million", "985 million"),
                    encoding="utf-8")

    report = build_index(corpus, index_dir, embedder)

    assert (report.embedded, report.removed, report.articles) == (passages_of(path), 0, 2)
    assert (report.added, report.updated) == (0, 1)
    after = answer(index_dir, embedder, STOCKPILE_QUESTION)
    assert after.answered, after.reason
    assert "985 million" in after.quotes[0].text
    assert not any("620 million" in q.text for q in after.quotes)
    q = after.quotes[0]
    assert q.article.body[q.start:q.end] == q.text
    assert q.article.body == load_article(path).body


def test_removing_an_article_drops_it_from_answers(small, embedder):
    corpus, index_dir = small
    before = answer(index_dir, embedder, SUN_YUN_QUESTION)
    assert before.answered and before.quotes[0].article.prefix == "003"
    (corpus / SMALL[1]).unlink()

    report = build_index(corpus, index_dir, embedder)

    assert (report.embedded, report.removed, report.articles) == (0, 1, 1)
    assert report.chunks == passages_of(corpus / SMALL[0])
    after = answer(index_dir, embedder, SUN_YUN_QUESTION)
    assert "003" not in quoted_prefixes(after)
    assert [s.article.prefix for s in Answerer(LiveIndex(index_dir, embedder)).sources()] == [
        "001"]

    again = build_index(corpus, index_dir, embedder)
    assert (again.embedded, again.removed) == (0, 0)


def test_add_change_and_remove_in_one_build(small, embedder):
    corpus, index_dir = small
    (corpus / "010-kazakh-customs.md").write_text(NEW_ARTICLE, encoding="utf-8")
    changed = corpus / SMALL[0]
    changed.write_text(changed.read_text(encoding="utf-8") + "\nA closing line was added.\n",
                       encoding="utf-8")
    (corpus / SMALL[1]).unlink()

    report = build_index(corpus, index_dir, embedder)

    expected = passages_of(corpus / "010-kazakh-customs.md") + passages_of(changed)
    assert (report.embedded, report.removed, report.articles) == (expected, 1, 2)
    assert report.chunks == expected
    assert (report.added, report.updated) == (1, 1)


def test_a_running_answerer_switches_to_the_rebuilt_index(small, embedder):
    corpus, index_dir = small
    live = Answerer(LiveIndex(index_dir, embedder))
    other = Answerer(LiveIndex(index_dir, embedder))  # another process serving the same index
    assert "010" not in quoted_prefixes(live.ask(NEW_QUESTION))
    assert "010" not in quoted_prefixes(other.ask(NEW_QUESTION))
    (corpus / "010-kazakh-customs.md").write_text(NEW_ARTICLE, encoding="utf-8")

    report = live.rebuild(corpus)

    assert report.embedded == passages_of(corpus / "010-kazakh-customs.md")
    assert live.ask(NEW_QUESTION).quotes[0].article.prefix == "010"
    assert other.reload_if_changed() is True
    assert other.ask(NEW_QUESTION).quotes[0].article.prefix == "010"
    assert other.reload_if_changed() is False


def test_new_chunking_parameters_re_embed_everything(small, embedder):
    corpus, index_dir = small
    (corpus / SMALL[1]).unlink()  # one article is enough, and quicker
    params = ChunkParams(max_sentences=1)
    report = build_index(corpus, index_dir, embedder, params=params)
    assert report.embedded == report.chunks == passages_of(corpus / SMALL[0])
    assert IndexDir(index_dir).read_manifest().chunking == params.as_dict()
    assert build_index(corpus, index_dir, embedder, params=params).embedded == 0
    assert report.removed == 1  # re-embedding everything still counts the article removed


def test_segments_map_every_sentence_and_passage_back_to_the_body(small, embedder):
    corpus, index_dir = small
    (corpus / "010-kazakh-customs.md").write_text(NEW_ARTICLE, encoding="utf-8")
    build_index(corpus, index_dir, embedder)  # two segments now
    manifest = IndexDir(index_dir).read_manifest()
    assert len(manifest.segments) == 2
    seen_passages = 0
    for name in manifest.segments:
        seg = load_segment(index_dir / "segments" / name)
        for row, (art, start, end, _block) in enumerate(np.asarray(seg.sentences)):
            body = seg.articles[int(art)].body
            assert 0 <= start < end <= len(body)
            text = body[start:end]
            assert text == text.strip() and text
            assert seg.token_offsets[row] <= seg.token_offsets[row + 1]
        for row, (first, last, centre) in enumerate(np.asarray(seg.passages)):
            assert first <= centre <= last
            article = seg.passage_article(row)
            start, end = int(seg.sentences[first, 1]), int(seg.sentences[last, 2])
            assert seg.passage_text(row) == article.body[start:end]
            assert int(seg.sentences[first, 0]) == int(seg.sentences[last, 0])
        seen_passages += seg.n_passages
        assert seg.vector_index.ntotal == seg.n_passages
        norms = np.linalg.norm(np.asarray(seg.passage_vectors), axis=1)
        assert np.allclose(norms, 1.0, atol=1e-3)
        for a in seg.articles:  # stored bodies are the corpus bodies, byte for byte
            assert a.body == load_article(corpus / a.path).body
    assert seen_passages == manifest.passages


# --- a build killed midway -------------------------------------------------------------------

_WORDS = [
    "army", "bank", "bridge", "cable", "convoy", "depot", "diesel", "drone", "engine", "factory",
    "fleet", "harbour", "helmet", "ledger", "missile", "permit", "radar", "rail", "rocket",
    "satellite", "shell", "shipment", "signal", "steel", "supplier", "tank", "tender", "truck",
    "tunnel", "valve", "vessel", "warehouse", "wheat", "winter", "amber", "brisk", "calm",
    "dense", "early", "frail", "grand", "harsh", "idle", "jagged", "keen", "loud", "mild",
    "narrow", "odd", "pale", "quiet", "rapid", "sharp", "tidy", "urgent", "vast", "weary",
]

_BUILD_SCRIPT = """
import sys
from pathlib import Path
from index.build import build_index
from index.embed import SentenceTransformerEmbedder
embedder = SentenceTransformerEmbedder()
print("loaded", flush=True)
def progress(done, total):
    print(f"progress {done} {total}", flush=True)
build_index(Path(sys.argv[1]), Path(sys.argv[2]), embedder, progress=progress)
print("done", flush=True)
"""


def large_article(sentences: int, seed: int) -> str:
    """Distinct sentences (no two lines alike, so cleaning keeps them all)."""
    rng = random.Random(seed)
    lines = []
    for _ in range(sentences // 2):
        pair = []
        for _ in range(2):
            words = rng.sample(_WORDS, 12)
            pair.append(" ".join(words).capitalize() + ".")
        lines.append(" ".join(pair))
    return "Logistics notes\n\n" + "\n\n".join(lines) + "\n"


def _start_build(corpus: Path, index_dir: Path) -> tuple[subprocess.Popen, queue.Queue]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_")}
    env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-c", _BUILD_SCRIPT, str(corpus), str(index_dir)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line.strip())

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def _state(index_dir: Path) -> tuple[str, list[str]]:
    return ((index_dir / CURRENT).read_text(),
            sorted(p.name for p in (index_dir / "generations").iterdir()))


@dataclass
class KilledBuild:
    corpus: Path
    index_dir: Path
    before: tuple[str, list[str]]
    killed_at: str = ""  # the progress line, or "segment" / "finished"
    returncode: int | None = None


@pytest.fixture(scope="module")
def killed_builds(tmp_path_factory, base) -> dict[str, KilledBuild]:
    """Two builds of copies of the base, run side by side and killed with SIGKILL.

    "embedding": killed at its first progress report, while it embeds a large new article;
    "writing": killed as soon as its new segment folder appears (mid-write, or just after).
    """
    root = tmp_path_factory.mktemp("killed")
    runs: dict[str, KilledBuild] = {}
    procs: dict[str, tuple[subprocess.Popen, queue.Queue]] = {}
    segments: dict[str, set[str]] = {}
    for name, size in (("embedding", 600), ("writing", 20)):
        corpus, index_dir = root / name / "corpus", root / name / "index"
        shutil.copytree(base[0] / "corpus", corpus)
        shutil.copytree(base[0] / "index", index_dir)
        (corpus / "020-logistics.txt").write_text(large_article(size, seed=len(name)), "utf-8")
        runs[name] = KilledBuild(corpus, index_dir, _state(index_dir))
        segments[name] = set(os.listdir(index_dir / "segments"))
        procs[name] = _start_build(corpus, index_dir)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and any(p.poll() is None for p, _ in procs.values()):
            proc, lines = procs["embedding"]
            while proc.poll() is None and not lines.empty():
                line = lines.get()
                if line.startswith("progress"):
                    runs["embedding"].killed_at = line
                    proc.send_signal(signal.SIGKILL)
            proc = procs["writing"][0]
            if proc.poll() is None and set(os.listdir(runs["writing"].index_dir / "segments")) \
                    - segments["writing"]:
                proc.send_signal(signal.SIGKILL)
                runs["writing"].killed_at = "segment"
            time.sleep(0.002)
    finally:
        for name, (proc, _) in procs.items():
            if proc.poll() is None:
                proc.kill()
            runs[name].returncode = proc.wait(timeout=30)
    return runs


def _assert_serves_the_previous_articles(index_dir: Path, embedder, prefixes: list[str]) -> None:
    live = LiveIndex(index_dir, embedder)
    assert sorted(a.prefix for a in live.current().articles) == prefixes
    got = Answerer(live).ask(SUN_YUN_QUESTION)
    assert got.answered, got.reason
    assert got.quotes[0].article.prefix == "003"
    assert all(q.article.body[q.start:q.end] == q.text for q in got.quotes)


def test_a_build_killed_while_embedding_leaves_the_previous_index(killed_builds, embedder):
    run = killed_builds["embedding"]
    assert run.returncode == -signal.SIGKILL, "the build ended before it was killed"
    done, total = (int(x) for x in run.killed_at.split()[1:])
    assert done < total  # it was killed mid-embedding

    assert _state(run.index_dir) == run.before
    assert LiveIndex(run.index_dir, embedder).current().generation == run.before[0].strip()
    _assert_serves_the_previous_articles(run.index_dir, embedder, ["001", "003"])
    (run.corpus / "020-logistics.txt").unlink()
    after = build_index(run.corpus, run.index_dir, embedder)  # the next build starts cleanly
    assert (after.embedded, after.removed, after.changed) == (0, 0, False)


def test_a_build_killed_while_writing_its_segment_leaves_a_complete_index(
        killed_builds, embedder):
    run = killed_builds["writing"]
    assert run.returncode in (0, -signal.SIGKILL)
    assert run.returncode == 0 or run.killed_at == "segment"

    # Whether the kill landed before or after the switch, CURRENT names a complete generation.
    switched = _state(run.index_dir)[0] != run.before[0]
    assert switched or run.returncode == -signal.SIGKILL
    _assert_serves_the_previous_articles(
        run.index_dir, embedder, ["001", "003", "020"] if switched else ["001", "003"])

    report = build_index(run.corpus, run.index_dir, embedder)  # no half-written segment reused
    assert report.articles == 3
    assert report.embedded == (0 if switched else passages_of(run.corpus / "020-logistics.txt"))
    _assert_serves_the_previous_articles(run.index_dir, embedder, ["001", "003", "020"])
