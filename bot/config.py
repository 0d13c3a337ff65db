"""Settings read from the environment (and an optional ``.env``), validated once at start.

Every problem is reported at once, each naming the variable and saying what to do, so an
operator fixes a deployment in one pass instead of one restart per typo.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_DISCORD_API_URL = "https://discord.com/api/v10"
PLATFORMS = ("slack", "discord")

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it and says what to do."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems or (message,)


@dataclass(frozen=True)
class Variable:
    """One environment variable: the field it sets, and what an operator needs to know."""

    name: str
    field: str
    help: str
    secret: bool = False


# The single list behind `config check` and docs/operations.md; order is the display order.
VARIABLES: tuple[Variable, ...] = (
    Variable("DOSSIER_CORPUS_DIR", "corpus_dir", "folder of articles (the dossier)"),
    Variable("DOSSIER_INDEX_DIR", "index_dir", "where the search index is kept"),
    Variable("DOSSIER_EMBED_MODEL", "embed_model",
             "sentence-transformers name or path; default: packaged all-MiniLM-L6-v2"),
    Variable("DOSSIER_ADMINS", "admins", "user IDs allowed to rebuild the index from chat"),
    Variable("DOSSIER_ADDERS", "adders",
             "user or role IDs (besides admins) allowed to add articles from chat"),
    Variable("DOSSIER_CHANNELS", "channels",
             "channel IDs the bot answers in; empty: any channel it is invited to"),
    Variable("DOSSIER_AUTO_CHANNELS", "auto_channels",
             "channel IDs where every message is a question (no mention needed)"),
    Variable("DOSSIER_CHANNELS_FILE", "channels_file",
             "optional YAML file with `channels:` and `auto_channels:` lists (merged)"),
    Variable("DOSSIER_CONVERSATION_TTL", "conversation_ttl",
             "seconds a thread's follow-ups are remembered"),
    Variable("DOSSIER_RATE_LIMIT", "rate_limit_per_minute",
             "questions per user per minute; 0: off"),
    Variable("DOSSIER_FEEDBACK_DB", "feedback_db", "SQLite file for 👍/👎 votes"),
    Variable("DOSSIER_HEALTH_PORT", "health_port", "port of /healthz /readyz /metrics; 0: any"),
    Variable("DOSSIER_HEALTH_HOST", "health_host", "address the health server listens on"),
    Variable("DOSSIER_LOG_FORMAT", "log_format", "text or json"),
    Variable("DOSSIER_LOG_LEVEL", "log_level", "DEBUG, INFO, WARNING or ERROR"),
    Variable("DOSSIER_WATCH", "watch", "serve: rebuild when corpus files change (true/false)"),
    Variable("DOSSIER_PREFETCH", "prefetch",
             "read large index files into the page cache in the background at load"),
    Variable("DOSSIER_SPELLING", "spelling",
             "correct misspelt question words against the dossier's vocabulary"),
    Variable("DOSSIER_SHUTDOWN_GRACE", "shutdown_grace", "seconds to finish questions on SIGTERM"),
    Variable("DOSSIER_SLACK_PORT", "slack_port",
             "port of the Slack Events API endpoint (HTTP mode)"),
    Variable("SLACK_BOT_TOKEN", "slack_bot_token", "Slack bot token (xoxb-…)", secret=True),
    Variable("SLACK_SIGNING_SECRET", "slack_signing_secret", "Slack signing secret (HTTP mode)",
             secret=True),
    Variable("SLACK_APP_TOKEN", "slack_app_token", "Slack app-level token (xapp-…, Socket Mode)",
             secret=True),
    Variable("SLACK_API_URL", "slack_api_url", "Slack Web API base URL"),
    Variable("DISCORD_TOKEN", "discord_token", "Discord bot token", secret=True),
    Variable("DISCORD_API_URL", "discord_api_url", "Discord REST base URL including /api/v10"),
    Variable("DISCORD_GUILD_ID", "discord_guild_id", "server ID to sync slash commands to at once"),
)
VARIABLE_BY_FIELD = {v.field: v for v in VARIABLES}


def _default_corpus() -> Path:
    return Path("corpus")


def _default_index() -> Path:
    return Path(".dossier") / "index"


@dataclass(frozen=True)
class Settings:
    corpus_dir: Path = field(default_factory=_default_corpus)
    index_dir: Path = field(default_factory=_default_index)
    embed_model: str | None = None  # None: the packaged all-MiniLM-L6-v2
    admins: frozenset[str] = frozenset()
    health_port: int = 8080
    rate_limit_per_minute: int = 10
    adders: frozenset[str] = frozenset()  # may `/dossier add`, besides admins
    # Empty: any channel the bot is invited to. Auto channels answer without a mention.
    channels: frozenset[str] = frozenset()
    auto_channels: frozenset[str] = frozenset()
    channels_file: Path | None = None
    conversation_ttl: float = 3600.0
    feedback_db: Path | None = None  # None: <index_dir>/../feedback.sqlite3
    log_format: str = "text"
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_app_token: str | None = field(default=None, repr=False)
    slack_api_url: str = DEFAULT_SLACK_API_URL
    discord_token: str | None = field(default=None, repr=False)
    discord_api_url: str = DEFAULT_DISCORD_API_URL
    discord_guild_id: int | None = None
    # Loopback by default: the image sets 0.0.0.0 so Prometheus can scrape from outside.
    health_host: str = "127.0.0.1"
    log_level: str = "INFO"
    watch: bool = False
    prefetch: bool = True  # read by index.rows itself; listed here so `config check` checks it
    spelling: bool = True  # read by index.spelling itself, like prefetch
    shutdown_grace: float = 25.0
    slack_port: int = 3000

    SECRET_FIELDS = ("slack_bot_token", "slack_signing_secret", "slack_app_token", "discord_token")

    @property
    def feedback_path(self) -> Path:
        return self.feedback_db or self.index_dir.parent / "feedback.sqlite3"

    @property
    def platforms(self) -> tuple[str, ...]:
        """The chat platforms whose token is set, which a bare ``serve`` runs."""
        found = []
        if self.slack_bot_token:
            found.append("slack")
        if self.discord_token:
            found.append("discord")
        return tuple(found)

    @property
    def slack_mode(self) -> str:
        """Socket Mode when an app-level token is set (no public URL needed), else HTTP."""
        return "socket" if self.slack_app_token else "http"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def secrets(self) -> list[str]:
        """The secret values in use, for the log redactor."""
        return [v for name in self.SECRET_FIELDS if (v := getattr(self, name))]

    def masked(self) -> dict[str, str]:
        """The effective configuration with every secret masked, for ``config check``."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in self.SECRET_FIELDS:
                out[f.name] = mask(value)
            elif f.name == "channels" and not value:
                out[f.name] = "(any channel the bot is invited to)"
            elif isinstance(value, frozenset):
                out[f.name] = ",".join(sorted(value)) or "(none)"
            elif f.name == "feedback_db" and value is None:
                out[f.name] = f"(default: {self.feedback_path})"
            elif f.name == "embed_model" and value is None:
                out[f.name] = "(packaged all-MiniLM-L6-v2)"
            else:
                out[f.name] = "(default)" if value is None else str(value)
        return out

    def typed(self) -> dict[str, object]:
        """The effective configuration as JSON values (booleans, numbers, lists, null for
        unset), secrets masked, for ``config check --json``: scripts compare, not parse."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in self.SECRET_FIELDS:
                out[f.name] = mask(value) if value else None
            elif isinstance(value, frozenset):
                out[f.name] = sorted(value)
            elif isinstance(value, Path):
                out[f.name] = str(value)
            else:
                out[f.name] = value
        return out

    def require_platform(self, platform: str, *, http: bool | None = None) -> None:
        """Raise ConfigError naming every variable ``platform`` still needs."""
        missing: list[str] = []
        if platform == "slack":
            mode = ("http" if http else "socket") if http is not None else self.slack_mode
            if not self.slack_bot_token:
                missing.append("SLACK_BOT_TOKEN is not set; copy the Bot User OAuth Token "
                               "(xoxb-…) from your Slack app's OAuth & Permissions page.")
            if mode == "http" and not self.slack_signing_secret:
                missing.append("SLACK_SIGNING_SECRET is not set; HTTP mode needs it to verify "
                               "requests. Copy it from Basic Information → App Credentials, or "
                               "set SLACK_APP_TOKEN to use Socket Mode instead.")
            if mode == "socket" and not self.slack_app_token:
                missing.append("SLACK_APP_TOKEN is not set; Socket Mode needs an app-level token "
                               "(xapp-…) with connections:write (Basic Information → App-Level "
                               "Tokens), or use `serve slack --http`.")
        elif platform == "discord":
            if not self.discord_token:
                missing.append("DISCORD_TOKEN is not set; copy the bot token from the Discord "
                               "Developer Portal (your application → Bot → Reset Token).")
        else:
            missing.append(f"unknown platform {platform!r}; use one of: {', '.join(PLATFORMS)}.")
        if missing:
            raise ConfigError(_join(missing), tuple(missing))

    def path_problems(self) -> list[str]:
        """Problems with the folders, found before a long model load rather than after."""
        problems: list[str] = []
        if not self.corpus_dir.exists():
            problems.append(f"DOSSIER_CORPUS_DIR={str(self.corpus_dir)!r} does not exist; create "
                            "it and put the dossier's articles in it, or point the variable at "
                            "the folder that holds them.")
        elif not self.corpus_dir.is_dir():
            problems.append(f"DOSSIER_CORPUS_DIR={str(self.corpus_dir)!r} is a file, not a "
                            "folder; point it at the folder of articles.")
        if self.index_dir.exists() and not self.index_dir.is_dir():
            problems.append(f"DOSSIER_INDEX_DIR={str(self.index_dir)!r} is a file, not a folder; "
                            "point it at a folder (it is created when missing).")
        else:
            parent = _existing_parent(self.index_dir)
            if not os.access(parent, os.W_OK):
                problems.append(f"DOSSIER_INDEX_DIR={str(self.index_dir)!r} cannot be written "
                                f"({parent} is not writable); choose a writable folder or fix "
                                "its permissions.")
        return problems

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, dotenv: bool = True) -> Settings:
        """Read and validate every variable; raise one ConfigError listing all problems."""
        if env is None:
            if dotenv:
                load_env_file()
            env = os.environ
        r = _Reader(env)
        settings = cls(
            corpus_dir=Path(r.get("DOSSIER_CORPUS_DIR") or _default_corpus()),
            index_dir=Path(r.get("DOSSIER_INDEX_DIR") or _default_index()),
            embed_model=r.get("DOSSIER_EMBED_MODEL"),
            admins=r.take(_admins, "DOSSIER_ADMINS", frozenset()),
            health_port=r.take(_int, "DOSSIER_HEALTH_PORT", 8080, low=0, high=65535),
            rate_limit_per_minute=r.take(_int, "DOSSIER_RATE_LIMIT", 10, low=0, high=100_000),
            adders=r.take(_admins, "DOSSIER_ADDERS", frozenset()),
            channels=r.take(_channels, "DOSSIER_CHANNELS", frozenset()),
            auto_channels=r.take(_channels, "DOSSIER_AUTO_CHANNELS", frozenset()),
            channels_file=r.take(_path, "DOSSIER_CHANNELS_FILE", None),
            conversation_ttl=r.take(_float, "DOSSIER_CONVERSATION_TTL", 3600.0, low=1.0,
                                    high=7 * 86400.0),
            feedback_db=r.take(_path, "DOSSIER_FEEDBACK_DB", None),
            log_format=r.take(_choice, "DOSSIER_LOG_FORMAT", "text", options=("text", "json")),
            health_host=r.take(_host, "DOSSIER_HEALTH_HOST", "127.0.0.1"),
            log_level=r.take(_choice, "DOSSIER_LOG_LEVEL", "INFO",
                             options=("DEBUG", "INFO", "WARNING", "ERROR"), upper=True),
            watch=r.take(_bool, "DOSSIER_WATCH", False),
            prefetch=r.take(_bool, "DOSSIER_PREFETCH", True),
            spelling=r.take(_bool, "DOSSIER_SPELLING", True),
            shutdown_grace=r.take(_float, "DOSSIER_SHUTDOWN_GRACE", 25.0, low=0.0, high=3600.0),
            slack_port=r.take(_int, "DOSSIER_SLACK_PORT", 3000, low=1, high=65535),
            slack_bot_token=r.take(_slack_token, "SLACK_BOT_TOKEN", None, kind="bot"),
            slack_signing_secret=r.take(_secret, "SLACK_SIGNING_SECRET", None),
            slack_app_token=r.take(_slack_token, "SLACK_APP_TOKEN", None, kind="app"),
            slack_api_url=r.take(_url, "SLACK_API_URL", DEFAULT_SLACK_API_URL,
                                 trailing_slash=True),
            discord_token=r.take(_discord_token, "DISCORD_TOKEN", None),
            discord_api_url=r.take(_url, "DISCORD_API_URL", DEFAULT_DISCORD_API_URL).rstrip("/"),
            discord_guild_id=r.take(_snowflake, "DISCORD_GUILD_ID", None),
        )
        if settings.health_port and settings.health_port == settings.slack_port:
            r.problems.append(f"DOSSIER_HEALTH_PORT and DOSSIER_SLACK_PORT are both "
                              f"{settings.slack_port}; give them different ports.")
        if settings.channels_file is not None and not r.problems:
            try:
                extra, auto = read_channels_file(settings.channels_file)
            except ConfigError as exc:
                r.problems.append(str(exc))
            else:
                settings = replace(settings, channels=settings.channels | extra,
                                   auto_channels=settings.auto_channels | auto)
        if r.problems:
            raise ConfigError(_join(r.problems), tuple(r.problems))
        return settings

    def answers_in(self, channel: str | None) -> bool:
        """Whether the bot answers in ``channel`` (DMs and unknown channels: allowed lists
        decide; an auto channel is always allowed)."""
        return (not self.channels or channel in self.channels
                or channel in self.auto_channels)

    def may_add(self, user: str | None, roles: frozenset[str] = frozenset()) -> bool:
        """Whether this user (with these roles, on Discord) may add articles from chat."""
        return bool(user) and (user in self.admins or user in self.adders
                               or bool(roles & self.adders))

    def auto_reply(self, channel: str | None) -> bool:
        return channel in self.auto_channels


def mask(secret: str | None) -> str:
    """Show that a secret is set and its length, never any part that is actually secret."""
    if not secret:
        return "(not set)"
    # Slack's token prefixes are public (they name the token type), the rest is not.
    prefix = next((p for p in ("xoxb-", "xoxp-", "xapp-") if secret.startswith(p)), "")
    return f"{prefix}****({len(secret)} chars)"


def env_file_path() -> Path:
    return Path(os.environ.get("DOSSIER_ENV_FILE") or Path.cwd() / ".env")


def load_env_file(path: Path | None = None) -> dict[str, str]:
    """Put the variables of ``.env`` into the environment, without overriding real ones.

    Returns the variables the file supplied (those the environment did not already set),
    so ``config check`` can say where each value came from.
    """
    path = path or env_file_path()
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    values = dotenv_values(path)
    for key in set(_ENV_FILE_SUPPLIED) - set(values):  # from an earlier, different file
        del _ENV_FILE_SUPPLIED[key]
    supplied: dict[str, str] = {}
    for key, value in values.items():
        if value is not None and key not in os.environ:
            os.environ[key] = value
            supplied[key] = value
    _ENV_FILE_SUPPLIED.update(supplied)
    return supplied


_ENV_FILE_SUPPLIED: dict[str, str] = {}


def value_source(name: str) -> str:
    """Where a variable's effective value came from: env, .env or default."""
    if name in _ENV_FILE_SUPPLIED and os.environ.get(name) == _ENV_FILE_SUPPLIED[name]:
        return ".env"
    return "env" if (os.environ.get(name) or "").strip() else "default"


