"""Settings read from the environment (and an optional ``.env``), validated once at start.

Each variable is one field of the pydantic-settings model ``Settings``. Every problem is
reported at once, each naming the variable and saying what to do, so an operator fixes a
deployment in one pass instead of one restart per typo. The words are ours: the parsers raise
``ConfigError``, a ``ValueError`` that pydantic collects and ``from_env`` hands on as it is.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

log = logging.getLogger(__name__)

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_DISCORD_API_URL = "https://discord.com/api/v10"
PLATFORMS = ("slack", "discord")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it and says what to do."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems or (message,)


# -- parsers: (variable name, stripped text) -> value, or ConfigError saying how to fix it -----


def _ids(name: str, raw: str, *, mention: str, what: str, how: str,
         strip: str = "") -> frozenset[str]:
    ids: set[str] = set()
    for part in re.split(r"[\s,]+", raw):
        if not part:
            continue
        pasted = re.fullmatch(mention, part)  # a pasted mention still carries the ID
        part = pasted.group(1) if pasted else part.lstrip(strip)
        if not re.fullmatch(r"[A-Za-z0-9_.:-]+", part):
            raise ConfigError(f"{name} contains {part!r}, which is not a {what} ID; list "
                              f"{what} IDs separated by commas ({how}).")
        ids.add(part)
    return frozenset(ids)


def _admins(name: str, raw: str) -> frozenset[str]:
    return _ids(name, raw, mention=r"<@!?([A-Za-z0-9]+)(?:\|[^>]*)?>", what="user",
                how="Slack: profile → ⋮ → Copy member ID, e.g. U012AB3CD; Discord: Developer "
                    "Mode on, right-click the user → Copy User ID")


def _channels(name: str, raw: str) -> frozenset[str]:
    return _ids(name, raw, mention=r"<#([A-Za-z0-9]+)(?:\|[^>]*)?>", what="channel",
                how="Slack: C012AB3CD; Discord: right-click the channel → Copy Channel ID",
                strip="#")


def _int(name: str, raw: str, *, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number; use a number from {low} to "
                          f"{high}, or unset it for the default.") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is out of range; use a number from {low} to {high}.")
    return value


def _float(name: str, raw: str, *, low: float, high: float, unit: str = "seconds",
           example: str = "25") -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of {unit}; use e.g. {example}.") \
            from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={raw} is out of range; use {low:g} to {high:g} {unit}.")
    return value


def _bool(name: str, raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
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
    # Slack's client joins method names onto the base; Discord's paths bring their own slash.
    if trailing_slash:
        return raw if raw.endswith("/") else raw + "/"
    return raw.rstrip("/")


def _parsed(parse: Callable[..., Any], **kw: Any) -> BeforeValidator:
    """Run ``parse`` on text from the environment, under the variable's name; values given
    in code (a Path, a frozenset) are already typed and pass straight to pydantic."""

    def run(value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        name = Settings.model_fields[info.field_name or ""].validation_alias
        return parse(name, value, **kw)

    return BeforeValidator(run)


def _var(name: str, default: Any, help: str, *, secret: bool = False, **kw: Any) -> Any:
    """A field read from the variable ``name``; a secret is kept out of reprs and masked."""
    return Field(default, validation_alias=name, description=help, repr=not secret,
                 json_schema_extra={"secret": secret}, **kw)


_UserIds = Annotated[frozenset[str], _parsed(_admins)]
_ChannelIds = Annotated[frozenset[str], _parsed(_channels)]
_Flag = Annotated[bool, _parsed(_bool)]
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class Settings(BaseSettings):
    """Every setting; field order is the order ``config check`` and the docs list them in.

    ``Settings(...)`` takes only what it is given (tests, benchmarks); ``from_env`` reads the
    environment.
    """

    model_config = SettingsConfigDict(
        frozen=True, case_sensitive=True, validate_by_name=True, extra="ignore",
        hide_input_in_errors=True,  # the input may be a token
        enable_decoding=False)  # lists are "a,b c", never JSON: our parsers read them

    corpus_dir: Path = _var("DOSSIER_CORPUS_DIR", Path("corpus"),
                            "folder of articles (the dossier)")
    index_dir: Path = _var("DOSSIER_INDEX_DIR", Path(".dossier") / "index",
                           "where the search index is kept")
    embed_model: str | None = _var(
        "DOSSIER_EMBED_MODEL", None,
        "sentence-transformers name or path; default: packaged all-MiniLM-L6-v2, tuned")
    admins: _UserIds = _var("DOSSIER_ADMINS", frozenset(),
                            "user IDs allowed to rebuild the index from chat")
    adders: _UserIds = _var("DOSSIER_ADDERS", frozenset(),
                            "user or role IDs (besides admins) allowed to add articles from chat")
    intake_allow_private: _Flag = _var(
        "DOSSIER_INTAKE_ALLOW_PRIVATE", False,
        "links added from chat may reach loopback, private and link-local addresses "
        "(intranet deployments; true/false)")
    channels: _ChannelIds = _var(
        "DOSSIER_CHANNELS", frozenset(),
        "channel IDs the bot answers in; empty: any channel it is invited to")
    auto_channels: _ChannelIds = _var(
        "DOSSIER_AUTO_CHANNELS", frozenset(),
        "channel IDs where every message is a question (no mention needed)")
    channels_file: Path | None = _var(
        "DOSSIER_CHANNELS_FILE", None,
        "optional YAML file with `channels:` and `auto_channels:` lists (merged)")
    conversation_ttl: Annotated[float, _parsed(_float, low=1.0, high=7 * 86400.0)] = _var(
        "DOSSIER_CONVERSATION_TTL", 3600.0, "seconds a thread's follow-ups are remembered")
    rate_limit_per_minute: Annotated[int, _parsed(_int, low=0, high=100_000)] = _var(
        "DOSSIER_RATE_LIMIT", 10, "questions per user per minute; 0: off")
    feedback_db: Path | None = _var(  # None: <index_dir>/../feedback.sqlite3
        "DOSSIER_FEEDBACK_DB", None, "SQLite file for 👍/👎 votes")
    health_port: Annotated[int, _parsed(_int, low=0, high=65535)] = _var(
        "DOSSIER_HEALTH_PORT", 8080, "port of /healthz /readyz /metrics; 0: any")
    # Loopback by default: the image sets 0.0.0.0 so Prometheus can scrape from outside.
    health_host: Annotated[str, _parsed(_host)] = _var(
        "DOSSIER_HEALTH_HOST", "127.0.0.1", "address the health server listens on")
    log_format: Annotated[str, _parsed(_choice, options=("text", "json"))] = _var(
        "DOSSIER_LOG_FORMAT", "text", "text or json")
    log_level: Annotated[str, _parsed(_choice, options=_LEVELS, upper=True)] = _var(
        "DOSSIER_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR")
    watch: _Flag = _var("DOSSIER_WATCH", False,
                        "serve: rebuild when corpus files change (true/false)")
    # Read by index.rows itself; declared here so `config check` checks it.
    prefetch: _Flag = _var("DOSSIER_PREFETCH", True,
                           "read large index files into the page cache in the background at load")
    # Read by index.spelling itself, like prefetch.
    spelling: _Flag = _var("DOSSIER_SPELLING", True,
                           "correct misspelt question words against the dossier's vocabulary")
    # Read by index.embed, index.onnx_embed and index.load themselves, like prefetch.
    embed_backend: Annotated[str, _parsed(_choice, options=("onnx", "torch"))] = _var(
        "DOSSIER_EMBED_BACKEND", "onnx",
        "model runtime: onnx (default, no torch) or torch (sentence-transformers)")
    # Read by index.load and bot.intake, like prefetch.
    inbox_dir: Path | None = _var(
        "DOSSIER_INBOX_DIR", None,
        "where articles added from chat go, read with the corpus (default: corpus/inbox, or "
        "<corpus>-inbox beside a read-only corpus)")
    onnx_dir: Path | None = _var(
        "DOSSIER_ONNX_DIR", None, "folder of the ONNX export (default: beside the packages)")
    max_article_mb: Annotated[float, _parsed(_float, low=0.001, high=1024.0, unit="MB",
                                             example="8")] = _var(
        "DOSSIER_MAX_ARTICLE_MB", 4.0, "largest article file read, in MB")
    # Read by index.documents, in the PDF reader's child process too.
    pdf_seconds: Annotated[float, _parsed(_float, low=1.0, high=3600.0, example="120")] = _var(
        "DOSSIER_PDF_SECONDS", 60.0, "time one PDF may take to read before it is skipped")
    pdf_memory_mb: Annotated[int, _parsed(_int, low=128, high=65536)] = _var(
        "DOSSIER_PDF_MEMORY_MB", 1024, "memory one PDF may take to read, in MB")
    shutdown_grace: Annotated[float, _parsed(_float, low=0.0, high=3600.0)] = _var(
        "DOSSIER_SHUTDOWN_GRACE", 25.0, "seconds to finish questions on SIGTERM")
    # Checked against health_port even when left at its default, hence validate_default.
    slack_port: Annotated[int, _parsed(_int, low=1, high=65535)] = _var(
        "DOSSIER_SLACK_PORT", 3000, "port of the Slack Events API endpoint (HTTP mode)",
        validate_default=True)
    slack_bot_token: Annotated[str | None, _parsed(_slack_token, kind="bot")] = _var(
        "SLACK_BOT_TOKEN", None, "Slack bot token (xoxb-…)", secret=True)
    slack_signing_secret: Annotated[str | None, _parsed(_secret)] = _var(
        "SLACK_SIGNING_SECRET", None, "Slack signing secret (HTTP mode)", secret=True)
    slack_app_token: Annotated[str | None, _parsed(_slack_token, kind="app")] = _var(
        "SLACK_APP_TOKEN", None, "Slack app-level token (xapp-…, Socket Mode)", secret=True)
    slack_api_url: Annotated[str, _parsed(_url, trailing_slash=True)] = _var(
        "SLACK_API_URL", DEFAULT_SLACK_API_URL, "Slack Web API base URL")
    discord_token: Annotated[str | None, _parsed(_discord_token)] = _var(
        "DISCORD_TOKEN", None, "Discord bot token", secret=True)
    discord_api_url: Annotated[str, _parsed(_url)] = _var(
        "DISCORD_API_URL", DEFAULT_DISCORD_API_URL, "Discord REST base URL including /api/v10")
    discord_guild_id: Annotated[int | None, _parsed(_snowflake)] = _var(
        "DISCORD_GUILD_ID", None, "the dossier's server: slash commands sync to it at once, "
        "and Manage Server there makes a dossier admin")

    @field_validator("slack_port")
    @classmethod
    def _ports_differ(cls, port: int, info: ValidationInfo) -> int:
        # info.data lacks health_port when that one is malformed: its own problem is reported.
        if port == info.data.get("health_port"):
            raise ConfigError(f"DOSSIER_HEALTH_PORT and DOSSIER_SLACK_PORT are both {port}; "
                              "give them different ports.")
        return port

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   **_others: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only the keyword arguments: from_env hands over the environment it was given, so
        # Settings(...) in tests and benchmarks never picks up the shell's tokens.
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, dotenv: bool = True) -> Settings:
        """Read and validate every variable; raise one ConfigError listing all problems."""
        if env is None:
            if dotenv:
                load_env_file()
            env = os.environ
        try:
            settings = cls(**_Environment(cls, env)())
        except ValidationError as exc:
            problems = [_problem(error) for error in exc.errors()]
            raise ConfigError(_join(problems), tuple(problems)) from None
        if settings.channels_file is None:
            return settings
        extra, auto = read_channels_file(settings.channels_file)
        return settings.with_overrides(channels=settings.channels | extra,
                                       auto_channels=settings.auto_channels | auto)

    @property
    def feedback_path(self) -> Path:
        return self.feedback_db or self.index_dir.parent / "feedback.sqlite3"

    @property
    def platforms(self) -> tuple[str, ...]:
        """The chat platforms whose token is set, which a bare ``serve`` runs."""
        tokens = {"slack": self.slack_bot_token, "discord": self.discord_token}
        return tuple(platform for platform, token in tokens.items() if token)

    @property
    def slack_mode(self) -> str:
        """Socket Mode when an app-level token is set (no public URL needed), else HTTP."""
        return "socket" if self.slack_app_token else "http"

    def with_overrides(self, **changes: object) -> Settings:
        return self.model_copy(update={k: v for k, v in changes.items() if v is not None})

    def secrets(self) -> list[str]:
        """The secret values in use, for the log redactor."""
        return [v for name in SECRET_FIELDS if (v := getattr(self, name))]

    def typed(self) -> dict[str, object]:
        """The effective configuration as JSON values (booleans, numbers, lists, null for
        unset), secrets masked, for ``config check --json``: scripts compare, not parse."""
        out = self.model_dump(mode="json")
        out.update({name: mask(out[name]) if out[name] else None for name in SECRET_FIELDS})
        return {name: sorted(v) if isinstance(v, list) else v for name, v in out.items()}

    def masked(self) -> dict[str, str]:
        """The effective configuration with every secret masked, for ``config check``."""
        unset = {"channels": "(any channel the bot is invited to)",
                 "feedback_db": f"(default: {self.feedback_path})",
                 "embed_model": "(packaged all-MiniLM-L6-v2, tuned)",
                 **dict.fromkeys(SECRET_FIELDS, "(not set)")}
        out: dict[str, str] = {}
        for name, value in self.typed().items():
            if isinstance(value, list):
                out[name] = ",".join(value) or unset.get(name, "(none)")
            else:
                out[name] = unset.get(name, "(default)") if value is None else str(value)
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


SECRET_FIELDS = tuple(name for name, f in Settings.model_fields.items()
                      if isinstance(f.json_schema_extra, dict) and f.json_schema_extra["secret"])


@dataclass(frozen=True)
class Variable:
    """One environment variable: the field it sets, and what an operator needs to know."""

    name: str
    field: str
    help: str
    secret: bool = False


# Derived from the model, for `config check` and the docs test; order is the display order.
VARIABLES: tuple[Variable, ...] = tuple(
    Variable(str(f.validation_alias), name, f.description or "", name in SECRET_FIELDS)
    for name, f in Settings.model_fields.items())


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over the mapping ``from_env`` was given
    (``os.environ``, or a test's dict) instead of always ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self.environ = environ  # read by _load_env_vars, which the base __init__ calls
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # Spaces around a value are a copy-paste slip, and a blank value means "unset".
        return {k: v.strip() for k, v in self.environ.items() if v.strip()}


def _problem(error: ErrorDetails) -> str:
    """Our message for one validation error; pydantic's own wording never reaches the user."""
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, ConfigError):
        return str(cause)
    # Every value from the environment goes through a parser above, so this is a value of
    # the wrong type passed in code; name it without echoing it (it may be a secret).
    return f"{'.'.join(map(str, error['loc']))} has a value of the wrong type ({error['type']})."


