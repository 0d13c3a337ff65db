"""Time from a dispatched /ask INTERACTION_CREATE to its follow-up, over loopback.

The real discord.py client and the real Answerer (real index, real model) run against the
fake Discord of the tests. The clock starts when the fake sends the gateway frame and stops
when the bot's follow-up webhook POST reaches the fake: gateway decode, command dispatch,
the deferral round trip, retrieval, rendering and the follow-up round trip.

    .venv/bin/python bench/discord_latency.py [--runs 20] [--corpus corpus] [--index DIR] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import Settings
from bot.discord.app import create_discord_bot, serve_discord
from bot.runtime import make_answerer
from tests.fakes.fake_discord import fake_discord

QUESTIONS = (
    "Did Russia ask China for military aid?",
    "What did the United States warn China about?",
    "How did China respond to the reports?",
    "What is a good recipe for sourdough bread?",
)


async def measure(settings: Settings, runs: int) -> dict[str, object]:
    answerer = make_answerer(settings, say=lambda m: print(m, file=sys.stderr))
    async with fake_discord() as fake:
        settings = settings.with_overrides(discord_token=fake.token,
                                           discord_api_url=fake.api_url,
                                           discord_guild_id=int(fake.guild_id))
        bot = create_discord_bot(settings=settings, answerer=answerer)
        stop = asyncio.Event()
        server = asyncio.create_task(serve_discord(settings, answerer, stop, bot=bot))
        try:
            await fake.wait_for(lambda: fake.synced and fake.intents is not None, 60)
            while bot.get_guild(int(fake.guild_id)) is None:
                await asyncio.sleep(0.01)
            to_answer: list[float] = []
            to_defer: list[float] = []
            for n in range(runs + 1):  # the first run loads the model: not counted
                ask = fake.slash("dossier ask", {"question": QUESTIONS[n % len(QUESTIONS)]})
                started = time.perf_counter()
                await fake.dispatch("INTERACTION_CREATE", ask)
                sent = await fake.wait_for(
                    lambda a=ask: [s for s in fake.sent_for(a) if s.kind == "followup"], 120)
                if n:
                    to_answer.append(sent[0].at - started)
                    to_defer.append(fake.sent_for(ask)[0].at - started)
            assert not fake.rejected, fake.rejected
            direct: list[float] = []  # the same questions without Discord, for comparison
            for n in range(1, runs + 1):
                started = time.perf_counter()
                answerer.ask(QUESTIONS[n % len(QUESTIONS)])
                direct.append(time.perf_counter() - started)
        finally:
            stop.set()
            await asyncio.wait_for(server, 15)

    def ms(seconds: float) -> float:
        return round(1000 * seconds, 1)

    return {"runs": runs, "p50_ms": ms(statistics.median(to_answer)),
            "p90_ms": ms(statistics.quantiles(to_answer, n=10, method="inclusive")[8]),
            "max_ms": ms(max(to_answer)), "defer_p50_ms": ms(statistics.median(to_defer)),
            "answerer_ask_p50_ms": ms(statistics.median(direct))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--corpus", type=Path, default=Path("corpus"))
    parser.add_argument("--index", type=Path, default=None,
                        help="index directory (default: built in a temporary folder)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env(dotenv=False).with_overrides(
            corpus_dir=args.corpus, index_dir=args.index or Path(tmp) / "index",
            feedback_db=Path(tmp) / "feedback.sqlite3", rate_limit_per_minute=0)
        result = asyncio.run(measure(settings, args.runs))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"/ask dispatched → follow-up posted, {result['runs']} runs over loopback: "
              f"p50 {result['p50_ms']} ms, p90 {result['p90_ms']} ms, max {result['max_ms']} ms "
              f"(deferral p50 {result['defer_p50_ms']} ms; answerer.ask alone p50 "
              f"{result['answerer_ask_p50_ms']} ms)")


if __name__ == "__main__":
    main()
