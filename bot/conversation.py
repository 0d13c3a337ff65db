"""Follow-up questions read against the conversation so far (a thread, a DM, the console).

The core answers standalone questions only, so a follow-up is first *resolved* into one:
"what did he say next?" continues the previous question after the quotes already shown,
"why?" and "and Beijing?" are rewritten from the previous question, and "he", "his", "they"
are replaced by whom the previous question was about. A follow-up that cannot be resolved
(nothing before it to refer to) gets a reply that says so instead of quotes for whatever
its few words happen to match.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from bot.answer import Answer, Answerer, Quote, clean_question, question_problem

MORE_COUNT = 3  # quotes per "more" / "next"
DEFAULT_TTL = 3600.0
DEFAULT_SIZE = 5000

NOTHING_TO_CONTINUE = ("There is nothing to continue yet: ask a full question first, then "
                       "“more” or “what did he say next?” shows further quotes.")
NO_MORE = "No more quotes on “{topic}”: every passage that answers it has been shown."

def _split(words: str) -> list[str]:
    return words.split()


# Words that carry no subject of their own in a follow-up ("tell me more", "what else did
# he say next?"): what is left after them decides whether a question continues the last one.
_FILLER = frozenset(_split("""
a an and or but so ok okay then please also too just now more next else further other another
tell show give me us any some anything something what whats what's go on continue keep going
say said says saying talk talked mention mentioned add added quote quotes passage passages
did do does is was were are be been has have had happen happened he she they him her his hers
them their theirs it its this that there who which the about on of to in ?
"""))
_PERSONAL = re.compile(r"\b(he|she|him|his|her|hers|they|them|their|theirs)\b", re.I)
_SINGULAR = re.compile(r"\b(he|she|him|his|her|hers)\b", re.I)
_DEMONSTRATIVE = re.compile(r"\b(it|its|this|that|these|those|there)\b", re.I)
_DETERMINER = re.compile(r"\b(?:this|that|these|those)\s+(?!(?:is|was|are|were|the|an?|he|she|"
                         r"they|it|we|i|you|did|does|do|has|have|had)\b)[a-z]+", re.I)
_IT = re.compile(r"\b(it|its)\b", re.I)
_WORD = re.compile(r"[\w’'-]+")
_WH = ("why", "when", "where", "how", "who", "what", "which", "whom", "whose")
_AUX = ("did", "does", "do", "is", "was", "were", "are", "has", "have", "had", "will", "would",
        "can", "could", "should", "might", "may")
_BARE_WH = re.compile(r"^(?:and |but |so )?((?:(?:at|in|on|from|to|with|by|for|since|until) )?"
                      r"(?:why|when|where|how|who|whom|what|which|how come|how so|"
                      r"how (?:many|much|long|often))(?: \w+)?)\s*(?:exactly|then)?[?.!]*$",
                      re.I)
_PREPOSITION_START = re.compile(r"^(?:and |but )?((?:at|in|on|from|to|with|by|for|since|until|"
                                r"under|over|after|before|during|against|without)\s.+?)[?.!]*$",
                                re.I)
_ABOUT = re.compile(r"^(?:and|but|so|also)?\s*(?:what about|how about|and|also|but)\s+"
                    r"(?!(?:why|when|where|how|who|what|which|did|does|do|is|was|were|are|"
                    r"has|have|had|will|would|can|could)\b)(.+?)[?.!]*$", re.I)
_ACCORDING = re.compile(r"\baccording to ((?:the |an? )?[^,?]+)", re.I)
_SPEAKER = re.compile(r"\b(?:did|does|do|has|have|had|is|was)\s+((?:the |an? )?[^?,]+?)\s+"
                      r"(?:say|said|think|believe|expect|describe|argue|warn|claim|predict|"
                      r"suggest|see|tell|call|want|plan|hope|mean)\b", re.I)
_CAPITALISED = re.compile(r"\b[A-Z][\w’'.-]*(?:\s+(?:of |the |de |von )?[A-Z][\w’'.-]*)*")
_PREPOSITIONS = frozenset(_split("about on of to in at for from with by into over under after "
                                 "before than as and or but"))


@dataclass(frozen=True)
class Resolution:
    """How a question is read in its conversation."""

    kind: str  # "standalone" | "rewritten" | "more" | "unresolved"
    query: str | None = None  # the standalone question asked of the core
    reason: str | None = None  # for "unresolved": what to tell the person


@dataclass
class Conversation:
    """One thread's state. Mutated only under ``lock``."""

    id: str
    updated: float
    topic: str | None = None  # the last answered question, as asked of the core
    subject: str | None = None  # whom or what it was about ("Jake Sullivan")
    shown: list[Quote] = field(default_factory=list)  # quotes shown for ``topic``, in order
    turns: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class Conversations:
    """Conversations by id, expiring after ``ttl`` seconds idle and at most ``size`` of them
    (the least recently used go first), so a long-running bot's memory stays bounded."""

    def __init__(self, *, ttl: float = DEFAULT_TTL, size: int = DEFAULT_SIZE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._items: OrderedDict[str, Conversation] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, conversation_id: str, *, create: bool = True) -> Conversation | None:
        now = self._clock()
        with self._lock:
            self._expire(now)
            conv = self._items.get(conversation_id)
            if conv is None:
                if not create:
                    return None
                conv = self._items[conversation_id] = Conversation(conversation_id, now)
            conv.updated = now
            self._items.move_to_end(conversation_id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return conv

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._items)

    def _expire(self, now: float) -> None:
        while self._items:
            oldest = next(iter(self._items.values()))
            if now - oldest.updated <= self.ttl:
                break
            self._items.popitem(last=False)


