"""Serve every configured platform from one process, sharing one loaded index.

Discord runs in the asyncio loop of the main thread, Slack on its own threads (Bolt is
synchronous); both ask the same ``Answerer``. Around them: the health server, the corpus
watcher, and a graceful shutdown on SIGTERM/SIGINT that stops taking questions, lets the
questions in flight be answered and posted, and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot import health
from bot.answer import Answer, Answerer
from bot.config import ConfigError, Settings
from bot.health import HealthServer, Metrics, Readiness
from bot.service import NotTakingQuestions

log = logging.getLogger(__name__)

RESTARTING = ("The bot is restarting and is not taking new questions; please ask again "
              "in a minute.")
# Tasks discord.py starts per incoming event or interaction; an answer is being posted
# while one of them runs.
_DISCORD_WORK = ("CommandTree-invoker", "discord.py: on_message", "discord-ui-")
EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


class Gate:
    """Counts questions in flight; once closed, new questions are turned away."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._in_flight = 0
        self._closed = False

    def close(self) -> None:
        with self._cond:
            self._closed = True

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    @contextlib.contextmanager
    def enter(self) -> Iterator[bool]:
        """Yields False (and counts nothing) when closed."""
        with self._cond:
            if self._closed:
                admitted = False
            else:
                admitted = True
                self._in_flight += 1
        try:
            yield admitted
        finally:
            if admitted:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._in_flight == 0, timeout)


class ObservedAnswerer:
    """The shared Answerer as one platform sees it: gated, its work in flight and its
    rebuilds measured, and the registry to count questions in carried to the adapters'
    QuestionService, which counts each question once (bot/service.py).

    Adapters take it where they take an ``Answerer``; everything but ``ask`` and
    ``rebuild`` passes straight through.
    """

    def __init__(self, inner: Answerer, platform: str, metrics: Metrics,
                 gate: Gate | None = None) -> None:
        self._inner = inner
        self.platform = platform
        self.metrics = metrics
        self.gate = gate or Gate()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def ask(self, question: str) -> Answer:
        with self.gate.enter() as admitted:
            if not admitted:
                raise NotTakingQuestions(RESTARTING)
            self.metrics.question_started()
            try:
                return self._inner.ask(question)
            finally:
                self.metrics.question_finished()

    def rebuild(self, corpus_dir: Path) -> Any:
        try:
            report = self._inner.rebuild(corpus_dir)
        except Exception:
            self.metrics.observe_rebuild(False)
            raise
        self.metrics.observe_rebuild(True, getattr(report, "articles", None),
                                     getattr(report, "chunks", None))
        return report


# SIGHUP (a closed terminal, `kill -HUP`, some supervisors' "reload") drains like SIGTERM:
# the bot holds no configuration it could reload in place, and dying on it lost answers.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class _StopLoading(BaseException):
    """SIGTERM while the model loads: nothing is in flight yet, so just leave.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` on the way
    (the model loader has one) turns it into a load error.
    """


def _stop_loading(signum: int, _frame: object) -> None:
    raise _StopLoading


def open_answerer(settings: Settings) -> Answerer:
    """Load the index (building it when there is none) and the model, once per process."""
    from bot.runtime import make_answerer

    answerer = make_answerer(settings, say=lambda msg: log.info(msg, extra={
        "event": "index.build"}))
    answerer.live.embedder  # noqa: B018 - load the model now, not on the first question
    return answerer


