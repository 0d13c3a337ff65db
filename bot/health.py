"""Liveness, readiness and Prometheus metrics over HTTP (``/healthz``, ``/readyz``, ``/metrics``).

The server runs in its own threads so it answers while the model loads and while the
chat adapters are busy; the orchestrator (``bot.serve``) and adapters report into one
``Metrics`` and one ``Readiness`` object, both safe to call from any thread.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

OUTCOMES = ("answered", "declined", "rejected", "error")
# Seconds; a question on CPU takes tens to hundreds of milliseconds, a cold one a few seconds.
BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """Counters and a latency histogram per platform, in the Prometheus text format.

    ``outcome`` is ``answered`` (quotes given), ``declined`` (the dossier does not cover it),
    ``rejected`` (the question itself was unusable, or the bot was shutting down) or ``error``.
    """

    def __init__(self, buckets: Iterable[float] = BUCKETS) -> None:
        self._lock = threading.Lock()
        self._buckets = tuple(sorted(buckets))
        self._questions: dict[tuple[str, str], int] = {}
        self._hist: dict[str, list[float]] = {}  # platform -> [count per bucket..., sum, count]
        self._in_flight = 0
        self._rebuilds: dict[str, int] = {}
        self._index: dict[str, float] = {}
        self._started = time.time()

    def observe_question(self, platform: str, seconds: float, outcome: str) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
        with self._lock:
            key = (platform, outcome)
            self._questions[key] = self._questions.get(key, 0) + 1
            hist = self._hist.setdefault(platform, [0.0] * (len(self._buckets) + 2))
            for i, bound in enumerate(self._buckets):
                if seconds <= bound:
                    hist[i] += 1
            hist[-2] += seconds
            hist[-1] += 1

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
            key = "ok" if ok else "error"
            self._rebuilds[key] = self._rebuilds.get(key, 0) + 1
            if articles is not None:
                self._index["articles"] = articles
            if passages is not None:
                self._index["passages"] = passages

    def set_index_size(self, articles: int, passages: int) -> None:
        with self._lock:
            self._index["articles"] = articles
            self._index["passages"] = passages

    def count(self, platform: str, outcome: str) -> int:
        with self._lock:
            return self._questions.get((platform, outcome), 0)

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        with self._lock:
            questions = dict(self._questions)
            hist = {k: list(v) for k, v in self._hist.items()}
            in_flight = self._in_flight
            rebuilds = dict(self._rebuilds)
            index = dict(self._index)
        lines = [
            "# HELP dossier_questions_total Questions handled, by platform and outcome.",
            "# TYPE dossier_questions_total counter",
        ]
        for (platform, outcome), n in sorted(questions.items()):
            lines.append(f'dossier_questions_total{{platform="{_esc(platform)}",'
                         f'outcome="{outcome}"}} {n}')
        lines += ["# HELP dossier_declines_total Questions the dossier does not cover.",
                  "# TYPE dossier_declines_total counter"]
        lines += _per_platform("dossier_declines_total", questions, "declined")
        lines += ["# HELP dossier_errors_total Questions that failed with an error.",
                  "# TYPE dossier_errors_total counter"]
        lines += _per_platform("dossier_errors_total", questions, "error")
        lines += ["# HELP dossier_question_seconds Time to answer a question.",
                  "# TYPE dossier_question_seconds histogram"]
        for platform, h in sorted(hist.items()):
            label = f'platform="{_esc(platform)}"'
            for bound, n in zip(self._buckets, h, strict=False):
                lines.append(f'dossier_question_seconds_bucket{{{label},le="{bound:g}"}} {n:g}')
            lines.append(f'dossier_question_seconds_bucket{{{label},le="+Inf"}} {h[-1]:g}')
            lines.append(f"dossier_question_seconds_sum{{{label}}} {h[-2]:.6f}")
            lines.append(f"dossier_question_seconds_count{{{label}}} {h[-1]:g}")
        lines += ["# HELP dossier_questions_in_flight Questions being answered now.",
                  "# TYPE dossier_questions_in_flight gauge",
                  f"dossier_questions_in_flight {in_flight}",
                  "# HELP dossier_index_rebuilds_total Index rebuilds by result.",
                  "# TYPE dossier_index_rebuilds_total counter"]
        for result, n in sorted(rebuilds.items()):
            lines.append(f'dossier_index_rebuilds_total{{result="{result}"}} {n}')
        for name, value in sorted(index.items()):
            lines += [f"# HELP dossier_index_{name} {name.capitalize()} in the loaded index.",
                      f"# TYPE dossier_index_{name} gauge",
                      f"dossier_index_{name} {value:g}"]
        lines += ["# HELP dossier_start_time_seconds Unix time the process started.",
                  "# TYPE dossier_start_time_seconds gauge",
                  f"dossier_start_time_seconds {self._started:.3f}"]
        return "\n".join(lines) + "\n"


def _per_platform(name: str, questions: dict[tuple[str, str], int], outcome: str) -> list[str]:
    return [f'{name}{{platform="{_esc(p)}"}} {n}'
            for (p, o), n in sorted(questions.items()) if o == outcome]


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


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
metrics = Metrics()
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
                self._send(200, CONTENT_TYPE, server.metrics.render())
            else:
                self._send(404, "application/json",
                           json.dumps({"error": "not found",
                                       "paths": ["/healthz", "/readyz", "/metrics"]}))

        def do_HEAD(self) -> None:
            self.do_GET()

        def _send(self, status: int, content_type: str, body: str) -> None:
            data = body.encode("utf-8")
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
