"""/healthz, /readyz and /metrics over loopback, and the metrics registry under threads."""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from bot.health import HealthServer, Metrics, Readiness

SAMPLE = re.compile(r'^([a-z_]+)(\{[a-z_]+="[^"]*"(?:,[a-z_]+="[^"]*")*\})? (-?[0-9.e+]+)$')


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def parse_metrics(text: str) -> dict[str, float]:
    """Every sample line must be valid exposition format; returns {'name{labels}': value}."""
    samples: dict[str, float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        name = match.group(1)
        assert name in typed or re.sub(r"_(bucket|sum|count)$", "", name) in typed, name
        samples[name + (match.group(2) or "")] = float(match.group(3))
    return samples


@pytest.fixture
def server() -> Iterator[HealthServer]:
    with HealthServer("127.0.0.1", 0, metrics=Metrics(), readiness=Readiness(["slack"])) as s:
        yield s


def test_healthz_is_alive_before_anything_is_loaded(server: HealthServer) -> None:
    status, ctype, body = get(server.url + "/healthz")
    assert status == 200 and ctype == "application/json"
    assert json.loads(body) == {"status": "ok"}


def test_readyz_follows_index_platforms_and_draining(server: HealthServer) -> None:
    status, _, body = get(server.url + "/readyz")
    assert status == 503
    assert json.loads(body) == {"ready": False, "index_loaded": False,
                                "platforms": {"slack": False}, "draining": False}
    server.readiness.set_index_loaded()
    assert get(server.url + "/readyz")[0] == 503  # slack not connected yet
    server.readiness.set_platform("slack", True)
    status, _, body = get(server.url + "/readyz")
    assert status == 200 and json.loads(body)["ready"] is True
    server.readiness.set_platform("slack", False)  # lost the connection
    assert get(server.url + "/readyz")[0] == 503
    server.readiness.set_platform("slack", True)
    server.readiness.set_draining()
    status, _, body = get(server.url + "/readyz")
    assert status == 503 and json.loads(body)["draining"] is True


def test_metrics_are_prometheus_text(server: HealthServer) -> None:
    m = server.metrics
    m.observe_question("slack", 0.04, "answered")
    m.observe_question("slack", 0.3, "declined")
    m.observe_question("discord", 7.0, "error")
    m.observe_question("slack", 0.2, "answered")
    m.set_index_size(5, 120)
    m.observe_rebuild(True, 6, 130)
    status, ctype, body = get(server.url + "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    s = parse_metrics(body)
    assert s['dossier_questions_total{platform="slack",outcome="answered"}'] == 2
    assert s['dossier_questions_total{platform="slack",outcome="declined"}'] == 1
    assert s['dossier_declines_total{platform="slack"}'] == 1
    assert s['dossier_errors_total{platform="discord"}'] == 1
    assert 'dossier_errors_total{platform="slack"}' not in s
    assert s['dossier_question_seconds_count{platform="slack"}'] == 3
    assert s['dossier_question_seconds_sum{platform="slack"}'] == pytest.approx(0.54)
    buckets = [(k, v) for k, v in s.items()
               if k.startswith('dossier_question_seconds_bucket{platform="slack"')]
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert s['dossier_question_seconds_bucket{platform="slack",le="0.05"}'] == 1
    assert s['dossier_question_seconds_bucket{platform="slack",le="0.25"}'] == 2
    assert s['dossier_question_seconds_bucket{platform="slack",le="+Inf"}'] == 3
    assert s['dossier_question_seconds_bucket{platform="discord",le="5"}'] == 0
    assert s["dossier_index_articles"] == 6 and s["dossier_index_passages"] == 130
    assert s['dossier_index_rebuilds_total{result="ok"}'] == 1
    assert s["dossier_questions_in_flight"] == 0


def test_unknown_path_and_bad_outcome(server: HealthServer) -> None:
    status, _, body = get(server.url + "/admin")
    assert status == 404 and "/metrics" in body
    with pytest.raises(ValueError, match="outcome must be one of"):
        server.metrics.observe_question("slack", 0.1, "maybe")


def test_metrics_count_exactly_under_threads() -> None:
    m = Metrics()
    per_thread, threads = 400, 8

    def work(n: int) -> None:
        for i in range(per_thread):
            m.question_started()
            m.observe_question(f"p{n % 2}", i / 1000, "answered" if i % 4 else "declined")
            m.question_finished()
            if i % 50 == 0:
                m.render()

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    s = parse_metrics(m.render())
    total = sum(v for k, v in s.items() if k.startswith("dossier_questions_total"))
    assert total == per_thread * threads
    assert s['dossier_declines_total{platform="p0"}'] == per_thread * threads / 2 / 4
    assert s['dossier_question_seconds_count{platform="p1"}'] == per_thread * threads / 2
    assert m.in_flight == 0