@dataclass
class Server:
    """One serving process; ``run()`` blocks until shutdown and returns the exit status."""

    settings: Settings
    platforms: tuple[str, ...]
    answerer: Answerer | None = None
    slack_http: bool | None = None  # None: HTTP unless SLACK_APP_TOKEN is set
    slack_port: int | None = None
    watch: bool = False
    # The process-wide registries, so anything may report into what /metrics shows.
    metrics: Metrics = field(default_factory=lambda: health.metrics)
    readiness: Readiness = field(default_factory=lambda: health.readiness)
    on_ready: Callable[[Server], None] | None = None  # for tests and embedding
    install_signals: bool = True  # False when run off the main thread (then: request_shutdown)
    health: HealthServer | None = None
    slack_service: Any = None
    discord_bot: Any = None
    _signals: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _shutdown: asyncio.Event | None = None

    def request_shutdown(self) -> None:
        """What SIGTERM does, callable from any thread."""
        loop, event = self._loop, self._shutdown
        if loop is not None and event is not None:
            loop.call_soon_threadsafe(event.set)

    def check(self) -> None:
        """Every configuration problem at once, before the slow model load."""
        if not self.platforms:
            raise ConfigError(
                "No platform to serve: set SLACK_BOT_TOKEN (with SLACK_SIGNING_SECRET or "
                "SLACK_APP_TOKEN) and/or DISCORD_TOKEN, or use `dossier-bot chat`, which "
                "needs none. `dossier-bot config check` shows what is set.")
        problems: list[str] = []
        for platform in self.platforms:
            try:
                self.settings.require_platform(
                    platform, http=self.slack_http if platform == "slack" else None)
            except ConfigError as exc:
                problems.extend(exc.problems)
        problems.extend(self.settings.path_problems())
        if problems:
            raise ConfigError("\n".join(problems), tuple(problems))

    def run(self) -> int:
        self.check()
        for platform in self.platforms:
            self.readiness.expect(platform)
        # Until the event loop takes over, SIGTERM/Ctrl-C just end the start-up.
        previous = {sig: signal.signal(sig, _stop_loading)
                    for sig in STOP_SIGNALS if self.install_signals}
        try:
            try:
                self.health = HealthServer(self.settings.health_host, self.settings.health_port,
                                           metrics=self.metrics, readiness=self.readiness).start()
                self._load()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
            return asyncio.run(self._main())
        except _StopLoading:
            log.info("stopped while loading the index", extra={"event": "shutdown.done",
                                                                "status": EXIT_OK})
            return EXIT_OK
        finally:
            if self.health is not None:
                self.health.stop()

    def _load(self) -> None:
        if self.answerer is None:
            started = time.perf_counter()
            self.answerer = open_answerer(self.settings)
            log.info("index loaded", extra={"event": "index.loaded",
                                            "seconds": round(time.perf_counter() - started, 2)})
        self._report_index_size()
        self.readiness.set_index_loaded()

    # -- the event loop -----------------------------------------------------------------

    async def _main(self) -> int:
        loop = asyncio.get_running_loop()
        shutdown = asyncio.Event()
        self._loop, self._shutdown = loop, shutdown

        def on_signal(signum: int) -> None:
            self._signals += 1
            if self._signals > 1:
                log.warning("second %s: exiting without waiting", signal.Signals(signum).name)
                os._exit(EXIT_FAILED)
            log.info("%s received: finishing the questions in flight, then exiting",
                     signal.Signals(signum).name, extra={"event": "shutdown.begin"})
            shutdown.set()

        if self.install_signals:
            for sig in STOP_SIGNALS:
                loop.add_signal_handler(sig, on_signal, sig)

        gates = {p: Gate() for p in self.platforms}
        observed = {p: ObservedAnswerer(self.answerer, p, self.metrics, gates[p])
                    for p in self.platforms}
        stop_watch = threading.Event()
        discord_stop = asyncio.Event()
        discord_task: asyncio.Task[None] | None = None
        status = EXIT_OK
        try:
            if "slack" in self.platforms:
                self.slack_service = await asyncio.to_thread(self._start_slack, observed["slack"])
            if "discord" in self.platforms:
                from bot.discord import app as discord_app

                self.discord_bot = discord_app.create_discord_bot(
                    settings=self.settings, answerer=observed["discord"])
                discord_task = asyncio.create_task(discord_app.serve_discord(
                    self.settings, observed["discord"], discord_stop, bot=self.discord_bot),
                    name="discord-serve")
            if self.watch:
                self._start_watch(stop_watch)
            announced = False
            while not shutdown.is_set():
                self._update_readiness()
                if not announced and self.readiness.report()["ready"]:
                    announced = True
                    log.info("ready", extra={"event": "ready",
                                             "platforms": ",".join(self.platforms)})
                    if self.on_ready is not None:
                        self.on_ready(self)
                if discord_task is not None and discord_task.done():
                    discord_task.result()  # raises why Discord ended (e.g. a rejected token)
                    raise RuntimeError("the Discord connection ended unexpectedly")
                if self.slack_service is not None and self.slack_service.stopped:
                    raise RuntimeError("the Slack adapter stopped unexpectedly")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(shutdown.wait(), timeout=0.5)
        except ConfigError:
            raise
        except Exception:
            log.exception("a platform failed; shutting down", extra={"event": "shutdown.error"})
            status = EXIT_FAILED
        finally:
            await self._drain(gates, discord_stop, discord_task)
            stop_watch.set()
        log.info("stopped", extra={"event": "shutdown.done", "status": status})
        return status

    async def _drain(self, gates: dict[str, Gate], discord_stop: asyncio.Event,
                     discord_task: asyncio.Task[None] | None) -> None:
        self.readiness.set_draining()
        grace = self.settings.shutdown_grace
        deadline = time.monotonic() + grace
        waits = []
        if self.slack_service is not None:
            # Stops the HTTP server / socket first, then waits for Bolt's listener threads,
            # which are answering and posting the questions already taken.
            waits.append(asyncio.to_thread(self.slack_service.stop, wait=True))
        if discord_task is not None:
            # Gateway events keep arriving until the bot disconnects: turn new questions
            # away with a short message while the ones in flight are answered and posted.
            gates["discord"].close()
            waits.append(self._drain_discord(gates["discord"], deadline))
        if waits:
            try:
                await asyncio.wait_for(asyncio.gather(*waits), timeout=grace)
            except TimeoutError:
                log.warning("questions still in flight after %.0f s; exiting anyway", grace,
                            extra={"event": "shutdown.timeout"})
        if discord_task is not None:
            discord_stop.set()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(discord_task, timeout=10)

    async def _drain_discord(self, gate: Gate, deadline: float) -> None:
        me = asyncio.current_task()
        while time.monotonic() < deadline:
            busy = [t for t in asyncio.all_tasks() if t is not me and not t.done()
                    and t.get_name().startswith(_DISCORD_WORK)]
            if not busy and gate.in_flight == 0:
                return
            await asyncio.sleep(0.05)

    # -- pieces -------------------------------------------------------------------------

    def _start_slack(self, answerer: ObservedAnswerer) -> Any:
        from bot.slack import app as slack_app

        http = self.slack_http if self.slack_http is not None else (
            self.settings.slack_mode == "http")
        return slack_app.start(self.settings, answerer, http=http,  # type: ignore[arg-type]
                               port=self.slack_port or self.settings.slack_port,
                               host=self.settings.health_host)

    def _start_watch(self, stop: threading.Event) -> None:
        from bot.watch import index_staleness, rebuilder, start_watch_thread

        inner = self.answerer
        settings = self.settings

        def rebuild(corpus_dir: Path) -> Any:
            report = inner.rebuild(corpus_dir)  # type: ignore[union-attr]
            self._report_index_size()
            return report

        def stale() -> bool:  # changes made before watching began are built at once
            return index_staleness(settings.corpus_dir, settings.index_dir,
                                   settings.embed_model) is not None

        start_watch_thread(settings.corpus_dir,
                           rebuilder(rebuild, settings.corpus_dir, self.metrics), stop,
                           stale=stale)
        log.info("watching %s for changes", self.settings.corpus_dir,
                 extra={"event": "watch.start"})

    def _update_readiness(self) -> None:
        svc = self.slack_service
        if svc is not None:
            connected = not svc.stopped
            socket = getattr(svc, "_socket", None)
            if connected and socket is not None:
                connected = bool(socket.client.is_connected())
            self.readiness.set_platform("slack", connected)
        bot = self.discord_bot
        if bot is not None:
            ws = getattr(bot, "ws", None)
            connected = (bot.is_ready() and not bot.is_closed() and ws is not None
                         and bool(getattr(ws, "open", False)))
            self.readiness.set_platform("discord", connected)

    def _report_index_size(self) -> None:
        try:
            sources = self.answerer.sources()  # type: ignore[union-attr]
        except Exception:  # metrics must never take the bot down
            log.debug("could not count the index for metrics", exc_info=True)
            return
        self.metrics.set_index_size(len(sources), sum(s.passages for s in sources))
