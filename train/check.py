"""Check the training question sets against the BBC articles they name.

Usage: python train/check.py [--bbc ../shared/bbc] [--dev ../shared/eval/dossiers] [SLUG ...]

Each training dossier is a folder train/dossiers/SLUG/ with
  articles.txt     one article per line, as a path under ../shared/bbc/ (e.g. business/123.txt)
  questions.jsonl  {"q", "doc", "phrase"} lines; doc is one of those paths, or null (with a
                   null phrase) for a question the dossier does not answer.
  near_topic.jsonl (optional) more unanswerable questions about the story's own people and
                   events, doc and phrase null; kept apart because the shipped fit does not
                   use them (docs/ranking.md). None may repeat a question of questions.jsonl.

A phrase must occur in the body of its article (the headline line excluded), after collapsing
white space and lower-casing, and in no other article of the same dossier, so that a scorer
can tell which article answers. No article may belong to two training dossiers or to a
development dossier (../shared/eval/dossiers/*/SOURCES.md names those).
Exits 1 and names every problem when any check fails.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
MIN_ANSWERABLE = 30
MIN_UNANSWERABLE = 6
NEAR_TOPIC = "near_topic.jsonl"


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def body_of(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace")
    return text.split("\n", 1)[1] if "\n" in text else ""


def dev_articles(dev: Path) -> set[str]:
    found: set[str] = set()
    for sources in dev.glob("*/SOURCES.md"):
        found.update(re.findall(r"shared/bbc/([a-z]+/\d+\.txt)", sources.read_text()))
    return found


def _items(path: Path, name: str, seen_q: set[str], problems: list[str]):
    """(where, item) for each JSON line of ``path`` with a question of 8 characters or more;
    a line that is not JSON, or has no such question, is a problem and skipped; a question
    seen before in the dossier (``seen_q``, either file) is a problem but still checked."""
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{name}/{path.name}:{lineno}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not JSON ({exc})")
            continue
        q = item.get("q")
        if not isinstance(q, str) or len(q.strip()) < 8:
            problems.append(f"{where}: missing or too short question")
            continue
        if norm(q) in seen_q:
            problems.append(f"{where}: duplicate question")
        seen_q.add(norm(q))
        yield where, item


def check_dossier(folder: Path, bbc: Path, dev: set[str]) -> tuple[list[str], Counter]:
    problems: list[str] = []
    counts: Counter = Counter()
    name = folder.name
    articles_file = folder / "articles.txt"
    questions_file = folder / "questions.jsonl"
    if not articles_file.is_file() or not questions_file.is_file():
        return [f"{name}: needs articles.txt and questions.jsonl"], counts
    articles = [ln.strip() for ln in articles_file.read_text().splitlines() if ln.strip()]
    bodies: dict[str, str] = {}
    for art in articles:
        if art in dev:
            problems.append(f"{name}: {art} belongs to a development dossier")
        path = bbc / art
        if not path.is_file():
            problems.append(f"{name}: {art} does not exist under {bbc}")
            continue
        bodies[art] = norm(body_of(path))
    seen_q: set[str] = set()
    for where, item in _items(questions_file, name, seen_q, problems):
        doc, phrase = item.get("doc"), item.get("phrase")
        if doc is None:
            if phrase is not None:
                problems.append(f"{where}: unanswerable question with a phrase")
            counts["unanswerable"] += 1
            continue
        if doc not in bodies:
            problems.append(f"{where}: doc {doc!r} is not in articles.txt")
            continue
        if not isinstance(phrase, str) or len(phrase.split()) < 2:
            problems.append(f"{where}: phrase must be at least two words")
            continue
        p = norm(phrase)
        if p not in bodies[doc]:
            problems.append(f"{where}: phrase not in the body of {doc}: {phrase!r}")
            continue
        others = [a for a, b in bodies.items() if a != doc and p in b]
        if others:
            problems.append(f"{where}: phrase also in {', '.join(others)}: {phrase!r}")
            continue
        counts["answerable"] += 1
    near_file = folder / NEAR_TOPIC
    if near_file.is_file():
        for where, item in _items(near_file, name, seen_q, problems):
            if item.get("doc") is not None or item.get("phrase") is not None:
                problems.append(f"{where}: a near-topic question names no article and no phrase")
            counts["near_topic"] += 1
    if counts["answerable"] < MIN_ANSWERABLE:
        problems.append(f"{name}: {counts['answerable']} answerable (< {MIN_ANSWERABLE})")
    if counts["unanswerable"] < MIN_UNANSWERABLE:
        problems.append(f"{name}: {counts['unanswerable']} unanswerable (< {MIN_UNANSWERABLE})")
    return problems, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bbc", type=Path, default=HERE.parent.parent / "shared" / "bbc")
    parser.add_argument("--dev", type=Path,
                        default=HERE.parent.parent / "shared" / "eval" / "dossiers")
    parser.add_argument("--root", type=Path, default=HERE / "dossiers")
    parser.add_argument("slugs", nargs="*")
    args = parser.parse_args(argv)
    dev = dev_articles(args.dev)
    folders = sorted(p for p in args.root.iterdir() if p.is_dir())
    if args.slugs:
        folders = [f for f in folders if f.name in args.slugs]
    problems: list[str] = []
    total: Counter = Counter()
    owner: dict[str, str] = {}
    for folder in folders:
        found, counts = check_dossier(folder, args.bbc, dev)
        problems += found
        total += counts
        for art in (folder / "articles.txt").read_text().split() if (
                folder / "articles.txt").is_file() else []:
            if art in owner and not args.slugs:
                problems.append(f"{art} is in both {owner[art]} and {folder.name}")
            owner[art] = folder.name
        print(f"{folder.name:40s} answerable {counts['answerable']:3d}  "
              f"unanswerable {counts['unanswerable']:3d}  near-topic {counts['near_topic']:3d}")
    print(f"{'total':40s} answerable {total['answerable']:3d}  "
          f"unanswerable {total['unanswerable']:3d}  near-topic {total['near_topic']:3d}  "
          f"dossiers {len(folders)}")
    for p in problems:
        print("PROBLEM:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
