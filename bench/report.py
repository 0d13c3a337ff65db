"""Markdown tables for docs/benchmarks.md from the JSON that bench.scale / bench.compare /
bench.embed write.

    .venv/bin/python -m bench.report bench/results/scale.json \
        [--default bench/results/scale-0447-default.json] [--compare FILE] [--embed FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench import compare, embed, scale
from bench.common import markdown_table


def default_table(rows: list[dict]) -> str:
    head = ["passages", "ask p50 / p95", "BM25 p50 / p95", "FAISS p50", "question embedding p50",
            "serve RSS (peak)"]
    cells = []
    for r in rows:
        s = r["serve"]
        cells.append([f"{r['build']['passages']:,}",
                      f"{s['ask_p50_ms']:.0f} / {s['ask_p95_ms']:.0f} ms",
                      f"{s['bm25_p50_ms']:.1f} / {s['bm25_p95_ms']:.1f} ms",
                      f"{s['faiss_p50_ms']:.1f} ms", f"{s['embed_p50_ms']:.0f} ms",
                      f"{s['peak_rss_mb'] / 1024:.1f} GiB"])
    return markdown_table(head, cells)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scale", type=Path)
    ap.add_argument("--default", type=Path)
    ap.add_argument("--compare", type=Path)
    ap.add_argument("--embed", type=Path)
    args = ap.parse_args(argv)
    print(scale.table(json.loads(args.scale.read_text())["sizes"]))
    if args.default:
        print()
        print(default_table(json.loads(args.default.read_text())["sizes"]))
    if args.compare:
        print()
        print(compare.table(json.loads(args.compare.read_text())))
    if args.embed:
        print()
        print(embed.table(json.loads(args.embed.read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
