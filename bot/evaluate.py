"""`dossier-bot eval`: strict, lenient and refusal figures on question files and dossiers.

A question file is JSONL of ``{"q", "doc", "phrase"}`` lines scored against one index. A
*dossier* is a folder with ``corpus/`` and ``questions.jsonl``; a *suite* is a folder of
dossiers. Each dossier gets an index of its own (built incrementally, kept between runs), and
the figures are given per dossier and in total, so a method is judged on stories it was not
tuned on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.answer import Answer, Answerer
from bot.render import one_line
from index.embed import Embedder


class EvalFileError(ValueError):
    pass


@dataclass(frozen=True)
class Case:
    q: str
    doc: str | None
    phrase: str | None
    conversation: str | None = None  # turns of one conversation share it, in order
    context: bool = False  # a turn that sets the scene and is not scored


@dataclass
class Outcome:
    case: Case
    answer: Answer

    @property
    def answerable(self) -> bool:
        return self.case.doc is not None

    @property
    def strict(self) -> bool:
        if not self.answerable or not self.answer.answered:
            return False
        first = self.answer.quotes[0]
        return _same_doc(first.article.id, self.case.doc) and contains(first.text,
                                                                     self.case.phrase)

    @property
    def lenient(self) -> bool:
        return self.answerable and self.answer.answered and any(
            contains(q.text, self.case.phrase) for q in self.answer.quotes)


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def contains(quote: str, phrase: str | None) -> bool:
    """Whether a quote holds the expected phrase, white space collapsed and case ignored (as
    the question sets define their phrases: a hard-wrapped line must not make a miss)."""
    return phrase is not None and _norm(phrase) in _norm(quote)


@dataclass
class EvalReport:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def answerable(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.answerable]

    @property
    def off_topic(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.answerable]

    def as_dict(self) -> dict:
        a, off = self.answerable, self.off_topic
        return {
            "answerable": len(a),
            "strict": sum(o.strict for o in a),
            "lenient": sum(o.lenient for o in a),
            "answerable_declined": sum(not o.answer.answered for o in a),
            "off_topic": len(off),
            "off_topic_declined": sum(not o.answer.answered for o in off),
            # Of those declined, the ones shown the closest passages marked as unsure (the
            # low band) rather than declined plainly.
            "answerable_unsure": sum(o.answer.unsure for o in a),
            "off_topic_unsure": sum(o.answer.unsure for o in off),
            **self.words(),
            "misses": [_miss(o) for o in self.outcomes if _is_miss(o)],
        }

    def words(self) -> dict[str, float | None]:
        """How much a reader reads: mean words of the first quote and of all the quotes of a
        reply, over the answerable questions answered. Strict and lenient ask whether the
        phrase is *in* a quote, so they are read beside the quotes' length."""
        replies = [o.answer.quotes for o in self.answerable if o.answer.answered]
        if not replies:
            return {"first_quote_words": None, "reply_words": None}
        first = sum(len(q[0].text.split()) for q in replies) / len(replies)
        total = sum(len(x.text.split()) for q in replies for x in q) / len(replies)
        return {"first_quote_words": round(first, 1), "reply_words": round(total, 1)}


def load_cases(path: Path) -> list[Case]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EvalFileError(f"{path}: not UTF-8 text (byte {exc.start}); a question file is "
                            "JSON lines") from None
    cases = []
    # Lines end at "\n" only: JSON written with ensure_ascii=False may hold U+2028 in a string.
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if isinstance(raw, dict) and "turns" in raw:
                from bot.conversation import conversation_cases

                cases.extend(conversation_cases(raw["turns"], f"{path.name}:{n}"))
            elif isinstance(raw, dict):
                cases.append(make_case(raw))
            else:
                raise ValueError("not an object")
        except (ValueError, KeyError, TypeError) as exc:
            raise EvalFileError(f"{path}:{n}: not a {{\"q\", \"doc\", \"phrase\"}} nor a "
                                f"{{\"turns\": [...]}} JSON line ({exc})") from None
    if not cases:
        raise EvalFileError(f"{path}: no questions in it (one JSON object per line)")
    return cases


