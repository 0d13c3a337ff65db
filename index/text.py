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

TERMS_VERSION = 2  # bump when terms() would map a text differently (forces a rebuild)

_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
# "U.S.", "D.C." and "US", "NATO": acronyms as written.
_ACRONYM = re.compile(r"\b(?:[A-Z]\.){2,}|\b[A-Z]{2,6}\b")
# "United States", "National Development and Reform Commission": names an acronym may stand for.
_CONNECTORS = frozenset({"of", "and", "for", "the", "de", "on"})
_NAME_RUN = re.compile(rf"\b[A-Z][a-z]+(?:\s+(?:(?:{'|'.join(sorted(_CONNECTORS))})\s+)?"
                       r"[A-Z][a-z]+)+\b")


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


@lru_cache(maxsize=200_000)
def _term(word: str) -> str:
    # Lemmatise first so irregular forms meet their base ("met" -> "meet", "sent" -> "send"),
    # then stem so derived forms do too ("shipments" -> "ship").
    import simplemma

    return _stemmer().stemWord(simplemma.lemmatize(word, lang="en"))


def acronyms(text: str) -> list[str]:
    """Acronym terms: "U.S.", "US" and "United States" all give ``acr:us``."""
    out = [f"acr:{m.group(0).replace('.', '').lower()}" for m in _ACRONYM.finditer(text)]
    for m in _NAME_RUN.finditer(text):
        parts = m.group(0).split()
        while parts and parts[0].lower() in STOPWORDS:
            parts = parts[1:]
        initials = "".join(p[0] for p in parts if p.lower() not in _CONNECTORS).lower()
        if len(initials) >= 2:
            out.append(f"acr:{initials}")
    return out


def terms(text: str) -> list[str]:
    """Content terms, in order, stopwords removed (the lexical index's vocabulary)."""
    return [_term(w) for w in words(text)
            if w not in STOPWORDS and (len(w) > 1 or w.isdigit())] + acronyms(text)


def query_terms(text: str) -> list[str]:
    """Distinct content terms of a question, in order."""
    return list(dict.fromkeys(terms(text)))
