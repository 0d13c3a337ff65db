"""Candidate stories for new training dossiers: clusters of BBC articles that no training or
development dossier uses yet.

    python -m train.find_stories [--cut 0.45] [--min 4] [--max 8] [--top 60]

Each article's headline and lead (its first 400 characters) are embedded with the shipped
embedder; near-identical copies (same headline and opening) are kept once; the rest are
clustered by average linkage on cosine distance, cut at ``--cut``. Clusters of ``--min`` to
``--max`` articles are printed, tightest first, with their mean similarity, category and
headlines. Choosing among them is left to a person: leave out any cluster near a development
story (session 10 left out the Oscars, the Greek sprinters, MCI and Labour's posters), then
write ``articles.txt`` and the questions as train/README.md says, and run train/check.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
BBC = REPO.parent / "shared" / "bbc"
DEV = REPO.parent / "shared" / "eval" / "dossiers"
TRAIN = REPO / "train" / "dossiers"
LEAD_CHARS = 400


def used_articles(train: Path = TRAIN, dev: Path = DEV) -> set[str]:
    """Article paths (``category/NNN.txt``) a training or development dossier holds."""
    from train.check import dev_articles

    return {a for f in train.glob("*/articles.txt") for a in f.read_text().split()} | \
        dev_articles(dev)


def unused_articles(bbc: Path, used: set[str]) -> list[tuple[str, str, str]]:
    """(path, headline, lead) of every article not in ``used``, near-identical copies once."""
    seen: set[tuple[str, str]] = set()
    out = []
    for cat in sorted(p.name for p in bbc.iterdir() if p.is_dir()):
        for f in sorted((bbc / cat).glob("*.txt")):
            rel = f"{cat}/{f.name}"
            if rel in used:
                continue
            lines = f.read_text(encoding="utf-8", errors="replace").strip().split("\n")
            headline = lines[0].strip()
            lead = " ".join(x.strip() for x in lines[1:] if x.strip())[:LEAD_CHARS]
            key = (headline.lower(), lead[:200].lower())
            if key not in seen:
                seen.add(key)
                out.append((rel, headline, lead))
    return out


def clusters(vectors: np.ndarray, cut: float, low: int, high: int) -> list[tuple[float, list[int]]]:
    """(mean pairwise cosine similarity, member indices) of each cluster of ``low`` to
    ``high`` members, tightest first. ``vectors`` are unit rows."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    sim = vectors @ vectors.T
    dist = np.clip(1.0 - (sim + sim.T) / 2, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    labels = fcluster(linkage(squareform(dist, checks=False), "average"), cut, "distance")
    found = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if low <= len(members) <= high:
            block = sim[np.ix_(members, members)]
            mean = (block.sum() - len(members)) / (len(members) * (len(members) - 1))
            found.append((float(mean), members.tolist()))
    return sorted(found, key=lambda c: -c[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bbc", type=Path, default=BBC)
    ap.add_argument("--cut", type=float, default=0.45, help="cosine distance to cut at")
    ap.add_argument("--min", type=int, default=4, dest="low", help="fewest articles")
    ap.add_argument("--max", type=int, default=8, dest="high", help="most articles")
    ap.add_argument("--top", type=int, default=60, help="clusters printed")
    ap.add_argument("--json", action="store_true", help="print the clusters as JSON")
    args = ap.parse_args(argv)
    if not args.bbc.is_dir():
        print(f"find_stories: {args.bbc} is not a folder of BBC articles", file=sys.stderr)
        return 2
    from index.embed import load_embedder

    articles = unused_articles(args.bbc, used_articles())
    print(f"{len(articles)} articles used by no dossier; embedding…", file=sys.stderr)
    embedder = load_embedder()
    vectors = np.asarray(embedder.embed_batch([f"{h}. {lead}" for _, h, lead in articles]),
                         dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12
    found = clusters(vectors, args.cut, args.low, args.high)[:args.top]
    if args.json:
        print(json.dumps([{"similarity": round(m, 3),
                           "articles": [articles[i][0] for i in members],
                           "headlines": [articles[i][1] for i in members]}
                          for m, members in found], indent=1))
        return 0
    for m, members in found:
        category = articles[members[0]][0].split("/")[0]
        print(f"{m:.2f}  {len(members)}  {category:13s} "
              + " | ".join(articles[i][1] for i in members))
        print("      " + " ".join(articles[i][0] for i in members))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
