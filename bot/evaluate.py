"""`dossier-bot eval`: strict, lenient and refusal figures on a JSONL question file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from bot.answer import Answer, Answerer


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
        return _same_doc(first.article.id, self.case.doc) and self.case.phrase in first.text

    @property
    def lenient(self) -> bool:
        return self.answerable and self.answer.answered and any(
            self.case.phrase in q.text for q in self.answer.quotes)


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
            "misses": [_miss(o) for o in self.outcomes if _is_miss(o)],
        }


def load_cases(path: Path) -> list[Case]:
    cases = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if isinstance(raw, dict) and "turns" in raw:
                from bot.conversation import conversation_cases

                cases.extend(conversation_cases(raw["turns"], f"{path.name}:{n}"))
            else:
                cases.append(Case(str(raw["q"]), raw.get("doc"), raw.get("phrase")))
        except (ValueError, KeyError, TypeError) as exc:
            raise EvalFileError(f"{path}:{n}: not a {{\"q\", \"doc\", \"phrase\"}} nor a "
                                f"{{\"turns\": [...]}} JSON line ({exc})") from None
    return cases


def run_eval(answerer: Answerer, cases: list[Case]) -> EvalReport:
    if any(c.conversation is not None for c in cases):
        from bot.conversation import answer_turns

        return EvalReport([Outcome(c, a) for c, a in answer_turns(answerer, cases)])
    return EvalReport([Outcome(c, answerer.ask(c.q)) for c in cases])


def _same_doc(article_id: str, doc: str | None) -> bool:
    return doc is not None and (article_id == doc or article_id.startswith(doc))


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


def _pct(n: int, d: int) -> str:
    return f"{n}/{d} ({100.0 * n / d:.1f}%)" if d else "n/a"


def render_report(report: EvalReport, seconds: float) -> str:
    d = report.as_dict()
    lines = []
    for m in d["misses"]:
        if m["doc"] is None:
            lines.append(f"ANSWERED (off-topic): {m['q']}\n    quoted [{m['quoted_doc']}]: "
                         f"{_short(m['quoted'])}")
        elif m["declined"]:
            lines.append(f"DECLINED: {m['q']}\n    expected [{m['doc']}]: {m['phrase']}")
        else:
            tag = "lenient only" if m["lenient"] else "miss"
            lines.append(f"MISS ({tag}): {m['q']}\n    expected [{m['doc']}]: {m['phrase']}\n"
                         f"    quoted   [{m['quoted_doc']}]: {_short(m['quoted'])}")
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
    ]
    return "\n".join(lines)


def _short(text: str | None, n: int = 140) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"
