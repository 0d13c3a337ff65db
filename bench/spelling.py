"""The speller measured on the training dossiers (never the development ones).

    .venv/bin/python -m bench.spelling [--root /tmp/spell-train] [--typos 100] [--seed 14]

For each of the thirty training dossiers (``train/dossiers``; articles copied from
../shared/bbc into ``ROOT/corpora``, indexed under ``ROOT/index``):

- ``changes``: every training question the speller changes, with the words it replaced (for
  checking by hand);
- ``typos``: ``--typos`` answerable training questions, each with one content word misspelt
  by script (one letter dropped, two adjacent letters swapped, or one replaced; seeded), asked
  with the speller on and off: strict answers of each, and of the questions as written;
- ``latency``: the speller's own time per question (warm), and the time to build it at load.

Prints one JSON object; ``--changes FILE`` also writes the changed questions as JSONL.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

from bench.common import REPO, percentile

SHARED = REPO.parent / "shared"
TRAIN = REPO / "train" / "dossiers"


def materialise(slug: str, root: Path) -> Path:
    """A corpus folder with copies of a training dossier's articles (outside the repo)."""
    corpus = root / "corpora" / slug
    corpus.mkdir(parents=True, exist_ok=True)
    for line in (TRAIN / slug / "articles.txt").read_text().split():
        target = corpus / line.replace("/", "-")
        if not target.exists():
            shutil.copyfile(SHARED / "bbc" / line, target)
    return corpus


def questions(slug: str) -> list[dict]:
    path = TRAIN / slug / "questions.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


_CONTENT = re.compile(r"(?<![\w'’-])[A-Za-z]{4,}(?![\w'’-])")


def misspell(question: str, rng: random.Random) -> tuple[str, str, str] | None:
    """``question`` with one content word (4+ letters, no stop word) misspelt: a letter
    dropped, two adjacent letters swapped or one replaced. (new question, old word, new word)."""
    from index.text import STOPWORDS

    spots = [m for m in _CONTENT.finditer(question) if m.group(0).lower() not in STOPWORDS]
    if not spots:
        return None
    m = rng.choice(spots)
    word = m.group(0)
    for _ in range(20):
        kind = rng.choice(("drop", "swap", "replace"))
        i = rng.randrange(len(word) - 1 if kind == "swap" else len(word))
        if kind == "drop":
            new = word[:i] + word[i + 1:]
        elif kind == "swap":
            new = word[:i] + word[i + 1] + word[i] + word[i + 2:]
        else:
            letter = rng.choice("abcdefghijklmnopqrstuvwxyz")
            letter = letter.upper() if word[i].isupper() else letter
            new = word[:i] + letter + word[i + 1:]
        if new != word:
            return question[:m.start()] + new + question[m.end():], word, new
    return None


def strict(answer, case: dict) -> bool:
    if not answer.answered:
        return False
    first = answer.quotes[0]
    doc = case["doc"].replace("/", "-").removesuffix(".txt")
    return first.article.id == doc and " ".join(case["phrase"].split()).lower() in \
        " ".join(first.text.split()).lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/spell-train"))
    parser.add_argument("--typos", type=int, default=100)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--changes", type=Path, help="write the changed questions here (JSONL)")
    args = parser.parse_args(argv)

    from bot.answer import Answerer
    from bot.config import Settings
    from bot.runtime import make_embedder
    from index.build import build_index
    from index.live import LiveIndex

    embedder = make_embedder(Settings.from_env())
    slugs = sorted(p.name for p in TRAIN.iterdir() if (p / "questions.jsonl").is_file())
    rng = random.Random(args.seed)
    per_dossier = max(1, -(-args.typos // len(slugs)))
    changed: list[dict] = []
    typo_rows: list[dict] = []
    correct_ms: list[float] = []
    typo_ms: list[float] = []  # questions with a misspelt word: the look-up runs
    build_ms: list[float] = []
    total_questions = 0
    for slug in slugs:
        corpus = materialise(slug, args.root)
        index_dir = args.root / "index" / slug
        build_index(corpus, index_dir, embedder)
        live = LiveIndex(index_dir, embedder)
        retriever = live.current().retriever
        t0 = time.perf_counter()
        speller = retriever.make_speller()
        build_ms.append((time.perf_counter() - t0) * 1000)
        cases = questions(slug)
        total_questions += len(cases)
        for case in cases:
            t0 = time.perf_counter()
            fix = speller.correct(case["q"])
            correct_ms.append((time.perf_counter() - t0) * 1000)
            if fix.changes:
                changed.append({"dossier": slug, "q": case["q"], "corrected": fix.corrected,
                                "words": [[c.original, c.replacement] for c in fix.changes]})
        answerable = [c for c in cases if c["doc"] is not None]
        picked = rng.sample(answerable, min(per_dossier, len(answerable)))
        on = Answerer(live)
        off = Answerer(LiveIndex(index_dir, embedder,
                                 ranker=lambda s, lv, e: _retriever(s, lv, e, False)))
        for case in picked:
            typo = misspell(case["q"], rng)
            if typo is None:
                continue
            q, old, new = typo
            t0 = time.perf_counter()
            speller.correct(q)
            typo_ms.append((time.perf_counter() - t0) * 1000)
            a_on, a_off, a_asis = on.ask(q), off.ask(q), off.ask(case["q"])
            typo_rows.append({"dossier": slug, "q": q, "word": [old, new],
                              "corrected": a_on.corrected, "fixed": a_on.corrected == case["q"],
                              "strict_on": strict(a_on, case), "strict_off": strict(a_off, case),
                              "strict_as_written": strict(a_asis, case),
                              "answered_on": a_on.answered, "answered_off": a_off.answered})
        print(f"{slug}: {sum(1 for c in changed if c['dossier'] == slug)} changed",
              file=sys.stderr)
    typo_rows = typo_rows[: args.typos]
    if args.changes:
        args.changes.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n"
                                        for c in changed))
    n = len(typo_rows)
    report = {
        "training_questions": total_questions,
        "changed": len(changed),
        "changed_words": sum(len(c["words"]) for c in changed),
        "typos": {
            "questions": n,
            "corrected_back": sum(r["fixed"] for r in typo_rows),
            "changed_otherwise": sum(bool(r["corrected"]) and not r["fixed"]
                                     for r in typo_rows),
            "strict_with_speller": sum(r["strict_on"] for r in typo_rows),
            "strict_without": sum(r["strict_off"] for r in typo_rows),
            "strict_as_written": sum(r["strict_as_written"] for r in typo_rows),
            "answered_with_speller": sum(r["answered_on"] for r in typo_rows),
            "answered_without": sum(r["answered_off"] for r in typo_rows),
        },
        "latency": {
            "correct_p50_ms": round(percentile(correct_ms, 50), 3),
            "correct_p95_ms": round(percentile(correct_ms, 95), 3),
            "correct_mean_ms": round(statistics.fmean(correct_ms), 3),
            "correct_typo_p50_ms": round(percentile(typo_ms, 50), 3),
            "correct_typo_p95_ms": round(percentile(typo_ms, 95), 3),
            "speller_build_mean_ms": round(statistics.fmean(build_ms), 1),
        },
        "typo_rows": typo_rows,
    }
    print(json.dumps(report, indent=1, ensure_ascii=False))
    return 0


def _retriever(segments, live, embedder, on: bool):
    from index.search import Retriever

    return Retriever(segments, live, embedder, spelling_fix=on)


if __name__ == "__main__":
    sys.exit(main())