# -- reading a follow-up -----------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _content_words(text: str) -> list[str]:
    from index.text import STOPWORDS

    return [w for w in _words(text) if w not in _FILLER and w not in STOPWORDS]


def is_continuation(question: str) -> bool:
    """"more", "tell me more", "what did he say next?", "go on", "anything else?": asks for
    further quotes on the last question and names nothing new."""
    words = _words(question)
    if not words or _content_words(question):
        return False
    return bool({"more", "next", "else", "continue", "on", "further", "another"} & set(words))


def subject_of(question: str) -> str | None:
    """Whom or what a question is about, for "he" and "they" in the next one: the speaker
    ("according to the Singapore professor", "what did Jake Sullivan say"), else the first
    name it capitalises."""
    m = _ACCORDING.search(question)
    if m:
        return m.group(1).strip()
    m = _SPEAKER.search(question)
    if m and not _PERSONAL.fullmatch(m.group(1).strip()):
        return m.group(1).strip()
    first = question.split(maxsplit=1)
    rest = first[1] if len(first) > 1 else ""
    for name in _CAPITALISED.findall(rest):
        if name.lower() not in _FILLER:
            return name.strip()
    return None


def _named_before(question: str, at: int) -> bool:
    """Whether the question names someone (a capitalised word past its first) before ``at``:
    then "he" refers to them ("Did Putin say he would stop?")."""
    first = question.split(maxsplit=1)[0] if question.split() else ""
    return any(m.start() < at and m.group(0).lower() not in _FILLER
               for m in _CAPITALISED.finditer(question, len(first)))


def _names(question: str) -> list[str]:
    rest = question.split(maxsplit=1)
    return [n for n in _CAPITALISED.findall(rest[1] if len(rest) > 1 else "")
            if n.lower() not in _FILLER]


def _replace_pronouns(question: str, subject: str) -> str:
    """"he", "his", "her" -> the subject; "they", "their" only when no "he" or "she" is there
    ("did he think might give up their neutrality": "their" is someone else)."""
    singular = re.search(r"\b(?:he|she|him|his|her|hers)\b", question, re.I)
    pattern = _SINGULAR if singular else _PERSONAL

    def sub(m: re.Match[str]) -> str:
        word = m.group(1).lower()
        after = question[m.end():].lstrip()
        nxt = _WORD.match(after)
        possessive = word in ("his", "their", "theirs", "hers") or (
            word == "her" and nxt is not None and nxt.group(0).lower() not in _PREPOSITIONS
            and not after.startswith(("?", ".", ",")))
        return f"{subject}’s" if possessive else subject

    # Only the first: later ones read naturally as the same person ("did Scott Sullivan say
    # he'd made").
    return pattern.sub(sub, question, count=1)


