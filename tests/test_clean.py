"""Cleaning the five real articles: the article proper is indexed, page furniture is not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from index.chunk import make_passages, split_sentences
from index.clean import indexable_spans
from index.load import load_corpus
from index.model import Article

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


@pytest.fixture(scope="module")
def articles() -> dict[str, Article]:
    return {a.prefix: a for a in load_corpus(CORPUS).articles}


def span_texts(article: Article) -> list[str]:
    return [article.body[s.start:s.end] for s in indexable_spans(article.body)]


def indexed_texts(article: Article) -> list[str]:
    """Everything that reaches the index: spans, sentences and the passages built on them."""
    sentences = split_sentences(article)
    return (span_texts(article)
            + [article.body[s.start:s.end] for s in sentences]
            + [p.text for p in make_passages(article, sentences)])


def is_indexed(article: Article, sentence: str) -> bool:
    return any(sentence in text for text in span_texts(article))


# Real sentences of each article proper, from its first to its last paragraph.
ARTICLE_SENTENCES = {
    "000": [
        "Russia reportedly asked China for military assistance and this raises the question: "
        "Will China come through with aid?",
        "The news that Russia asked China for military and economic aid for its war in Ukraine "
        "made the headlines around the world on Monday:",
        "Beijing has declined to directly condemn Moscow for the invasion and says NATO’s "
        "“eastward expansion” is to blame for worsening tensions between Russia and Ukraine",
        "China’s reaction?\u00a0Beijing refused to directly address the reports, instead accusing "
        "Washington of maliciously spreading “disinformation” over China’s role in the Ukraine "
        "war.",
        "Soviet Russia was far too proud to stoop down and ask for anybody’s military and economic "
        "aid – political support, always, military and economic aid, never.",
        "China’s probable position",
        "The article however was written on March 5, well before Russia asked for any military "
        "assistance.",
        "“…it is still a political hot potato. Russia would thereafter carry a heavy burden and "
        "become overwhelmed.",
        "So how likely is China to provide military support to Russia? If one is to believe Hu "
        "Wei, not at all likely.",
        "Throwing China in Putin’s arms is not a smart move.",
        "It is important to keep China in its neutral role at a minimum and encourage it to align "
        "itself with the West and the rest of the world, exactly as Wu Hei suggests in his "
        "remarkable article.",
    ],
    "001": [
        "Russian President Vladimir Putin attends a meeting with Chinese President Xi Jinping in "
        "Beijing, China February 4, 2022.",
        "Well well.",
        "The United States has told its allies that China has signaled its willingness to provide "
        "military assistance to Russia to support its invasion of Ukraine",
        "Russia also denied on Monday that it had made any request to China…",
        "Beijing would not want to see Russia do too well, something that might give Putin some "
        "ideas above his new station.",
        "It also plans to build a stockpile of 620 million tons of fuel shared between the "
        "government, miners and users.",
        "And there we have it.",
    ],
    "002": [
        "Following days of continued bombing and fighting in Ukraine, Russia, who had been "
        "suffering grievous losses in battle, is now allegedly requesting military aid from China, "
        "according to US officials.",
        "In about three weeks of fighting, they had managed to lose over 1,262 destroyed vehicles",
        "“The defense ministry of the Russian Federation, while ensuring the maximum safety of the "
        "civilian population, does not exclude the possibility of taking major population centers "
        "under full control,” Peskov said.",
        "“We are communicating directly, privately to Beijing that there will absolutely be "
        "consequences for large-scale sanctions evasion efforts or support to Russia to backfill "
        "them,” said Sullivan to CNN last Sunday.",
        "China stands to benefit whether Russia succeeds in Ukraine or not.",
        "It could do so by giving reconstruction loans to a now Russia-controlled Ukraine as a "
        "humanitarian gesture.",
    ],
    "003": [
        "Beijing appears eager to distance itself from Russian President Vladimir Putin’s bloody "
        "war in Ukraine despite months of warmer relations between the two powers.",
        "U.S. officials told several news outlets on the condition of anonymity over the weekend "
        "that Russia had made the appeal to its Asian ally",
        "“To provide arms now with everyone watching is quite unthinkable,” Sun Yun, director of "
        "the China Program at the Stimson Center think tank, tells U.S. News.",
        "A spokesman for the Chinese Embassy in Washington, D.C., demurred when asked over the "
        "weekend about the appeal, saying, “I’ve never heard of that.”",
        "Beijing’s balk on Monday does not surprise some analysts.",
        "China will not seek to ease the tensions with the U.S. by damaging China-Russia "
        "relations.”",
    ],
    "004": [
        "Beijing has enough Russian-style military hardware and ammunition to help tip the "
        "Russia-Ukraine war in Moscow’s favor and undermine efforts to restore Ukraine’s sovereign "
        "territory.",
        "He studies in Singapore.",
        "Will China use its military resources to give Russia an advantage on the battlefield?",
        "“Why does the US ask China not to provide arms to Russia, while it continues to sell arms "
        "to Taiwan?”",
        "Russian crude oil exports to China rose 8% last year",
        "even at the cost of a major punitive response from the West, said Brian Hart of the China "
        "Power Project at the Center for Strategic and International Studies.",
        "“Russia needs high technologies, and the Chinese have leverage. what can they get in "
        "return?’",
    ],
}


@pytest.mark.parametrize(("prefix", "sentence"), [
    (prefix, sentence) for prefix, items in ARTICLE_SENTENCES.items() for sentence in items
], ids=lambda v: v[:30] if isinstance(v, str) and len(v) > 3 else v)
def test_every_sentence_of_the_article_proper_is_indexed(articles, prefix, sentence):
    article = articles[prefix]
    assert sentence in article.body, "the test quotes the article exactly"
    assert is_indexed(article, sentence)


# First and last words of each article proper (what lies outside is page furniture).
ARTICLE_PROPER = {
    "000": ("Russia reportedly asked China", "suggests in his remarkable article."),
    "001": ("Russian President Vladimir Putin attends", "And there we have it."),
    "002": ("Following days of continued bombing", "as a humanitarian gesture."),
    "003": ("Beijing appears eager to distance", "damaging China-Russia relations.”"),
    "004": ("Beijing has enough Russian-style", "what can they get in return?’"),
}
# Paragraphs of an article proper that are left out on purpose: a repeated photo caption.
REPEATS = {"002": ["Official ceremony to welcome the President of Russia Vladimir Putin. With "
                   "President of the People’s Republic of China Xi Jinping (Kremlin.ruCC"]}
_URL = re.compile(r"(?:https?://|pic\.twitter\.com/)\S+(?:\s+\d+/)?")  # "… https://t.co/x 1/"
_EMBED_ATTRIBUTION = re.compile(r"^— .+ \(@\w+\) \w+ \d+, \d{4}$")


@pytest.mark.parametrize("prefix", sorted(ARTICLE_PROPER))
def test_every_paragraph_of_the_article_proper_is_indexed(articles, prefix):
    """Each paragraph's words (links aside) are indexed, at its first occurrence."""
    article = articles[prefix]
    body = article.body
    first, last = ARTICLE_PROPER[prefix]
    lo, hi = body.index(first), body.index(last) + len(last)
    kept: set[int] = set()
    for span in indexable_spans(body):
        kept.update(range(span.start, span.end))
    missing = []
    for paragraph in body[lo:hi].split("\n"):
        if len(paragraph.split()) < 4 or _EMBED_ATTRIBUTION.match(paragraph):
            continue  # a heading or a dateline; the sentence tests above cover the ones we need
        start = body.index(paragraph)
        text = _URL.sub(lambda m: " " * len(m.group()), paragraph)
        wanted = [start + i for i, ch in enumerate(text) if not ch.isspace()]
        if not all(i in kept for i in wanted):
            missing.append(paragraph)
    allowed = REPEATS.get(prefix, [])
    unexpected = [p for p in missing if not any(p.startswith(a) for a in allowed)]
    assert unexpected == [], "\n".join(unexpected)


