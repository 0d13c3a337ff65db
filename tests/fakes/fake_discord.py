"""A fake Discord on 127.0.0.1: the REST API and the gateway WebSocket the bot talks to.

It plays Discord's side as documented (https://discord.com/developers/docs): it checks the
bot token, refuses privileged intents the application was not granted, sends only the
events the bot subscribed to (and, like Discord, blanks the text of guild messages that do
not mention the bot when the message-content intent is off), rejects messages over the
embed limits with 400/50035, and treats the first follow-up after a deferred interaction as
the edit of its "thinking…" message. Everything the bot sends is kept in ``sent``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import secrets
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

API = "/api/v10"
DISCORD_EPOCH_MS = 1_420_070_400_000

# Gateway intents (https://discord.com/developers/docs/events/gateway#gateway-intents).
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
DIRECT_MESSAGES = 1 << 12
MESSAGE_CONTENT = 1 << 15
PRIVILEGED = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT

MANAGE_GUILD = 1 << 5
EPHEMERAL = 1 << 6
LOADING = 1 << 7

T = TypeVar("T")


def _u16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Sent:
    """One thing the bot sent that a person would see (or that acknowledges an interaction)."""

    kind: str  # "callback" | "followup" | "channel"
    body: dict[str, Any]
    message: dict[str, Any] | None = None  # the message Discord created or edited
    interaction_id: str | None = None
    channel_id: str | None = None
    at: float = field(default_factory=time.perf_counter)


@dataclass
class _Interaction:
    payload: dict[str, Any]
    acknowledged: bool = False
    deferred: bool = False
    original: dict[str, Any] | None = None
    original_pending: bool = False  # deferred, "thinking…" not yet replaced


class FakeDiscord:
    def __init__(self, *, token: str = "fake-bot-token.for-tests-only",
                 message_content: bool = False) -> None:
        self.token = token
        # Whether the application was granted the privileged message-content intent.
        self.granted = MESSAGE_CONTENT if message_content else 0
        self.files: dict[str, tuple[bytes, str]] = {}  # attachment id -> (bytes, type)
        self._ids = itertools.count(1)
        self.application_id = self.snowflake()
        self.bot = self._user("dossier-bot", bot=True, id=self.application_id)
        self.admin = self._user("ada")  # has Manage Server
        self.member = self._user("bob")  # has not
        self.guild_id = self.snowflake()
        self.channel_id = self.snowflake()
        self.thread_id = self.snowflake()
        self.dm_channel_id = self.snowflake()
        self.bot_role_id = self.snowflake()  # the role Discord makes for an invited bot
        self.sent: list[Sent] = []
        self.requests: list[tuple[str, str]] = []
        self.synced: dict[str, list[dict[str, Any]]] = {}  # "global" | guild id -> commands
        self.rejected: list[dict[str, Any]] = []  # 4xx bodies we answered with
        # Status codes the next channel messages fail with *after* being posted (a 5xx that
        # Discord answers once the message exists).
        self.fail_after_posting: list[int] = []
        # Follow-ups of interactions already acknowledged are refused as Discord refuses them
        # 15 minutes on: 401 "Invalid Webhook Token".
        self.tokens_expired = False
        self._nonces: dict[tuple[str, str], dict[str, Any]] = {}  # (channel, nonce) -> message
        self.intents: int | None = None
        self.gateway_query: dict[str, str] = {}
        self.interactions: dict[str, _Interaction] = {}
        self._changed = asyncio.Condition()
        self._ws: web.WebSocketResponse | None = None
        self._zlib: Any = None
        self._seq = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> FakeDiscord:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/gateway", self._gateway)
        r = app.router
        r.add_get(f"{API}/users/@me", self._me)
        r.add_get(f"{API}/oauth2/applications/@me", self._application)
        r.add_get(f"{API}/gateway/bot", self._gateway_bot)
        r.add_put(f"{API}/applications/{{app}}/commands", self._sync)
        r.add_put(f"{API}/applications/{{app}}/guilds/{{guild}}/commands", self._sync)
        r.add_post(f"{API}/interactions/{{iid}}/{{itoken}}/callback", self._callback)
        r.add_post(f"{API}/webhooks/{{app}}/{{itoken}}", self._followup)
        r.add_post(f"{API}/channels/{{cid}}/messages", self._channel_message)
        r.add_post(f"{API}/users/@me/channels", self._open_dm)
        r.add_post(f"{API}/channels/{{cid}}/typing", self._typing)
        r.add_get("/attachments/{aid}/{name}", self._attachment)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API}"

    # -- the world -------------------------------------------------------------------------

    def snowflake(self) -> str:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return str((ms << 22) | next(self._ids))

    def _user(self, name: str, *, bot: bool = False, id: str | None = None) -> dict[str, Any]:
        user: dict[str, Any] = {"id": id or self.snowflake(), "username": name,
                                "discriminator": "0", "global_name": name.title(),
                                "avatar": None, "public_flags": 0, "flags": 0}
        if bot:
            user["bot"] = True
        return user

    def _member(self, user: dict[str, Any], *, with_user: bool = True) -> dict[str, Any]:
        member: dict[str, Any] = {"roles": [], "joined_at": "2024-01-02T03:04:05.000000+00:00",
                                  "deaf": False, "mute": False, "flags": 0, "pending": False,
                                  "nick": None, "avatar": None, "premium_since": None,
                                  "communication_disabled_until": None}
        if with_user:
            member["user"] = user
        return member

    def _permissions(self, user: dict[str, Any]) -> str:
        base = 0x0000_0000_0006_4C40  # view, send, embed, read history, ... (no manage)
        return str(base | MANAGE_GUILD if user is self.admin else base)

    def guild_create(self) -> dict[str, Any]:
        text = {"id": self.channel_id, "type": 0, "name": "newsroom", "position": 0,
                "parent_id": None, "topic": None, "nsfw": False, "rate_limit_per_user": 0,
                "last_message_id": None, "permission_overwrites": []}
        thread = {"id": self.thread_id, "type": 11, "name": "china and russia",
                  "guild_id": self.guild_id, "parent_id": self.channel_id,
                  "owner_id": self.admin["id"], "last_message_id": None,
                  "rate_limit_per_user": 0, "message_count": 3, "member_count": 2, "flags": 0,
                  "thread_metadata": {"archived": False, "auto_archive_duration": 1440,
                                      "archive_timestamp": _now(), "locked": False}}
        everyone = {"id": self.guild_id, "name": "@everyone", "permissions": "1071698660929",
                    "position": 0, "color": 0, "hoist": False, "managed": False,
                    "mentionable": False, "flags": 0}
        bot_role = {**everyone, "id": self.bot_role_id, "name": self.bot["username"],
                    "position": 1, "managed": True, "tags": {"bot_id": self.bot["id"]}}
        return {
            "id": self.guild_id, "name": "Newsroom", "icon": None, "splash": None,
            "discovery_splash": None, "owner_id": self.admin["id"], "afk_channel_id": None,
            "afk_timeout": 300, "verification_level": 1, "default_message_notifications": 1,
            "explicit_content_filter": 0, "roles": [everyone, bot_role], "emojis": [],
            "stickers": [],
            "features": [], "mfa_level": 0, "application_id": None,
            "system_channel_id": self.channel_id, "system_channel_flags": 0,
            "rules_channel_id": None, "max_members": 500000, "vanity_url_code": None,
            "description": None, "banner": None, "premium_tier": 0,
            "premium_subscription_count": 0, "preferred_locale": "en-US",
            "public_updates_channel_id": None, "nsfw_level": 0,
            "premium_progress_bar_enabled": False, "safety_alerts_channel_id": None,
            "joined_at": "2024-01-02T03:04:05.000000+00:00", "large": False,
            "unavailable": False, "member_count": 3, "voice_states": [],
            "members": [self._member(self.bot)], "channels": [text], "threads": [thread],
            "presences": [], "stage_instances": [], "guild_scheduled_events": [],
            "soundboard_sounds": [], "lazy": True,
        }

    def channel_for(self, channel_id: str) -> dict[str, Any]:
        if channel_id == self.dm_channel_id:
            return {"id": channel_id, "type": 1, "last_message_id": None, "flags": 0,
                    "recipients": [self.member]}
        if channel_id == self.thread_id:
            return {"id": channel_id, "type": 11, "guild_id": self.guild_id, "name":
                    "china and russia", "parent_id": self.channel_id, "flags": 0,
                    "owner_id": self.admin["id"], "rate_limit_per_user": 0,
                    "thread_metadata": {"archived": False, "auto_archive_duration": 1440,
                                        "archive_timestamp": _now(), "locked": False}}
        return {"id": channel_id, "type": 0, "guild_id": self.guild_id, "name": "newsroom",
                "position": 0, "parent_id": None, "topic": None, "nsfw": False,
                "rate_limit_per_user": 0, "last_message_id": None, "flags": 0,
                "permissions": self._permissions(self.bot)}

    # -- payloads shaped as Discord sends them ---------------------------------------------

    def _interaction(self, type_: int, data: dict[str, Any], user: dict[str, Any],
                     channel_id: str, *, message: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
        in_dm = channel_id == self.dm_channel_id
        payload: dict[str, Any] = {
            "id": self.snowflake(), "application_id": self.application_id, "type": type_,
            "data": data, "channel": self.channel_for(channel_id), "channel_id": channel_id,
            "token": "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48), "version": 1,
            "app_permissions": self._permissions(self.bot), "locale": "en-GB",
            "entitlements": [], "attachment_size_limit": 10 * 1024 * 1024,
            "authorizing_integration_owners": {"0": self.guild_id} if not in_dm else
            {"1": user["id"]}, "context": 1 if in_dm else 0,
        }
        if in_dm:
            payload["user"] = user
        else:
            payload["guild_id"] = self.guild_id
            payload["guild"] = {"id": self.guild_id, "locale": "en-US", "features": []}
            payload["guild_locale"] = "en-US"
            payload["member"] = {**self._member(user), "permissions": self._permissions(user)}
        if message is not None:
            payload["message"] = message
        return payload

    def attachment(self, name: str, data: bytes, content_type: str) -> dict[str, Any]:
        """An attachment object as Discord sends it, its bytes served from the fake CDN."""
        aid = self.snowflake()
        self.files[aid] = (data, content_type)
        url = f"http://127.0.0.1:{self.port}/attachments/{aid}/{name}"
        return {"id": aid, "filename": name, "size": len(data), "url": url, "proxy_url": url,
                "content_type": content_type}

    def slash(self, name: str, options: dict[str, Any] | None = None, *,
              user: dict[str, Any] | None = None, channel_id: str | None = None
              ) -> dict[str, Any]:
        """INTERACTION_CREATE for a chat-input command, with the id Discord gave it at sync;
        "group sub" names a subcommand. An attachment option's value is ``attachment()``."""
        top, _, sub = name.partition(" ")
        commands = next(iter(self.synced.values()), [])
        command = next((c for c in commands if c["name"] == top), None)
        data: dict[str, Any] = {"id": command["id"] if command else self.snowflake(),
                                "name": top, "type": 1}
        if self.guild_id in self.synced:
            data["guild_id"] = self.guild_id
        opts: list[dict[str, Any]] = []
        for k, v in (options or {}).items():
            if isinstance(v, dict):  # an attachment
                data.setdefault("resolved", {}).setdefault("attachments", {})[v["id"]] = v
                opts.append({"name": k, "type": 11, "value": v["id"]})
            else:
                opts.append({"name": k, "type": 3, "value": v})
        if sub:
            data["options"] = [{"name": sub, "type": 1, "options": opts}]
        elif opts:
            data["options"] = opts
        return self._interaction(2, data, user or self.member, channel_id or self.channel_id)

    def click(self, message: dict[str, Any], custom_id: str, *,
              user: dict[str, Any] | None = None) -> dict[str, Any]:
        """INTERACTION_CREATE for a button press on a message the bot sent."""
        return self._interaction(3, {"custom_id": custom_id, "component_type": 2},
                                 user or self.member, message["channel_id"], message=message)

    def message_create(self, content: str, *, user: dict[str, Any] | None = None,
                       channel_id: str | None = None, reply_to: dict[str, Any] | None = None,
                       attachments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """MESSAGE_CREATE for a person's message; ``<@bot>`` in the text mentions the bot, and
        so does a reply to the bot's message (Discord's default: the reply pings)."""
        user = user or self.member
        channel_id = channel_id or self.channel_id
        mentions = []
        pinged = reply_to is not None and reply_to["author"]["id"] == self.bot["id"]
        if pinged or f"<@{self.bot['id']}>" in content or f"<@!{self.bot['id']}>" in content:
            mention = dict(self.bot)
            if channel_id != self.dm_channel_id:
                mention["member"] = self._member(self.bot, with_user=False)
            mentions.append(mention)
        data: dict[str, Any] = {
            "id": self.snowflake(), "channel_id": channel_id, "author": user,
            "content": content, "timestamp": _now(), "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": mentions,
            "mention_roles": [r for r in (self.bot_role_id,) if f"<@&{r}>" in content],
            "attachments": attachments or [], "embeds": [], "pinned": False, "type": 0,
            "flags": 0, "components": [], "nonce": str(secrets.randbits(60)),
        }
        if reply_to is not None:
            data["type"] = 19
            data["message_reference"] = {"type": 0, "message_id": reply_to["id"],
                                         "channel_id": channel_id}
            data["referenced_message"] = reply_to
        if channel_id != self.dm_channel_id:
            data["guild_id"] = self.guild_id
            data["member"] = self._member(user, with_user=False)
        return data

    # -- the gateway -----------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> bool:
        """Send a dispatch (op 0) as Discord would; False when the bot's intents exclude it."""
        if event == "MESSAGE_CREATE":
            in_dm = "guild_id" not in data
            if not self._subscribed(DIRECT_MESSAGES if in_dm else GUILD_MESSAGES):
                return False
            mentioned = any(u["id"] == self.bot["id"] for u in data["mentions"])
            if not in_dm and not mentioned and not self._subscribed(MESSAGE_CONTENT):
                data = {**data, "content": "", "embeds": [], "attachments": [],
                        "components": []}
        if event == "INTERACTION_CREATE":
            self.interactions[data["token"]] = _Interaction(payload=data)
        self._seq += 1
        await self._send({"op": 0, "t": event, "s": self._seq, "d": data})
        return True

    def _subscribed(self, intent: int) -> bool:
        return self.intents is not None and bool(self.intents & intent)

    async def _send(self, payload: dict[str, Any]) -> None:
        assert self._ws is not None, "the bot has not connected to the gateway"
        raw = json.dumps(payload).encode()
        if self._zlib is not None:
            # zlib-stream transport compression: one shared stream, each payload ends in a
            # sync flush (0x0000FFFF), as the bot asked for in the URL.
            frame = self._zlib.compress(raw) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
            await self._ws.send_bytes(frame)
        else:
            await self._ws.send_str(raw.decode())

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.gateway_query = dict(request.query)
        self._ws = ws
        self._zlib = zlib.compressobj() if request.query.get("compress") == "zlib-stream" else None
        await self._send({"op": 10, "s": None, "t": None,
                          "d": {"heartbeat_interval": 41250}})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            op = frame.get("op")
            if op == 1:
                await self._send({"op": 11, "s": None, "t": None, "d": None})
            elif op == 2:
                await self._identify(ws, frame["d"])
            elif op == 6:  # no sessions to resume here: ask for a fresh IDENTIFY
                await self._send({"op": 9, "s": None, "t": None, "d": False})
        return ws

    async def _identify(self, ws: web.WebSocketResponse, d: dict[str, Any]) -> None:
        if d.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        intents = int(d.get("intents", 0))
        if intents & PRIVILEGED & ~self.granted:  # a privileged intent it was not granted
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        self.intents = intents
        self._seq += 1
        await self._send({"op": 0, "t": "READY", "s": self._seq, "d": {
            "v": 10, "user": {**self.bot, "verified": True, "mfa_enabled": False,
                              "email": None},
            "guilds": [{"id": self.guild_id, "unavailable": True}],
            "session_id": secrets.token_hex(16),
            "resume_gateway_url": f"ws://127.0.0.1:{self.port}/gateway",
            "application": {"id": self.application_id, "flags": 0},
            "private_channels": [], "relationships": [], "presences": [],
            "guild_join_requests": [], "geo_ordered_rtc_regions": [],
        }})
        if intents & GUILDS:
            self._seq += 1
            await self._send({"op": 0, "t": "GUILD_CREATE", "s": self._seq,
                              "d": self.guild_create()})
        await self._notify()

    # -- REST ------------------------------------------------------------------------------

    @web.middleware
    async def _record(self, request: web.Request,
                      handler: Callable[..., Any]) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        needs_auth = request.path.startswith(API) and not request.path.startswith(
            (f"{API}/webhooks/", f"{API}/interactions/"))
        if needs_auth and request.headers.get("Authorization") != f"Bot {self.token}":
            return self._error(401, 0, "401: Unauthorized")
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return self._error(404, 0, "404: Not Found")

    def _error(self, status: int, code: int, message: str, errors: Any = None) -> web.Response:
        body: dict[str, Any] = {"message": message, "code": code}
        if errors is not None:
            body["errors"] = errors
        self.rejected.append(body)
        return _json(body, status=status)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            return json.loads(str(form["payload_json"]))
        return await request.json()

    async def _me(self, request: web.Request) -> web.Response:
        return _json({**self.bot, "verified": True, "mfa_enabled": False,
                                  "locale": "en-US", "email": None, "premium_type": 0})

    async def _application(self, request: web.Request) -> web.Response:
        return _json({
            "id": self.application_id, "name": "dossier-bot", "icon": None,
            "description": "Quotes the dossier.", "summary": "", "type": None,
            "bot_public": False, "bot_require_code_grant": False, "verify_key": "0" * 64,
            "flags": 0, "owner": self.admin, "team": None, "hook": True, "tags": [],
            "redirect_uris": [], "interactions_endpoint_url": None, "bot": self.bot,
            "approximate_guild_count": 1,
        })

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        return _json({
            "url": f"ws://127.0.0.1:{self.port}/gateway", "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0,
                                    "max_concurrency": 1},
        })

    async def _sync(self, request: web.Request) -> web.Response:
        if request.match_info["app"] != self.application_id:
            return self._error(403, 50001, "Missing Access")
        commands = await request.json()
        problems = _command_problems(commands)
        if problems:
            return self._error(400, 50035, "Invalid Form Body", problems)
        scope = request.match_info.get("guild", "global")
        out = [{**c, "id": self.snowflake(), "application_id": self.application_id,
                "version": self.snowflake(), "nsfw": False,
                "default_member_permissions": c.get("default_member_permissions"),
                **({"guild_id": scope} if scope != "global" else {})} for c in commands]
        self.synced[scope] = out
        await self._notify()
        return _json(out)

    async def _callback(self, request: web.Request) -> web.Response:
        token = request.match_info["itoken"]
        inter = self.interactions.get(token)
        if inter is None or inter.payload["id"] != request.match_info["iid"]:
            return self._error(404, 10062, "Unknown interaction")
        if inter.acknowledged:
            return self._error(400, 40060, "Interaction has already been acknowledged.")
        body = await self._body(request)
        kind = body.get("type")
        data = body.get("data") or {}
        if kind == 4 and (problems := _message_problems(data)):
            return self._error(400, 50035, "Invalid Form Body", problems)
        inter.acknowledged = True
        message = self._message(data, inter.payload["channel_id"], interaction=inter.payload)
        if kind == 5:
            inter.deferred = inter.original_pending = True
            message["flags"] = LOADING | (data.get("flags", 0) & EPHEMERAL)
            message["content"] = ""
        inter.original = message
        self.sent.append(Sent("callback", body, message, inter.payload["id"],
                              inter.payload["channel_id"]))
        await self._notify()
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        return _json({
            "interaction": {"id": inter.payload["id"], "type": inter.payload["type"],
                            "response_message_id": message["id"],
                            "response_message_loading": kind == 5,
                            "response_message_ephemeral": bool(message["flags"] & EPHEMERAL)},
            "resource": {"type": kind, "message": message} if kind in (4, 5) else None,
        })

    async def _followup(self, request: web.Request) -> web.Response:
        token = request.match_info["itoken"]
        inter = self.interactions.get(token)
        if request.match_info["app"] != self.application_id or inter is None \
                or not inter.acknowledged:
            return self._error(404, 10015, "Unknown Webhook")
        if self.tokens_expired:
            return self._error(401, 50027, "Invalid Webhook Token")
        body = await self._body(request)
        if problems := _message_problems(body):
            return self._error(400, 50035, "Invalid Form Body", problems)
        channel_id = inter.payload["channel_id"]
        if inter.original_pending and inter.original is not None:
            # The first follow-up after a deferral replaces the "thinking…" message: its
            # visibility is the deferral's, whatever flags the follow-up carries.
            message = self._message(body, channel_id, interaction=inter.payload,
                                    id=inter.original["id"])
            message["flags"] = inter.original["flags"] & EPHEMERAL
            inter.original_pending = False
            inter.original = message
        else:
            message = self._message(body, channel_id, interaction=inter.payload)
        self.sent.append(Sent("followup", body, message, inter.payload["id"], channel_id))
        await self._notify()
        if request.query.get("wait") in ("1", "true", "True"):
            return _json(message)
        return web.Response(status=204)

    async def _channel_message(self, request: web.Request) -> web.Response:
        channel_id = request.match_info["cid"]
        if channel_id not in (self.channel_id, self.thread_id, self.dm_channel_id):
            return self._error(404, 10003, "Unknown Channel")
        body = await self._body(request)
        if problems := _message_problems(body):
            return self._error(400, 50035, "Invalid Form Body", problems)
        # enforce_nonce: a nonce already used in this channel (in the last few minutes, on
        # Discord) returns the message it created, and creates none.
        key = (channel_id, str(body.get("nonce")))
        if body.get("enforce_nonce") and key in self._nonces:
            await self._notify()
            return _json(self._nonces[key])
        message = self._message(body, channel_id)
        if body.get("nonce") is not None:
            self._nonces[key] = message
        self.sent.append(Sent("channel", body, message, None, channel_id))
        await self._notify()
        if self.fail_after_posting:
            status = self.fail_after_posting.pop(0)
            return web.Response(status=status, text=f"{status}: Server Error")
        return _json(message)

    async def _open_dm(self, request: web.Request) -> web.Response:
        """The DM channel with a user (the fake has one DM channel, whoever it is with)."""
        body = await self._body(request)
        users = {u["id"]: u for u in (self.admin, self.member)}
        recipient = str(body.get("recipient_id"))
        if recipient not in users:
            return self._error(400, 50007, "Cannot send messages to this user")
        return _json({**self.channel_for(self.dm_channel_id), "recipients": [users[recipient]]})

    async def _typing(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _attachment(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["aid"])
        if found is None:
            return web.Response(status=404)
        return web.Response(body=found[0], content_type=found[1])

    def _message(self, body: dict[str, Any], channel_id: str, *,
                 interaction: dict[str, Any] | None = None, id: str | None = None
                 ) -> dict[str, Any]:
        components = []
        for row in body.get("components") or []:
            comps = [{**c, "id": n} for n, c in enumerate(row.get("components", []), 2)]
            components.append({**row, "id": 1, "components": comps})
        message: dict[str, Any] = {
            "id": id or self.snowflake(), "channel_id": channel_id, "author": self.bot,
            "content": body.get("content") or "", "timestamp": _now(),
            "edited_timestamp": None, "tts": False, "mention_everyone": False,
            "mentions": [], "mention_roles": [], "attachments": [],
            "embeds": [{"type": "rich", **e} for e in body.get("embeds") or []],
            "pinned": False, "type": 0, "flags": body.get("flags", 0),
            "components": components,
        }
        if channel_id != self.dm_channel_id:
            message["guild_id"] = self.guild_id
        if body.get("message_reference"):
            message["type"] = 19
            message["message_reference"] = {"type": 0, "channel_id": channel_id,
                                            **body["message_reference"]}
        if interaction is not None:
            user = interaction.get("user") or interaction["member"]["user"]
            message["type"] = 20
            message["webhook_id"] = self.application_id
            message["application_id"] = self.application_id
            message["interaction_metadata"] = {"id": interaction["id"], "type": 2,
                                               "user": user,
                                               "authorizing_integration_owners": {}}
        return message

    # -- waiting ---------------------------------------------------------------------------

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, probe: Callable[[], T | None], timeout: float = 15.0) -> T:
        """Wait until ``probe()`` returns something truthy, and return it."""
        async def wait() -> T:
            async with self._changed:
                while not (result := probe()):
                    await self._changed.wait()
                return result
        return await asyncio.wait_for(wait(), timeout)

    def sent_for(self, interaction: dict[str, Any]) -> list[Sent]:
        return [s for s in self.sent if s.interaction_id == interaction["id"]]

    def sent_in(self, channel_id: str) -> list[Sent]:
        return [s for s in self.sent if s.kind == "channel" and s.channel_id == channel_id]


