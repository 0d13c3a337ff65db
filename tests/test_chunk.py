"""Sentence splitting and passages: abbreviations, exact offsets, windows inside blocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.chunk import ChunkParams, make_passages, split_sentences
from index.clean import indexable_spans
from index.load import load_article, load_corpus
from index.model import Article

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


@pytest.fixture(scope="module")
def articles() -> dict[str, Article]:
    return {a.prefix: a for a in load_corpus(CORPUS).articles}


def sentence_texts(article: Article) -> list[str]:
    return [article.body[s.start:s.end] for s in split_sentences(article)]


def make_article(body: str, article_id: str = "t") -> Article:
    return Article(id=article_id, path=f"{article_id}.txt", body=body, sha256="0" * 64)


# --- abbreviations -------------------------------------------------------------------------


def test_us_officials_does_not_end_a_sentence(articles):
    sentences = sentence_texts(articles["003"])
    starting = [s for s in sentences if s.startswith("U.S. officials told several news outlets")]
    assert len(starting) == 1
    assert starting[0].endswith("each has touted in recent months.")
    assert not any(s.endswith(("U.S.", " U.S")) for s in sentences)
    assert "officials told several news outlets on the condition" not in [s[:52] for s in sentences]


def test_us_in_mid_sentence_stays_in_its_sentence(articles):
    sentences = sentence_texts(articles["000"])
    hit = [s for s in sentences if "unnamed U.S. officials who did not state" in s]
    assert hit == ["It first surfaced in the US media on Sunday; The Washington Post said the news "
                   "came from unnamed U.S. officials who did not state the kind of weaponry that "
                   "had been requested or how China had responded."]
    assert not any(s.endswith("unnamed U.S.") for s in sentences)


def test_washington_dc_does_not_end_a_sentence(articles):
    sentences = sentence_texts(articles["003"])
    hit = [s for s in sentences if "Washington, D.C., demurred" in s]
    assert hit == ["A spokesman for the Chinese Embassy in Washington, D.C., demurred when asked "
                   "over the weekend about the appeal, saying, “I’ve never heard of that.”"]
    assert not any(s.endswith("D.C.") or s.startswith((",", "demurred")) for s in sentences)


@pytest.mark.parametrize(("body", "expected"), [
    ("Officials in Washington, D.C., said talks would resume. Beijing did not reply.",
     ["Officials in Washington, D.C., said talks would resume.", "Beijing did not reply."]),
    ("The U.S. officials declined to comment. China said nothing.",
     ["The U.S. officials declined to comment.", "China said nothing."]),
    ("U.S. officials said so on Monday. Mr. Sullivan met Yang Jiechi in Rome.",
     ["U.S. officials said so on Monday.", "Mr. Sullivan met Yang Jiechi in Rome."]),
])
def test_abbreviations_in_short_texts(body, expected):
    assert sentence_texts(make_article(body)) == expected


# --- offsets ---------------------------------------------------------------------------------


PREFIXES = ["000", "001", "002", "003", "004"]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_every_sentence_maps_back_to_the_body_exactly(articles, prefix):
    article = articles[prefix]
    body = article.body
    spans = indexable_spans(body, article.title, article.author)
    sentences = split_sentences(article)
    assert sentences
    previous_end = 0
    for s in sentences:
        text = body[s.start:s.end]
        assert text and text == text.strip(), (s, text)
        assert s.start >= previous_end
        assert s.article_id == article.id
        block = [sp for sp in spans if sp.block == s.block]  # a sentence never leaves its block
        assert block and block[0].start <= s.start and s.end <= block[-1].end
        previous_end = s.end


@pytest.mark.parametrize("prefix", PREFIXES)
def test_sentences_lose_no_text_of_the_spans(articles, prefix):
    article = articles[prefix]
    body = article.body
    covered: set[int] = set()
    for s in split_sentences(article):
        covered.update(range(s.start, s.end))
    for span in indexable_spans(body, article.title, article.author):
        lost = [body[i] for i in range(span.start, span.end)
                if i not in covered and not body[i].isspace()]
        assert not lost, (body[span.start:span.end], "".join(lost))


@pytest.mark.parametrize("prefix", PREFIXES)
def test_every_passage_is_exactly_its_slice_of_the_body(articles, prefix):
    article = articles[prefix]
    sentences = split_sentences(article)
    passages = make_passages(article, sentences)
    params = ChunkParams()
    assert len(passages) == len(sentences)  # one window centred on each sentence
    for i, p in enumerate(passages):
        assert article.body[p.start:p.end] == p.text
        assert p.article_id == article.id
        assert p.centre_sentence == i
        first = sentences[p.first_sentence]
        last = sentences[p.first_sentence + p.n_sentences - 1]
        assert (p.start, p.end) == (first.start, last.end)
        assert p.first_sentence <= p.centre_sentence < p.first_sentence + p.n_sentences
        assert 1 <= p.n_sentences <= params.max_sentences
        window = sentences[p.first_sentence:p.first_sentence + p.n_sentences]
        assert len({s.block for s in window}) == 1  # never quoted across furniture
        if p.n_sentences > 1:
            assert len(p.text.split()) <= params.max_words


def test_windows_take_both_neighbours_within_the_word_budget():
    body = "One short sentence here. Two short sentence here. Three short sentence here."
    article = make_article(body)
    passages = make_passages(article, split_sentences(article), ChunkParams(max_sentences=3))
    assert [p.text for p in passages] == [
        "One short sentence here. Two short sentence here.",
        body,
        "Two short sentence here. Three short sentence here.",
    ]
    narrow = make_passages(article, split_sentences(article), ChunkParams(max_sentences=1))
    assert [p.text for p in narrow] == [
        "One short sentence here.", "Two short sentence here.", "Three short sentence here."]
    tight = make_passages(article, split_sentences(article), ChunkParams(max_words=8))
    assert all(len(p.text.split()) <= 8 for p in tight)


@pytest.mark.parametrize("size", [0, 2, 4])
def test_a_window_size_that_cannot_be_centred_is_refused(size):
    with pytest.raises(ValueError, match="must be odd"):
        ChunkParams(max_sentences=size)


def test_default_windows_reach_two_sentences_either_side_within_their_block():
    body = ("S one is here. S two is here. S three is here. S four is here. S five is here. "
            "S six is here.\n\n— Someone (@someone) March 14, 2022\n\nS seven is here.")
    article = make_article(body)
    passages = make_passages(article, split_sentences(article))
    texts = [p.text for p in passages]
    assert texts[0] == "S one is here. S two is here. S three is here."
    assert texts[3] == ("S two is here. S three is here. S four is here. S five is here. "
                        "S six is here.")
    # The last sentence stands past page furniture: its window is itself alone.
    assert texts[-1] == "S seven is here."


def test_offsets_hold_for_crlf_text_with_furniture_and_non_ascii(tmp_path):
    text = ("Beijing’s answer — “no comment” — came on Monday. "
            "Officials in Kyiv were not surprised."
            "\r\n\r\n— Someone Important (@someone) March 14, 2022\r\n\r\n"
            "Café owners in Moscow reported shortages. Prices rose 8% in a week…\r\n"
            "Comments are closed.\r\n")
    path = tmp_path / "crlf.txt"
    path.write_bytes(text.encode("utf-8"))
    article = load_article(path)
    sentences = split_sentences(article)
    texts = [article.body[s.start:s.end] for s in sentences]
    assert texts == [
        "Beijing’s answer — “no comment” — came on Monday.",
        "Officials in Kyiv were not surprised.",
        "Café owners in Moscow reported shortages.",
        "Prices rose 8% in a week…",
    ]
    assert sentences[0].block == sentences[1].block != sentences[2].block
    for p in make_passages(article, sentences):
        assert article.body[p.start:p.end] == p.text