def test_no_span_of_the_impakter_menu_or_related_posts_is_indexed(articles):
    article = articles["000"]
    body = article.body
    menu_end = body.index("View All Result\nUkraine War:")
    related_start = body.index("Tags: china")
    for span in indexable_spans(body):
        assert span.start >= menu_end, body[span.start:span.end]
        assert span.end <= related_start, body[span.start:span.end]


@pytest.mark.parametrize("furniture", [
    "Sydney", "Privacy Policy", "Only 16% of Large Companies", "Copenhagen",
    "Write for Impakter", "No Result", "View All Result", "Related Posts", "Previous Post",
    "LANE EIGHT", "bySarah Perras", "Klimado GmbH", "Recent News", "Biodegradable Plastics",
    "Tags:", "November 12, 2025",
])
def test_impakter_furniture_is_in_no_passage(articles, furniture):
    article = articles["000"]
    assert furniture in article.body
    leaked = [t for t in indexed_texts(article) if furniture in t]
    assert not leaked, leaked[:2]


@pytest.mark.parametrize(("prefix", "furniture"), [
    ("001", "Comments are closed."),
    ("003", "error: Content is protected !!"),
    ("003", "Share:"),
    ("000", "— AFP News Agency (@AFP) March 14, 2022"),
    ("000", "AFP News Agency"),
    ("000", "— Ramez Naam (@ramez) March 13, 2022"),
    ("000", "pic.twitter.com"),
    ("000", "https://t.co/"),
    ("002", "click here to enjoy a free 2-month trial membership"),
    ("000", "Editor’s Note: The opinions expressed here by Impakter.com columnists"),
    ("000", "Featured Photo Credit"),
])
def test_page_furniture_is_not_indexed(articles, prefix, furniture):
    article = articles[prefix]
    assert furniture in article.body
    leaked = [t for t in indexed_texts(article) if furniture in t]
    assert not leaked, leaked[:2]


