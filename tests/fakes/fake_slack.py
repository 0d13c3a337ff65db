"""A fake of what lies beyond the network for Slack: the Web API, response_url and Socket Mode.

``FakeSlack`` is an HTTP server on 127.0.0.1 answering the Web API methods the bot calls
(``auth.test``, ``chat.postMessage``, ``chat.postEphemeral``, ``apps.connections.open``) and
``response_url`` posts, recording every call. ``FakeSocketMode`` is a WebSocket server that
speaks Slack's Socket Mode envelope protocol: ``hello`` on connect, envelopes out, acks in.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

BOT_TOKEN = "xoxb-1111-2222-fakebottoken"
APP_TOKEN = "xapp-1-A111-3333-fakeapptoken"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_USER_ID = "UBOTDOSSIER"
TEAM_ID = "T0DOSSIER"


@dataclass(frozen=True)
class Call:
    """One request the bot made: a Web API method, or ``response_url`` with its path."""

    method: str
    params: dict[str, Any]
    token: str | None
    path: str
    at: float = 0.0  # time.perf_counter() when the request arrived

    @property
    def text(self) -> str:
        return str(self.params.get("text") or "")

    @property
    def blocks(self) -> list[dict[str, Any]]:
        return list(self.params.get("blocks") or [])

    def block_texts(self) -> list[str]:
        """Every mrkdwn/plain text in the blocks, in order (not the literal rich-text quotes)."""
        out: list[str] = []
        for block in self.blocks:
            if isinstance(block.get("text"), dict):
                out.append(block["text"]["text"])
            for element in block.get("elements") or []:
                if isinstance(element.get("text"), dict):
                    out.append(element["text"]["text"])
                elif isinstance(element.get("text"), str):
                    out.append(element["text"])
        return out

    def rich_text_leaves(self) -> list[dict[str, Any]]:
        """Every leaf element (text, user, broadcast, link, ...) of the rich_text blocks."""
        out: list[dict[str, Any]] = []

        def walk(element: dict[str, Any]) -> None:
            if isinstance(element.get("elements"), list):
                for child in element["elements"]:
                    walk(child)
            else:
                out.append(element)

        for block in self.blocks:
            if block.get("type") == "rich_text":
                walk(block)
        return out

    def quotes(self) -> list[str]:
        """The literal text of each rich-text quote, its text elements joined."""
        return ["".join(leaf.get("text", "") for leaf in quote["elements"])
                for block in self.blocks if block.get("type") == "rich_text"
                for quote in block["elements"] if quote.get("type") == "rich_text_quote"]

    def buttons(self) -> list[dict[str, Any]]:
        return [e for b in self.blocks if b.get("type") == "actions" for e in b["elements"]]


class FakeSlack:
    """Use as a context manager; ``api_url`` goes into ``SLACK_API_URL``."""

    def __init__(self, *, bot_token: str = BOT_TOKEN, app_token: str = APP_TOKEN,
                 bot_user_id: str = BOT_USER_ID) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.bot_user_id = bot_user_id
        self.socket_url: str | None = None  # what apps.connections.open hands out
        self._calls: list[Call] = []
        self.files: dict[str, tuple[str, str, bytes]] = {}  # id -> (name, mimetype, bytes)
        self._file_links: dict[str, tuple[str | None, bool]] = {}  # id -> (url, external)
        # method -> queued failures: (status, headers, body, whether the call is carried out
        # first, as when Slack posts and then fails to say so)
        self._failures: dict[str, list[tuple[int, dict[str, str], dict[str, Any], bool]]] = {}
        # What chat.postMessage posted, oldest first, as conversations.history/replies read it.
        self.posted: list[dict[str, Any]] = []
        self._last_ts = 0.0
        self._cond = threading.Condition()
        self._ts = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> FakeSlack:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/"

    def response_url(self) -> str:
        return f"{self.base}/response/{uuid.uuid4().hex[:12]}"

    # -- what tests look at -----------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[Call]:
        with self._cond:
            return [c for c in self._calls if method is None or c.method == method]

    def posts(self) -> list[Call]:
        """Every message the bot sent, by any route."""
        return [c for c in self.calls()
                if c.method in ("chat.postMessage", "chat.postEphemeral", "response_url")]

    def wait_for(self, method: str, count: int = 1, timeout: float = 30.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [c for c in self._calls if c.method == method]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} {method} call(s) within {timeout} s, got {len(found)}: "
                        f"{[c.method for c in self._calls]}")
                self._cond.wait(left)

    def fail_next(self, method: str, *, status: int = 429, headers: dict[str, str] | None = None,
                  body: dict[str, Any] | None = None, after_handling: bool = False) -> None:
        """Answer the next call of ``method`` with an error (e.g. 429 with Retry-After), or
        with status 0, drop the connection unanswered. ``after_handling``: carry the call out
        first (a post is posted), then fail."""
        with self._cond:
            self._failures.setdefault(method, []).append(
                (status, headers or {}, body or {"ok": False, "error": "ratelimited"},
                 after_handling))

    def add_file(self, name: str, data: bytes, mimetype: str, *,
                 url_private: str | None = None, external: bool = False) -> str:
        """A file someone uploaded; its id goes in the event's ``files``. ``url_private`` and
        ``external``: a file shared from elsewhere (Google Drive and the like)."""
        file_id = f"F{len(self.files) + 1:08d}"
        self.files[file_id] = (name, mimetype, data)
        self._file_links[file_id] = (url_private, external)
        return file_id

    def reset(self) -> None:
        with self._cond:
            self._calls.clear()

    # -- serving ------------------------------------------------------------------------------

    def _record(self, call: Call) -> None:
        with self._cond:
            self._calls.append(call)
            self._cond.notify_all()

    def _take_failure(self, method: str
                      ) -> tuple[int, dict[str, str], dict[str, Any], bool] | None:
        with self._cond:
            queue = self._failures.get(method)
            return queue.pop(0) if queue else None

    def _api(self, method: str, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        if method == "apps.connections.open":
            if token != self.app_token:
                return {"ok": False, "error": "invalid_auth"}
            if not self.socket_url:
                return {"ok": False, "error": "socket_mode_not_enabled"}
            return {"ok": True, "url": self.socket_url}
        if token != self.bot_token:
            return {"ok": False, "error": "invalid_auth" if token else "not_authed"}
        if method == "auth.test":
            return {"ok": True, "url": "https://dossier.example/", "team": "Dossier",
                    "user": "dossier-bot", "team_id": TEAM_ID, "user_id": self.bot_user_id,
                    "bot_id": "BDOSSIER", "is_enterprise_install": False}
        if method == "chat.postMessage":
            if not params.get("channel"):
                return {"ok": False, "error": "channel_not_found"}
            if not params.get("text") and not params.get("blocks"):
                return {"ok": False, "error": "no_text"}
            with self._cond:
                # Slack's ts is the posting time, unique per channel.
                self._last_ts = max(time.time(), self._last_ts + 1e-6)
                ts = f"{self._last_ts:.6f}"
                message = {"type": "message", "text": params.get("text"), "ts": ts,
                           "bot_id": "BDOSSIER", "user": self.bot_user_id,
                           "channel": params["channel"], "thread_ts": params.get("thread_ts"),
                           "metadata": params.get("metadata")}
                self.posted.append(message)
            return {"ok": True, "channel": params["channel"], "ts": ts,
                    "message": {"text": params.get("text"), "ts": ts, "bot_id": "BDOSSIER"}}
        if method in ("conversations.history", "conversations.replies"):
            return {"ok": True, "has_more": False, "messages": self._read(method, params)}
        if method == "files.info":
            found = self.files.get(str(params.get("file")))
            if found is None:
                return {"ok": False, "error": "file_not_found"}
            name, mimetype, data = found
            url, external = self._file_links.get(str(params["file"]), (None, False))
            return {"ok": True, "file": {
                "id": params["file"], "name": name, "title": name, "mimetype": mimetype,
                "filetype": name.rsplit(".", 1)[-1], "size": len(data),
                "is_external": external,
                "url_private": url or f"{self.base}/files-pri/{TEAM_ID}-{params['file']}/{name}"}}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{1700000000 + next(self._ts)}.000200"}
        return {"ok": False, "error": "unknown_method"}

    def _read(self, method: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Posted messages as Slack lists them: a channel's newest first (thread replies
        left out), or a thread's oldest first; metadata only when asked for."""
        oldest = float(params.get("oldest") or 0)
        with self._cond:
            found = [m for m in self.posted
                     if m["channel"] == params.get("channel") and float(m["ts"]) >= oldest]
        if method == "conversations.replies":
            found = [m for m in found if params.get("ts") in (m["ts"], m["thread_ts"])]
        else:
            found = [m for m in reversed(found) if not m["thread_ts"]]
        with_metadata = str(params.get("include_all_metadata")).lower() in ("1", "true")
        return [{k: v for k, v in m.items()
                 if v is not None and k != "channel" and (with_metadata or k != "metadata")}
                for m in found]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                if parts.path.startswith("/api/"):
                    params = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
                    self._call(parts.path[len("/api/"):], params, parts.path)
                    return
                # url_private: only with the bot token; without it Slack serves a login page.
                path = parts.path
                file_id = path.split("/")[2].rsplit("-", 1)[-1] if path.count("/") >= 3 else ""
                auth = self.headers.get("Authorization") or ""
                fake._record(Call("file_download", {"path": path}, auth[len("Bearer "):] or None,
                                  path, time.perf_counter()))
                if not path.startswith("/files-pri/") or file_id not in fake.files:
                    self._send(404, {}, b"not found", "text/plain")
                elif auth != f"Bearer {fake.bot_token}":
                    self._send(200, {}, b"<html>Sign in to Slack</html>", "text/html")
                else:
                    _name, mimetype, data = fake.files[file_id]
                    self._send(200, {}, data, mimetype)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                params = _parse_body(raw, self.headers.get("Content-Type") or "")
                path = urllib.parse.urlsplit(self.path).path
                if path.startswith("/response/"):
                    self._call("response_url", params, path)
                elif path.startswith("/api/"):
                    self._call(path[len("/api/"):], params, path)
                else:
                    self._send(404, {}, b"not found", "text/plain")

            def _call(self, method: str, params: dict[str, Any], path: str) -> None:
                auth = self.headers.get("Authorization") or ""
                token = auth[len("Bearer "):] if auth.startswith("Bearer ") else params.get("token")
                failure = fake._take_failure(method)
                fake._record(Call(method, params, token, path, time.perf_counter()))
                if failure:
                    status, headers, body, after_handling = failure
                    if after_handling and method != "response_url":
                        fake._api(method, params, token)
                    if status == 0:  # the connection drops before any answer
                        self.close_connection = True
                        return
                    self._send(status, headers, json.dumps(body).encode(), "application/json")
                elif method == "response_url":
                    self._send(200, {}, b"ok", "text/plain")
                else:
                    body = json.dumps(fake._api(method, params, token)).encode()
                    self._send(200, {}, body, "application/json")

            def _send(self, status: int, headers: dict[str, str], body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        return Handler


class SlowSlack(FakeSlack):
    """chat.postMessage into C0SLOW takes ``delay`` seconds (a slow Web API); other calls
    answer at once."""

    def __init__(self, *args: Any, delay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delay = delay

    def _api(self, method: str, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        if method == "chat.postMessage" and params.get("channel") == "C0SLOW":
            time.sleep(self.delay)
        return super()._api(method, params, token)


def _parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    text = raw.decode("utf-8")
    if "json" in content_type:
        data = json.loads(text or "{}")
    else:
        data = {k: v[-1] for k, v in urllib.parse.parse_qs(text).items()}
    for key in ("blocks", "attachments"):
        if isinstance(data.get(key), str):
            data[key] = json.loads(data[key])
    return data


# -- signed requests, as Slack sends them ------------------------------------------------------


def sign(body: str, *, secret: str = SIGNING_SECRET,
         timestamp: int | None = None) -> dict[str, str]:
    """Slack's v0 request signature headers for ``body``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def post_to_app(url: str, body: str, *, content_type: str, headers: dict[str, str] | None = None,
                secret: str = SIGNING_SECRET, timeout: float = 10.0) -> tuple[int, str]:
    """POST a signed request to the bot's /slack/events; returns (status, body)."""
    all_headers = {"Content-Type": content_type, **sign(body, secret=secret), **(headers or {})}
    request = urllib.request.Request(url, data=body.encode(), headers=all_headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def event_body(event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """An Events API ``event_callback`` wrapping ``event``."""
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "api_app_id": "ADOSSIER",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
    }


def command_form(command: str, text: str, *, user_id: str, response_url: str,
                 channel_id: str = "C0GENERAL") -> str:
    return urllib.parse.urlencode({
        "token": "legacy-verification-token", "team_id": TEAM_ID, "team_domain": "dossier",
        "channel_id": channel_id, "channel_name": "general", "user_id": user_id,
        "user_name": user_id.lower(), "command": command, "text": text,
        "api_app_id": "ADOSSIER", "response_url": response_url,
        "trigger_id": f"{int(time.time())}.1234.abcd",
    })


def block_actions_form(action: dict[str, Any], *, user_id: str, response_url: str,
                       channel_id: str = "C0GENERAL",
                       message: dict[str, Any] | None = None) -> str:
    """A button click as Slack sends it: form-encoded ``payload=`` JSON."""
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_id.lower(), "team_id": TEAM_ID},
        "api_app_id": "ADOSSIER",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": "1700000000.000100",
                      "channel_id": channel_id, "is_ephemeral": True},
        "trigger_id": f"{int(time.time())}.1234.abcd",
        "team": {"id": TEAM_ID, "domain": "dossier"},
        "channel": {"id": channel_id, "name": "general"},
        "response_url": response_url,
        "actions": [{**action, "block_id": "dossier_answer_actions",
                     "action_ts": f"{time.time():.6f}"}],
    }
    if message is not None:  # a button on a public message carries that message
        payload["message"] = message
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


# -- Socket Mode ---------------------------------------------------------------------------------


class FakeSocketMode:
    """A WebSocket server speaking Socket Mode: ``hello`` first, then envelopes and acks."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._connections: list[ServerConnection] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self._server = serve(self._handle, "127.0.0.1", 0)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeSocketMode:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()

    @property
    def url(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/link/?ticket=fake-ticket"

    def _handle(self, connection: ServerConnection) -> None:
        with self._cond:
            self._connections.append(connection)
            self._cond.notify_all()
        connection.send(json.dumps({
            "type": "hello", "num_connections": 1,
            "debug_info": {"host": "fake-socket-mode", "approximate_connection_time": 18060},
            "connection_info": {"app_id": "ADOSSIER"},
        }))
        try:
            for message in connection:
                data = json.loads(message)
                with self._cond:
                    if "envelope_id" in data:
                        self.acks[data["envelope_id"]] = data
                    self._cond.notify_all()
        except ConnectionClosed:  # the bot dropped the socket without a close frame
            pass

    def wait_connected(self, timeout: float = 10.0) -> ServerConnection:
        with self._cond:
            if not self._cond.wait_for(lambda: self._connections, timeout):
                raise AssertionError("the bot never opened a Socket Mode connection")
            return self._connections[-1]

    def send(self, kind: str, payload: dict[str, Any], *, retry_attempt: int = 0,
             retry_reason: str = "") -> str:
        """Send one envelope (``events_api``, ``slash_commands``, ``interactive``)."""
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                                    "accepts_response_payload": kind != "events_api"}
        if kind == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason
        self.wait_connected().send(json.dumps(envelope))
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: envelope_id in self.acks, timeout):
                raise AssertionError(f"envelope {envelope_id} was never acknowledged")
            return self.acks[envelope_id]