class _Reader:
    """Reads variables, turning each ConfigError into a collected problem."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def get(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None:
            return None
        return value.strip() or None

    def take(self, parse: Callable[..., T], name: str, default: T, **kw: Any) -> T:
        raw = self.get(name)
        if raw is None:
            return default
        try:
            return parse(name, raw, **kw)
        except ConfigError as exc:
            self.problems.append(str(exc))
            return default


def _join(problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems in the configuration:\n" + "\n".join(
        f"  - {p}" for p in problems)


def _existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _path(name: str, raw: str) -> Path:
    return Path(raw)


def _channels(name: str, raw: str) -> frozenset[str]:
    ids: set[str] = set()
    for part in re.split(r"[\s,]+", raw):
        if not part:
            continue
        mention = re.fullmatch(r"<#([A-Za-z0-9]+)(?:\|[^>]*)?>", part)
        part = mention.group(1) if mention else part.lstrip("#")
        if not re.fullmatch(r"[A-Za-z0-9_.:-]+", part):
            raise ConfigError(f"{name} contains {part!r}, which is not a channel ID; list "
                              "channel IDs separated by commas (Slack: C012AB3CD; Discord: "
                              "right-click the channel → Copy Channel ID).")
        ids.add(part)
    return frozenset(ids)


def read_channels_file(path: Path) -> tuple[frozenset[str], frozenset[str]]:
    """``channels:`` and ``auto_channels:`` lists of IDs from a YAML file."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"DOSSIER_CHANNELS_FILE: cannot read {path} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"DOSSIER_CHANNELS_FILE: {path} is not valid YAML ({exc})") from None
    if not isinstance(raw, dict) or set(raw) - {"channels", "auto_channels"}:
        raise ConfigError(f"DOSSIER_CHANNELS_FILE: {path} should hold only `channels:` and "
                          "`auto_channels:` lists of channel IDs")
    out = []
    for key in ("channels", "auto_channels"):
        items = raw.get(key) or []
        if not isinstance(items, list):
            raise ConfigError(f"DOSSIER_CHANNELS_FILE: `{key}` in {path} must be a list")
        out.append(_channels(f"{key} in {path}", ",".join(str(i) for i in items)))
    return out[0], out[1]