def make_case(raw: dict, *, conversation: str | None = None, context: bool = False) -> Case:
    """A case from one question object, its fields checked: a string question, and either
    no "doc" (the bot should decline) or an article prefix with the phrase to find."""
    q, doc, phrase = raw["q"], raw.get("doc"), raw.get("phrase")
    if not isinstance(q, str):
        raise TypeError(f"\"q\" must be a string, not {q!r}")
    if doc is not None and not (isinstance(doc, str) and doc.strip()):
        raise TypeError(f"\"doc\" must name an article (the start of its file name) or be "
                        f"null, not {doc!r}")
    if doc is not None and not isinstance(phrase, str):
        raise TypeError(f"\"phrase\" must be the words to find, not {phrase!r}")
    return Case(q, doc, phrase if isinstance(phrase, str) else None, conversation=conversation,
                context=context)


def check_docs(cases: list[Case], corpus_dir: Path) -> None:
    """Refuse a question file whose "doc" names no file of the corpus folder (a typo would
    read as the bot's miss). Checked against the files, not the index: an article the build
    skipped (a PDF over its time limit) is the bot's miss, not the file's error."""
    from index.load import scan_corpus

    ids = [p.stem for p in scan_corpus(corpus_dir)[0]]
    unknown = sorted({c.doc for c in cases if c.doc is not None
                      and not any(_same_doc(aid, c.doc) for aid in ids)})
    if unknown and not ids:
        raise EvalFileError(f"the corpus folder {corpus_dir} holds no articles")
    if unknown:
        raise EvalFileError(f"\"doc\" names no article of the corpus: {', '.join(unknown)}")


def run_eval(answerer: Answerer, cases: list[Case]) -> EvalReport:
    if any(c.conversation is not None for c in cases):
        from bot.conversation import answer_turns

        return EvalReport([Outcome(c, a) for c, a in answer_turns(answerer, cases)])
    return EvalReport([Outcome(c, answerer.ask(c.q)) for c in cases])


@dataclass(frozen=True)
class Dossier:
    """A set of questions and the corpus they are asked of."""

    name: str
    corpus: Path
    questions: Path


def is_dossier(folder: Path) -> bool:
    return (folder / "corpus").is_dir() and (folder / "questions.jsonl").is_file()


def find_dossiers(folder: Path) -> list[Dossier]:
    """The dossier ``folder`` is, or the dossiers directly inside it, by name."""
    if is_dossier(folder):
        return [Dossier(folder.name, folder / "corpus", folder / "questions.jsonl")]
    found = [Dossier(d.name, d / "corpus", d / "questions.jsonl")
             for d in sorted(folder.iterdir()) if d.is_dir() and is_dossier(d)]
    if not found:
        raise EvalFileError(f"{folder} is neither a dossier (corpus/ and questions.jsonl) nor a "
                            "folder of dossiers")
    return found


@dataclass
class SuiteReport:
    """Figures per dossier, in the order run, and their total."""

    reports: dict[str, EvalReport] = field(default_factory=dict)

    @property
    def total(self) -> EvalReport:
        return EvalReport([o for r in self.reports.values() for o in r.outcomes])

    def as_dict(self) -> dict:
        per = {name: r.as_dict() for name, r in self.reports.items()}
        total = self.total.as_dict()
        total.pop("misses")
        return {"dossiers": per, "total": total}


def run_suite(dossiers: list[Dossier], embedder: Embedder, index_root: Path, *,
              say: Callable[[str], None] = lambda _msg: None) -> SuiteReport:
    """Each dossier against an index of its own corpus under ``index_root`` (built or brought
    up to date incrementally, so a second run embeds nothing), one model for all."""
    from index.build import build_index
    from index.live import LiveIndex

    suite = SuiteReport()
    for dossier in dossiers:
        cases = load_cases(dossier.questions)
        index_dir = index_root / dossier.name
        report = build_index(dossier.corpus, index_dir, embedder)
        for p in report.problems:
            say(f"{dossier.name}: skipped {one_line(p.path)}: {one_line(p.reason)}")
        answerer = Answerer(LiveIndex(index_dir, embedder))
        suite.reports[dossier.name] = run_eval(answerer, cases)
        d = suite.reports[dossier.name].as_dict()
        say(f"{dossier.name}: strict {d['strict']}/{d['answerable']}, "
            f"off-topic declined {d['off_topic_declined']}/{d['off_topic']}")
    return suite


def _words(mean: float | None) -> str:
    return "n/a" if mean is None else f"{mean:.0f}"


def _pct(n: int, d: int) -> str:
    return f"{n}/{d} ({100.0 * n / d:.1f}%)" if d else "n/a"


