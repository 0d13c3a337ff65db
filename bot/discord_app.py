"""The Discord adapter: slash commands, mentions and DMs in, quoted answers out (discord.py 2.x)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from collections import OrderedDict
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.answer import MAX_QUESTION_CHARS, Answer, Answerer, Source
from bot.config import ConfigError, Settings
from bot.discord_render import (
    NO_PINGS,
    Reply,
    clip,
    quote_records,
    read_back,
    render_answer,
    render_sources,
)
from bot.feedback import FeedbackStore
from bot.ratelimit import RateLimiter

log = logging.getLogger(__name__)

PLATFORM = "discord"
FAILED = "Sorry, something went wrong while answering; please try again in a minute."
EXAMPLE = "Did China agree to send weapons to Russia?"


def intents() -> discord.Intents:
    """The gateway intents the bot needs; none of them is privileged.

    ``guilds`` gives the channels and threads, ``guild_messages`` the messages that mention
    the bot, ``dm_messages`` direct messages. Without the privileged message-content intent
    Discord still sends the text of messages that mention the bot and of DMs, which is all
    the bot reads.
    """
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.dm_messages = True
    return wanted


# What the bot does in a channel: read it, reply (replies need Read Message History), post in
# threads, and show embeds. Slash-command answers need no channel permission at all.
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True, send_messages=True, send_messages_in_threads=True, embed_links=True,
    read_message_history=True)


def invite_url(application_id: int) -> str:
    return discord.utils.oauth_url(application_id, permissions=INVITE_PERMISSIONS,
                                   scopes=("bot", "applications.commands"))


def point_at(api_url: str) -> None:
    """Send discord.py's REST calls (including interaction webhooks) to ``api_url``.

    discord.py builds every URL from the class attribute ``Route.BASE``: there is no
    per-client setting, so this is process-wide. One process serves one Discord bot.
    """
    Route.BASE = api_url.rstrip("/")


class VoteButton(discord.ui.DynamicItem[discord.ui.Button],
                 template=r"dossier:vote:(?P<vote>up|down)"):
    """👍/👎 under an answer. Dynamic, so a press after a restart still reaches the bot."""

    def __init__(self, vote: str) -> None:
        up = vote == "up"
        super().__init__(discord.ui.Button(
            emoji="👍" if up else "👎", label="Helpful" if up else "Not helpful",
            style=discord.ButtonStyle.secondary, custom_id=f"dossier:vote:{vote}"))
        self.vote = 1 if up else -1

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str], /) -> VoteButton:
        return cls(match["vote"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.client.record_vote(interaction, self.vote)  # type: ignore[attr-defined]


def feedback_view() -> discord.ui.View:
    # Only dynamic items: discord.py keeps no per-message state for such a view.
    view = discord.ui.View(timeout=None)
    view.add_item(VoteButton("up"))
    view.add_item(VoteButton("down"))
    return view


class DossierBot(discord.Client):
    """A Discord client that answers from the dossier; commands live on ``self.tree``."""

    def __init__(self, *, settings: Settings, answerer: Answerer, feedback: FeedbackStore,
                 limiter: RateLimiter) -> None:
        super().__init__(intents=intents(), allowed_mentions=NO_PINGS)
        self.settings = settings
        self.answerer = answerer
        self.feedback = feedback
        self.limiter = limiter
        self.tree = app_commands.CommandTree(self)
        self.tree.on_error = self._on_command_error
        for command in _commands(self):
            self.tree.add_command(command)
        # (message id, user id) → vote, so repeated presses do not stack up in the store.
        self._votes: OrderedDict[tuple[int, int], int] = OrderedDict()

    async def login(self, token: str) -> None:
        point_at(self.settings.discord_api_url)
        try:
            await super().login(token)
        except discord.LoginFailure:
            raise ConfigError(
                "DISCORD_TOKEN was rejected by Discord; copy the bot token again "
                "(Developer Portal → your application → Bot → Reset Token).") from None

    async def setup_hook(self) -> None:
        # A plain Client dials discord.py's built-in gateway address; ask the API we were
        # pointed at instead, as Discord recommends. Process-wide, like Route.BASE.
        _shards, url, _limits = await self.http.get_bot_gateway()
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
        self.add_dynamic_items(VoteButton)
        guild_id = self.settings.discord_guild_id
        if guild_id:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("discord: synced %d commands to guild %s", len(synced), guild_id)
        else:
            synced = await self.tree.sync()
            log.info("discord: synced %d global commands (may take up to an hour to show)",
                     len(synced))

    async def on_ready(self) -> None:
        log.info("discord: connected as %s in %d server(s); invite it with %s", self.user,
                 len(self.guilds), invite_url(self.application_id or 0))

    # -- answering -------------------------------------------------------------------------

    def _answer(self, question: str) -> Answer:
        """Runs in a worker thread: picks up an index rebuilt elsewhere, then answers."""
        self.answerer.reload_if_changed()
        return self.answerer.ask(question)

    def _sources(self) -> list[Source]:
        self.answerer.reload_if_changed()
        return self.answerer.sources()

    async def answer(self, question: str) -> Reply:
        answer = await asyncio.to_thread(self._answer, question)
        return render_answer(answer)

    async def ask_command(self, interaction: discord.Interaction, question: str) -> None:
        wait = self.limiter.check(str(interaction.user.id))
        if wait:
            await interaction.response.send_message(self.limiter.message(wait), ephemeral=True,
                                                    allowed_mentions=NO_PINGS)
            return
        await interaction.response.defer(thinking=True)
        try:
            reply = await self.answer(question)
        except Exception:
            log.exception("discord: /ask failed")
            await interaction.followup.send(FAILED, ephemeral=True, allowed_mentions=NO_PINGS)
            return
        await interaction.followup.send(content=reply.content, embeds=list(reply.embeds),
                                        view=feedback_view(), allowed_mentions=NO_PINGS)

    async def sources_command(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        sources = await asyncio.to_thread(self._sources)
        reply = render_sources(sources)
        await interaction.followup.send(content=reply.content or None, embeds=list(reply.embeds),
                                        ephemeral=True, allowed_mentions=NO_PINGS)

    def is_admin(self, interaction: discord.Interaction) -> bool:
        if str(interaction.user.id) in self.settings.admins:
            return True
        # In a server this is the member's permission there; in a DM it is always False.
        perms = interaction.permissions
        return interaction.guild is not None and (perms.manage_guild or perms.administrator)

    async def reindex_command(self, interaction: discord.Interaction) -> None:
        if not self.is_admin(interaction):
            await interaction.response.send_message(
                "Only dossier admins (DOSSIER_ADMINS) or members with the Manage Server "
                "permission can rebuild the index.", ephemeral=True, allowed_mentions=NO_PINGS)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        log.info("discord: index rebuild requested by user %s", interaction.user.id)
        try:
            report = await asyncio.to_thread(self.answerer.rebuild, self.settings.corpus_dir)
        except Exception as exc:
            log.exception("discord: index rebuild failed")
            await interaction.followup.send(
                clip(f"The rebuild failed ({type(exc).__name__}: {exc}); the previous index "
                     "is still in use.", 1000), ephemeral=True, allowed_mentions=NO_PINGS)
            return
        await interaction.followup.send(
            f"Index rebuilt: {report.articles} articles, {report.chunks} passages "
            f"({report.embedded} embedded, {report.removed} removed) in {report.seconds:.1f} s.",
            ephemeral=True, allowed_mentions=NO_PINGS)

    async def _on_command_error(self, interaction: discord.Interaction,
                                error: app_commands.AppCommandError) -> None:
        log.error("discord: command %s failed", getattr(interaction.command, "name", "?"),
                  exc_info=error)
        send = (interaction.followup.send if interaction.response.is_done()
                else interaction.response.send_message)
        with contextlib.suppress(discord.HTTPException):
            await send(FAILED, ephemeral=True, allowed_mentions=NO_PINGS)

    # -- mentions and DMs ------------------------------------------------------------------

    def question_in(self, message: discord.Message) -> str | None:
        """The question a message puts to the bot, or None when it is not for the bot."""
        me = self.user
        if me is None or message.author.bot or message.author.id == me.id:
            return None
        in_dm = message.guild is None
        if not in_dm and not any(u.id == me.id for u in message.mentions):
            return None
        text = re.sub(rf"<@!?{me.id}>", " ", message.content or "")
        return " ".join(text.split())

    async def on_message(self, message: discord.Message) -> None:
        question = self.question_in(message)
        if question is None:
            return
        try:
            await self._reply_to(message, question)
        except Exception:
            log.exception("discord: answering a message failed")
            with contextlib.suppress(discord.HTTPException):
                await message.reply(FAILED, mention_author=False, allowed_mentions=NO_PINGS)

    async def _reply_to(self, message: discord.Message, question: str) -> None:
        if not question:
            await message.reply(f"Ask me about the dossier, e.g. “{EXAMPLE}” — or use /ask.",
                                mention_author=False, allowed_mentions=NO_PINGS)
            return
        wait = self.limiter.check(str(message.author.id))
        if wait:
            await message.reply(self.limiter.message(wait), mention_author=False,
                                allowed_mentions=NO_PINGS)
            return
        async with message.channel.typing():
            reply = await self.answer(question)
        # Replying to the message keeps it in its thread or DM; mention_author=False: no ping.
        await message.reply(content=reply.content, embeds=list(reply.embeds),
                            view=feedback_view(), mention_author=False, allowed_mentions=NO_PINGS)

    # -- feedback --------------------------------------------------------------------------

    async def record_vote(self, interaction: discord.Interaction, vote: int) -> None:
        message = interaction.message
        if message is None:
            return
        key = (message.id, interaction.user.id)
        if key in self._votes:
            await interaction.response.send_message(
                "Your vote on this answer is already recorded.", ephemeral=True,
                allowed_mentions=NO_PINGS)
            return
        question, located = read_back(message)
        try:
            articles = [s.article for s in await asyncio.to_thread(self.answerer.sources)]
            quotes = quote_records(located, articles)
            await asyncio.to_thread(self.feedback.record, platform=PLATFORM,
                                    user_id=str(interaction.user.id), question=question,
                                    quotes=quotes, vote=vote)
        except Exception:
            log.exception("discord: recording a vote failed")
            await interaction.response.send_message(
                "Sorry, your vote could not be recorded; please try again.", ephemeral=True,
                allowed_mentions=NO_PINGS)
            return
        self._votes[key] = vote
        while len(self._votes) > 10_000:
            self._votes.popitem(last=False)
        await interaction.response.send_message(
            f"Thanks — your {'👍' if vote > 0 else '👎'} is recorded.", ephemeral=True,
            allowed_mentions=NO_PINGS)


def _commands(bot: DossierBot) -> list[app_commands.Command[Any, Any, Any]]:
    @app_commands.command(name="ask", description="Ask the dossier; the answer quotes the "
                          "articles word for word, with their source")
    @app_commands.describe(question=f"Your question, e.g. {EXAMPLE}")
    async def ask(interaction: discord.Interaction,
                  question: app_commands.Range[str, 1, MAX_QUESTION_CHARS]) -> None:
        await bot.ask_command(interaction, question)

    @app_commands.command(name="sources", description="List the articles in the dossier")
    async def sources(interaction: discord.Interaction) -> None:
        await bot.sources_command(interaction)

    @app_commands.command(name="reindex", description="Rebuild the index from the corpus "
                          "folder (dossier admins and Manage Server only)")
    async def reindex(interaction: discord.Interaction) -> None:
        await bot.reindex_command(interaction)

    return [ask, sources, reindex]


def require_token(settings: Settings) -> str:
    if not settings.discord_token:
        raise ConfigError("DISCORD_TOKEN is not set; create a bot in the Discord Developer "
                          "Portal and set DISCORD_TOKEN to its token (see docs/discord.md).")
    return settings.discord_token


def create_discord_bot(*, settings: Settings, answerer: Answerer,
                       feedback: FeedbackStore | None = None,
                       limiter: RateLimiter | None = None) -> DossierBot:
    require_token(settings)
    return DossierBot(
        settings=settings, answerer=answerer,
        feedback=feedback or FeedbackStore(settings.feedback_path),
        limiter=limiter or RateLimiter(settings.rate_limit_per_minute),
    )


async def serve_discord(settings: Settings, answerer: Answerer,
                        stop: asyncio.Event | None = None, *,
                        bot: DossierBot | None = None) -> None:
    """Run the bot until ``stop`` is set (or the connection ends for good), then close it.

    For running beside other adapters in one event loop; ``run`` wraps it for a process of
    its own. Raises ConfigError for a missing or rejected token.
    """
    token = require_token(settings)
    bot = bot or create_discord_bot(settings=settings, answerer=answerer)
    stop = stop or asyncio.Event()
    runner = asyncio.create_task(bot.start(token), name="discord-bot")
    stopper = asyncio.create_task(stop.wait(), name="discord-stop")
    try:
        await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        ended_by_itself = runner.done()
        if not bot.is_closed():
            await bot.close()
        if not runner.done():
            # After close() the gateway loop sees the closed socket and returns promptly.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(runner, timeout=10)
    if ended_by_itself:
        runner.result()  # re-raise why the bot stopped (a rejected token, an outage)


def run(settings: Settings, answerer: Answerer) -> None:
    """Blocking entry point for ``dossier-bot serve discord``; stops cleanly on SIGINT/SIGTERM."""
    require_token(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # not on Windows
                loop.add_signal_handler(sig, stop.set)
        await serve_discord(settings, answerer, stop)

    asyncio.run(main())
