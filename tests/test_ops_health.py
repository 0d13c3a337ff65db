"""/healthz, /readyz and /metrics over loopback, and the metrics registry under threads."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from bot.health import BUCKETS, HealthServer, Metrics, Readiness

# Every family the bot itself exports: name -> (type, label names). Dashboards and alerts
# depend on these; docs/operations.md lists them.
DOSSIER_FAMILIES = {
    "dossier_questions": ("counter", {"platform", "outcome"}),
    "dossier_declines": ("counter", {"platform"}),
    "dossier_errors": ("counter", {"platform"}),
    "dossier_question_seconds": ("histogram", {"platform", "le"}),
    "dossier_questions_in_flight": ("gauge", set()),
    "dossier_index_rebuilds": ("counter", {"result"}),
    "dossier_index_articles": ("gauge", set()),
    "dossier_index_passages": ("gauge", set()),
    "dossier_start_time_seconds": ("gauge", set()),
}


def get(url: str, accept: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


@dataclass(frozen=True)
class Scrape:
    """One parsed exposition: family name -> (type, help), and every sample's value."""

    families: dict[str, tuple[str, str]]
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    def __call__(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def sample_names(self, prefix: str = "") -> set[str]:
        return {name for name, _ in self.samples if name.startswith(prefix)}

    def labelled(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for n, labels in self.samples if n == name]


def parse_metrics(text: str, *, openmetrics: bool = False) -> Scrape:
    """Parse with prometheus_client's own parsers, which reject malformed exposition."""
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    families: dict[str, tuple[str, str]] = {}
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in parse(text):
        families[family.name] = (family.type, family.documentation)
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = sample.value
    return Scrape(families, samples)


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
    before = parse_metrics(m.render())
    # Unknown until an index is loaded, rather than a misleading 0.
    assert before("dossier_index_articles") is None and before("dossier_questions_in_flight") == 0
    m.observe_question("slack", 0.04, "answered")
    m.observe_question("slack", 0.3, "declined")
    m.observe_question("discord", 7.0, "error")
    m.observe_question("slack", 0.2, "answered")
    m.question_started()
    m.set_index_size(5, 120)
    m.observe_rebuild(True, 6, 130)
    status, ctype, body = get(server.url + "/metrics")
    assert status == 200 and ctype == "text/plain; version=0.0.4; charset=utf-8"
    s = parse_metrics(body)

    # The same names, types and labels as before prometheus_client; no *_created series.
    assert {k: v[0] for k, v in s.families.items()} == {
        k: v[0] for k, v in DOSSIER_FAMILIES.items()}
    for name, (_, labels) in DOSSIER_FAMILIES.items():
        for series in s.labelled(name) + s.labelled(name + "_total") + s.labelled(
                name + "_bucket"):
            assert set(series) == labels, (name, series)
    assert s.families["dossier_questions"][1] == "Questions handled, by platform and outcome."
    assert not s.sample_names() & {n + "_created" for n in s.families}
    assert s.sample_names("dossier_question") == {
        "dossier_questions_total", "dossier_question_seconds_bucket",
        "dossier_question_seconds_sum", "dossier_question_seconds_count",
        "dossier_questions_in_flight"}

    assert s("dossier_questions_total", platform="slack", outcome="answered") == 2
    assert s("dossier_questions_total", platform="slack", outcome="declined") == 1
    assert s("dossier_declines_total", platform="slack") == 1
    assert s("dossier_errors_total", platform="discord") == 1
    assert s("dossier_errors_total", platform="slack") is None
    # Declines and errors are exactly the questions counter's declined/error series.
    for name, outcome in (("dossier_declines_total", "declined"),
                          ("dossier_errors_total", "error")):
        assert {lbl["platform"]: s(name, **lbl) for lbl in s.labelled(name)} == {
            lbl["platform"]: s("dossier_questions_total", **lbl)
            for lbl in s.labelled("dossier_questions_total") if lbl["outcome"] == outcome}

    assert s("dossier_question_seconds_count", platform="slack") == 3
    assert s("dossier_question_seconds_sum", platform="slack") == pytest.approx(0.54)
    bounds = sorted(float(lbl["le"]) for lbl in s.labelled("dossier_question_seconds_bucket")
                    if lbl["platform"] == "slack")
    assert bounds == [*BUCKETS, float("inf")]
    counts = [s("dossier_question_seconds_bucket", platform="slack", le=le)
              for le in ("0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "30.0", "+Inf")]
    assert counts == [0, 1, 1, 2, 3, 3, 3, 3]  # cumulative
    assert s("dossier_question_seconds_bucket", platform="discord", le="5.0") == 0
    assert s("dossier_question_seconds_bucket", platform="discord", le="10.0") == 1
    assert s("dossier_index_articles") == 6 and s("dossier_index_passages") == 130
    assert s("dossier_index_rebuilds_total", result="ok") == 1
    assert s("dossier_index_rebuilds_total", result="error") is None
    assert s("dossier_questions_in_flight") == 1
    assert s("dossier_start_time_seconds") == pytest.approx(before("dossier_start_time_seconds"))
    assert m.count("slack", "answered") == 2 and m.count("telegram", "answered") == 0


def test_metrics_negotiate_openmetrics(server: HealthServer) -> None:
    """Prometheus asks for OpenMetrics first; the same series come back in that format."""
    server.metrics.observe_question("slack", 0.1, "declined")
    status, ctype, body = get(server.url + "/metrics",
                              "application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
    assert status == 200 and ctype.startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith("# EOF\n")
    s = parse_metrics(body, openmetrics=True)
    assert s("dossier_questions_total", platform="slack", outcome="declined") == 1
    assert s("dossier_declines_total", platform="slack") == 1
    assert not any(name.endswith("_created") for name in s.sample_names())


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process metrics read /proc")
def test_process_metrics_only_on_the_process_registry() -> None:
    from bot import health

    with HealthServer("127.0.0.1", 0, readiness=Readiness()) as server:  # process-wide metrics
        assert server.metrics is health.metrics
        s = parse_metrics(get(server.url + "/metrics")[2])
    assert s("process_resident_memory_bytes") > 10_000_000  # a Python process, at least
    assert s("process_open_fds") >= 3 and s("process_cpu_seconds_total") > 0
    assert s("dossier_questions_in_flight") is not None
    assert "python_info" in s.families and "python_gc_collections" in s.families
    # Instances made for tests and embedded servers keep to their own series.
    assert not parse_metrics(Metrics().render()).sample_names("process_")


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
    total = sum(s("dossier_questions_total", **lbl)
                for lbl in s.labelled("dossier_questions_total"))
    assert total == per_thread * threads
    assert s("dossier_declines_total", platform="p0") == per_thread * threads / 2 / 4
    assert s("dossier_question_seconds_count", platform="p1") == per_thread * threads / 2
    assert s("dossier_questions_in_flight") == 0
    assert m.in_flight == 0
    assert parse_metrics(Metrics().render()).labelled("dossier_questions_total") == []