def _admins(name: str, raw: str) -> frozenset[str]:
    ids: set[str] = set()
    for part in re.split(r"[\s,]+", raw):
        if not part:
            continue
        mention = re.fullmatch(r"<@!?([A-Za-z0-9]+)(?:\|[^>]*)?>", part)
        if mention:  # a pasted mention still carries the ID
            part = mention.group(1)
        if not re.fullmatch(r"[A-Za-z0-9_.:-]+", part):
            raise ConfigError(
                f"{name} contains {part!r}, which is not a user ID; list user IDs "
                "separated by commas (Slack: profile → ⋮ → Copy member ID, e.g. U012AB3CD; "
                "Discord: Developer Mode on, right-click the user → Copy User ID).")
        ids.add(part)
    return frozenset(ids)


def _int(name: str, raw: str, *, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number; use a number from {low} to "
                          f"{high}, or unset it for the default.") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is out of range; use a number from {low} to {high}.")
    return value


def _float(name: str, raw: str, *, low: float, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds; use e.g. 25.") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={raw} is out of range; use {low:g} to {high:g} seconds.")
    return value


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _bool(name: str, raw: str) -> bool:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not true or false; use 1/true/yes or 0/false/no.")


def _choice(name: str, raw: str, *, options: tuple[str, ...], upper: bool = False) -> str:
    value = raw.upper() if upper else raw.lower()
    if value not in options:
        raise ConfigError(f"{name}={raw!r} is not one of: {', '.join(options)}; pick one "
                          "or unset it for the default.")
    return value


