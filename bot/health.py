"""Liveness, readiness and Prometheus metrics over HTTP (``/healthz``, ``/readyz``, ``/metrics``).

The server runs in its own threads so it answers while the model loads and while the
chat adapters are busy; the orchestrator (``bot.serve``) and adapters report into one
``Metrics`` and one ``Readiness`` object, both safe to call from any thread.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.samples import Sample

log = logging.getLogger(__name__)

OUTCOMES = ("answered", "declined", "rejected", "error")
# Seconds; a question on CPU takes tens to hundreds of milliseconds, a cold one a few seconds.
BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# The exposed names stay exactly what dashboards and alerts already use: no extra
# ``*_created`` series beside every counter and histogram. The switch is process-wide in
# prometheus_client, and nothing else in this process exports metrics.
disable_created_metrics()


class Metrics:
    """Counters and a latency histogram per platform, on a ``prometheus_client`` registry.

    ``outcome`` is ``answered`` (quotes given), ``declined`` (the dossier does not cover it),
    ``rejected`` (the question itself was unusable, or the bot was shutting down) or ``error``.
    Each instance has its own ``registry`` so tests (and embedded servers) do not share counts;
    ``process_metrics`` adds the process, platform and garbage-collector collectors.
    """

    def __init__(self, buckets: Iterable[float] = BUCKETS, *,
                 process_metrics: bool = False) -> None:
        # Held while a question is recorded and while a scrape is written, so one scrape never
        # shows a question in dossier_questions_total but not yet in the histogram.
        self._lock = threading.Lock()
        self._in_flight = 0
        self._index: dict[str, float] = {}
        self.registry = CollectorRegistry()
        self._questions = Counter("dossier_questions_total",
                                  "Questions handled, by platform and outcome.",
                                  ["platform", "outcome"], registry=self.registry)
        self.registry.register(_Derived(self))
        self._seconds = Histogram("dossier_question_seconds", "Time to answer a question.",
                                  ["platform"], buckets=sorted(buckets), registry=self.registry)
        Gauge("dossier_questions_in_flight", "Questions being answered now.",
              registry=self.registry).set_function(lambda: self._in_flight)
        self._rebuilds = Counter("dossier_index_rebuilds_total", "Index rebuilds by result.",
                                 ["result"], registry=self.registry)
        self.registry.register(_IndexSize(self))
        Gauge("dossier_start_time_seconds", "Unix time the process started.",
              registry=self.registry).set_to_current_time()
        if process_metrics:
            ProcessCollector(registry=self.registry)  # process_*: memory, CPU, fds (Linux)
            PlatformCollector(registry=self.registry)  # python_info
            GCCollector(registry=self.registry)  # python_gc_*

    def observe_question(self, platform: str, seconds: float, outcome: str) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
        with self._lock:
            self._questions.labels(platform, outcome).inc()
            self._seconds.labels(platform).observe(seconds)

    def question_started(self) -> None:
        with self._lock:
            self._in_flight += 1

    def question_finished(self) -> None:
        with self._lock:
            self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def observe_rebuild(self, ok: bool, articles: int | None = None,
                        passages: int | None = None) -> None:
        with self._lock:
            self._rebuilds.labels("ok" if ok else "error").inc()
            if articles is not None:
                self._index["articles"] = articles
            if passages is not None:
                self._index["passages"] = passages

    def set_index_size(self, articles: int, passages: int) -> None:
        with self._lock:
            self._index["articles"] = articles
            self._index["passages"] = passages

    def count(self, platform: str, outcome: str) -> int:
        # Read through collect(): ``labels()`` would create a zero series as a side effect.
        wanted = {"platform": platform, "outcome": outcome}
        for sample in _samples(self._questions.collect(), "dossier_questions_total"):
            if sample.labels == wanted:
                return int(sample.value)
        return 0

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The scrape body and its content type, in the format ``accept`` asks for.

        No Accept header gives the Prometheus text format 0.0.4; Prometheus itself usually
        asks for OpenMetrics, which prometheus_client writes too.
        """
        encoder, content_type = choose_encoder(accept or "")
        with self._lock:
            return encoder(self.registry), content_type

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        with self._lock:
            return generate_latest(self.registry).decode("utf-8")


def _samples(families: Iterable[Metric], name: str) -> Iterator[Sample]:
    return (s for family in families for s in family.samples if s.name == name)


