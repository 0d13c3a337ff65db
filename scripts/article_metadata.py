"""Print the title, outlet, date and author each corpus file gets, as a Markdown table.

    python scripts/article_metadata.py corpus ../shared/eval/dossiers/*/corpus
"""

from __future__ import annotations

import sys
from pathlib import Path

from index.load import load_corpus


def main(folders: list[str]) -> None:
    print("| file | title | outlet | date | author |")
    print("|---|---|---|---|---|")
    for folder in folders:
        corpus = load_corpus(Path(folder))
        for a in corpus.articles:
            print(f"| {Path(folder).parent.name}/{a.path[:40]} | {a.title} | {a.outlet} | "
                  f"{a.published} | {a.author} |")
        for p in corpus.problems:
            print(f"| {p.path} | skipped: {p.reason} | | | |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["corpus"])