def test_the_text_before_an_embedded_link_is_kept_and_the_link_is_not(articles):
    article = articles["000"]
    tweet = [t for t in span_texts(article) if "worsening tensions" in t]
    assert len(tweet) == 1
    assert tweet[0].endswith("between Russia and Ukraine")
    assert "http" not in tweet[0]


def test_the_duplicated_why_did_we_write_this_paragraph_of_004_is_indexed_once(articles):
    article = articles["004"]
    paragraph = ("Will China use its military resources to give Russia an advantage on the "
                 "battlefield? Although the war in Ukraine has boosted cooperation between Beijing "
                 "and Moscow, China’s calculations in Eastern Europe are more tied to the United "
                 "States.")
    assert article.body.count(paragraph) == 2
    assert sum(paragraph in t for t in span_texts(article)) == 1
    sentences = [article.body[s.start:s.end] for s in split_sentences(article)]
    assert sentences.count("Will China use its military resources to give Russia an advantage on "
                           "the battlefield?") == 1
    assert sum("Why did we write this?" in s for s in sentences) <= 1


@pytest.mark.parametrize(("prefix", "title"), [
    ("000", "Ukraine War: Why Is Russia Asking China for Military Aid?"),
    ("003", "China Signals Disinterest in Providing Weapons to Russia for Brutal Ukraine Campaign"),
])
def test_a_repeated_headline_is_indexed_at_most_once(articles, prefix, title):
    article = articles[prefix]
    assert article.body.count(title) >= 2
    assert sum(title in t for t in span_texts(article)) <= 1


def test_spans_are_ordered_disjoint_trimmed_and_on_one_line(articles):
    # The bundled articles are not hard-wrapped: every span stays on one line.
    for article in articles.values():
        spans = indexable_spans(article.body, article.title, article.author)
        assert spans, article.id
        previous_end = 0
        previous_block = 0
        for span in spans:
            text = article.body[span.start:span.end]
            assert span.start >= previous_end
            assert text and text == text.strip()
            assert "\n" not in text
            assert span.block in (previous_block, previous_block + 1)
            previous_end, previous_block = span.end, span.block


def test_blocks_break_where_furniture_was_left_out():
    body = ("The first paragraph of the article is here.\n"
            "The second paragraph follows it directly.\n"
            "https://t.co/abc pic.twitter.com/xyz\n"
            "— Someone Important (@someone) March 14, 2022\n"
            "After the embed, the article goes on with more text.\n")
    texts = [(body[s.start:s.end], s.block) for s in indexable_spans(body)]
    assert texts == [
        ("The first paragraph of the article is here.", 0),
        ("The second paragraph follows it directly.", 0),
        ("After the embed, the article goes on with more text.", 1),
    ]


def test_cleaning_ends_at_the_end_of_article_markers():
    body = ("Russia asked China for drones, officials said on Monday.\n\n"
            "Beijing denied the report in a short statement.\n\n"
            "Related Posts\n\n"
            "Russia and China sign a new gas deal worth billions of dollars this year.\n")
    texts = [body[s.start:s.end] for s in indexable_spans(body)]
    assert texts == ["Russia asked China for drones, officials said on Monday.",
                     "Beijing denied the report in a short statement."]
