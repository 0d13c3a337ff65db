"""Word-level text handling shared by the lexical index and the evidence scorer."""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer

# Function words and question framing carry no evidence about *which* passage answers.
STOPWORDS = frozenset([
    "a", "an", "the", "of", "to", "in", "on", "for", "and", "or", "but", "nor", "is", "are",
    "was", "were", "be", "been", "being", "am", "do", "does", "did", "done", "doing", "has",
    "have", "had", "having", "what", "which", "who", "whom", "whose", "when", "where", "why",
    "how", "that", "this", "these", "those", "it", "its", "as", "at", "by", "from", "with",
    "about", "into", "onto", "over", "under", "after", "before", "than", "then", "there",
    "here", "their", "they", "them", "he", "she", "his", "her", "him", "hers", "we", "our",
    "ours", "you", "your", "yours", "i", "me", "my", "mine", "not", "no", "yes", "so", "if",
    "will", "would", "could", "should", "can", "may", "might", "must", "shall", "up", "out",
    "all", "any", "some", "such", "each", "other", "more", "most", "much", "many", "very",
    "just", "also", "only", "own", "same", "too", "both", "either", "neither", "whether",
    "while", "during", "since", "until", "again", "further", "once", "s", "t", "ll", "d", "ve",
    "re", "m",
])

_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def words(text: str) -> list[str]:
    """Lower-cased word tokens with possessives folded ("China’s" -> "china")."""
    out = []
    for raw in _TOKEN.findall(text):
        word = raw.lower().replace("’", "'")
        if word.endswith("'s"):
            word = word[:-2]
        out.append(word)
    return out


def terms(text: str) -> list[str]:
    """Stemmed content terms, in order, stopwords removed (the lexical index's vocabulary)."""
    stem = _stemmer().stemWord
    return [stem(w) for w in words(text) if w not in STOPWORDS]


def query_terms(text: str) -> list[str]:
    """Distinct content terms of a question, in order."""
    return list(dict.fromkeys(terms(text)))