def mask(secret: str | None) -> str:
    """Show that a secret is set and its length, never any part that is actually secret."""
    if not secret:
        return "(not set)"
    # Slack's token prefixes are public (they name the token type), the rest is not.
    prefix = next((p for p in ("xoxb-", "xoxp-", "xapp-") if secret.startswith(p)), "")
    return f"{prefix}****({len(secret)} chars)"


def env_file_path() -> Path:
    return Path(os.environ.get("DOSSIER_ENV_FILE") or Path.cwd() / ".env")


def load_env_file(path: Path | None = None, *, warn: bool = True) -> dict[str, str]:
    """Put the variables of ``.env`` into the environment, without overriding real ones.

    Into ``os.environ`` rather than a pydantic-settings dotenv source, because index/ reads
    some variables (DOSSIER_EMBED_BACKEND, DOSSIER_PREFETCH) from the process environment.
    Returns the variables the file supplied (those the environment did not already set),
    so ``config check`` can say where each value came from.
    """
    path = path or env_file_path()
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    _ENV_FILE_BAD_LINES[:] = [(path, line) for line in _bad_lines(path)]
    for warning in env_file_warnings() if warn else ():
        if warning not in _WARNED:  # settings are read more than once in a process
            _WARNED.add(warning)
            log.warning("%s (run `dossier-bot config check`)", warning)
    logging.getLogger("dotenv.main").disabled = True  # its warning repeats the one above
    try:
        values = dotenv_values(path)
    finally:
        logging.getLogger("dotenv.main").disabled = False
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
_ENV_FILE_BAD_LINES: list[tuple[Path, int]] = []
_WARNED: set[str] = set()


def _bad_lines(path: Path) -> list[int]:
    """The line numbers of ``.env`` statements python-dotenv cannot read as NAME=value."""
    from dotenv.parser import parse_stream

    try:
        with path.open(encoding="utf-8") as stream:
            return [binding.original.line for binding in parse_stream(stream)
                    if binding.error or (binding.key is not None
                                         and not _ENV_NAME.fullmatch(binding.key))]
    except (OSError, UnicodeDecodeError):
        return []  # dotenv_values reports these itself


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def env_file_warnings() -> list[str]:
    """The lines of the ``.env`` last read that were ignored. The line's text is not shown:
    a token missing its "=" would be."""
    return [f"{path} line {line} is not a valid NAME=value line; no setting is read from it"
            for path, line in _ENV_FILE_BAD_LINES]


def value_source(name: str) -> str:
    """Where a variable's effective value came from: env, .env or default."""
    if name in _ENV_FILE_SUPPLIED and os.environ.get(name) == _ENV_FILE_SUPPLIED[name]:
        return ".env"
    return "env" if (os.environ.get(name) or "").strip() else "default"


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