def _fragment(text: str) -> tuple[str, str] | None:
    """A question without a verb of its own: "why?", "at which event?", "under one command?"
    (``("wh", "at which event")``, ``("tail", "under one command")``), else None."""
    words = _words(text)
    if not words or len(words) > 5 or any(w in _AUX for w in words):
        return None
    m = _BARE_WH.match(text)
    if m:
        return "wh", m.group(1)
    m = _PREPOSITION_START.match(text)
    if m and len(words) <= 4:
        return "tail", m.group(1)
    return None


def _with_wh(wh: str, previous: str) -> str:
    """"why" + "Did Russia ask China for aid?" -> "why did Russia ask China for aid?"."""
    words = previous.split()
    if words and words[0].lower() in _WH:
        words = words[1:]
    if words and words[0].lower() in _AUX:
        return f"{wh.capitalize()} {' '.join([words[0].lower(), *words[1:]])}"
    return f"{wh.capitalize()}: {previous}"


def resolve(question: str, conv: Conversation | None) -> Resolution:
    """Read ``question`` against ``conv`` (None or empty: nothing was asked before)."""
    text = clean_question(question)
    topic = conv.topic if conv else None
    subject = conv.subject if conv else None
    if is_continuation(text):
        if topic is None:
            return Resolution("unresolved", reason=NOTHING_TO_CONTINUE)
        return Resolution("more", query=topic)
    fragment = _fragment(text)
    if fragment:
        if topic is None:
            return Resolution("unresolved", reason=_needs_context(text))
        kind, words = fragment
        query = (_with_wh(words, topic) if kind == "wh"
                 else f"{topic.rstrip('?. ')} {words[0].lower()}{words[1:]}?")
        return Resolution("rewritten", query=query)
    m = _ABOUT.match(text)
    if m and len(m.group(1).split()) <= 5:
        if topic is None:
            return Resolution("unresolved", reason=_needs_context(text))
        return Resolution("rewritten", query=_swap(topic, m.group(1).strip()))
    personal = _PERSONAL.search(text)
    if personal and not _named_before(text, personal.start()):
        if subject:
            return Resolution("rewritten", query=_replace_pronouns(text, subject))
        if topic:
            return Resolution("rewritten", query=f"{text} ({topic.rstrip('?')})")
        # No one to refer to: answered as before; the question may name whom it means in
        # words that are not capitalised ("the professor says he ...").
        return Resolution("standalone", query=text)
    it = _IT.search(text)
    if subject and it and not _named_before(text, it.start()) and not _IT.fullmatch(subject):
        # "How many patents was it granted?" after a question about IBM.
        return Resolution("rewritten", query=_IT.sub(
            lambda m: f"{subject}’s" if m.group(1).lower() == "its" else subject, text, count=1))
    if topic and (_DETERMINER.search(text) or (_DEMONSTRATIVE.search(text) and (
            len(_content_words(text)) <= 1 or len(_words(text)) <= 5))):
        # "When was that?", "Did Moscow deny it?", "the goal behind that push": too little
        # of its own to stand alone.
        return Resolution("rewritten", query=f"{text} ({topic.rstrip('?')})")
    return Resolution("standalone", query=text)


def _swap(topic: str, new: str) -> str:
    """"Did Moscow ask Beijing for help?" + "Washington" -> the last name swapped for the new
    one; with no name to swap, the new words join the question."""
    names = _names(topic)
    if names and new[:1].isupper():
        last = names[-1]
        at = topic.rfind(last)
        return topic[:at] + new + topic[at + len(last):]
    return f"{topic.rstrip('?. ')} {new}?"


def _needs_context(text: str) -> str:
    return (f"I am not sure what “{_clip(text, 60)}” refers to: there is no earlier question "
            "in this conversation. Please ask it in full, naming whom or what you mean.")


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# -- answering in a conversation ------------------------------------------------------------


def _overlaps(q: Quote, shown: Iterable[Quote]) -> bool:
    return any(s.article.id == q.article.id and s.start < q.end and q.start < s.end
               for s in shown)


