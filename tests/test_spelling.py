"""Misspelt words are matched to the dossier's own vocabulary before searching (issue 14)."""

from __future__ import annotations

import json
import shutil

import pytest

from bot.answer import Answerer
from bot.discord.render import render_answer as discord_answer
from bot.render import answer_to_json, render_text
from bot.slack.render import render_answer as slack_answer
from index.live import LiveIndex
from index.segment import SIZES, WORDS
from index.spelling import Speller

RIGHT = "Who wrote the Impakter piece on Russia asking China for aid?"
TYPO = "Who wrote the Impackter piece on Russia asking China for aid?"
# Corrected, and still not in the dossier: the reply suggests the corrected wording.
DECLINED_TYPO = "How do I reset my Sulivan printer?"
DECLINED_FIXED = "How do I reset my Sullivan printer?"


def speller_of(answerer: Answerer) -> Speller:
    speller = answerer.live.current().retriever.speller
    assert speller is not None
    return speller


def test_a_misspelt_name_is_corrected_and_answered_as_if_spelt_right(answerer):
    right, typo = answerer.ask(RIGHT), answerer.ask(TYPO)
    assert right.corrected is None
    assert typo.corrected == RIGHT
    assert typo.question == TYPO  # the reply still shows what was asked
    assert typo.answered
    assert [(q.article.id, q.start, q.end) for q in typo.quotes] == [
        (q.article.id, q.start, q.end) for q in right.quotes]
    assert render_text(typo).startswith(f"(Searched for: {RIGHT})\n")
    assert answer_to_json(typo)["corrected_question"] == RIGHT
    assert answer_to_json(right)["corrected_question"] is None


def test_names_are_corrected_one_edit_off_and_long_words_two(answerer):
    speller = speller_of(answerer)
    assert speller.suggest("Sulivan") == "sullivan"  # a letter dropped
    assert speller.suggest("Jeichi") == "jiechi"  # two letters swapped: one edit
    assert speller.suggest("Frothomme") == "forthomme"
    assert speller.suggest("Forthme") is None  # 7 letters, two edits off: too far
    assert speller.suggest("Frothome") == "forthomme"  # 8 letters, two edits: close enough


def test_the_case_of_the_question_is_kept(answerer):
    speller = speller_of(answerer)
    assert speller.correct("did sulivan go").corrected == "did sullivan go"
    assert speller.correct("Did SULIVAN go").corrected == "Did SULLIVAN go"
    assert speller.correct("Did Sulivan's aide go").corrected == "Did Sullivan's aide go"


def test_questions_spelt_right_are_searched_as_asked(answerer):
    for question in (RIGHT, "Did China agree to send weapons to Russia?",
                     "What did Sun Yun of the Stimson Center say about providing arms now?",
                     "Which gas pipeline did the Chinese scholar expect to be put on hold?"):
        assert answerer.ask(question).corrected is None, question


def test_numbers_short_words_and_ordinary_english_are_left_alone(answerer):
    speller = speller_of(answerer)
    # "2O22" and "G8" touch digits; "Xl" and "sya" are short; "bananas", "weather" and
    # "astronomers" are English the dossier does not use.
    question = "Did Xl sya in 2O22 or the 1990s at the G8 that bananas, weather and astronomers"
    assert speller.correct(question).changes == ()
    assert speller.correct(question + " matter to Sulivan?").corrected == (
        question + " matter to Sullivan?")


def test_an_ambiguous_word_is_left_alone_and_frequency_breaks_near_ties():
    assert Speller({"martin": 3, "marten": 3}).suggest("martan") is None
    assert Speller({"martin": 10, "marten": 1}).suggest("martan") == "martin"
    # the closer word wins over a more frequent one further off
    assert Speller({"khodorkovsky": 1, "khodorkovska": 50}).suggest(
        "khodorkovksy") == "khodorkovsky"


def test_a_decline_suggests_the_corrected_question_in_every_renderer(answerer):
    answer = answerer.ask(DECLINED_TYPO)
    assert answer.corrected == DECLINED_FIXED
    assert not answer.answered and not answer.quotes, answer
    suggestion = f"Did you mean: {DECLINED_FIXED}?"
    assert suggestion in render_text(answer)
    data = answer_to_json(answer)
    assert data["corrected_question"] == DECLINED_FIXED and suggestion in data["answer"]
    slack = slack_answer(answer, answer_id="a1")
    shown = json.dumps(slack["blocks"], ensure_ascii=False)
    assert suggestion in shown and suggestion in slack["text"]
    reply = discord_answer(answer)
    description = reply.embeds[0].description or ""
    assert suggestion in description.replace("\\", "")  # markdown escapes aside


def test_an_answer_from_the_corrected_wording_says_so_in_every_renderer(answerer):
    answer = answerer.ask(TYPO)
    note = f"Searched for: {RIGHT}"
    slack = slack_answer(answer, answer_id="a1")
    assert note in json.dumps(slack["blocks"], ensure_ascii=False) and note in slack["text"]
    reply = discord_answer(answer)
    assert note in reply.content.replace("\\", "")


def test_the_vocabulary_follows_incremental_rebuilds(fresh_answerer, corpus_copy):
    assert speller_of(fresh_answerer).suggest("Stimsn") == "stimson"
    assert speller_of(fresh_answerer).suggest("Ketleborough") is None
    path = next(corpus_copy.glob("003-*"))
    path.write_text(path.read_text(encoding="utf-8").replace("Stimson", "Kettleborough"),
                    encoding="utf-8")

    fresh_answerer.rebuild(corpus_copy)

    # The old version of the article stays in its segment (tombstoned): its words must not.
    retriever = fresh_answerer.live.current().retriever
    assert any(not live.all() for live in retriever._live_rows.values())
    assert speller_of(fresh_answerer).suggest("Stimsn") is None
    assert speller_of(fresh_answerer).suggest("Ketleborough") == "kettleborough"


def test_an_index_written_before_the_speller_counts_its_words_at_load(tmp_path, built_index,
                                                                      embedder):
    index_dir = tmp_path / "index"
    shutil.copytree(built_index, index_dir)
    for seg in (index_dir / "segments").iterdir():
        (seg / WORDS).unlink()
        sizes = json.loads((seg / SIZES).read_text())
        del sizes[WORDS]
        (seg / SIZES).write_text(json.dumps(sizes))
    answer = Answerer(LiveIndex(index_dir, embedder)).ask(TYPO)
    assert answer.corrected == RIGHT and answer.answered


@pytest.mark.parametrize("value", ["0", "off", "false"])
def test_the_speller_can_be_turned_off(monkeypatch, built_index, embedder, value):
    monkeypatch.setenv("DOSSIER_SPELLING", value)
    live = LiveIndex(built_index, embedder)
    assert live.current().retriever.speller is None
    answer = Answerer(live).ask(TYPO)
    assert answer.corrected is None
    assert answer_to_json(answer)["corrected_question"] is None