class _Derived:
    """``dossier_declines_total`` and ``dossier_errors_total`` per platform.

    Derived from ``dossier_questions_total`` at scrape time rather than counted a second time,
    so they always equal its ``declined`` and ``error`` series in the same scrape.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return list(self._families({}))

    def collect(self) -> Iterator[Metric]:
        counts: dict[tuple[str, str], float] = {}
        for s in _samples(self._metrics._questions.collect(), "dossier_questions_total"):
            counts[s.labels["platform"], s.labels["outcome"]] = s.value
        return self._families(counts)

    @staticmethod
    def _families(counts: dict[tuple[str, str], float]) -> Iterator[Metric]:
        for name, doc, outcome in (
                ("dossier_declines_total", "Questions the dossier does not cover.", "declined"),
                ("dossier_errors_total", "Questions that failed with an error.", "error")):
            family = CounterMetricFamily(name, doc, labels=["platform"])
            for (platform, o), n in sorted(counts.items()):
                if o == outcome:
                    family.add_metric([platform], n)
            yield family


class _IndexSize:
    """``dossier_index_articles`` and ``dossier_index_passages``, absent until an index is known.

    A plain Gauge would read 0 before the first load, which looks like an empty dossier.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily(f"dossier_index_{name}", "") for name in ("articles",
                                                                              "passages")]

    def collect(self) -> Iterator[Metric]:
        # Called inside Metrics.exposition/render, which hold the lock; a copy is enough.
        index = dict(self._metrics._index)
        for name, value in sorted(index.items()):
            yield GaugeMetricFamily(f"dossier_index_{name}",
                                    f"{name.capitalize()} in the loaded index.", value=value)


class Readiness:
    """Ready when the index is loaded, every expected platform is connected, and not draining."""

    def __init__(self, platforms: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._index_loaded = False
        self._platforms: dict[str, bool] = dict.fromkeys(platforms, False)
        self._draining = False

    def expect(self, platform: str) -> None:
        with self._lock:
            self._platforms.setdefault(platform, False)

    def set_index_loaded(self, loaded: bool = True) -> None:
        with self._lock:
            self._index_loaded = loaded

    def set_platform(self, platform: str, connected: bool) -> None:
        with self._lock:
            self._platforms[platform] = connected

    def set_draining(self) -> None:
        with self._lock:
            self._draining = True

    @property
    def draining(self) -> bool:
        with self._lock:
            return self._draining

    def report(self) -> dict[str, object]:
        with self._lock:
            platforms = dict(self._platforms)
            ready = self._index_loaded and all(platforms.values()) and not self._draining
            return {"ready": ready, "index_loaded": self._index_loaded,
                    "platforms": platforms, "draining": self._draining}


# One registry per process: adapters call ``metrics.observe_question`` without being handed it.
metrics = Metrics(process_metrics=True)
readiness = Readiness()


class HealthServer:
    """``/healthz``, ``/readyz`` and ``/metrics`` on a background thread; ``port=0``: any."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, *,
                 metrics: Metrics = metrics, readiness: Readiness = readiness) -> None:
        self.metrics = metrics
        self.readiness = readiness
        handler = _handler_for(self)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = self._server.server_address[0]
        return f"http://{host}:{self.port}"

    def start(self) -> HealthServer:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={
            "poll_interval": 0.2}, name="health-server", daemon=True)
        self._thread.start()
        log.info("health server listening", extra={"event": "health.listen", "url": self.url})
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler_for(server: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "dossier-bot"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, "application/json", json.dumps({"status": "ok"}))
            elif path == "/readyz":
                report = server.readiness.report()
                self._send(200 if report["ready"] else 503, "application/json",
                           json.dumps(report))
            elif path == "/metrics":
                body, content_type = server.metrics.exposition(self.headers.get("Accept"))
                self._send(200, content_type, body)
            else:
                self._send(404, "application/json",
                           json.dumps({"error": "not found",
                                       "paths": ["/healthz", "/readyz", "/metrics"]}))

        def do_HEAD(self) -> None:
            self.do_GET()

        def _send(self, status: int, content_type: str, body: str | bytes) -> None:
            data = body if isinstance(body, bytes) else body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            # Probes every few seconds would drown the log; keep them at DEBUG.
            log.debug("health %s", format % args)

    return Handler


def probe(path: str = "/healthz", *, port: int | None = None, timeout: float = 4.0) -> int:
    """Exit status for a container HEALTHCHECK: 0 when ``path`` answers 200, else 1."""
    import os
    import urllib.error
    import urllib.request

    if port is None:
        port = int(os.environ.get("DOSSIER_HEALTH_PORT") or 8080)
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            ok = resp.status == 200
    except urllib.error.HTTPError as err:
        print(f"{url}: HTTP {err.code}")
        return 1
    except OSError as exc:
        print(f"{url}: {exc}")
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Probe the bot's health server on loopback.")
    parser.add_argument("--probe", default="/healthz", help="path to GET (default /healthz)")
    parser.add_argument("--port", type=int, default=None, help="default: DOSSIER_HEALTH_PORT")
    args = parser.parse_args()
    sys.exit(probe(args.probe, port=args.port))