def render_suite(suite: SuiteReport, seconds: float, *, misses: bool = False) -> str:
    """A table: one row per dossier, then the total; the misses first when asked for."""
    lines: list[str] = []
    if misses:
        for name, report in suite.reports.items():
            body = _render_misses(report.as_dict()["misses"])
            if body:
                lines += [f"== {name}", *body, ""]
    head = f"{'dossier':28s} {'strict':>16s} {'lenient':>16s} {'off-topic declined':>19s} " \
           f"{'answerable declined':>20s} {'words/reply':>11s}"
    lines += [head, "-" * len(head)]
    total = suite.total.as_dict()
    rows = [*((name, r.as_dict()) for name, r in suite.reports.items()), ("total", total)]
    for name, d in rows:
        n = d["answerable"]
        if name == "total":
            lines.append("-" * len(head))
        lines.append(f"{name[:28]:28s} {_pct(d['strict'], n):>16s} {_pct(d['lenient'], n):>16s} "
                     f"{_pct(d['off_topic_declined'], d['off_topic']):>19s} "
                     f"{_pct(d['answerable_declined'], n):>20s} {_words(d['reply_words']):>11s}")
    lines.append(f"declined, of which shown the closest passages as unsure: off-topic "
                 f"{total['off_topic_unsure']}/{total['off_topic_declined']}, answerable "
                 f"{total['answerable_unsure']}/{total['answerable_declined']}")
    lines.append(f"{len(suite.total.outcomes)} questions in {len(suite.reports)} dossier(s), "
                 f"{seconds:.1f} s")
    return "\n".join(lines)


def _same_doc(article_id: str, doc: str | None) -> bool:
    """Whether ``doc``, the start of a file name, names ``article_id``: "001" names
    "001-russia-asks…", not "0012-…" (a number is matched whole)."""
    if not doc or not article_id.startswith(doc):
        return False
    rest = article_id[len(doc):]
    return not (rest and doc[-1].isdigit() and rest[0].isdigit())


def _is_miss(o: Outcome) -> bool:
    return (not o.strict) if o.answerable else o.answer.answered


def _miss(o: Outcome) -> dict:
    first = o.answer.quotes[0] if o.answer.quotes else None
    return {
        "q": o.case.q, "doc": o.case.doc, "phrase": o.case.phrase,
        "declined": not o.answer.answered,
        "lenient": o.lenient,
        "quoted_doc": first.article.id if first else None,
        "quoted": first.text if first else None,
    }


def render_report(report: EvalReport, seconds: float) -> str:
    d = report.as_dict()
    lines = _render_misses(d["misses"])
    if lines:
        lines.append("")
    n = d["answerable"]
    refusal_ok = d["off_topic_declined"] == d["off_topic"] and d["answerable_declined"] == 0
    lines += [
        f"questions: {len(report.outcomes)} ({n} answerable, {d['off_topic']} off-topic) "
        f"in {seconds:.1f} s",
        f"strict:    {_pct(d['strict'], n)}",
        f"lenient:   {_pct(d['lenient'], n)}",
        f"refusal:   off-topic declined {d['off_topic_declined']}/{d['off_topic']}, "
        f"answerable declined {d['answerable_declined']}/{n}"
        + ("" if refusal_ok else "  (not perfect)"),
        f"unsure:    of those declined, shown the closest passages as unsure: off-topic "
        f"{d['off_topic_unsure']}, answerable {d['answerable_unsure']}",
        f"length:    {_words(d['first_quote_words'])} words in the first quote, "
        f"{_words(d['reply_words'])} in a reply (means over the answered questions)",
    ]
    return "\n".join(lines)


def _render_misses(misses: list[dict]) -> list[str]:
    lines = []
    for raw in misses:
        # Questions, phrases and quotes go to a terminal: on one line, without its controls.
        m = {k: one_line(v) if isinstance(v, str) else v for k, v in raw.items()}
        if m["doc"] is None:
            lines.append(f"ANSWERED (off-topic): {m['q']}\n    quoted [{m['quoted_doc']}]: "
                         f"{_short(m['quoted'])}")
        elif m["declined"]:
            lines.append(f"DECLINED: {m['q']}\n    expected [{m['doc']}]: {m['phrase']}")
        else:
            tag = "lenient only" if m["lenient"] else "miss"
            lines.append(f"MISS ({tag}): {m['q']}\n    expected [{m['doc']}]: {m['phrase']}\n"
                         f"    quoted   [{m['quoted_doc']}]: {_short(m['quoted'])}")
    return lines


def _short(text: str | None, n: int = 140) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"
