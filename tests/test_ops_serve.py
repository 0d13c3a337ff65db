"""`dossier-bot serve` as an operator runs it: one process, both platforms, SIGTERM.

The bot runs as a subprocess with the real model and index; Slack's Web API and Discord's
REST API and gateway are the fakes from tests/fakes on 127.0.0.1. The fakes can hold the
bot's reply in the air, so a question is provably in flight when SIGTERM arrives.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import poll
from fakes.fake_discord import FakeDiscord
from fakes.fake_slack import BOT_USER_ID, SIGNING_SECRET, FakeSlack, event_body, post_to_app
from test_ops_health import parse_metrics

REPO = Path(__file__).resolve().parent.parent
DOSSIER_BOT = REPO / ".venv" / "bin" / "dossier-bot"
ON_TOPIC = "Did Russia ask China for military aid?"
OFF_TOPIC = "What is a good recipe for sourdough bread?"
T = TypeVar("T")


def bot_command() -> list[str]:
    """The installed entry point; in a worktree without its own .venv, this interpreter."""
    if DOSSIER_BOT.exists():
        return [str(DOSSIER_BOT)]
    return [sys.executable, "-c", "from bot.cli import main; main()"]


class HoldingSlack(FakeSlack):
    """Holds ``chat.postMessage`` answers while ``hold`` is set, until ``release``."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = threading.Event()
        self.held = threading.Event()
        self.release = threading.Event()
        self.delivered: list[str] = []

    def _api(self, method: str, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        if method == "chat.postMessage" and self.hold.is_set():
            self.held.set()
            self.release.wait(60)
            self.delivered.append(str(params.get("text") or ""))
        return super()._api(method, params, token)


class HoldingDiscord(FakeDiscord):
    """Holds the next ``hold`` interaction follow-ups until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = 0
        self.held = 0
        self.release = threading.Event()

    async def _followup(self, request: Any) -> Any:
        if self.hold > 0:
            self.hold -= 1
            self.held += 1
            while not self.release.is_set():
                await asyncio.sleep(0.02)
        return await super()._followup(request)


class LoopThread:
    """An asyncio loop on a thread, for the fake Discord beside the synchronous test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        async def inside() -> T:
            return fn()
        return self.run(inside())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()



class World:
    def __init__(self, tmp_path: Path, built_index: Path) -> None:
        self.tmp = tmp_path
        self.slack = HoldingSlack().__enter__()
        self.loop = LoopThread()
        self.discord: HoldingDiscord = self.loop.run(HoldingDiscord().start())
        self.slack_port = free_port()
        self.health_port = free_port()
        self.log_path = tmp_path / "bot.log"
        self.env = {
            **{k: v for k, v in os.environ.items()
               if not k.startswith(("DOSSIER_", "SLACK_", "DISCORD_"))},
            "HF_HUB_OFFLINE": "1",
            "DOSSIER_CORPUS_DIR": str(REPO / "corpus"),
            "DOSSIER_INDEX_DIR": str(built_index),
            "DOSSIER_FEEDBACK_DB": str(tmp_path / "feedback.sqlite3"),
            "DOSSIER_HEALTH_HOST": "127.0.0.1",
            "DOSSIER_HEALTH_PORT": str(self.health_port),
            "DOSSIER_SLACK_PORT": str(self.slack_port),
            "DOSSIER_LOG_FORMAT": "json",
            "DOSSIER_RATE_LIMIT": "0",
            "SLACK_BOT_TOKEN": self.slack.bot_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack.api_url,
            "DISCORD_TOKEN": self.discord.token,
            "DISCORD_API_URL": self.discord.api_url,
            "DISCORD_GUILD_ID": self.discord.guild_id,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def health(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        self._log = self.log_path.open("wb")
        env = {**self.env, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen([*bot_command(), "serve", *args], env=env,
                                     cwd=self.tmp, stdout=self._log, stderr=subprocess.STDOUT)
        return self.proc

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines()
                if line.startswith("{")]

    def mention(self, text: str, ts: str) -> None:
        event = {"type": "app_mention", "user": "U0ASKER", "text": f"<@{BOT_USER_ID}> {text}",
                 "ts": ts, "event_ts": ts, "channel": "C0GENERAL", "channel_type": "channel"}
        status, _ = post_to_app(f"http://127.0.0.1:{self.slack_port}/slack/events",
                                json.dumps(event_body(event)), content_type="application/json")
        assert status == 200

    def slash(self, question: str) -> dict[str, Any]:
        payload = self.loop.call(lambda: self.discord.slash("dossier ask", {"question": question}))
        assert self.loop.run(self.discord.dispatch("INTERACTION_CREATE", payload))
        return payload

    def followups(self, payload: dict[str, Any]) -> list[Any]:
        return self.loop.call(lambda: [s for s in self.discord.sent_for(payload)
                                       if s.kind == "followup"])

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.slack.release.set()
        self.discord.release.set()
        self.loop.run(self.discord.stop())
        self.loop.close()
        self.slack.__exit__(None, None, None)
        if hasattr(self, "_log"):
            self._log.close()


@pytest.fixture
def world(tmp_path: Path, built_index: Path) -> Iterator[World]:
    w = World(tmp_path, built_index)
    try:
        yield w
    finally:
        w.close()


def test_one_process_serves_both_platforms_and_drains_on_sigterm(world: World, answerer) -> None:
    proc = world.start()  # no platform named: every platform whose token is set

    # -- ready: index loaded, Slack listening, Discord connected ---------------------------
    # Alive (and probed by Docker's HEALTHCHECK) while the model is still loading.
    poll(lambda: proc.poll() is None and _port_open(world.health_port), 60, "/healthz listening")
    assert http_get(world.health + "/healthz") == (200, '{"status": "ok"}')
    ready = poll(lambda: proc.poll() is None and _readyz(world), 120, "/readyz turning 200")
    assert ready["platforms"] == {"slack": True, "discord": True}

    # -- one question per platform; both answered from the one shared index -----------------
    world.mention(ON_TOPIC, ts="1700000100.000100")
    off = world.slash(OFF_TOPIC)
    posted = poll(lambda: world.slack.calls("chat.postMessage"), 30, "the Slack answer")
    expected = answerer.ask(ON_TOPIC)
    assert expected.answered
    assert expected.quotes[0].text.split("\n")[0][:60] in json.dumps(
        posted[0].blocks, ensure_ascii=False).replace("\\n", "\n")
    declined = poll(lambda: world.followups(off), 30, "the Discord decline")
    assert "embeds" in declined[0].body and not answerer.ask(OFF_TOPIC).answered

    metrics = parse_metrics(http_get(world.health + "/metrics")[1])
    assert metrics("dossier_questions_total", platform="slack", outcome="answered") == 1
    assert metrics("dossier_questions_total", platform="discord", outcome="declined") == 1
    assert metrics("dossier_declines_total", platform="discord") == 1
    assert metrics("dossier_question_seconds_count", platform="slack") == 1
    assert metrics("dossier_index_articles") == len(answerer.sources())
    assert metrics("process_resident_memory_bytes") > 0  # the process-wide registry

    # -- a question in flight on each platform when SIGTERM arrives ---------------------------
    world.slack.hold.set()
    world.loop.call(lambda: setattr(world.discord, "hold", 1))
    world.mention(ON_TOPIC, ts="1700000200.000200")
    in_flight = world.slash(ON_TOPIC)
    poll(world.slack.held.is_set, 30, "the Slack answer reaching Slack")
    poll(lambda: world.loop.call(lambda: world.discord.held), 30, "the Discord answer reaching "
         "Discord")
    proc.send_signal(signal.SIGTERM)

    # Stops taking questions: not ready, Slack's endpoint closed, Discord turns new ones away.
    poll(lambda: http_get(world.health + "/readyz")[0] == 503, 10, "/readyz turning 503")
    assert json.loads(http_get(world.health + "/readyz")[1])["draining"] is True
    poll(lambda: not _port_open(world.slack_port), 10, "Slack's endpoint closing")
    late = world.slash(ON_TOPIC)
    turned_away = poll(lambda: world.followups(late), 15, "the late question being answered")
    assert "restarting" in json.dumps(turned_away[0].body)
    assert proc.poll() is None, "the bot must wait for the answers in flight"

    # Slack's answer goes out; the process still waits for Discord's.
    world.slack.release.set()
    poll(lambda: world.slack.delivered, 15, "the Slack answer being delivered")
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(1.0)
    world.discord.release.set()
    assert proc.wait(30) == 0

    # Both answers in flight were delivered before the process ended.
    assert len(world.slack.delivered) == 1
    assert len(world.slack.calls("chat.postMessage")) == 2
    delivered = world.followups(in_flight)
    assert delivered and delivered[0].body["embeds"], "the Discord answer was posted"

    # -- the logs: structured, per-question, and without secrets or question texts ----------
    text = world.log_path.read_text()
    for secret in (world.env["SLACK_BOT_TOKEN"], SIGNING_SECRET, world.env["DISCORD_TOKEN"]):
        assert secret not in text
    assert ON_TOPIC not in text and OFF_TOPIC not in text
    records = world.logs()
    questions = [r for r in records if r.get("event") == "question"]
    assert {(r["platform"], r["outcome"]) for r in questions} == {
        ("slack", "answered"), ("discord", "declined"), ("discord", "answered"),
        ("discord", "rejected")}
    assert all(isinstance(r["seconds"], float) and r["chars"] > 0 for r in questions)
    assert [r for r in records if r.get("event") == "shutdown.done"][-1]["status"] == 0


def _readyz(world: World) -> dict[str, Any] | None:
    try:
        status, body = http_get(world.health + "/readyz")
    except OSError:
        return None
    return json.loads(body) if status == 200 else None


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize(("args", "env", "expected"), [
    ((), {}, "No platform to serve"),
    (("slack",), {"SLACK_BOT_TOKEN": "xoxb-1-2-abc"}, "SLACK_SIGNING_SECRET is not set"),
    (("discord",), {}, "DISCORD_TOKEN is not set"),
    ((), {"DOSSIER_HEALTH_PORT": "health"}, "DOSSIER_HEALTH_PORT='health' is not a whole"),
    ((), {"DISCORD_TOKEN": "abc.def.ghi", "DOSSIER_CORPUS_DIR": "/nonexistent/corpus"},
     "DOSSIER_CORPUS_DIR='/nonexistent/corpus' does not exist"),
])
def test_serve_refuses_to_start_with_a_clear_message(tmp_path: Path, args: tuple[str, ...],
                                                     env: dict[str, str], expected: str) -> None:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DOSSIER_", "SLACK_", "DISCORD_"))}
    (tmp_path / "corpus").mkdir()
    result = subprocess.run([*bot_command(), "serve", *args],
                            env={**clean, **env, "PYTHONPATH": str(REPO)},
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_socket_mode_server_in_process_readiness_and_shutdown(tmp_path: Path, answerer) -> None:
    """`Server` embedded in a thread (no signals): Socket Mode, readiness, request_shutdown."""
    from fakes.fake_slack import FakeSocketMode

    from bot.config import Settings
    from bot.health import Metrics, Readiness
    from bot.serve import Server

    with FakeSlack() as api, FakeSocketMode() as socket_mode:
        api.socket_url = socket_mode.url
        settings = Settings(corpus_dir=REPO / "corpus", index_dir=tmp_path / "unused",
                            feedback_db=tmp_path / "f.sqlite3", health_port=0,
                            slack_bot_token=api.bot_token, slack_app_token=api.app_token,
                            slack_api_url=api.api_url, rate_limit_per_minute=0)
        ready = threading.Event()
        server = Server(settings=settings, platforms=settings.platforms, answerer=answerer,
                        metrics=Metrics(), readiness=Readiness(), install_signals=False,
                        on_ready=lambda _s: ready.set())
        result: list[int] = []
        thread = threading.Thread(target=lambda: result.append(server.run()))
        thread.start()
        try:
            assert ready.wait(30), "never ready"
            assert server.slack_service.mode == "socket"
            status, body = http_get(server.health.url + "/readyz")
            assert status == 200 and json.loads(body)["platforms"] == {"slack": True}
            envelope = socket_mode.send("events_api", event_body({
                "type": "app_mention", "user": "U0ASKER", "ts": "1700000300.000300",
                "text": f"<@{BOT_USER_ID}> {OFF_TOPIC}", "channel": "C0GENERAL",
                "event_ts": "1700000300.000300"}))
            socket_mode.wait_ack(envelope)
            api.wait_for("chat.postMessage", 1)
            assert server.metrics.count("slack", "declined") == 1
        finally:
            server.request_shutdown()
            thread.join(30)
        assert result == [0]
        assert not thread.is_alive()


def test_sigterm_while_the_model_loads_exits_0(world: World) -> None:
    proc = world.start("slack", "--http")
    poll(lambda: proc.poll() is None and _port_open(world.health_port), 60, "/healthz listening")
    assert _readyz(world) is None  # alive, not ready: the index is still loading
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert world.slack.calls() == []  # never connected to Slack
    assert any(r.get("event") == "shutdown.done" for r in world.logs())


def test_sighup_drains_like_sigterm(world: World) -> None:
    """SIGHUP (a closed terminal, a supervisor's "reload") used to kill the process in 0.3 s
    and lose the answers it had acknowledged; now it drains and exits 0 as SIGTERM does."""
    proc = world.start("slack")
    poll(lambda: proc.poll() is None and _readyz(world), 120, "/readyz turning 200")
    world.slack.hold.set()
    world.mention(ON_TOPIC, ts="1700000300.000300")
    world.mention(OFF_TOPIC, ts="1700000300.000400")
    poll(world.slack.held.is_set, 30, "an answer reaching Slack")
    proc.send_signal(signal.SIGHUP)
    poll(lambda: http_get(world.health + "/readyz")[0] == 503, 10, "/readyz turning 503")
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(1.0)  # waits for the answers in flight
    world.slack.release.set()
    assert proc.wait(30) == 0
    assert len(world.slack.delivered) == 2, "both acknowledged questions were answered"
    assert any(r.get("event") == "shutdown.begin" and "SIGHUP" in r.get("msg", "")
               for r in world.logs())
