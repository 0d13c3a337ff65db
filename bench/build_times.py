"""Index build timings on the bundled dossier: full build, no-change rebuild, one article added.

    .venv/bin/python -m bench.build_times [--json]

Each step runs `dossier-bot index build --json` as a fresh process (model load included, as a
user would see it) on a copy of corpus/ in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import REPO, dir_bytes, run_cli

NEW_ARTICLE = """---
title: "Kazakh customs stop freight bound for Russia"
outlet: "Bench Wire"
published: "2022-03-16"
---
Customs officers at the Khorgos crossing stopped forty freight wagons bound for Russia on
Tuesday, officials said. The wagons carried machine parts and electronics. Officials said the
inspection followed new guidance on goods that could be used for military purposes.
"""


def build(corpus: Path, index: Path) -> tuple[dict, float]:
    t0 = time.perf_counter()
    out = run_cli("index", "build", "--json", "--corpus", str(corpus), "--index", str(index))
    return json.loads(out.stdout), time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus, index = Path(tmp) / "corpus", Path(tmp) / "index"
        shutil.copytree(REPO / "corpus", corpus)
        full, full_wall = build(corpus, index)
        same, same_wall = build(corpus, index)
        (corpus / "005-bench-wire-kazakh-customs.md").write_text(NEW_ARTICLE, encoding="utf-8")
        added, added_wall = build(corpus, index)
        result = {
            "articles": full["articles"], "passages": full["chunks"],
            "full_build": {"wall_s": round(full_wall, 2), "build_s": full["seconds"]},
            "no_change": {"wall_s": round(same_wall, 2), "build_s": same["seconds"],
                          "embedded": same["embedded"]},
            "add_one_article": {"wall_s": round(added_wall, 2), "build_s": added["seconds"],
                                "embedded": added["embedded"]},
            "index_bytes": dir_bytes(index),
            "load": round(os.getloadavg()[0], 1),
        }
    if args.json:
        print(json.dumps(result))
        return
    print(f"corpus:          {result['articles']} articles, {result['passages']} passages")
    for key, label in (("full_build", "full build"), ("no_change", "no-change"),
                       ("add_one_article", "add 1 article")):
        r = result[key]
        extra = f", {r['embedded']} embedded" if "embedded" in r else ""
        print(f"{label + ':':16} {r['wall_s']:.2f} s wall ({r['build_s']:.2f} s build{extra})")
    print(f"index on disk:   {result['index_bytes'] / 1e6:.1f} MB "
          f"(load average {result['load']})")


if __name__ == "__main__":
    main()
