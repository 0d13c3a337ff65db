"""The Discord adapter: slash commands, mentions and DMs in, quoted answers out (discord.py 2.x)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import signal
import time
from collections import OrderedDict

import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.answer import MAX_QUESTION_CHARS, Answer, Answerer, Source
from bot.config import ConfigError, Settings
from bot.discord.render import (
    NO_PINGS,
    Reply,
    clip,
    decline_embed,
    escape,
    one_line,
    quote_records,
    read_back,
    render_answer,
    render_sources,
)
from bot.egress import environment_proxy
from bot.feedback import FeedbackStore
from bot.intake import (
    MAX_FILES,
    Intake,
    IntakeError,
    can_read,
    files_left_out,
    kind_of,
    too_large,
)
from bot.ratelimit import RateLimiter
from bot.service import QuestionService

log = logging.getLogger(__name__)

PLATFORM = "discord"
FAILED = "Sorry, something went wrong while answering; please try again in a minute."
EXAMPLE = "Did China agree to send weapons to Russia?"
ADD_REFUSED = ("Sorry, only dossier admins (DOSSIER_ADMINS, or Manage Server in the dossier's "
               "server) and the people or roles in DOSSIER_ADDERS can add articles.")
HELP = ("**Ask the dossier**: answers quote the articles word for word, with their source.\n"
        f"• `/dossier ask` a question, e.g. “{EXAMPLE}”, or mention me. In a thread, a reply "
        "chain or a DM, follow-ups such as “what did he say next?” or “and Beijing?” are read "
        "in context.\n"
        "• **More quotes** under an answer shows the next ones.\n"
        "• `/dossier sources` lists the articles.\n"
        "• `/dossier-admin add` with `url:` a link or `file:` an article (md, txt, html, pdf, "
        "docx), or upload the file with a mention; `/dossier-admin reindex` rebuilds the "
        "index (admins).")


def intents(settings: Settings | None = None) -> discord.Intents:
    """The gateway intents the bot needs; none of them is privileged unless auto-reply
    channels are set.

    ``guilds`` gives the channels and threads, ``guild_messages`` the messages that mention
    the bot, ``dm_messages`` direct messages. Without the privileged message-content intent
    Discord still sends the text of messages that mention the bot and of DMs, which is all
    the bot reads.
    """
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.dm_messages = True
    # Answering every message of a channel means reading messages that do not mention the
    # bot: that takes the privileged message-content intent (enable it in the Developer
    # Portal → Bot → Privileged Gateway Intents).
    wanted.message_content = bool(settings and settings.auto_channels)
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


async def reply(message: discord.Message, content: str | None = None,
                **kwargs) -> discord.Message:
    """Reply to ``message``: in its thread or DM, pinging no one (not even its author).

    Posted once: discord.py sends a message again after a 500/502/504, which Discord may
    answer after posting it, but it also sends a random nonce with ``enforce_nonce``, so
    Discord hands back the first message instead of posting a second
    (tests/test_discord_conversation.py holds discord.py to that)."""
    return await message.reply(content, mention_author=False, allowed_mentions=NO_PINGS,
                               **kwargs)


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


class MoreButton(discord.ui.DynamicItem[discord.ui.Button],
                 template=r"dossier:more:(?P<conversation>.+)"):
    """"More quotes": the next quotes on the conversation's last question, posted below."""

    def __init__(self, conversation: str) -> None:
        super().__init__(discord.ui.Button(
            label="More quotes", style=discord.ButtonStyle.primary,
            custom_id=f"dossier:more:{conversation}"[:100]))
        self.conversation = conversation

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: re.Match[str], /) -> MoreButton:
        return cls(match["conversation"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.client.more_quotes(  # type: ignore[attr-defined]
            interaction, self.conversation)


def feedback_view(more: str | None = None) -> discord.ui.View:
    """👍/👎, and "More quotes" for conversation ``more`` when further quotes exist."""
    # Only dynamic items: discord.py keeps no per-message state for such a view.
    view = discord.ui.View(timeout=None)
    if more:
        view.add_item(MoreButton(more))
    view.add_item(VoteButton("up"))
    view.add_item(VoteButton("down"))
    return view


def _with_reading(reply: Reply, answer: Answer) -> Reply:
    """A follow-up shows how it was read ("what did he say next?" → the question searched)."""
    if not answer.read_differently:
        return reply
    note = f"\n-# Read as: {escape(one_line(answer.read_differently))}"
    return dataclasses.replace(reply, content=clip(reply.content + note, 2000))


class DossierBot(discord.Client):
    """A Discord client that answers from the dossier; commands live on ``self.tree``."""

    def __init__(self, *, settings: Settings, answerer: Answerer, feedback: FeedbackStore,
                 limiter: RateLimiter) -> None:
        super().__init__(intents=intents(settings), allowed_mentions=NO_PINGS,
                         proxy=environment_proxy(settings.discord_api_url))
        self.settings = settings
        self.answerer = answerer
        self.feedback = feedback
        self.limiter = limiter
        self.service = QuestionService(answerer, settings, limiter, platform=PLATFORM)
        self.intake = Intake.from_settings(answerer, settings)
        self.tree = app_commands.CommandTree(self)
        self.tree.on_error = self._on_command_error
        for command in _commands(self):
            self.tree.add_command(command)
        # The bot's answer message id → its conversation, so a reply to an answer continues
        # it (a reply chain outside threads). Bounded like the conversations themselves.
        self._answered: OrderedDict[int, str] = OrderedDict()

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
        self.add_dynamic_items(VoteButton, MoreButton)
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

    def _sources(self) -> list[Source]:
        self.service.reload()
        return self.answerer.sources()

    def _remember(self, message_id: int | None, conversation: str | None) -> None:
        if message_id is None or conversation is None:
            return
        self._answered[message_id] = conversation
        while len(self._answered) > 20_000:
            self._answered.popitem(last=False)

    def _render(self, answer: Answer, conversation: str | None) -> tuple[Reply, discord.ui.View]:
        reply = _with_reading(render_answer(answer), answer)
        return reply, feedback_view(conversation if answer.has_more else None)

    async def ask_command(self, interaction: discord.Interaction, question: str) -> None:
        channel = interaction.channel
        # In a thread the thread is the conversation; elsewhere each /dossier ask starts one
        # that replies to its answer continue.
        conversation = (_conversation_id(channel.id) if isinstance(channel, discord.Thread)
                        # A DM is one conversation, for messages and commands alike.
                        else _conversation_id("dm", interaction.channel_id)
                        if interaction.guild_id is None
                        else _conversation_id(interaction.channel_id, interaction.id))
        # Turned away at once and privately, or answered after a deferral (an answer can take
        # longer than Discord's 3 s): both steps are the question service's, which counts
        # them. The first is cheap (a length check, the limiter), so it runs on the loop.
        started = time.perf_counter()
        refused = self.service.screen(question, user=str(interaction.user.id), started=started)
        if refused is not None:
            await interaction.response.send_message(refused.notice, ephemeral=True,
                                                    allowed_mentions=NO_PINGS)
            return
        await interaction.response.defer(thinking=True)
        try:
            result = await asyncio.to_thread(self.service.answer, question,
                                             conversation=conversation, started=started)
        except Exception:
            log.exception("discord: /dossier ask failed")
            await interaction.followup.send(FAILED, ephemeral=True, allowed_mentions=NO_PINGS)
            return
        assert result.answer is not None  # answer() always answers (or declines)
        reply, view = self._render(result.answer, conversation)
        sent = await interaction.followup.send(content=reply.content, embeds=list(reply.embeds),
                                               view=view, allowed_mentions=NO_PINGS, wait=True)
        self._remember(sent.id, conversation)

    async def sources_command(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        sources = await asyncio.to_thread(self._sources)
        reply = render_sources(sources)
        await interaction.followup.send(content=reply.content or None, embeds=list(reply.embeds),
                                        ephemeral=True, allowed_mentions=NO_PINGS)

    async def help_command(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(HELP, ephemeral=True, allowed_mentions=NO_PINGS)

    def is_admin(self, interaction: discord.Interaction) -> bool:
        if str(interaction.user.id) in self.settings.admins:
            return True
        # The member's permissions in the server the command came from (none in a DM).
        return self.manages_home(interaction.guild_id, interaction.permissions)

    def manages_home(self, guild_id: int | None, perms: discord.Permissions | None) -> bool:
        """Manage Server (or Administrator) makes a dossier admin only in the server
        DISCORD_GUILD_ID names: anyone can invite a public bot to a server of their own,
        where they have it. Without DISCORD_GUILD_ID only DOSSIER_ADMINS are admins."""
        home = self.settings.discord_guild_id
        return (home is not None and guild_id == home and perms is not None
                and (perms.manage_guild or perms.administrator))

    def may_add(self, user: discord.abc.User, *, admin: bool) -> bool:
        roles = frozenset(str(r.id) for r in getattr(user, "roles", ()))
        return admin or self.settings.may_add(str(user.id), roles)

    async def reindex_command(self, interaction: discord.Interaction) -> None:
        if not self.is_admin(interaction):
            await interaction.response.send_message(
                "Only dossier admins (DOSSIER_ADMINS) or members with the Manage Server "
                "permission in the dossier's server (DISCORD_GUILD_ID) can rebuild the index.",
                ephemeral=True, allowed_mentions=NO_PINGS)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        log.info("discord: index rebuild requested by user %s", interaction.user.id)
        try:
            report = await asyncio.to_thread(self.answerer.rebuild, self.settings.corpus_dir)
        except Exception as exc:
            log.exception("discord: index rebuild failed")
            await self._report(interaction, clip(
                f"The rebuild failed ({type(exc).__name__}: {exc}); the previous index "
                "is still in use.", 1000), ephemeral=True)
            return
        await self._report(
            interaction,
            f"Index rebuilt: {report.articles} articles, {report.chunks} passages "
            f"({report.embedded} embedded, {report.removed} removed) in {report.seconds:.1f} s.",
            ephemeral=True)

    async def _report(self, interaction: discord.Interaction, text: str, *,
                      ephemeral: bool) -> None:
        """The reply to a deferred admin command. Its interaction token lasts 15 minutes,
        which a rebuild of a large dossier can outlast: then the report goes to the admin's
        DMs (a private report) or to the channel the command came from."""
        try:
            await interaction.followup.send(text, ephemeral=ephemeral, allowed_mentions=NO_PINGS)
            return
        except discord.HTTPException as exc:
            if not token_expired(exc):
                raise
            log.warning("discord: the command's interaction expired before its report "
                        "(HTTP %s, code %s); sending it %s", exc.status, exc.code,
                        "by DM" if ephemeral else "to the channel")
        target = interaction.user if ephemeral else interaction.channel
        if target is None:
            log.error("discord: nowhere to send the report of an expired interaction")
            return
        await target.send(text, allowed_mentions=NO_PINGS)

    async def add_command(self, interaction: discord.Interaction, url: str | None,
                          file: discord.Attachment | None) -> None:
        if not self.may_add(interaction.user, admin=self.is_admin(interaction)):
            await interaction.response.send_message(ADD_REFUSED, ephemeral=True,
                                                    allowed_mentions=NO_PINGS)
            return
        if not url and file is None:
            await interaction.response.send_message(
                "Give a link (`url:`) or attach a file (`file:`) to add.", ephemeral=True,
                allowed_mentions=NO_PINGS)
            return
        await interaction.response.defer(thinking=True)
        log.info("discord: user %s adds %s", interaction.user.id, url or (file and file.filename))
        text = (await self._add_url(url) if url else await self._add_attachment(file))
        # Titles, outlets, file names and errors come from the page or file: escaped.
        await self._report(interaction, clip(escape(text), 2000), ephemeral=False)

    async def _add_url(self, url: str) -> str:
        try:
            return (await asyncio.to_thread(self.intake.add_url, url)).describe()
        except IntakeError as exc:
            return f"Not added: {exc}"
        except Exception:
            log.exception("discord: adding %s failed", url)
            return "Sorry, adding that failed; nothing was added. Please try again later."

    async def _add_attachment(self, attachment: discord.Attachment | None) -> str:
        assert attachment is not None
        name = attachment.filename
        try:
            if attachment.size > self.intake.max_bytes:
                raise IntakeError(too_large(attachment.size, self.intake.max_bytes))
            kind_of(name, attachment.content_type)  # refuse before downloading
            data = await attachment.read()
            added = await asyncio.to_thread(self.intake.add_file, data, name,
                                            attachment.content_type)
            return added.describe()
        except IntakeError as exc:
            return f"Not added ({name}): {exc}"
        except Exception:
            log.exception("discord: adding the attachment %s failed", name)
            return f"Sorry, adding {name} failed; nothing was added. Please try again later."

    async def more_quotes(self, interaction: discord.Interaction, conversation: str) -> None:
        user = str(interaction.user.id)
        # The pressed button goes at once: one press, one batch of quotes.
        await interaction.response.edit_message(view=feedback_view())
        try:
            result = await asyncio.to_thread(self.service.more, conversation, user=user)
        except Exception:
            log.exception("discord: more quotes failed")
            await interaction.followup.send(FAILED, ephemeral=True, allowed_mentions=NO_PINGS)
            return
        answer = result.answer
        if answer is None or not answer.answered:
            reason = result.notice or (answer and answer.reason) or "No more quotes."
            await interaction.followup.send(reason, ephemeral=True, allowed_mentions=NO_PINGS)
            return
        reply, view = self._render(answer, conversation)
        sent = await interaction.followup.send(content=reply.content, embeds=list(reply.embeds),
                                               view=view, allowed_mentions=NO_PINGS, wait=True)
        self._remember(sent.id, conversation)

    async def _on_command_error(self, interaction: discord.Interaction,
                                error: app_commands.AppCommandError) -> None:
        log.error("discord: command %s failed", getattr(interaction.command, "name", "?"),
                  exc_info=error)
        send = (interaction.followup.send if interaction.response.is_done()
                else interaction.response.send_message)
        with contextlib.suppress(discord.HTTPException):
            await send(FAILED, ephemeral=True, allowed_mentions=NO_PINGS)

    # -- mentions, threads, reply chains and DMs -------------------------------------------

    def conversation_for(self, message: discord.Message) -> tuple[str | None, bool]:
        """The conversation a message belongs to, and whether the bot should answer it
        (None: not for the bot, or a channel it does not answer in)."""
        me = self.user
        if me is None or message.author.bot or message.author.id == me.id:
            return None, False
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return None, False  # a thread created or renamed, a pin: no one asked anything
        channel = message.channel
        if message.guild is None:
            return _conversation_id("dm", channel.id), True
        parent = getattr(channel, "parent_id", None)
        where = [str(channel.id)] + ([str(parent)] if parent else [])
        if not any(self.settings.answers_in(c) for c in where):
            return None, False
        mentioned = self.mentions_me(message)
        ref = message.reference.message_id if message.reference else None
        chained = self._answered.get(ref) if ref else None
        if isinstance(channel, discord.Thread):
            conversation = _conversation_id(channel.id)
            ours = self.service.knows(conversation)
        else:
            conversation = chained or _conversation_id(channel.id, message.id)
            ours = chained is not None
        # Without the message-content intent Discord blanks what does not mention the bot:
        # then only mentions (and replies that ping it) can be read.
        readable = bool(message.content) or bool(message.attachments)
        auto = any(self.settings.auto_reply(c) for c in where)
        if ours and not auto and not mentioned and _ADDRESSED.search(message.content or ""):
            return None, False  # in the bot's thread, but to someone else ("@Alice, …")
        return conversation, mentioned or (readable and (ours or auto))

    def mentions_me(self, message: discord.Message) -> bool:
        """Whether the message mentions the bot: by name, or by its own role in the server
        (which Discord's mention picker offers as often)."""
        me = self.user
        if me is not None and any(u.id == me.id for u in message.mentions):
            return True
        role = message.guild.self_role if message.guild is not None else None
        return role is not None and role in message.role_mentions

    async def on_message(self, message: discord.Message) -> None:
        conversation, for_us = self.conversation_for(message)
        if not for_us:
            return
        me = self.user
        assert me is not None
        role = message.guild.self_role if message.guild is not None else None
        mine = rf"<@!?{me.id}>" + (rf"|<@&{role.id}>" if role is not None else "")
        text = " ".join(re.sub(mine, " ", message.content or "").split())
        # Files are articles to add only when handed to the bot: with a mention, or in a DM.
        # A screenshot posted beside a question in an auto-reply channel or a thread is not,
        # nor is one beside a question handed to the bot: the question is answered.
        addressed = message.guild is None or self.mentions_me(message)
        readable = any(can_read(a.filename, a.content_type) for a in message.attachments)
        try:
            if message.attachments and addressed and (readable or not text):
                await self._add_from_message(message)
            elif text or addressed:  # an empty mention gets a hint; a bare file, nothing
                await self._reply_to(message, text, conversation)
        except Exception:
            log.exception("discord: answering a message failed")
            with contextlib.suppress(discord.HTTPException):
                await reply(message, FAILED)

    async def _add_from_message(self, message: discord.Message) -> None:
        author = message.author
        admin = str(author.id) in self.settings.admins or self.manages_home(
            message.guild.id if message.guild else None,
            getattr(author, "guild_permissions", None))
        if not self.may_add(author, admin=admin):
            await reply(message, ADD_REFUSED)
            return
        async with message.channel.typing():
            lines = [await self._add_attachment(a) for a in message.attachments[:MAX_FILES]]
        lines += files_left_out(len(message.attachments))
        await reply(message, clip("\n".join(escape(line) for line in lines), 2000))

    async def _reply_to(self, message: discord.Message, question: str,
                        conversation: str | None) -> None:
        if not question:
            await reply(message, f"Ask me about the dossier, e.g. “{EXAMPLE}” — or use "
                                 "/dossier ask.")
            return
        async with message.channel.typing():
            # Validation, the rate limit, a reload and the conversation: the question service.
            result = await asyncio.to_thread(self.service.ask, question,
                                             user=str(message.author.id),
                                             conversation=conversation)
        if result.answer is None:
            # A notice (too long, too fast): a reply is visible to all, so keep it short.
            await reply(message, embed=decline_embed(Answer(question, reason=result.notice)))
            return
        answer = result.answer
        rendered, view = self._render(answer, conversation)
        sent = await reply(message, rendered.content, embeds=list(rendered.embeds), view=view)
        self._remember(sent.id, conversation)

    # -- feedback --------------------------------------------------------------------------

    async def record_vote(self, interaction: discord.Interaction, vote: int) -> None:
        message = interaction.message
        if message is None:
            return
        question, located = read_back(message)
        # Acknowledged first: a busy feedback database must not outlast Discord's 3 s.
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            articles = [s.article for s in await asyncio.to_thread(self.answerer.sources)]
            quotes = quote_records(located, articles)
            # One vote per user per answer message, persisted; the latest counts.
            before = await asyncio.to_thread(
                self.feedback.record, platform=PLATFORM, user_id=str(interaction.user.id),
                question=question, quotes=quotes, vote=vote, answer_key=f"message:{message.id}")
        except Exception:
            log.exception("discord: recording a vote failed")
            await interaction.followup.send(
                "Sorry, your vote could not be recorded; please try again.", ephemeral=True,
                allowed_mentions=NO_PINGS)
            return
        mark = "👍" if vote > 0 else "👎"
        text = (f"Thanks — your {mark} is recorded." if before is None else
                f"Your {mark} on this answer is already recorded; it counts once."
                if before == vote else f"Thanks — your vote is now {mark} (it replaces the "
                "earlier one).")
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)


def token_expired(exc: discord.HTTPException) -> bool:
    """Whether Discord refused a follow-up because the interaction's token is no longer
    valid (15 minutes after the interaction): 401 "Invalid Webhook Token" (50027), or 404
    "Unknown Webhook" (10015)."""
    return (exc.status, exc.code) in ((401, 50027), (404, 10015))


# A mention of someone (a user, a role) or of everyone: a message addressed to people.
_ADDRESSED = re.compile(r"<@[!&]?\d+>|@everyone|@here")


def _conversation_id(*parts: object) -> str:
    return ":".join([PLATFORM, *(str(p) for p in parts)])


def _commands(bot: DossierBot) -> list[app_commands.Group]:
    # Discord sets who sees a command per top-level command, not per subcommand, so the two
    # that change the dossier form their own group, hidden from members without Manage
    # Server (an admin can grant it to others under Server Settings → Integrations).
    dossier = app_commands.Group(name="dossier", description="Ask the dossier; answers quote "
                                 "the articles word for word, with their source")
    admin = app_commands.Group(
        name="dossier-admin", description="Change the dossier (dossier admins and Manage "
        "Server only)", default_permissions=discord.Permissions(manage_guild=True))

    @dossier.command(name="ask", description="Ask a question; in a thread, follow-ups are "
                     "read in context")
    @app_commands.describe(question=f"Your question, e.g. {EXAMPLE}")
    async def ask(interaction: discord.Interaction,
                  question: app_commands.Range[str, 1, MAX_QUESTION_CHARS]) -> None:
        await bot.ask_command(interaction, question)

    @dossier.command(name="sources", description="List the articles in the dossier")
    async def sources(interaction: discord.Interaction) -> None:
        await bot.sources_command(interaction)

    @dossier.command(name="help", description="How to ask, follow up and add articles")
    async def help_(interaction: discord.Interaction) -> None:
        await bot.help_command(interaction)

    @admin.command(name="add", description="Add an article from a link or a file "
                   "(md, txt, html, pdf, docx)")
    @app_commands.describe(url="A link to the article's page", file="Or the article as a file")
    async def add(interaction: discord.Interaction, url: str | None = None,
                  file: discord.Attachment | None = None) -> None:
        await bot.add_command(interaction, url, file)

    @admin.command(name="reindex", description="Rebuild the index from the corpus folder")
    async def reindex(interaction: discord.Interaction) -> None:
        await bot.reindex_command(interaction)

    return [dossier, admin]


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
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError):  # not on Windows
                loop.add_signal_handler(sig, stop.set)
        await serve_discord(settings, answerer, stop)

    asyncio.run(main())
