"""What a question asks for, and which sentences hold that kind of thing."""

from __future__ import annotations

import pytest

from index.features import answer_type, matches_type


@pytest.mark.parametrize(("question", "kind"), [
    ("Who wrote the piece on Russia asking China for aid?", "author"),
    ("When did the talks take place?", "date"),
    ("Who met the Chinese diplomat in Rome?", "person"),
    ("How many tonnes of coal does China plan to add?", "number"),
    ("Where did the two officials meet?", "place"),
    ("At which event did the leaders meet?", "event"),
    ("What summit did the ministers attend?", "event"),
    ("Why is China increasing coal production?", "reason"),
    ("Why was the new stockpile built?", "reason"),
    ("What did the adviser warn Beijing about?", None),
])
def test_questions_are_typed_by_what_they_ask_for(question, kind):
    assert answer_type(question) == kind


@pytest.mark.parametrize(("kind", "text", "matches"), [
    ("event", "The two leaders had met during the Beijing Winter Olympics.", True),
    ("event", "Xi will travel to Russia next week to meet Putin.", False),
    ("reason", "It seeks to strengthen energy security.", True),
    ("reason", "Prices fell because demand collapsed.", True),
    ("reason", "The commission told officials about the plan.", False),
    ("date", "In a joint statement in February 2022, they pledged support.", True),
    ("number", "It plans a stockpile of 620 million tons.", True),
    (None, "Anything at all.", False),
])
def test_sentences_match_the_kind_of_answer_asked_for(kind, text, matches):
    assert matches_type(kind, text) is matches