def _host(name: str, raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9.:\[\]-]+", raw):
        raise ConfigError(f"{name}={raw!r} is not an address; use 127.0.0.1 (this machine "
                          "only) or 0.0.0.0 (all interfaces, e.g. in a container).")
    return raw.strip("[]")


def _secret(name: str, raw: str) -> str:
    if any(ch.isspace() for ch in raw):
        # Never echo the value: it is a secret.
        raise ConfigError(f"{name} contains spaces or line breaks; copy it again without them "
                          "(quotes in .env are fine, spaces inside are not).")
    return raw


_SLACK_KINDS = {
    "bot": ("xoxb-", "SLACK_BOT_TOKEN", "Bot User OAuth Token", "OAuth & Permissions"),
    "app": ("xapp-", "SLACK_APP_TOKEN", "app-level token", "Basic Information → App-Level Tokens"),
}


def _slack_token(name: str, raw: str, *, kind: str) -> str:
    prefix, _, what, where = _SLACK_KINDS[kind]
    _secret(name, raw)
    if raw.startswith(prefix):
        return raw
    for other, (other_prefix, other_name, other_what, _) in _SLACK_KINDS.items():
        if other != kind and raw.startswith(other_prefix):
            article = "an" if other_what[0] in "aeiou" else "a"
            raise ConfigError(f"{name} holds {article} {other_what} ({other_prefix}…), which "
                              f"belongs in {other_name}; {name} takes the {what} ({prefix}…) "
                              f"from {where}.")
    if raw.startswith("xoxp-"):
        raise ConfigError(f"{name} holds a user token (xoxp-…); the bot needs its own {what} "
                          f"({prefix}…) from {where}.")
    raise ConfigError(f"{name} does not look like a Slack {what} (it should start with "
                      f"{prefix}); copy it again from your app's {where} page.")


def _discord_token(name: str, raw: str) -> str:
    if raw.lower().startswith("bot "):
        raise ConfigError(f"{name} starts with 'Bot '; set only the token itself, the bot "
                          "adds the prefix.")
    _secret(name, raw)
    if raw.startswith(("xoxb-", "xapp-", "xoxp-")):
        raise ConfigError(f"{name} holds a Slack token; put the Discord bot token from the "
                          "Developer Portal (your application → Bot) in it.")
    return raw


def _snowflake(name: str, raw: str) -> int:
    if not raw.isdigit():
        raise ConfigError(f"{name}={raw!r} is not a numeric ID; copy the server ID from Discord "
                          "(Developer Mode on, right-click the server, Copy Server ID), or "
                          "unset it to register commands globally.")
    return int(raw)


def _url(name: str, raw: str, *, trailing_slash: bool = False) -> str:
    if not re.match(r"^https?://[^\s/]+", raw) or any(ch.isspace() for ch in raw):
        raise ConfigError(f"{name}={raw!r} is not an http(s) URL; unset it to use the "
                          "platform's real API, or give e.g. http://127.0.0.1:9000/api/.")
    if trailing_slash and not raw.endswith("/"):
        raw += "/"
    return raw