# -- Discord's validation, as far as the bot can run into it --------------------------------

_COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")


def _command_problems(commands: Any) -> dict[str, Any]:
    problems: dict[str, Any] = {}
    if not isinstance(commands, list) or len(commands) > 100:
        return {"_errors": "expected a list of at most 100 commands"}
    for n, c in enumerate(commands):
        bad = []
        name = c.get("name", "")
        if not _COMMAND_NAME.match(name) or name != name.lower():
            bad.append(f"name {name!r} is not a valid command name")
        if not 1 <= len(c.get("description", "")) <= 100:
            bad.append("description must be 1-100 characters")
        for o in c.get("options", []) or []:
            if not 1 <= len(o.get("description", "")) <= 100:
                bad.append(f"option {o.get('name')} description must be 1-100 characters")
            if o.get("max_length") is not None and not 1 <= o["max_length"] <= 6000:
                bad.append(f"option {o.get('name')} max_length out of range")
        if bad:
            problems[str(n)] = bad
    return problems


_EMBED_LIMITS = {"title": 256, "description": 4096}


def _message_problems(body: dict[str, Any]) -> dict[str, Any]:
    problems: dict[str, Any] = {}
    content = body.get("content") or ""
    if _u16(content) > 2000:
        problems["content"] = "Must be 2000 or fewer in length."
    embeds = body.get("embeds") or []
    if len(embeds) > 10:
        problems["embeds"] = "Must be 10 or fewer in length."
    total = 0
    for n, e in enumerate(embeds):
        bad = []
        for key, limit in _EMBED_LIMITS.items():
            size = _u16(e.get(key) or "")
            total += size
            if size > limit:
                bad.append(f"{key} must be {limit} or fewer in length")
        if e.get("url") and not re.match(r"^https?://", e["url"]):
            bad.append("url: Not a well formed URL.")
        fields = e.get("fields") or []
        if len(fields) > 25:
            bad.append("fields must be 25 or fewer in length")
        for f in fields:
            total += _u16(f.get("name", "")) + _u16(f.get("value", ""))
            if not f.get("name") or not f.get("value"):
                bad.append("field name and value are required")
            if _u16(f.get("name", "")) > 256 or _u16(f.get("value", "")) > 1024:
                bad.append("field over 256/1024")
        footer = (e.get("footer") or {}).get("text", "")
        author = (e.get("author") or {}).get("name", "")
        total += _u16(footer) + _u16(author)
        if _u16(footer) > 2048 or _u16(author) > 256:
            bad.append("footer/author too long")
        if bad:
            problems[f"embeds.{n}"] = bad
    if total > 6000:
        problems["embeds"] = "Embed size exceeds maximum size of 6000"
    if not content and not embeds and not body.get("components"):
        problems["_errors"] = "Cannot send an empty message (50006)"
    return problems


def _json(body: Any, status: int = 200) -> web.Response:
    # Exactly Discord's header: discord.py parses a body only when it reads
    # "application/json", without aiohttp's usual "; charset=utf-8".
    return web.Response(body=json.dumps(body).encode(), status=status,
                        headers={"Content-Type": "application/json"})


@contextlib.asynccontextmanager
async def fake_discord(**kwargs: Any):
    fake = await FakeDiscord(**kwargs).start()
    try:
        yield fake
    finally:
        await fake.stop()
