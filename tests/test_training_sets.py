"""train/check.py: the training question sets checked against the BBC articles they name,
and the checker itself failing on what it exists to catch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from train import check

REPO = Path(__file__).resolve().parent.parent
BBC = REPO.parent / "shared" / "bbc"
DEV = REPO.parent / "shared" / "eval" / "dossiers"


@pytest.mark.skipif(not BBC.is_dir(), reason="../shared/bbc is not here")
def test_the_repository_training_sets_pass_their_check(capsys) -> None:
    assert check.main(["--bbc", str(BBC), "--dev", str(DEV)]) == 0
    total = capsys.readouterr().out.splitlines()[-1]
    assert "answerable 2286" in total and "unanswerable 400" in total
    assert "near-topic 600" in total


def _dossier(root: Path, questions: list[dict], near: list[dict | str]) -> Path:
    bbc = root / "bbc"
    (bbc / "business").mkdir(parents=True)
    (bbc / "business" / "001.txt").write_text(
        "Carmaker talks stall\n\nThe carmakers have until midnight on 1 February to settle.\n")
    (bbc / "business" / "002.txt").write_text(
        "Shares fall\n\nFiat shares fell 1.2% on Tuesday after the talks stalled.\n")
    folder = root / "dossiers" / "business-talks"
    folder.mkdir(parents=True)
    (folder / "articles.txt").write_text("business/001.txt\nbusiness/002.txt\n")
    (folder / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    (folder / check.NEAR_TOPIC).write_text(
        "".join((n if isinstance(n, str) else json.dumps(n)) + "\n" for n in near))
    return root


def test_near_topic_lines_are_checked(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(check, "MIN_ANSWERABLE", 1)
    monkeypatch.setattr(check, "MIN_UNANSWERABLE", 1)
    questions = [
        {"q": "By when must the carmakers settle?", "doc": "business/001.txt",
         "phrase": "until midnight on 1 February"},
        {"q": "Who won the league last season?", "doc": None, "phrase": None},
    ]
    good = {"q": "What did the carmakers finally settle for?", "doc": None, "phrase": None}
    root = _dossier(tmp_path, questions, [good])
    args = ["--bbc", str(root / "bbc"), "--dev", str(root / "none"), "--root",
            str(root / "dossiers")]
    assert check.main(args) == 0
    assert "near-topic   1" in capsys.readouterr().out

    bad = [good,
           {"q": "By when must the carmakers settle?", "doc": None, "phrase": None},  # repeats
           {"q": "How far did Fiat shares fall on Tuesday?", "doc": "business/002.txt",
            "phrase": "fell 1.2% on Tuesday"},  # answerable: belongs in questions.jsonl
           "{not json"]
    root = _dossier(tmp_path / "bad", questions, bad)
    args = ["--bbc", str(root / "bbc"), "--dev", str(root / "none"), "--root",
            str(root / "dossiers")]
    assert check.main(args) == 1
    err = capsys.readouterr().err
    assert f"{check.NEAR_TOPIC}:2: duplicate question" in err
    assert f"{check.NEAR_TOPIC}:3: a near-topic question names no article and no phrase" in err
    assert f"{check.NEAR_TOPIC}:4: not JSON" in err


def test_each_training_story_is_featurised_by_a_model_that_never_saw_it(tmp_path) -> None:
    from train.finetune_embedder import tuned_folds, unseen_model

    shipped = tuned_folds()
    # The shipped record names the fold of every story the embedder was tuned on.
    assert set(shipped.values()) == {"A", "B"}
    assert sum(1 for f in shipped.values() if f == "A") == 15
    record = tmp_path / "record.json"
    record.write_text(json.dumps({"folds": {"A": ["sport-a"], "B": ["tech-b"]}}))
    folds = tuned_folds(record)
    assert unseen_model("sport-a", folds) == "B"
    assert unseen_model("tech-b", folds) == "A"
    # Written after the tuning: no fold model saw it, and neither did "all".
    assert unseen_model("business-new", folds) == "all"


def test_tuning_folds_reproduce_the_shipped_ones_or_split_every_story() -> None:
    from collections import Counter

    from train.finetune_embedder import story_folds, tuned_folds

    stories = sorted(p.name for p in (REPO / "train" / "dossiers").iterdir() if p.is_dir())
    shipped = story_folds(stories, "shipped")
    # Only the stories the shipped layers were tuned on, in their recorded folds: the
    # record's `reproduce` line holds although twenty stories were written after it.
    assert shipped == tuned_folds()
    assert len(shipped) == 30 < len(stories)
    every = story_folds(stories, "all")
    assert set(every) == set(stories)
    # Alternating within each category: each category's stories are split evenly.
    per = Counter((slug.split("-")[0], fold) for slug, fold in every.items())
    for cat in {slug.split("-")[0] for slug in stories}:
        assert abs(per[(cat, "A")] - per[(cat, "B")]) <= 1, cat
    with pytest.raises(ValueError, match="shipped"):
        story_folds(stories, "some")


def test_find_stories_clusters_articles_no_dossier_uses(tmp_path) -> None:
    import numpy as np

    from train.find_stories import clusters, unused_articles, used_articles

    bbc = tmp_path / "bbc" / "sport"
    bbc.mkdir(parents=True)
    for n, text in {"001": "Hewitt wins\n\nHewitt won in Adelaide.",
                    "002": "Hewitt wins\n\nHewitt won in Adelaide.",  # a copy of 001
                    "003": "Dent advances\n\nDent beat Hewitt.",
                    "004": "Used already\n\nIn a training dossier."}.items():
        (bbc / f"{n}.txt").write_text(text)
    train = tmp_path / "train"
    (train / "sport-x").mkdir(parents=True)
    (train / "sport-x" / "articles.txt").write_text("sport/004.txt\n")
    used = used_articles(train, tmp_path / "no-dev")
    assert used == {"sport/004.txt"}
    assert [a[0] for a in unused_articles(tmp_path / "bbc", used)] == ["sport/001.txt",
                                                                       "sport/003.txt"]
    # Two tight groups of three and one stray: each group is found, tightest first.
    rng = np.random.default_rng(0)
    a, b, stray = (rng.normal(size=16) for _ in range(3))
    rows = [a + 0.05 * rng.normal(size=16) for _ in range(3)]
    rows += [b + 0.2 * rng.normal(size=16) for _ in range(3)] + [stray]
    v = np.array(rows)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    found = clusters(v, cut=0.3, low=3, high=4)
    assert [sorted(m) for _, m in found] == [[0, 1, 2], [3, 4, 5]]
    assert found[0][0] > found[1][0]