def further_quotes(answerer: Answerer, topic: str, shown: list[Quote],
                   count: int = MORE_COUNT) -> tuple[list[Quote], bool]:
    """Quotes on ``topic`` not shown yet, ``count`` of them, and whether more remain.

    Order: what follows the quotes already shown in the best answer's article (the same
    speaker goes on), then the rest of that article, then other outlets, best first.
    """
    wide = answerer.ask_wide(topic, len(shown) + count + 8)
    fresh = [q for q in wide.quotes if not _overlaps(q, shown)]
    if shown:
        anchor = shown[0].article.id
        reached = max(s.end for s in shown if s.article.id == anchor)
        after = sorted((q for q in fresh if q.article.id == anchor and q.start >= reached),
                       key=lambda q: q.start)
        same = [q for q in fresh if q.article.id == anchor and q not in after]
        other = [q for q in fresh if q.article.id != anchor]
        fresh = after + same + other
    return fresh[:count], len(fresh) > count


class ConversationalAnswerer:
    """Answers questions in conversations: resolves follow-ups, continues with "more"."""

    def __init__(self, answerer: Answerer, conversations: Conversations | None = None) -> None:
        self.answerer = answerer
        # Not `or`: an empty store is falsy (it has a length).
        self.conversations = conversations if conversations is not None else Conversations()

    def ask(self, question: str, conversation: str | None = None) -> Answer:
        """Answer ``question``; with ``conversation`` None it stands alone (a fresh one)."""
        conv = (self.conversations.get(conversation) if conversation is not None
                else Conversation("", time.monotonic()))
        with conv.lock:
            conv.turns += 1
            how = resolve(question, conv)
            if how.kind == "unresolved":
                return Answer(question=question, reason=how.reason)
            if how.kind == "more":
                return self._more(question, conv)
            answer = self.answerer.ask(how.query or question)
            answer = replace(answer, question=question,
                             read_as=how.query if how.kind == "rewritten" else None)
            # The last question asked stays the topic even when declined: "and Beijing?"
            # still reads against it. Who it is about changes only when it names someone.
            if question_problem(how.query or "") is not None:
                return answer  # not a question: nothing to carry on from
            conv.topic = how.query
            if how.kind == "standalone":
                conv.subject = subject_of(how.query or "") or conv.subject
            conv.shown = list(answer.quotes)
            if answer.answered and conversation is not None:  # alone, none can ask for more
                answer = replace(answer, has_more=self._has_more(conv))
            return answer

    def more(self, conversation: str) -> Answer:
        """The next quotes on the conversation's last question (the "More quotes" button)."""
        conv = self.conversations.get(conversation, create=False)
        if conv is None:
            return Answer(question="more", reason=("That conversation has expired; please ask "
                                                   "the question again."))
        with conv.lock:
            if conv.topic is None:
                return Answer(question="more", reason=NOTHING_TO_CONTINUE)
            return self._more("more", conv)

    def _more(self, question: str, conv: Conversation) -> Answer:
        assert conv.topic is not None
        quotes, remaining = further_quotes(self.answerer, conv.topic, conv.shown)
        if not quotes:
            return Answer(question=question, reason=NO_MORE.format(topic=_clip(conv.topic, 80)),
                          read_as=conv.topic)
        conv.shown.extend(quotes)
        # Further quotes on a question already answered: as sure as that answer was.
        return Answer(question=question, quotes=tuple(quotes), read_as=conv.topic,
                      has_more=remaining, confidence="high")

    def _has_more(self, conv: Conversation) -> bool:
        assert conv.topic is not None
        quotes, _ = further_quotes(self.answerer, conv.topic, conv.shown, count=1)
        return bool(quotes)


# -- evaluation ---------------------------------------------------------------------------------


def conversation_cases(turns: object, name: str) -> list:
    """The evaluation cases of one `{"turns": [...]}` line: a turn with a "doc" key is scored
    (doc null: the bot should decline), one without it is context only."""
    from bot.evaluate import make_case

    if not isinstance(turns, list) or not turns:
        raise ValueError("\"turns\" must be a non-empty list of {\"q\", ...} objects")
    cases = []
    for turn in turns:
        if not isinstance(turn, dict):
            raise ValueError(f"a turn must be an object, not {turn!r}")
        cases.append(make_case(turn, conversation=name, context="doc" not in turn))
    return cases


def answer_turns(answerer: Answerer, cases: list) -> list[tuple]:
    """Each scored case with its answer, every turn asked in its conversation, in order;
    cases without a conversation are asked alone."""
    talk = ConversationalAnswerer(answerer)
    out = []
    for case in cases:
        answer = talk.ask(case.q, case.conversation)
        if not case.context:
            out.append((case, answer))
    return out
